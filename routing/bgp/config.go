package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// Family is an address family a session carries.
type Family uint8

// The address families roamd announces host routes in.
const (
	IPv4Unicast Family = iota + 1
	IPv6Unicast
)

// String returns the family's configuration name (ipv4-unicast, ipv6-unicast).
func (f Family) String() string {
	switch f {
	case IPv4Unicast:
		return "ipv4-unicast"
	case IPv6Unicast:
		return "ipv6-unicast"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// ParseFamily parses a configuration name: ipv4-unicast or ipv6-unicast.
func ParseFamily(s string) (Family, error) {
	switch s {
	case "ipv4-unicast":
		return IPv4Unicast, nil
	case "ipv6-unicast":
		return IPv6Unicast, nil
	}
	return 0, fmt.Errorf("unknown address family %q (want ipv4-unicast or ipv6-unicast)", s)
}

// familyOf is the family of a host route's address.
func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4Unicast
	}
	return IPv6Unicast
}

// Defaults for the zero values of PeerConfig, the same as the daemon's
// configuration defaults: fast failure detection without BFD.
const (
	DefaultPort         = 179
	DefaultHoldTime     = 9 * time.Second
	DefaultConnectRetry = 5 * time.Second
)

// PeerConfig is one BGP neighbour, normally a leaf.
type PeerConfig struct {
	Address      netip.Addr
	ASN          uint32
	LocalAddress netip.Addr // optional: the kernel picks the source otherwise
	Port         int        // 0: DefaultPort
	Password     string     // TCP-MD5 (RFC 2385); empty: none
	// HoldTime, Keepalive and ConnectRetry are whole seconds. Zero values
	// mean DefaultHoldTime, HoldTime/3 and DefaultConnectRetry.
	HoldTime, Keepalive, ConnectRetry time.Duration
	// Families defaults to the family of Address. IPv6 over an IPv4
	// session needs Config.IPv6NextHop.
	Families []Family
	// MaxPrefixes tears the session down when the peer sends more paths
	// than this in one family (GoBGP keeps every received path in its
	// Adj-RIB-In, so this bounds memory). 0: no limit.
	MaxPrefixes uint32
	// BFD runs single-hop BFD (RFC 5880/5881) with GoBGP's native
	// implementation; the peer must run it too.
	BFD bool
}

// Config configures one tenant's speaker.
type Config struct {
	// RouterID is the BGP identifier and this hypervisor's underlay
	// address, carried in the Route Origin community of every route.
	RouterID netip.Addr
	ASN      uint32
	// ListenPort is the TCP port to accept sessions on; 0 or -1: only
	// connect out. Speakers of several tenants in one process need
	// distinct ports.
	ListenPort int
	// TenantID is the Route Origin community's local administrator.
	TenantID uint16
	// Community is a standard community (ASN<<16 | value) added to every
	// route; 0: none.
	Community uint32
	// Prefixes are the mobility prefixes: only /32 and /128 inside them
	// are announced or accepted.
	Prefixes []netip.Prefix
	// IPv6NextHop is the next hop of /128 routes sent over IPv4 sessions.
	IPv6NextHop netip.Addr
	// GracefulRestart is the restart time advertised (RFC 4724), whole
	// seconds up to 4095; 0 turns graceful restart off.
	GracefulRestart time.Duration
	// Restarting says this start follows a restart the peers kept our
	// routes through: the sessions are opened by Ready, not Connect, so
	// no End-of-RIB reaches a peer before the routes are re-announced.
	// Ignored without GracefulRestart.
	Restarting bool
	Peers      []PeerConfig
	// Logger receives the speaker's logs; nil discards them. GoBGP's own
	// logs go to it at warn and above, or everything when the logger has
	// debug enabled.
	Logger *slog.Logger
}

// maxRestartTime is the largest restart time the GR capability can carry
// (12 bits of seconds).
const maxRestartTime = 4095 * time.Second

