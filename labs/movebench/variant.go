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
	twosite "github.com/roamd/roamd/labs/two-site"
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

// Node names, the same in every variant: the two-site lab's.
const (
	Leaf1  = twosite.Leaf1
	Leaf2  = twosite.Leaf2
	HV1    = twosite.HV1
	HV2    = twosite.HV2
	Client = twosite.Client
)

// Port is the VM's port on the hypervisor that runs it (QEMU's tap). It
// matches roamd's and the do-it-yourself watcher's port pattern, tap*.
const Port = "tapvm1"

// EchoPort is the UDP and TCP echo port the probe talks to in the VM.
const EchoPort = twosite.EchoPort

// The address plan (README.md), the same in every variant: the two-site
// lab's, and the VM is the QEMU lab's guest
// (labs/qemu-migration/guest.DefaultConfig).
var (
	VMAddr     = twosite.VMAddr
	VMPrefix   = netip.MustParsePrefix("10.10.0.10/24")
	Gateway    = netip.MustParseAddr("10.10.0.1")
	VMMAC      = net.HardwareAddr{0x52, 0x54, 0x00, 0x10, 0x00, 0x10}
	GatewayMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	ClientAddr = twosite.ClientAddr

	// Loopbacks are the router IDs and underlay (VXLAN) addresses.
	Loopbacks = twosite.Loopbacks
	// LeafOf is the leaf each hypervisor hangs off.
	LeafOf = twosite.LeafOf
	// Uplink is each hypervisor's address on its leaf link.
	Uplink = twosite.Uplink
	// InterLeaf is each leaf's address on the leaf-leaf link.
	InterLeaf = twosite.InterLeaf
)

// Other returns the other hypervisor.
func Other(hv string) string { return twosite.Other(hv) }

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
