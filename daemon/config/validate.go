package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Address families a peer session can carry.
const (
	FamilyIPv4 = "ipv4-unicast"
	FamilyIPv6 = "ipv6-unicast"
)

// Validate checks every value and returns all problems found, each prefixed
// with its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if c.Version != Version {
		bad("version", "must be %d, got %d", Version, c.Version)
	}
	if !c.RouterID.Is4() || c.RouterID.IsUnspecified() {
		bad("router_id", "must be a non-zero IPv4 address (it is also the underlay address)")
	}
	if c.ASN == 0 {
		bad("asn", "must be set (1..4294967295)")
	}
	if len(c.GatewayMAC) != 6 {
		bad("gateway_mac", "must be set to the anycast gateway MAC")
	} else if c.GatewayMAC[0]&1 == 1 {
		bad("gateway_mac", "%s is a multicast MAC", c.GatewayMAC)
	}

	if p := c.Kernel.RouteProtocol; p < 5 || p > 255 {
		bad("kernel.route_protocol", "must be in 5..255 (0..4 are the kernel's own), got %d", p)
	}
	if p := c.Kernel.RulePriority; p < 1 || p > 32765 {
		bad("kernel.rule_priority", "must be in 1..32765, got %d", p)
	}
	if q := c.Kernel.TxQueueLen; q < 0 {
		bad("kernel.txqueuelen", "must not be negative")
	}

	if c.BGP.Community != "" {
		if v, err := ParseCommunity(c.BGP.Community); err != nil {
			bad("bgp.community", "%v", err)
		} else if v>>16 == 0xFFFF || v>>16 == 0 {
			bad("bgp.community", "%s is in a reserved range (0:x, 65535:x are well-known communities)", c.BGP.Community)
		}
	}
	if gr := c.BGP.GracefulRestart; gr < 0 || gr > 4095*time.Second {
		bad("bgp.graceful_restart", "must be 0 (off) to 4095s, got %s", gr)
	}
	if p := c.BGP.ListenPort; p < -1 || p > 65535 || p == 0 {
		bad("bgp.listen_port", "must be -1 (do not listen) or a TCP port, got %d", p)
	}

	if c.Forwarding.Hold < 0 {
		bad("forwarding.hold", "must not be negative")
	}
	if d := c.Forwarding.Device; d == "" || len(d) > 15 {
		bad("forwarding.device", "must be an interface name of 1..15 characters")
	}
	if p := c.Forwarding.Port; p < 1 || p > 65535 {
		bad("forwarding.port", "must be a UDP port, got %d", p)
	}
	if p := c.Forwarding.NotifyPort; p < 0 || p > 65535 {
		bad("forwarding.notify_port", "must be 0 (off) or a UDP port, got %d", p)
	}
	if c.Forwarding.NotifyPort != 0 && len(c.Forwarding.NotifyKey) < 16 {
		bad("forwarding.notify_key", "must be at least 16 characters when notify_port is set")
	}

	if c.Safety.FramesPerSecond < 1 {
		bad("safety.frames_per_second", "must be at least 1")
	}
	if c.Safety.FreezeMoves < 1 {
		bad("safety.freeze_moves", "must be at least 1")
	}
	if c.Safety.FreezeWindow <= 0 {
		bad("safety.freeze_window", "must be positive")
	}

	c.validateTenants(bad)
	c.validateHosts(bad)

	if c.State.Journal == "" || !filepath.IsAbs(c.State.Journal) {
		bad("state.journal", "must be an absolute path")
	}
	if c.API.Socket == "" || !filepath.IsAbs(c.API.Socket) {
		bad("api.socket", "must be an absolute path")
	}
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || port == "" {
			bad("metrics.listen", "want host:port, got %q", c.Metrics.Listen)
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Timers.Reconcile < time.Second {
		bad("timers.reconcile", "must be at least 1s, got %s", c.Timers.Reconcile)
	}
	if c.Timers.Drain <= 0 {
		bad("timers.drain", "must be positive")
	}
	if c.Timers.StartupHold < 0 {
		bad("timers.startup_hold", "must not be negative")
	}
	if c.Timers.StagedExpiry <= 0 {
		bad("timers.staged_expiry", "must be positive")
	}
	return errors.Join(errs...)
}

