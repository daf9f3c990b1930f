// Package faults is the lab that attacks roamd: hostile VMs and injected
// faults, with traffic flowing.
//
// The topology (faults.clab.yml, README.md) is the two-site fabric of
// labs/two-site (same leaves, same address plan) with more VMs: the VM
// that moves, a VM that stays on each hypervisor, a hostile VM on hv2, and
// a VM of a second tenant. The package brings it up, places the VMs,
// sends the hostile VM's claims and floods, checks what the fabric and
// the hypervisors hold against where each VM really runs, watches the
// leaves' routes while roamd restarts, and runs the fault campaign: roamd
// killed (kill -9) on the source or the destination of a move, roamd
// killed while nothing moves, a leaf's FRR restarted, a BGP session reset
// and a port deleted in the middle of a move.
package faults

import (
	"context"
	"embed"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// files are the topology and the hypervisors' configs; the leaves' come
// from the two-site lab.
//
//go:embed faults.clab.yml hv1 hv2
var files embed.FS

// TopologyFile is the topology's file name.
const TopologyFile = "faults.clab.yml"

// Node names besides the two-site lab's (twosite.Leaf1, twosite.HV1, ...).
const (
	Still1 = "still1"
	Still2 = "still2"
	Evil   = "evil"
	Blue   = "blue"
)

// Tenants.
const (
	TenantDefault = "default"
	TenantBlue    = "blue"
)

// VM is a VM of the lab as its node's exec lines configure it.
type VM struct {
	Name   string
	Tenant string
	MAC    net.HardwareAddr
	Addr4  netip.Addr
	Addr6  netip.Addr // invalid: none
	Port   string     // its port's name on the hypervisor
	Home   string     // the hypervisor it starts on
}

// Prefixes returns the VM's host routes.
func (v VM) Prefixes() []netip.Prefix {
	out := []netip.Prefix{netip.PrefixFrom(v.Addr4, 32)}
	if v.Addr6.IsValid() {
		out = append(out, netip.PrefixFrom(v.Addr6, 128))
	}
	return out
}

// VMs are the lab's VMs, by name.
var VMs = map[string]VM{
	twosite.VM: {Name: twosite.VM, Tenant: TenantDefault, MAC: mac("52:54:00:10:00:10"),
		Addr4: twosite.VMAddr, Addr6: twosite.VMAddr6, Port: "tapvm1", Home: twosite.HV1},
	Still1: {Name: Still1, Tenant: TenantDefault, MAC: mac("52:54:00:10:00:21"),
		Addr4: netip.MustParseAddr("10.10.0.21"), Addr6: netip.MustParseAddr("2001:db8:10::21"), Port: "tapst1", Home: twosite.HV1},
	Still2: {Name: Still2, Tenant: TenantDefault, MAC: mac("52:54:00:10:00:22"),
		Addr4: netip.MustParseAddr("10.10.0.22"), Addr6: netip.MustParseAddr("2001:db8:10::22"), Port: "tapst2", Home: twosite.HV2},
	Evil: {Name: Evil, Tenant: TenantDefault, MAC: mac("52:54:00:66:66:66"),
		Addr4: netip.MustParseAddr("10.10.0.66"), Addr6: netip.MustParseAddr("2001:db8:10::66"), Port: "tapevil", Home: twosite.HV2},
	Blue: {Name: Blue, Tenant: TenantBlue, MAC: mac("52:54:00:20:00:10"),
		Addr4: netip.MustParseAddr("10.20.0.10"), Port: "blu1", Home: twosite.HV2},
}

// RoutedVMs are the VMs of tenant default, whose routes the fabric carries.
var RoutedVMs = []string{twosite.VM, Still1, Still2, Evil}

// Mobility prefixes of tenant default; tenant blue's; the blue table.
var (
	MobilityPrefixes = []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24"), netip.MustParsePrefix("2001:db8:10::/64")}
	BluePrefix       = netip.MustParsePrefix("10.20.0.0/24")
	BlueTable        = 100
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// Lab is the running faults lab.
type Lab struct {
	*nslab.Lab
}

// Up brings the lab up, waits for the fabric and places every VM on its
// home hypervisor (each announces itself until its route is in place). On
// an error after nslab.Up the lab is returned, still up, for its logs.
func Up(ctx context.Context, opts nslab.Options) (*Lab, error) {
	nl, err := nslab.UpExtracted(ctx, extract, twosite.WaitFabric, opts)
	if nl == nil {
		return nil, err
	}
	l := &Lab{Lab: nl}
	if err != nil {
		return l, err
	}
	return l, l.PlaceAll(ctx)
}

// extract writes the lab's files and two-site's, which its leaves use.
func extract(dir string) (string, error) {
	return twosite.ExtractBeside(dir, "faults", files, TopologyFile)
}

// PlaceAll makes every VM announce itself where its port is until roamd
// there has claimed it, then waits until both leaves route the fabric's
// VMs to their hypervisors and each hypervisor knows the other's VMs
// (their MACs ride on the routes: a RARP after a move can then be
// claimed).
func (l *Lab) PlaceAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, name := range []string{twosite.VM, Still1, Still2, Evil, Blue} {
		if err := l.Place(ctx, name); err != nil {
			return err
		}
	}
	return l.WaitConverged(ctx)
}

// Place makes the VM announce its addresses (gratuitous ARP, unsolicited
// NA) on the hypervisor holding its port until roamd there has announced
// them.
func (l *Lab) Place(ctx context.Context, name string) error {
	v := VMs[name]
	hv, err := l.PortLocation(name)
	if err != nil {
		return err
	}
	if hv == "" {
		return fmt.Errorf("%s's port is not on a hypervisor", name)
	}
	return nslab.Poll(ctx, fmt.Sprintf("%s announced on %s", name, hv), func(ctx context.Context) (bool, string, error) {
		if err := l.AnnounceVM(name); err != nil {
			return false, "", nslab.Abort(err)
		}
		hs, err := l.RoamdHosts(ctx, hv)
		if err != nil {
			return false, "", err
		}
		want := map[netip.Addr]bool{v.Addr4: true}
		if v.Addr6.IsValid() {
			want[v.Addr6] = true
		}
		for _, h := range hs {
			if h.Tenant == v.Tenant && want[h.Address] && h.State == "announced" && h.Port == v.Port {
				delete(want, h.Address)
			}
		}
		return len(want) == 0, fmt.Sprintf("not announced yet: %v", keys(want)), nil
	})
}

// AnnounceVM makes a VM announce its own addresses, as a guest does when
// its interface comes up: a gratuitous ARP and, with IPv6, an unsolicited
// NA.
func (l *Lab) AnnounceVM(name string) error {
	v := VMs[name]
	claims := []netip.Addr{v.Addr4}
	if v.Addr6.IsValid() {
		claims = append(claims, v.Addr6)
	}
	return l.SendClaims(name, claims...)
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
