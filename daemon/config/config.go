// Package config loads and validates roamd's configuration file.
//
// The file is YAML, strictly parsed: unknown keys are errors, every value is
// parsed into its real type (netip.Addr, netip.Prefix, time.Duration) and every
// error names the key it is about, e.g. `tenants[0].peers[1].address: ...`.
// Environment variables prefixed ROAMD_ override scalar keys
// (ROAMD_ROUTER_ID, ROAMD_API_SOCKET, ROAMD_LOG_LEVEL, ...).
package config

import (
	"net"
	"net/netip"
	"time"
)

// Version is the only configuration schema version this roamd understands.
const Version = 1

// Config is roamd's whole configuration.
type Config struct {
	Version int `mapstructure:"version"`

	// RouterID is the BGP router ID and also this hypervisor's underlay
	// address: it rides on every route roamd announces (Route Origin
	// community), breaks sequence ties and is where other sites forward
	// in-flight packets and send move notifications.
	RouterID netip.Addr `mapstructure:"router_id"`
	ASN      uint32     `mapstructure:"asn"`

	// GatewayMAC is the anycast gateway MAC, identical on every hypervisor.
	GatewayMAC HardwareAddr `mapstructure:"gateway_mac"`

	Kernel     Kernel     `mapstructure:"kernel"`
	BGP        BGP        `mapstructure:"bgp"`
	Forwarding Forwarding `mapstructure:"forwarding"`
	Safety     Safety     `mapstructure:"safety"`
	Tenants    []Tenant   `mapstructure:"tenants"`
	Hosts      []Host     `mapstructure:"hosts"`
	State      State      `mapstructure:"state"`
	API        API        `mapstructure:"api"`
	Metrics    Metrics    `mapstructure:"metrics"`
	Log        Log        `mapstructure:"log"`
	Timers     Timers     `mapstructure:"timers"`
}

// Kernel holds what roamd owns in the kernel.
type Kernel struct {
	// RouteProtocol marks every route roamd writes; roamd prunes only routes
	// with this protocol number.
	RouteProtocol int `mapstructure:"route_protocol"`
	// RulePriority is the priority of the policy rules roamd writes for
	// tenants whose table is not main.
	RulePriority int `mapstructure:"rule_priority"`
	// TxQueueLen is set on every VM port so a paused VM's queue holds a
	// whole switchover (the default 1000 overflows after ~1 s at 1 kpps).
	TxQueueLen int `mapstructure:"txqueuelen"`
}

// BGP holds speaker-wide settings.
type BGP struct {
	// Community marks every route roamd announces, for fabric policy.
	Community string `mapstructure:"community"`
	// GracefulRestart is the restart time advertised to peers; 0 disables
	// graceful restart.
	GracefulRestart time.Duration `mapstructure:"graceful_restart"`
	// ListenPort is the TCP port roamd accepts BGP sessions on; -1 means
	// roamd only connects out.
	ListenPort int `mapstructure:"listen_port"`
}

// Forwarding configures how the old site hands in-flight packets to the new one.
type Forwarding struct {
	// Hold is how long the old site keeps forwarding after it yields.
	Hold time.Duration `mapstructure:"hold"`
	// Device is the name of the VXLAN device roamd creates for forwarding.
	Device string `mapstructure:"device"`
	// Port is the VXLAN UDP port.
	Port int `mapstructure:"port"`
	// NotifyPort is the UDP port of the direct move notification between
	// roamds; 0 disables notifications (the old site then learns of a move
	// from BGP alone).
	NotifyPort int `mapstructure:"notify_port"`
	// NotifyKey is the shared secret authenticating move notifications.
	NotifyKey string `mapstructure:"notify_key"`
}

// Safety configures claim rate limits and duplicate detection.
type Safety struct {
	// FramesPerSecond limits the frames roamd processes per port.
	FramesPerSecond int `mapstructure:"frames_per_second"`
	// FreezeMoves and FreezeWindow: more than FreezeMoves moves of one host
	// within FreezeWindow freezes it where it is (RFC 7432 section 15).
	FreezeMoves  int           `mapstructure:"freeze_moves"`
	FreezeWindow time.Duration `mapstructure:"freeze_window"`
}

