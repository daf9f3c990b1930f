// Package twosite is the two-site lab: two leaves (FRR) with a hypervisor
// (roamd) under each, a client under leaf1 and a VM that moves between the
// hypervisors. The topology and per-node configs live beside this file (see
// README.md) and are embedded, so the roamlab command carries them. The
// package brings the lab up with nslab, places the VM, runs the probe
// traffic and moves the VM back and forth; the demo and the end-to-end tests
// are built from these steps.
package twosite

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
)

// Files are the topology and node configs.
//
//go:embed two-site.clab.yml leaf1 leaf2 hv1 hv2
var Files embed.FS

// TopologyFile is the topology's file name in Files.
const TopologyFile = "two-site.clab.yml"

// Node names.
const (
	Leaf1  = "leaf1"
	Leaf2  = "leaf2"
	HV1    = "hv1"
	HV2    = "hv2"
	Client = "client"
	VM     = "vm"
)

// The address plan (README.md).
var (
	VMAddr     = netip.MustParseAddr("10.10.0.10")
	VMRoute    = netip.PrefixFrom(VMAddr, 32)
	VMAddr6    = netip.MustParseAddr("2001:db8:10::10")
	ClientAddr = netip.MustParseAddr("198.51.100.130")

	// Loopbacks are the router IDs (and underlay addresses) of the nodes.
	Loopbacks = map[string]netip.Addr{
		Leaf1: netip.MustParseAddr("192.0.2.1"),
		Leaf2: netip.MustParseAddr("192.0.2.2"),
		HV1:   netip.MustParseAddr("192.0.2.11"),
		HV2:   netip.MustParseAddr("192.0.2.12"),
	}
	// ASN of each hypervisor.
	ASN = map[string]uint32{HV1: 65011, HV2: 65012}
	// LeafOf is the leaf each hypervisor hangs off.
	LeafOf = map[string]string{HV1: Leaf1, HV2: Leaf2}
	// Uplink is each hypervisor's address on its leaf link: its BGP
	// session address and the next hop of its routes at the leaf.
	Uplink = map[string]netip.Addr{
		HV1: netip.MustParseAddr("198.51.100.3"),
		HV2: netip.MustParseAddr("198.51.100.5"),
	}
	// InterLeaf is each leaf's address on the leaf-leaf link: the next hop
	// of the routes the other leaf learns from it.
	InterLeaf = map[string]netip.Addr{
		Leaf1: netip.MustParseAddr("198.51.100.0"),
		Leaf2: netip.MustParseAddr("198.51.100.1"),
	}
)

// EchoPort is the VM's UDP and TCP echo port.
const EchoPort = 7007

// Other returns the other hypervisor.
func Other(hv string) string {
	if hv == HV1 {
		return HV2
	}
	return HV1
}

// Extract writes the embedded topology and configs into dir (which must
// not hold them yet) and returns the topology file's path.
func Extract(dir string) (string, error) {
	if err := os.CopyFS(dir, Files); err != nil {
		return "", fmt.Errorf("extracting the two-site lab: %w", err)
	}
	return filepath.Join(dir, TopologyFile), nil
}

// ExtractBeside writes the files of a lab built on two-site's nodes: its
// own files (fsys) to dir/<name>, two-site's to dir/two-site, where the
// lab's topology finds them by relative binds (../two-site/leaf1/...), as
// in the source tree. It returns the path of the lab's topology file
// (topologyFile in fsys).
func ExtractBeside(dir, name string, fsys fs.FS, topologyFile string) (string, error) {
	if _, err := Extract(filepath.Join(dir, "two-site")); err != nil {
		return "", err
	}
	if err := os.CopyFS(filepath.Join(dir, name), fsys); err != nil {
		return "", fmt.Errorf("extracting the %s lab: %w", name, err)
	}
	return filepath.Join(dir, name, topologyFile), nil
}

// Up brings the embedded lab up (nslab copies every node's files into its
// run directory) and waits until the fabric is ready (WaitFabric). On a
// WaitFabric error the lab is returned, still up, for its logs.
func Up(ctx context.Context, opts nslab.Options) (*nslab.Lab, error) {
	return nslab.UpExtracted(ctx, Extract, WaitFabric, opts)
}

