package movebench

import (
	"embed"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/roamd/roamd/labs/clab"
)

// Fabric is how the network lets a VM move between the two hypervisors.
type Fabric string

// The fabrics (one topology each, per kind of leaves).
const (
	// FabricRoamd: roamd on each hypervisor announces the VM's /32.
	FabricRoamd Fabric = "roamd"
	// FabricL2: one bridged segment stretched over both hypervisors by a
	// flood-and-learn VXLAN, one gateway on hv1.
	FabricL2 Fabric = "l2"
	// FabricDIY: FRR on each hypervisor redistributes kernel host routes
	// that a watcher writes when the VM announces itself (package diy).
	FabricDIY Fabric = "diy"
	// FabricEVPN: FRR BGP EVPN-VXLAN between the hypervisors with a
	// distributed anycast gateway.
	FabricEVPN Fabric = "evpn"
)

// Fabrics lists every fabric.
var Fabrics = []Fabric{FabricRoamd, FabricL2, FabricDIY, FabricEVPN}

// Leaves is the routing daemon the two leaves run.
type Leaves string

// Kinds of leaves.
const (
	LeavesFRR  Leaves = "frr"
	LeavesBIRD Leaves = "bird"
)

// AllLeaves lists both kinds of leaves.
var AllLeaves = []Leaves{LeavesFRR, LeavesBIRD}

// Variant is one fabric with one kind of leaves: one topology.
type Variant struct {
	Fabric Fabric
	Leaves Leaves
}

// Variants returns every variant, FRR leaves first.
func Variants() []Variant {
	var vs []Variant
	for _, l := range AllLeaves {
		for _, f := range Fabrics {
			vs = append(vs, Variant{f, l})
		}
	}
	return vs
}

// String is "<fabric>-<leaves>", e.g. "evpn-bird".
func (v Variant) String() string { return string(v.Fabric) + "-" + string(v.Leaves) }

// TopologyFile is the variant's topology file in the fabrics directory.
func (v Variant) TopologyFile() string { return v.String() + ".clab.yml" }

// Node names, the same in every variant.
const (
	Leaf1  = "leaf1"
	Leaf2  = "leaf2"
	HV1    = "hv1"
	HV2    = "hv2"
	Client = "client"
)

// Port is the VM's port on the hypervisor that runs it (QEMU's tap). It
// matches roamd's and the do-it-yourself watcher's port pattern, tap*.
const Port = "tapvm1"

// EchoPort is the UDP and TCP echo port the probe talks to in the VM.
const EchoPort = 7007

// The address plan (README.md), the same in every variant; the VM is the
// QEMU lab's guest (labs/qemu-migration/guest.DefaultConfig).
var (
	VMAddr     = netip.MustParseAddr("10.10.0.10")
	VMPrefix   = netip.MustParsePrefix("10.10.0.10/24")
	Gateway    = netip.MustParseAddr("10.10.0.1")
	VMMAC      = net.HardwareAddr{0x52, 0x54, 0x00, 0x10, 0x00, 0x10}
	GatewayMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	ClientAddr = netip.MustParseAddr("198.51.100.130")

	// Loopbacks are the router IDs and underlay (VXLAN) addresses.
	Loopbacks = map[string]netip.Addr{
		Leaf1: netip.MustParseAddr("192.0.2.1"),
		Leaf2: netip.MustParseAddr("192.0.2.2"),
		HV1:   netip.MustParseAddr("192.0.2.11"),
		HV2:   netip.MustParseAddr("192.0.2.12"),
	}
	// LeafOf is the leaf each hypervisor hangs off.
	LeafOf = map[string]string{HV1: Leaf1, HV2: Leaf2}
	// Uplink is each hypervisor's address on its leaf link.
	Uplink = map[string]netip.Addr{
		HV1: netip.MustParseAddr("198.51.100.3"),
		HV2: netip.MustParseAddr("198.51.100.5"),
	}
	// InterLeaf is each leaf's address on the leaf-leaf link.
	InterLeaf = map[string]netip.Addr{
		Leaf1: netip.MustParseAddr("198.51.100.0"),
		Leaf2: netip.MustParseAddr("198.51.100.1"),
	}
)

// Other returns the other hypervisor.
func Other(hv string) string {
	if hv == HV1 {
		return HV2
	}
	return HV1
}

// files are the variants' topologies and node configs.
//
//go:embed fabrics
var files embed.FS

// Extract writes the fabrics directory (every variant's topology and the
// files they bind) into dir and returns the variant's topology file there.
func (v Variant) Extract(dir string) (string, error) {
	sub, err := fs.Sub(files, "fabrics")
	if err == nil {
		err = os.CopyFS(dir, sub)
	}
	if err != nil {
		return "", fmt.Errorf("extracting the move benchmark's fabrics: %w", err)
	}
	return filepath.Join(dir, v.TopologyFile()), nil
}

// Load extracts the variant into dir and parses its topology. nslab copies
// every bound file when it brings the lab up, so dir may go then.
func (v Variant) Load(dir string) (*clab.Topology, error) {
	path, err := v.Extract(dir)
	if err != nil {
		return nil, err
	}
	return clab.Load(path)
}
