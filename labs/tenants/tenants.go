// Package tenants is the tenants lab: two tenants, red and blue, each with a
// VM at the same address on the same two hypervisors, isolated VRF-lite
// style. Each tenant has a fabric of its own (one FRR namespace per tenant
// per leaf), an uplink of its own on each hypervisor, a kernel table there
// and its own BGP session from roamd; a separate underlay joins the
// hypervisors' router IDs for forwarding and move notifications. The
// topology and per-node configs live beside this file (see README.md) and
// are embedded; the package brings the lab up with nslab, places the VMs and
// says where each tenant's routes are.
package tenants

import (
	"context"
	"embed"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/roamd/roamd/labs/nslab"
)

// Files are the topology and node configs.
//
//go:embed tenants.clab.yml leaf1-red leaf2-red leaf1-blue leaf2-blue hv1 hv2
var Files embed.FS

// TopologyFile is the topology's file name in Files.
const TopologyFile = "tenants.clab.yml"

// Node names shared by the tenants.
const (
	HV1      = "hv1"
	HV2      = "hv2"
	Underlay = "underlay"
)

// Hypervisors are the hypervisor nodes.
var Hypervisors = []string{HV1, HV2}

// Other returns the other hypervisor.
func Other(hv string) string {
	if hv == HV1 {
		return HV2
	}
	return HV1
}

// The address plan (README.md). Everything on the tenant side is the same
// in both tenants.
var (
	VMAddr   = netip.MustParseAddr("10.10.0.10")
	VMAddr6  = netip.MustParseAddr("2001:db8:10::10")
	VMRoute  = netip.PrefixFrom(VMAddr, 32)
	VMRoute6 = netip.PrefixFrom(VMAddr6, 128)
	// Gateway is the anycast gateway's IPv4 address on every VM port.
	Gateway     = netip.MustParseAddr("10.10.0.1")
	ClientAddr  = netip.MustParseAddr("198.51.100.130")
	ClientAddr6 = netip.MustParseAddr("2001:db8:20::20")

	// RouterIDs are the hypervisors' loopbacks: router IDs and underlay
	// addresses.
	RouterIDs = map[string]netip.Addr{
		HV1: netip.MustParseAddr("192.0.2.11"),
		HV2: netip.MustParseAddr("192.0.2.12"),
	}
	// ASN of each hypervisor (the same for both tenants' speakers).
	ASN = map[string]uint32{HV1: 65011, HV2: 65012}
	// InterLeaf and InterLeaf6 are each leaf's addresses on its tenant's
	// leaf-leaf link, by leaf position (1 or 2): the sessions between the
	// leaves of one tenant.
	InterLeaf  = map[int]netip.Addr{1: netip.MustParseAddr("198.51.100.0"), 2: netip.MustParseAddr("198.51.100.1")}
	InterLeaf6 = map[int]netip.Addr{1: netip.MustParseAddr("2001:db8:ff:1::1"), 2: netip.MustParseAddr("2001:db8:ff:1::2")}
)

// Red's standby VM on hv2 and the floating address red's VMs hand over in
// a failover, VRRP style: on a macvlan (FloatingDev) with the VRRP virtual
// MAC of router 50, which moves with the address (README.md).
const (
	RedStandby     = "red-vm2"
	RedStandbyPort = "tapred2"
	FloatingDev    = "vrrp50"
)

var (
	RedStandbyAddr = netip.MustParseAddr("10.10.0.20")
	RedStandbyMAC  = net.HardwareAddr{0x52, 0x54, 0, 0x10, 0x01, 0x20}
	FloatingAddr   = netip.MustParseAddr("10.10.0.50")
	FloatingMAC    = net.HardwareAddr{0, 0, 0x5e, 0, 0x01, 50}
)

// VXLANPort is the UDP port of roamd's forward device (the default).
const VXLANPort = 4789

// IdentityPort is where each VM's identity server answers (Identity).
const IdentityPort = 7008

// Tenant is one tenant of the lab.
type Tenant struct {
	Name string
	// ID is the tenant id: in the Route Origin community of its routes and
	// the VNI of its forwarded packets.
	ID uint16
	// Table is its kernel table on the hypervisors.
	Table int
	// UplinkDev is the hypervisors' interface toward the tenant's leaf.
	UplinkDev string
	// Uplink and Uplink6 are each hypervisor's addresses on that link:
	// the BGP session address (next hop of /32 routes) and the tenant's
	// ipv6_next_hop (next hop of /128 routes).
	Uplink, Uplink6 map[string]netip.Addr
	// Client and VM are the tenant's nodes; Port is the VM's port on the
	// hypervisors, MAC the VM's MAC.
	Client, VM, Port string
	MAC              net.HardwareAddr
	// Home is the hypervisor the VM starts on.
	Home string
	// EchoPort is the UDP and TCP port of the VM's echo server (the
	// tenants use different ports, so a probe that leaked into the other
	// tenant would hit nothing that answers).
	EchoPort int
}