// WaitFabric waits until every BGP session is established (leaf to leaf,
// leaf to hypervisor) and the client reaches both hypervisors' loopbacks
// (roamd forwards and notifies between them over those).
func WaitFabric(ctx context.Context, lab *nslab.Lab) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, leaf := range []string{Leaf1, Leaf2} {
		if err := lab.WaitBGP(ctx, leaf); err != nil {
			return err
		}
	}
	// FRR sends its first updates about a second after the sessions come up:
	// wait for the routes, not the sessions.
	for _, hv := range []string{HV1, HV2} {
		lo := netip.PrefixFrom(Loopbacks[hv], 32)
		other := Leaf1
		if LeafOf[hv] == Leaf1 {
			other = Leaf2
		}
		if err := lab.WaitRoute(ctx, other, lo, InterLeaf[LeafOf[hv]]); err != nil {
			return err
		}
	}
	client := lab.Node(Client)
	for _, hv := range []string{HV1, HV2} {
		if _, err := client.Run(ctx, "ping", "-c", "1", "-W", "2", Loopbacks[hv].String()); err != nil {
			return fmt.Errorf("client cannot reach %s's loopback %s: %w", hv, Loopbacks[hv], err)
		}
	}
	return nil
}

// PlaceVM makes the VM announce itself where its port is (a guest coming
// up sends a gratuitous ARP) and waits until the fabric routes to it there.
func PlaceVM(ctx context.Context, lab *nslab.Lab) (string, error) {
	hv, err := lab.PortLocation(VM)
	if err != nil {
		return "", err
	}
	if hv == "" {
		return "", errors.New("the VM's port is not on a hypervisor")
	}
	// roamd may still be opening its capture on the port: announce until it
	// has claimed the VM, as a guest retries its ARP.
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = nslab.Poll(ctx, "the VM announced on "+hv, func(ctx context.Context) (bool, string, error) {
		if err := lab.Announce(VM); err != nil {
			return false, "", nslab.Abort(err)
		}
		rs, err := lab.Routes(ctx, LeafOf[hv], VMRoute)
		if err != nil {
			return false, "", err
		}
		return nslab.SelectedVia(rs, Uplink[hv]), fmt.Sprintf("%s: %d routes for %s", LeafOf[hv], len(rs), VMRoute), nil
	})
	if err != nil {
		return hv, err
	}
	if err := WaitVMAt(ctx, lab, hv); err != nil {
		return hv, err
	}
	// A VM that has been running a while is known to every roamd (its MAC
	// rides on its route): the other hypervisor can then claim it on a RARP,
	// which carries no address. Wait until the other leaf has passed the
	// route on.
	other := Other(hv)
	return hv, lab.WaitAdvertised(ctx, LeafOf[other], Uplink[other], VMRoute, ASN[hv])
}

// WaitVMAt waits until the fabric routes the VM to hypervisor hv: hv's leaf
// via hv, the other leaf via hv's leaf, and the other hypervisor's path
// withdrawn everywhere.
func WaitVMAt(ctx context.Context, lab *nslab.Lab, hv string) error {
	leaf := LeafOf[hv]
	otherHV := Other(hv)
	otherLeaf := LeafOf[otherHV]
	if err := lab.WaitRoute(ctx, leaf, VMRoute, Uplink[hv]); err != nil {
		return err
	}
	if err := lab.WaitRoute(ctx, otherLeaf, VMRoute, InterLeaf[leaf]); err != nil {
		return err
	}
	return lab.WaitNoPathFrom(ctx, otherLeaf, VMRoute, Uplink[otherHV])
}

// Traffic is the probe traffic between the client and the VM: a 1 kHz (or
// other interval) UDP probe and one long-lived TCP session.
type Traffic struct {
	Echo   *probe.Echo
	Prober *probe.Prober
	TCP    *probe.TCPSession
}

// StartTraffic starts the VM's echo server, the client's probe and the TCP
// session, and waits until probe replies flow.
func StartTraffic(ctx context.Context, lab *nslab.Lab, interval time.Duration) (*Traffic, error) {
	t := &Traffic{}
	var err error
	if t.Echo, err = probe.StartEcho(lab.Node(VM), EchoPort); err != nil {
		return nil, err
	}
	target := netip.AddrPortFrom(VMAddr, EchoPort)
	if t.Prober, err = probe.StartAnswered(ctx, lab.Node(Client), target, interval, 10*time.Second); err != nil {
		t.Close()
		return nil, err
	}
	if t.TCP, err = probe.DialChecked(lab.Node(Client), target, 5*time.Second); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Close stops everything still running and returns what the probe recorded
// (nil if it never started).
func (t *Traffic) Close() *probe.Result {
	var res *probe.Result
	if t.Prober != nil {
		res = t.Prober.Stop(time.Second)
		t.Prober = nil
	}
	if t.TCP != nil {
		t.TCP.Close()
		t.TCP = nil
	}
	if t.Echo != nil {
		t.Echo.Close()
		t.Echo = nil
	}
	return res
}
