package bgp

import (
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// restartDeferral bounds how long a restarted speaker waits for the
// End-of-RIB of peers that are slow to come up before it sends its routes
// to the peers that are up (GoBGP's selection deferral timer). roamd's
// routes do not depend on what peers send, so a short wait is enough.
const restartDeferral = time.Second

// PeerStatus is the state of one configured session.
type PeerStatus struct {
	Address netip.Addr
	ASN     uint32
	// State is idle, connect, active, opensent, openconfirm or established.
	State string
	Since time.Time // when State was entered
	// Received is the number of paths the peer currently has in our
	// Adj-RIB-In, Accepted those of them that passed the import filter,
	// Rejected the announcements the import filter refused since the peer
	// was configured (a counter), Advertised our routes in the session's
	// families while it is established (every one of them is exported).
	Received, Accepted, Rejected, Advertised uint64
	Families                                 []Family // configured on the session
	// AddPathRx reports that ADD-PATH receive is negotiated for every
	// family of the session: without it roamd sees only the peer's best
	// path and may miss competing claims.
	AddPathRx bool
	LastError string
}

// peerState is what the speaker tracks of a session from GoBGP's events.
type peerState struct {
	state     gobgp.FSMState
	since     time.Time
	lastError string
	rejected  uint64 // since configured, for the status
	// rejectedUp counts rejected paths since the session came up, for the
	// prefix limit; overLimit marks a session roamd shut for exceeding it.
	rejectedUp uint64
	overLimit  bool
	addPathRx  bool // from the capabilities of the established session
}

var stateNames = map[gobgp.FSMState]string{
	gobgp.BGP_FSM_IDLE:        "idle",
	gobgp.BGP_FSM_CONNECT:     "connect",
	gobgp.BGP_FSM_ACTIVE:      "active",
	gobgp.BGP_FSM_OPENSENT:    "opensent",
	gobgp.BGP_FSM_OPENCONFIRM: "openconfirm",
	gobgp.BGP_FSM_ESTABLISHED: "established",
}

func apiFamily(f Family) *api.Family {
	if f == IPv6Unicast {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

// peerOptions are the speaker-wide settings that shape every session.
type peerOptions struct {
	gracefulRestart time.Duration
	restarting      bool // advertise the Restart State and Forwarding State bits
}

// apiPeer translates a peer (defaults filled in) into GoBGP's
// configuration: ADD-PATH receive on every family so the leaf can send all
// paths, graceful restart with forwarding state on every family, the
// prefix limit per family, TCP-MD5 and BFD.
func apiPeer(p PeerConfig, o peerOptions) *api.Peer {
	gr := o.gracefulRestart > 0
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      uint64(p.ConnectRetry / time.Second),
			HoldTime:          uint64(p.HoldTime / time.Second),
			KeepaliveInterval: uint64(p.Keepalive / time.Second),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if gr {
		ap.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(o.gracefulRestart / time.Second),
			DeferralTime:    uint32(restartDeferral / time.Second),
			LocalRestarting: o.restarting,
		}
	}
	if p.BFD {
		ap.Bfd = &api.BfdPeerConfig{Enabled: true}
	}
	for _, f := range p.Families {
		af := &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true},
			AddPaths:          &api.AddPaths{Config: &api.AddPathsConfig{Receive: true}},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: gr}},
		}
		ap.AfiSafis = append(ap.AfiSafis, af)
	}
	return ap
}

// samePeer reports whether two peer configurations (defaults filled in)
// would produce the same session, so a reload can leave it alone.
func samePeer(a, b PeerConfig) bool {
	return a.Address == b.Address && a.ASN == b.ASN && a.LocalAddress == b.LocalAddress &&
		a.Port == b.Port && a.Password == b.Password && a.HoldTime == b.HoldTime &&
		a.Keepalive == b.Keepalive && a.ConnectRetry == b.ConnectRetry &&
		slices.Equal(a.Families, b.Families) && a.MaxPrefixes == b.MaxPrefixes && a.BFD == b.BFD
}

// addPathReceive reports whether the peer's capabilities say it sends
// ADD-PATH for every one of families (roamd always offers to receive).
func addPathReceive(caps []gobgp.ParameterCapabilityInterface, families []Family) bool {
	sends := map[gobgp.Family]bool{}
	for _, c := range caps {
		if ap, ok := c.(*gobgp.CapAddPath); ok {
			for _, t := range ap.Tuples {
				if t.Mode&gobgp.BGP_ADD_PATH_SEND != 0 {
					sends[t.Family] = true
				}
			}
		}
	}
	for _, f := range families {
		if !sends[gobgpFamily(f)] {
			return false
		}
	}
	return len(families) > 0
}
