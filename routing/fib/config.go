package fib

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// TenantConfig is one tenant as the FIB needs it.
type TenantConfig struct {
	Name string
	// ID is the tenant id: the VNI of forwarded packets.
	ID uint16
	// Table is the kernel routing table of the tenant (254 = main).
	Table int
	// Gateways are the anycast gateway addresses configured on every port.
	Gateways []netip.Addr
	// Uplinks are interfaces whose incoming traffic belongs to the tenant
	// (only for tables other than main).
	Uplinks []string
}

// Config is what the FIB writes and how it marks what it owns.
type Config struct {
	// Protocol is the rtnetlink protocol number marking roamd's routes and
	// rules; only routes and rules carrying it are ever pruned.
	Protocol int
	// GatewayMAC is the anycast gateway MAC set on every VM port.
	GatewayMAC net.HardwareAddr
	// RouterID is this hypervisor's underlay address; it is the preferred
	// source of IPv4 host routes when it is a local address.
	RouterID netip.Addr
	// RulePriority is the priority of roamd's policy rules.
	RulePriority int
	// TxQueueLen is set on every VM port; 0 leaves it alone.
	TxQueueLen int
	// ForwardDevice is the name of the VXLAN-GPE device for forwarding; ""
	// disables forwarding.
	ForwardDevice string
	// ForwardPort is the VXLAN UDP port (default 4789).
	ForwardPort int
	// GuardUDPPorts are UDP ports only the underlay may reach: traffic to
	// them from VM ports and tenant uplinks is dropped (the forward port
	// and the move-notification port). Empty: no guard.
	GuardUDPPorts []int
	Tenants       []TenantConfig
}

const (
	mainTable         = unix.RT_TABLE_MAIN
	defaultForwardUDP = 4789
	// highestMetric is the metric of the tenant tables' unreachable default,
	// as Linux VRF setups use: any real default route wins over it.
	highestMetric = 4278198272
)

// validate checks cfg and fills defaults.
func (c *Config) validate() error {
	var errs []error
	// 0-4 are the kernel's and ip(8)'s own (unspec, redirect, kernel,
	// boot, static): pruning those would wipe the host's routes.
	if c.Protocol <= unix.RTPROT_STATIC || c.Protocol > 255 {
		errs = append(errs, fmt.Errorf("protocol %d: must be 5..255", c.Protocol))
	}
	if len(c.GatewayMAC) != 6 || c.GatewayMAC[0]&1 != 0 {
		errs = append(errs, fmt.Errorf("gateway MAC %q: must be a unicast Ethernet MAC", c.GatewayMAC))
	}
	if c.RouterID.IsValid() && !c.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("router ID %s: must be IPv4", c.RouterID))
	}
	if c.TxQueueLen < 0 {
		errs = append(errs, fmt.Errorf("txqueuelen %d: must not be negative", c.TxQueueLen))
	}
	if c.ForwardPort == 0 {
		c.ForwardPort = defaultForwardUDP
	}
	if c.ForwardPort < 1 || c.ForwardPort > 65535 {
		errs = append(errs, fmt.Errorf("forward port %d: must be 1..65535", c.ForwardPort))
	}
	if len(c.ForwardDevice) >= unix.IFNAMSIZ {
		errs = append(errs, fmt.Errorf("forward device %q: name too long", c.ForwardDevice))
	}
	names := map[string]bool{}
	tables := map[int]string{}
	ids := map[uint16]string{}
	ownTables := false
	for i, t := range c.Tenants {
		at := fmt.Sprintf("tenants[%d] (%s)", i, t.Name)
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("tenants[%d]: empty name", i))
		case names[t.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate name", at))
		}
		names[t.Name] = true
		if t.ID == 0 {
			errs = append(errs, fmt.Errorf("%s: id must not be 0", at))
		} else if other, dup := ids[t.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: id %d already used by %s", at, t.ID, other))
		}
		ids[t.ID] = t.Name
		if t.Table <= 0 || t.Table == unix.RT_TABLE_LOCAL || t.Table == unix.RT_TABLE_DEFAULT {
			errs = append(errs, fmt.Errorf("%s: table %d: must be main (254) or a table of its own", at, t.Table))
		} else if other, dup := tables[t.Table]; dup {
			// Two tenants in one table would see each other's hosts.
			errs = append(errs, fmt.Errorf("%s: table %d already used by %s", at, t.Table, other))
		}
		tables[t.Table] = t.Name
		if t.Table != mainTable {
			ownTables = true
		} else if len(t.Uplinks) > 0 {
			errs = append(errs, fmt.Errorf("%s: uplinks are only for tenants with a table of their own", at))
		}
		for _, g := range t.Gateways {
			if !g.IsValid() || g.Zone() != "" || g.Is4In6() {
				errs = append(errs, fmt.Errorf("%s: gateway %s: not a plain IPv4 or IPv6 address", at, g))
			}
		}
	}
	if ownTables && (c.RulePriority <= 0 || c.RulePriority >= 32766) {
		errs = append(errs, fmt.Errorf("rule priority %d: must be 1..32765 (before the main table's rule)", c.RulePriority))
	}
	return errors.Join(errs...)
}