// The lab's tenants.
var (
	Red = &Tenant{
		Name: "red", ID: 100, Table: 100, UplinkDev: "eth1",
		Uplink: map[string]netip.Addr{HV1: netip.MustParseAddr("198.51.100.3"), HV2: netip.MustParseAddr("198.51.100.5")},
		Uplink6: map[string]netip.Addr{
			HV1: netip.MustParseAddr("2001:db8:ff:2::2"), HV2: netip.MustParseAddr("2001:db8:ff:3::2"),
		},
		Client: "red-client", VM: "red-vm", Port: "tapred1",
		MAC:  net.HardwareAddr{0x52, 0x54, 0, 0x10, 0x01, 0x10},
		Home: HV1, EchoPort: 7100,
	}
	Blue = &Tenant{
		Name: "blue", ID: 200, Table: 200, UplinkDev: "eth2",
		Uplink: map[string]netip.Addr{HV1: netip.MustParseAddr("198.51.100.7"), HV2: netip.MustParseAddr("198.51.100.9")},
		Uplink6: map[string]netip.Addr{
			HV1: netip.MustParseAddr("2001:db8:ff:4::2"), HV2: netip.MustParseAddr("2001:db8:ff:5::2"),
		},
		Client: "blue-client", VM: "blue-vm", Port: "tapblue1",
		MAC:  net.HardwareAddr{0x52, 0x54, 0, 0x10, 0x02, 0x10},
		Home: HV2, EchoPort: 7200,
	}
	Tenants = []*Tenant{Red, Blue}
)

// Leaf returns the tenant's leaf at position 1 or 2 (leaf1 is above hv1
// and has the client, leaf2 is above hv2).
func (t *Tenant) Leaf(pos int) string { return fmt.Sprintf("leaf%d-%s", pos, t.Name) }

// LeafAbove returns the tenant's leaf above hypervisor hv.
func (t *Tenant) LeafAbove(hv string) string { return t.Leaf(leafPos(hv)) }

// Leaves returns the tenant's leaves.
func (t *Tenant) Leaves() []string { return []string{t.Leaf(1), t.Leaf(2)} }

// OtherTenant returns the other tenant.
func (t *Tenant) OtherTenant() *Tenant {
	if t == Red {
		return Blue
	}
	return Red
}

func leafPos(hv string) int {
	if hv == HV1 {
		return 1
	}
	return 2
}

// Extract writes the embedded topology and configs into dir (which must
// not hold them yet) and returns the topology file's path.
func Extract(dir string) (string, error) {
	if err := os.CopyFS(dir, Files); err != nil {
		return "", fmt.Errorf("extracting the tenants lab: %w", err)
	}
	return filepath.Join(dir, TopologyFile), nil
}

// Up brings the embedded lab up and waits until both tenants' fabrics and
// the underlay are ready (WaitFabric). On a WaitFabric error the lab is
// returned, still up, for its logs.
func Up(ctx context.Context, opts nslab.Options) (*nslab.Lab, error) {
	return nslab.UpExtracted(ctx, Extract, WaitFabric, opts)
}

// WaitFabric waits until every leaf's BGP sessions are established (to the
// other leaf of its tenant and to roamd's speaker for that tenant on the
// hypervisor below), each tenant's leaf2 has learned the client network
// from leaf1, and each hypervisor reaches the other's router ID over the
// underlay.
func WaitFabric(ctx context.Context, lab *nslab.Lab) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, t := range Tenants {
		for _, leaf := range t.Leaves() {
			if err := lab.WaitBGP(ctx, leaf); err != nil {
				return err
			}
		}
		// FRR sends its first updates about a second after the sessions
		// come up: wait for the routes, not the sessions.
		if err := lab.WaitRoute(ctx, t.Leaf(2), netip.MustParsePrefix("198.51.100.128/25"), InterLeaf[1]); err != nil {
			return err
		}
	}
	for _, hv := range Hypervisors {
		other := RouterIDs[Other(hv)]
		if _, err := lab.Node(hv).Run(ctx, "ping", "-c", "1", "-W", "2", "-I", RouterIDs[hv].String(), other.String()); err != nil {
			return fmt.Errorf("%s cannot reach %s's router ID %s over the underlay: %w", hv, Other(hv), other, err)
		}
	}
	return nil
}