func (c *Config) validateTenants(bad func(key, format string, args ...any)) {
	if len(c.Tenants) == 0 {
		bad("tenants", "at least one tenant is required")
	}
	names := map[string]bool{}
	ids := map[uint16]string{}
	tables := map[int]string{}
	patterns := map[string]string{}
	for i, t := range c.Tenants {
		key := fmt.Sprintf("tenants[%d]", i)
		if t.Name == "" {
			bad(key+".name", "must be set")
		} else if names[t.Name] {
			bad(key+".name", "%q is used by another tenant", t.Name)
		}
		names[t.Name] = true
		if t.ID == 0 {
			bad(key+".id", "must be in 1..65535")
		} else if other, dup := ids[t.ID]; dup {
			bad(key+".id", "%d is already tenant %q's", t.ID, other)
		}
		ids[t.ID] = t.Name
		if len(t.Ports) == 0 {
			bad(key+".ports", "at least one interface name pattern is required")
		}
		for j, p := range t.Ports {
			if _, err := filepath.Match(p, ""); err != nil || p == "" {
				bad(fmt.Sprintf("%s.ports[%d]", key, j), "bad pattern %q", p)
			}
			if other, dup := patterns[p]; dup {
				bad(fmt.Sprintf("%s.ports[%d]", key, j), "pattern %q is also tenant %q's", p, other)
			}
			patterns[p] = t.Name
		}
		if len(t.Prefixes) == 0 {
			bad(key+".prefixes", "at least one mobility prefix is required")
		}
		for j, p := range t.Prefixes {
			k := fmt.Sprintf("%s.prefixes[%d]", key, j)
			switch {
			case !p.IsValid():
				bad(k, "not a prefix")
			case p != p.Masked():
				bad(k, "%s has host bits set (did you mean %s?)", p, p.Masked())
			case p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() || p.Addr().IsLoopback():
				bad(k, "%s is not a routable unicast range", p)
			}
		}
		for j, g := range t.Gateways {
			k := fmt.Sprintf("%s.gateways[%d]", key, j)
			if !g.IsValid() || g.IsUnspecified() || g.IsMulticast() {
				bad(k, "not a unicast address")
			}
			if g.Is4() && !g.IsLinkLocalUnicast() && !inAny(t.Prefixes, g) {
				// A VM's default gateway lives in its subnet; one outside every
				// mobility prefix is almost certainly a typo.
				bad(k, "%s is outside the tenant's prefixes", g)
			}
		}
		if t.Table <= 0 || t.Table == 255 || t.Table == 253 {
			bad(key+".table", "must be a routing table ID other than 0, 253 and 255, got %d", t.Table)
		} else if other, dup := tables[t.Table]; dup {
			bad(key+".table", "table %d is already tenant %q's: tenants never share a table", t.Table, other)
		}
		tables[t.Table] = t.Name
		if t.Table == 254 && len(t.Uplinks) > 0 {
			bad(key+".uplinks", "only tenants with their own table need uplinks")
		}
		if t.IPv6NextHop.IsValid() && !t.IPv6NextHop.Is6() {
			bad(key+".ipv6_next_hop", "must be an IPv6 address")
		}
		for j, p := range t.Peers {
			validatePeer(fmt.Sprintf("%s.peers[%d]", key, j), p, t, bad)
		}
	}
}

func validatePeer(key string, p Peer, t Tenant, bad func(key, format string, args ...any)) {
	if !p.Address.IsValid() || p.Address.IsUnspecified() {
		bad(key+".address", "must be set to the peer's address")
	}
	if p.ASN == 0 {
		bad(key+".asn", "must be set")
	}
	if p.LocalAddress.IsValid() && p.LocalAddress.Is4() != p.Address.Is4() {
		bad(key+".local_address", "must be of the same family as address")
	}
	if p.HoldTime != 0 && p.HoldTime < 3*time.Second {
		bad(key+".hold_time", "must be 0 or at least 3s, got %s", p.HoldTime)
	}
	if p.HoldTime%time.Second != 0 || p.Keepalive%time.Second != 0 || p.ConnectRetry%time.Second != 0 {
		bad(key, "BGP timers are whole seconds")
	}
	if p.Keepalive >= p.HoldTime && p.HoldTime != 0 {
		bad(key+".keepalive", "must be shorter than hold_time")
	}
	if p.ConnectRetry < time.Second {
		bad(key+".connect_retry", "must be at least 1s")
	}
	if len(p.Password) > 80 {
		bad(key+".password", "TCP-MD5 keys are at most 80 bytes")
	}
	if p.Port < 1 || p.Port > 65535 {
		bad(key+".port", "must be a TCP port")
	}
	for i, f := range p.Families {
		switch f {
		case FamilyIPv4:
		case FamilyIPv6:
			if p.Address.Is4() && !t.IPv6NextHop.IsValid() {
				bad(fmt.Sprintf("%s.families[%d]", key, i), "IPv6 over an IPv4 session needs the tenant's ipv6_next_hop")
			}
		default:
			bad(fmt.Sprintf("%s.families[%d]", key, i), "unknown family %q (want %s or %s)", f, FamilyIPv4, FamilyIPv6)
		}
	}
}

func (c *Config) validateHosts(bad func(key, format string, args ...any)) {
	for i, h := range c.Hosts {
		key := fmt.Sprintf("hosts[%d]", i)
		t := c.Tenant(h.Tenant)
		if t == nil {
			bad(key+".tenant", "no tenant named %q", h.Tenant)
			continue
		}
		if len(h.MAC) != 6 {
			bad(key+".mac", "must be set")
		}
		if len(h.Addresses) == 0 {
			bad(key+".addresses", "at least one address is required")
		}
		for j, a := range h.Addresses {
			if !inAny(t.Prefixes, a) {
				bad(fmt.Sprintf("%s.addresses[%d]", key, j), "%s is outside tenant %q's prefixes", a, t.Name)
			}
		}
	}
}

// Tenant returns the tenant named name, or nil.
func (c *Config) Tenant(name string) *Tenant {
	for i := range c.Tenants {
		if c.Tenants[i].Name == name {
			return &c.Tenants[i]
		}
	}
	return nil
}

// TenantForPort returns the tenant whose port patterns match the interface
// name, or nil when it is not a VM port.
func (c *Config) TenantForPort(ifname string) *Tenant {
	for i := range c.Tenants {
		for _, p := range c.Tenants[i].Ports {
			if ok, _ := filepath.Match(p, ifname); ok {
				return &c.Tenants[i]
			}
		}
	}
	return nil
}

// Contains reports whether addr lies inside one of the tenant's mobility prefixes.
func (t *Tenant) Contains(addr netip.Addr) bool { return inAny(t.Prefixes, addr) }

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseCommunity parses a standard community written as "ASN:value".
func ParseCommunity(s string) (uint32, error) {
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q: want ASN:value", s)
	}
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q: both halves must be 0..65535", s)
	}
	return uint32(h)<<16 | uint32(l), nil
}
