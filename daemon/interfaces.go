package daemon

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/daemon/hosts"
)

// Kernel programs the hypervisor's kernel: routed ports and host routes
// (routing/fib implements it).
type Kernel interface {
	Setup() error
	PreparePort(port, tenant string) error
	InstallHost(tenant string, addr netip.Addr, port string, mac net.HardwareAddr) error
	ForwardHost(tenant string, addr, to netip.Addr) error
	RemoveHost(tenant string, addr netip.Addr) error
	StageNeighbors(port string, mac net.HardwareAddr, addrs []netip.Addr) error
	Routes() ([]KernelRoute, error)
	Sync(want []KernelRoute) error
}

// KernelRoute is a host route roamd owns: local (Port set) or forwarding to
// another site (ForwardTo set).
type KernelRoute struct {
	Tenant    string
	Addr      netip.Addr
	Port      string
	ForwardTo netip.Addr
}

// Router is one tenant's BGP speaker (routing/bgp implements it).
type Router interface {
	Connect(ctx context.Context) error
	Announce(p Path) error
	Withdraw(prefix netip.Prefix) error
	Announced() []Path
	// Claims delivers every change of the set of other sites' claims on a
	// host prefix.
	Claims() <-chan ClaimSet
	AllClaims() ([]ClaimSet, error)
	// Redeliver queues the current claim set of each prefix on Claims, as
	// if it had changed (empty for a prefix nobody claims).
	Redeliver(prefixes []netip.Prefix)
	// Synced is closed once every session delivered its initial table
	// (End-of-RIB).
	Synced() <-chan struct{}
	Peers() []api.Peer
	// SetPeers applies a new peer list; unchanged sessions are not reset.
	SetPeers(ctx context.Context, peers []config.Peer) error
	Ready() error
	// Stop withdraws everything and closes the sessions; Detach closes them
	// as a crash would, so peers keep the routes under graceful restart.
	Stop(ctx context.Context) error
	Detach(ctx context.Context) error
}

// Path is a host route as roamd announces it.
type Path struct {
	Prefix netip.Prefix
	Seq    uint32
	Sticky bool
	MAC    net.HardwareAddr
}

// ClaimSet is the complete set of other sites' claims on one host prefix.
type ClaimSet struct {
	Prefix netip.Prefix
	Claims []hosts.Claim
}

// Capture reads frames from VM ports and sends frames into them
// (detect/capture implements it).
type Capture interface {
	Watch(port string, index int) error
	Unwatch(port string)
	Send(port string, frame []byte) error
	// SetDiscovery also captures the headers of ordinary packets on a port
	// where no VM is known, so a VM whose announcements were missed is
	// found by whatever it sends.
	SetDiscovery(port string, on bool) error
}

// Notifier tells the old site of a move directly, ahead of BGP, and the old
// site acknowledges once it forwards.
type Notifier interface {
	Notify(to netip.Addr, tenantID uint16, c hosts.Claim, addr netip.Addr) error
	Ack(to netip.Addr, tenantID uint16, seq uint32, addr netip.Addr, mac net.HardwareAddr) error
}

// Prober asks whether the owner of a contested address still answers.
type Prober interface {
	Probe(ctx context.Context, p hosts.ProbeOwner) bool
}

// Journal remembers each host's latest claim sequence across restarts.
type Journal interface {
	Record(tenant string, addr netip.Addr, seq uint32, mac net.HardwareAddr) error
}

// Remembered is what the journal kept of a host: its last claim.
type Remembered struct {
	Seq uint32
	MAC net.HardwareAddr
}

// frameIn is a frame from a VM port with the time it was read.
type frameIn struct {
	frame hosts.Frame
	read  time.Time
}

// PortEvent is a VM port appearing or disappearing.
type PortEvent struct {
	Added bool
	Name  string
	Index int
}