// Place makes a VM of tenant t announce itself where its port is (a
// gratuitous ARP for its IPv4 address and, when addrs has IPv6 ones, an
// unsolicited neighbour advertisement, as a guest whose interface comes
// up) until the tenant's leaf above that hypervisor routes each of addrs
// there; then it waits until the fabric routes them there (WaitRoutedTo)
// and the other leaf has passed them to the other hypervisor, whose roamd
// then knows the VM's MAC and can claim its addresses on a RARP.
func Place(ctx context.Context, lab *nslab.Lab, t *Tenant, vm string, addrs ...netip.Addr) (string, error) {
	hv, err := lab.PortLocation(vm)
	if err != nil {
		return "", err
	}
	if hv == "" {
		return "", fmt.Errorf("the port of %s is not on a hypervisor", vm)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	leaf := t.LeafAbove(hv)
	err = nslab.Poll(ctx, vm+" announced on "+hv, func(ctx context.Context) (bool, string, error) {
		if err := lab.Announce(vm); err != nil {
			return false, "", nslab.Abort(err)
		}
		if slices.ContainsFunc(addrs, netip.Addr.Is6) {
			if _, err := lab.AnnounceIPv6(vm); err != nil {
				return false, "", nslab.Abort(err)
			}
		}
		var missing []string
		for _, a := range addrs {
			p, nh := hostRoute(a), t.nextHop(hv, a)
			rs, err := lab.Routes(ctx, leaf, p)
			if err != nil {
				return false, "", err
			}
			if !nslab.SelectedVia(rs, nh) {
				missing = append(missing, fmt.Sprintf("%s has no route %s via %s", leaf, p, nh))
			}
		}
		return len(missing) == 0, fmt.Sprint(missing), nil
	})
	if err != nil {
		return hv, err
	}
	if err := WaitRoutedTo(ctx, lab, t, hv, addrs...); err != nil {
		return hv, err
	}
	other := Other(hv)
	for _, a := range addrs {
		if err := lab.WaitAdvertised(ctx, t.LeafAbove(other), t.Uplink[other], hostRoute(a), ASN[hv]); err != nil {
			return hv, err
		}
	}
	return hv, nil
}

// hostRoute returns the /32 or /128 of addr.
func hostRoute(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// nextHop returns the next hop of hypervisor hv's route for addr at the
// tenant's leaf above it.
func (t *Tenant) nextHop(hv string, addr netip.Addr) netip.Addr {
	if addr.Is6() {
		return t.Uplink6[hv]
	}
	return t.Uplink[hv]
}

// WaitRoutedTo waits until the tenant's fabric routes each of addrs (their
// /32 or /128) to hypervisor hv: the leaf above hv via hv's tenant uplink,
// the other leaf via the first (its best path learned from it), and no
// leaf holds a path from the other hypervisor any more.
func WaitRoutedTo(ctx context.Context, lab *nslab.Lab, t *Tenant, hv string, addrs ...netip.Addr) error {
	pos := leafPos(hv)
	leaf, otherLeaf := t.Leaf(pos), t.Leaf(3-pos)
	for _, a := range addrs {
		p := hostRoute(a)
		if err := lab.WaitRoute(ctx, leaf, p, t.nextHop(hv, a)); err != nil {
			return err
		}
		var err error
		if a.Is6() {
			// An IPv6 route learned over the leaves' IPv6 session goes via
			// the peer's link-local address: check where the best path
			// came from.
			err = lab.WaitBestFrom(ctx, otherLeaf, p, InterLeaf6[pos])
		} else {
			err = lab.WaitRoute(ctx, otherLeaf, p, InterLeaf[pos])
		}
		if err != nil {
			return err
		}
		for _, l := range t.Leaves() {
			if err := lab.WaitNoPathFrom(ctx, l, p, t.Uplink[Other(hv)]); err != nil {
				return err
			}
		}
	}
	return nil
}

// TakeFloating makes the VM take red's floating address as a VRRP router
// does with a virtual MAC: a macvlan with FloatingMAC holding the address,
// then a gratuitous ARP from it.
func TakeFloating(ctx context.Context, lab *nslab.Lab, vm string) error {
	a := FloatingAddr.String()
	_, err := lab.Node(vm).Run(ctx, "sh", "-c", fmt.Sprintf(
		"ip link add link eth1 name %[1]s address %[2]s type macvlan mode bridge && ip link set %[1]s up && "+
			"ip addr add %[3]s/32 dev %[1]s && arping -q -U -c 1 -I %[1]s %[3]s", FloatingDev, FloatingMAC, a))
	return err
}

// ReleaseFloating makes the VM give red's floating address up.
func ReleaseFloating(ctx context.Context, lab *nslab.Lab, vm string) error {
	_, err := lab.Node(vm).Run(ctx, "ip", "link", "del", FloatingDev)
	return err
}