// Tenant is one routing domain: its own ports, gateways, prefixes, kernel
// table and BGP sessions. Addresses may overlap between tenants.
type Tenant struct {
	Name string `mapstructure:"name"`
	// ID distinguishes the tenant on the wire: it is carried in the Route
	// Origin community and is the VXLAN VNI of forwarded packets.
	ID uint16 `mapstructure:"id"`
	// Ports are interface name patterns (shell globs) of this tenant's VM ports.
	Ports []string `mapstructure:"ports"`
	// Gateways are the anycast gateway addresses configured on every port.
	Gateways []netip.Addr `mapstructure:"gateways"`
	// Prefixes are the mobility prefixes: a VM address must fall in one.
	Prefixes []netip.Prefix `mapstructure:"prefixes"`
	// Table is the kernel routing table of this tenant (254 = main).
	Table int `mapstructure:"table"`
	// Uplinks are interfaces whose incoming traffic belongs to this tenant
	// (policy rule iif <uplink> → table), for tables other than main.
	Uplinks []string `mapstructure:"uplinks"`
	// IPv6NextHop is the next hop for /128 routes sent over IPv4 sessions.
	IPv6NextHop netip.Addr `mapstructure:"ipv6_next_hop"`
	Peers       []Peer     `mapstructure:"peers"`
}

// Peer is one BGP neighbour, normally a leaf.
type Peer struct {
	Address      netip.Addr    `mapstructure:"address"`
	ASN          uint32        `mapstructure:"asn"`
	LocalAddress netip.Addr    `mapstructure:"local_address"`
	Password     string        `mapstructure:"password"`
	HoldTime     time.Duration `mapstructure:"hold_time"`
	Keepalive    time.Duration `mapstructure:"keepalive"`
	ConnectRetry time.Duration `mapstructure:"connect_retry"`
	// Families lists the address families of the session: ipv4-unicast,
	// ipv6-unicast. Default: the family of the peer address.
	Families    []string `mapstructure:"families"`
	MaxPrefixes uint32   `mapstructure:"max_prefixes"`
	BFD         bool     `mapstructure:"bfd"`
	Port        int      `mapstructure:"port"`
}

// Host is a host known from configuration: a MAC→address binding, and
// optionally pinned (sticky) where it is.
type Host struct {
	Tenant    string       `mapstructure:"tenant"`
	MAC       HardwareAddr `mapstructure:"mac"`
	Addresses []netip.Addr `mapstructure:"addresses"`
	Pinned    bool         `mapstructure:"pinned"`
}

// State is where roamd keeps what must survive a restart.
type State struct {
	// Journal records each host's latest claim sequence.
	Journal string `mapstructure:"journal"`
}

// API is the local control socket.
type API struct {
	Socket string `mapstructure:"socket"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Listen string `mapstructure:"listen"`
	// Pprof also serves Go's profiler under /debug/pprof/ on Listen.
	Pprof bool `mapstructure:"pprof"`
}

// Log configures slog output.
type Log struct {
	Format string `mapstructure:"format"`
	Level  string `mapstructure:"level"`
}

// Timers holds the daemon's periodic work.
type Timers struct {
	Reconcile time.Duration `mapstructure:"reconcile"`
	Drain     time.Duration `mapstructure:"drain"`
	// StagedExpiry forgets a staged host that never showed up.
	StagedExpiry time.Duration `mapstructure:"staged_expiry"`
	// StartupHold bounds how long new claims wait after a start for every
	// BGP session's initial table (End-of-RIB), so they outbid the
	// sequence numbers and respect the bindings the fabric already has.
	StartupHold time.Duration `mapstructure:"startup_hold"`
}

// HardwareAddr is a MAC address that parses from text.
type HardwareAddr net.HardwareAddr

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HardwareAddr) UnmarshalText(b []byte) error {
	mac, err := net.ParseMAC(string(b))
	if err != nil {
		return err
	}
	if len(mac) != 6 {
		return errNotEthernet
	}
	*h = HardwareAddr(mac)
	return nil
}

// String formats the MAC as aa:bb:cc:dd:ee:ff.
func (h HardwareAddr) String() string { return net.HardwareAddr(h).String() }