// validate checks the speaker-wide settings and every peer.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !c.RouterID.Is4() || c.RouterID.IsUnspecified() {
		bad("router ID %v: must be a unicast IPv4 address", c.RouterID)
	}
	if c.ASN == 0 {
		bad("asn: must be set")
	}
	if c.ListenPort < -1 || c.ListenPort > 65535 {
		bad("listen port %d: must be -1, 0 or a TCP port", c.ListenPort)
	}
	if len(c.Prefixes) == 0 {
		bad("prefixes: at least one mobility prefix is required")
	}
	for i, p := range c.Prefixes {
		if !p.IsValid() || p != p.Masked() {
			bad("prefixes[%d] %v: not a masked prefix", i, p)
		}
	}
	if c.IPv6NextHop.IsValid() && (!c.IPv6NextHop.Is6() || c.IPv6NextHop.Is4In6()) {
		bad("IPv6 next hop %v: must be an IPv6 address", c.IPv6NextHop)
	}
	if g := c.GracefulRestart; g < 0 || g > maxRestartTime || g%time.Second != 0 {
		bad("graceful restart %v: must be whole seconds between 0 and %v", g, maxRestartTime)
	}
	errs = append(errs, validatePeers(c.Peers, c.IPv6NextHop))
	return errors.Join(errs...)
}

// validatePeers checks a peer list: each peer and no address twice.
func validatePeers(peers []PeerConfig, v6NextHop netip.Addr) error {
	var errs []error
	seen := make(map[netip.Addr]bool, len(peers))
	for i, p := range peers {
		if err := p.withDefaults().validate(v6NextHop); err != nil {
			errs = append(errs, fmt.Errorf("peers[%d]: %w", i, err))
		}
		if seen[p.Address.Unmap()] {
			errs = append(errs, fmt.Errorf("peers[%d]: %v is configured twice", i, p.Address))
		}
		seen[p.Address.Unmap()] = true
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero values the way PeerConfig documents.
func (p PeerConfig) withDefaults() PeerConfig {
	p.Address = p.Address.Unmap()
	p.LocalAddress = p.LocalAddress.Unmap()
	if p.Port == 0 {
		p.Port = DefaultPort
	}
	if p.HoldTime == 0 {
		p.HoldTime = DefaultHoldTime
	}
	if p.Keepalive == 0 {
		p.Keepalive = p.HoldTime / 3
	}
	if p.ConnectRetry == 0 {
		p.ConnectRetry = DefaultConnectRetry
	}
	if len(p.Families) == 0 {
		p.Families = []Family{familyOf(p.Address)}
	} else {
		p.Families = slices.Clone(p.Families)
		slices.Sort(p.Families)
		p.Families = slices.Compact(p.Families)
	}
	return p
}

// validate checks one peer whose defaults are filled in.
func (p PeerConfig) validate(v6NextHop netip.Addr) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !p.Address.IsValid() || p.Address.IsUnspecified() || p.Address.IsMulticast() {
		bad("address %v: must be the peer's unicast address", p.Address)
	}
	if p.ASN == 0 {
		bad("peer %v: asn must be set", p.Address)
	}
	if p.LocalAddress.IsValid() && p.LocalAddress.Is4() != p.Address.Is4() {
		bad("peer %v: local address %v is of another family", p.Address, p.LocalAddress)
	}
	if p.Port < 1 || p.Port > 65535 {
		bad("peer %v: port %d is not a TCP port", p.Address, p.Port)
	}
	for _, d := range []time.Duration{p.HoldTime, p.Keepalive, p.ConnectRetry} {
		if d < time.Second || d%time.Second != 0 {
			bad("peer %v: timers are whole seconds of at least 1s, got %v", p.Address, d)
			break
		}
	}
	if p.HoldTime < 3*time.Second || p.Keepalive >= p.HoldTime {
		bad("peer %v: hold time %v must be at least 3s and longer than keepalive %v", p.Address, p.HoldTime, p.Keepalive)
	}
	if len(p.Password) > 80 {
		bad("peer %v: TCP-MD5 keys are at most 80 bytes", p.Address)
	}
	for _, f := range p.Families {
		switch f {
		case IPv4Unicast:
		case IPv6Unicast:
			if p.Address.Is4() && !v6NextHop.IsValid() {
				bad("peer %v: IPv6 over an IPv4 session needs an IPv6 next hop", p.Address)
			}
		default:
			bad("peer %v: unknown %v", p.Address, f)
		}
	}
	return errors.Join(errs...)
}
