package tenants

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/labs/nslab"
)

// What each tenant's routes look like where they live: in the hypervisors'
// tables, at the leaves, and in roamd's host table.

// KernelRoutes returns the unicast routes roamd wrote on a hypervisor
// (protocol nslab.RoamdProtocol: host routes and forwarding routes, not the
// tables' unreachable defaults), by table, each as "<prefix> dev <device>",
// sorted.
func KernelRoutes(n *nslab.Node) (map[int][]string, error) {
	rs, err := n.RoamdRoutes()
	if err != nil {
		return nil, err
	}
	out := map[int][]string{}
	for _, r := range rs {
		if r.Type != unix.RTN_UNICAST || r.Dst == nil {
			continue
		}
		dev := fmt.Sprint(r.LinkIndex)
		if l, err := n.Handle.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		out[r.Table] = append(out[r.Table], r.Dst.String()+" dev "+dev)
	}
	for t := range out {
		slices.Sort(out[t])
	}
	return out, nil
}

// PolicyRules returns roamd's policy rules on a hypervisor that send a
// device's traffic to a table, as "iif <device> → <table>" (with the VNI
// for the forward device: "iif roamd-fwd tun_id 100 → 100"), sorted and
// without the duplicate per address family.
func PolicyRules(n *nslab.Node) ([]string, error) {
	var out []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := n.Handle.RuleListFiltered(fam, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("listing rules in %s: %w", n.NS, err)
		}
		for _, r := range rules {
			if int(r.Protocol) != nslab.RoamdProtocol || r.IifName == "" {
				continue
			}
			s := "iif " + r.IifName
			if r.TunID != 0 {
				s += fmt.Sprintf(" tun_id %d", tunID(r.TunID))
			}
			s += fmt.Sprintf(" → %d", r.Table)
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// tunID undoes netlink v1.3.1 decoding FRA_TUN_ID (a big-endian 64-bit
// value) in host byte order.
func tunID(decoded uint) uint64 {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], uint64(decoded))
	return binary.BigEndian.Uint64(b[:])
}

// LeafPath is one BGP path a leaf holds for a prefix.
type LeafPath struct {
	Peer   string // the neighbour it came from
	ASPath string
	Best   bool
	// Origin is the Route Origin (SoO) extended community roamd puts on
	// its routes: "<router ID>:<tenant id>".
	Origin string
	// ExtCommunities is FRR's rendering of all extended communities.
	ExtCommunities string
}

// LeafPaths returns the BGP paths an FRR leaf holds for exactly prefix.
func LeafPaths(ctx context.Context, lab *nslab.Lab, leaf string, prefix netip.Prefix) ([]LeafPath, error) {
	ps, err := lab.BGPPaths(ctx, leaf, prefix)
	if err != nil {
		return nil, err
	}
	var paths []LeafPath
	for _, p := range ps {
		lp := LeafPath{Peer: p.Peer.String(), ASPath: p.ASPath, Best: p.Best, ExtCommunities: p.ExtCommunities}
		for _, c := range strings.Fields(p.ExtCommunities) {
			if o, ok := strings.CutPrefix(c, "SoO:"); ok {
				lp.Origin = o
			}
		}
		paths = append(paths, lp)
	}
	slices.SortFunc(paths, func(a, b LeafPath) int { return strings.Compare(a.Peer+a.ASPath, b.Peer+b.ASPath) })
	return paths, nil
}

// RoamdHostDetail is a host as `roamctl show host --tenant T ADDR -o json`
// prints it, without the times that change while nothing moves.
type RoamdHostDetail struct {
	Tenant       string        `json:"tenant"`
	Address      string        `json:"address"`
	MAC          string        `json:"mac"`
	Port         string        `json:"port"`
	State        string        `json:"state"`
	Sequence     uint32        `json:"sequence"`
	Pinned       bool          `json:"pinned"`
	Frozen       bool          `json:"frozen"`
	ForwardTo    string        `json:"forward_to"`
	RemoteClaims []RemoteClaim `json:"remote_claims"`
}

// RemoteClaim is another site's claim on a host, as roamd on this site
// sees it (through ADD-PATH).
type RemoteClaim = api.Claim

// RoamdHost returns roamd's view on hypervisor hv of the tenant's host
// addr: its own state and the claims of other sites.
func RoamdHost(ctx context.Context, lab *nslab.Lab, hv, tenant string, addr netip.Addr) (RoamdHostDetail, error) {
	var h RoamdHostDetail
	if err := lab.RoamctlJSON(ctx, hv, &h, "show", "host", "--tenant", tenant, addr.String()); err != nil {
		return h, err
	}
	slices.SortFunc(h.RemoteClaims, func(a, b RemoteClaim) int { return strings.Compare(a.Origin, b.Origin) })
	return h, nil
}
