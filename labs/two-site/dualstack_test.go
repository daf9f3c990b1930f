package twosite

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
)

// The dual-stack VM: its IPv6 side, announced with the same RARPs as its
// IPv4 side after the first placement (one MAC→address binding serves both).

var (
	vmRoute6    = netip.PrefixFrom(VMAddr6, 128)
	clientAddr6 = netip.MustParseAddr("2001:db8:20::20")
	// uplink6 is each hypervisor's IPv6 address on its leaf link: roamd's
	// ipv6_next_hop, so the next hop of its /128 routes at the leaf.
	uplink6 = map[string]netip.Addr{
		HV1: netip.MustParseAddr("2001:db8:ff:2::2"),
		HV2: netip.MustParseAddr("2001:db8:ff:3::2"),
	}
	// gatewayMAC and gatewayLL are the anycast gateway's MAC and IPv6
	// link-local address (hv1/roamd.yaml, hv2/roamd.yaml).
	gatewayMAC = net.HardwareAddr{0x02, 0, 0x5e, 0x10, 0, 0x01}
	gatewayLL  = netip.MustParseAddr("fe80::1")
	// interLeaf6 is each leaf's address on the leaf-leaf link (the IPv6
	// session between the leaves).
	interLeaf6 = map[string]netip.Addr{
		Leaf1: netip.MustParseAddr("2001:db8:ff:1::1"),
		Leaf2: netip.MustParseAddr("2001:db8:ff:1::2"),
	}
)

// placeVM6 makes the VM announce its IPv6 address on hv (an unsolicited
// neighbour advertisement, as a guest sends when its interface comes up)
// until hv's leaf routes the /128 to hv, and waits until the other leaf has
// passed the /128 to the other hypervisor (whose roamd then knows the
// binding and claims both addresses on a RARP).
func placeVM6(ctx context.Context, lab *nslab.Lab, hv string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := nslab.Poll(ctx, "the VM's IPv6 address announced on "+hv, func(ctx context.Context) (bool, string, error) {
		if _, err := lab.AnnounceIPv6(VM); err != nil {
			return false, "", nslab.Abort(err)
		}
		rs, err := lab.Routes(ctx, LeafOf[hv], vmRoute6)
		if err != nil {
			return false, "", err
		}
		return nslab.SelectedVia(rs, uplink6[hv]), fmt.Sprintf("%s: %d routes for %s", LeafOf[hv], len(rs), vmRoute6), nil
	})
	if err != nil {
		return err
	}
	if err := waitVM6At(ctx, lab, hv); err != nil {
		return err
	}
	other := Other(hv)
	return lab.WaitAdvertised(ctx, LeafOf[other], Uplink[other], vmRoute6, ASN[hv])
}

// waitVM6At is WaitVMAt for the /128: hv's leaf routes it to hv, the other
// leaf to hv's leaf, and the other hypervisor's path is gone there.
func waitVM6At(ctx context.Context, lab *nslab.Lab, hv string) error {
	leaf, otherHV := LeafOf[hv], Other(hv)
	if err := lab.WaitRoute(ctx, leaf, vmRoute6, uplink6[hv]); err != nil {
		return err
	}
	if err := lab.WaitBestFrom(ctx, LeafOf[otherHV], vmRoute6, interLeaf6[leaf]); err != nil {
		return err
	}
	return lab.WaitNoPathFrom(ctx, LeafOf[otherHV], vmRoute6, Uplink[otherHV])
}

// startProbe6 starts a 1 kHz (or interval) UDP probe from the client to the
// VM's IPv6 address, answered by the echo server Traffic runs in the VM.
func startProbe6(ctx context.Context, lab *nslab.Lab, interval time.Duration) (*probe.Prober, error) {
	return probe.StartAnswered(ctx, lab.Node(Client), netip.AddrPortFrom(VMAddr6, EchoPort), interval, 10*time.Second)
}

// arrivalOf returns roamd's most recent record of addr arriving at hv.
func arrivalOf(ctx context.Context, lab *nslab.Lab, hv string, addr netip.Addr) (nslab.RoamdMove, error) {
	ms, err := lab.RoamdMoves(ctx, hv)
	if err != nil {
		return nslab.RoamdMove{}, err
	}
	last, ok := nslab.LastArrival(ms, "", addr, time.Time{})
	if !ok {
		return last, fmt.Errorf("roamd on %s recorded no arrival of %s: %+v", hv, addr, ms)
	}
	return last, nil
}

// checkAt6 checks the IPv6 side of the VM running on hv after a RARP-only
// move: roamd claimed the /128 on the same RARP as the /32, the old
// hypervisor withdrew it (no leaf holds a path from it, no roamd route of
// its own left), and traceroute both ways passes the new site only.
func checkAt6(t *testing.T, ctx context.Context, lab *nslab.Lab, hv string) {
	t.Helper()
	old := Other(hv)
	for _, leaf := range []string{Leaf1, Leaf2} {
		if err := lab.WaitNoPathFrom(ctx, leaf, vmRoute6, Uplink[old]); err != nil {
			t.Error(err)
		}
	}
	h4, err4 := lab.WaitRoamdHost(ctx, hv, VMAddr, "announced")
	h6, err6 := lab.WaitRoamdHost(ctx, hv, VMAddr6, "announced")
	if err4 != nil || err6 != nil {
		t.Errorf("roamd on %s: IPv4 %v, IPv6 %v", hv, err4, err6)
	} else if h6.MAC != h4.MAC || h6.Port != h4.Port {
		t.Errorf("roamd on %s holds the VM's addresses apart: %+v and %+v", hv, h4, h6)
	} else {
		t.Logf("roamd on %s: %s and %s announced on %s, sequences %d and %d", hv, h4.Address, h6.Address, h6.Port, h4.Sequence, h6.Sequence)
	}
	if m, err := arrivalOf(ctx, lab, hv, VMAddr6); err != nil {
		t.Error(err)
	} else if m.Source != "rarp" {
		t.Errorf("roamd on %s claimed %s on %q, want the RARP (its binding to the VM's MAC)", hv, VMAddr6, m.Source)
	}
	for _, a := range []netip.Addr{VMAddr, VMAddr6} {
		if err := lab.WaitNoRoamdRoute(ctx, old, a, unix.RTN_UNICAST); err != nil {
			t.Error(err)
		}
	}
	checkNotAnnounced(t, ctx, lab, old, VMAddr6, hv)
	checkPath(t, ctx, lab, Client, VMAddr6, pathToVM[hv], old)
	checkPath(t, ctx, lab, VM, clientAddr6, pathFromVM[hv], old)
}

// vmInterface returns the VM's interface (its end of its one link).
func vmInterface(lab *nslab.Lab) string {
	for _, l := range lab.Topology.Links {
		for _, e := range []clab.Endpoint{l.A, l.B} {
			if e.Node == VM {
				return e.Interface
			}
		}
	}
	return ""
}

// ndpSeen is one neighbour discovery message the VM received.
type ndpSeen struct {
	at     time.Time
	srcMAC net.HardwareAddr
	src    netip.Addr
	msg    ndp.Message
}

// ndpWatch records the neighbour discovery messages the VM receives on
// its interface (a packet socket for IPv6 in its namespace).
type ndpWatch struct {
	conn   *packet.Conn
	done   chan struct{}
	closed atomic.Bool
	mu     sync.Mutex
	seen   []ndpSeen
}

func watchNDP(vm *nslab.Node, iface string) (*ndpWatch, error) {
	w := &ndpWatch{done: make(chan struct{})}
	err := vm.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		w.conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IPV6, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("watching neighbour discovery on %s in %s: %w", iface, vm.NS, err)
	}
	go w.read()
	return w, nil
}

func (w *ndpWatch) read() {
	defer close(w.done)
	buf := make([]byte, 2048)
	for {
		n, _, err := w.conn.ReadFrom(buf)
		if err != nil {
			if w.closed.Load() {
				return
			}
			continue
		}
		var f ethernet.Frame
		if f.UnmarshalBinary(buf[:n]) != nil || f.EtherType != ethernet.EtherTypeIPv6 {
			continue
		}
		h, err := ipv6.ParseHeader(f.Payload)
		if err != nil || h.NextHeader != unix.IPPROTO_ICMPV6 || len(f.Payload) < ipv6.HeaderLen {
			continue
		}
		m, err := ndp.ParseMessage(f.Payload[ipv6.HeaderLen:])
		if err != nil {
			continue
		}
		src, _ := netip.AddrFromSlice(h.Src)
		w.mu.Lock()
		w.seen = append(w.seen, ndpSeen{at: time.Now(), srcMAC: slices.Clone(f.Source), src: src, msg: m})
		w.mu.Unlock()
	}
}

// since returns what was received after t.
func (w *ndpWatch) since(t time.Time) []ndpSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []ndpSeen
	for _, s := range w.seen {
		if s.at.After(t) {
			out = append(out, s)
		}
	}
	return out
}

func (w *ndpWatch) Close() {
	if w.closed.Swap(true) {
		return
	}
	w.conn.Close()
	<-w.done
}

// waitGatewayAdvertised waits until the VM has received, after t, a router
// advertisement from the anycast gateway (link-local source, gateway MAC,
// a router lifetime) and an unsolicited neighbour advertisement for the
// gateway's link-local address with the Router and Override flags: what
// keeps the guest's default router valid after a move.
func waitGatewayAdvertised(ctx context.Context, w *ndpWatch, t time.Time) (string, error) {
	var got []string
	err := nslab.Poll(ctx, "the VM receiving the gateway's RA and NA", func(context.Context) (bool, string, error) {
		var ra, na bool
		got = got[:0]
		for _, s := range w.since(t) {
			fromGW := bytes.Equal(s.srcMAC, gatewayMAC) && s.src == gatewayLL
			at := s.at.Sub(t).Round(100 * time.Microsecond)
			switch m := s.msg.(type) {
			case *ndp.RouterAdvertisement:
				ra = ra || (fromGW && m.RouterLifetime > 0)
				got = append(got, fmt.Sprintf("+%s RA from %s %s lifetime %s", at, s.src, s.srcMAC, m.RouterLifetime))
			case *ndp.NeighborAdvertisement:
				na = na || (fromGW && m.TargetAddress == gatewayLL && m.Router && m.Override && !m.Solicited)
				got = append(got, fmt.Sprintf("+%s NA from %s %s for %s R=%v S=%v O=%v", at, s.src, s.srcMAC, m.TargetAddress, m.Router, m.Solicited, m.Override))
			}
		}
		return ra && na, fmt.Sprint(got), nil
	})
	return strings.Join(got, "; "), err
}

// checkSubnetNeighbour makes the VM talk to another address of its /64
// and checks that the answer to its neighbour solicitation came from roamd:
// the address resolves to the anycast gateway MAC, so the VM's packets to
// any neighbour are routed.
func checkSubnetNeighbour(t *testing.T, ctx context.Context, lab *nslab.Lab) {
	t.Helper()
	other := netip.MustParseAddr("2001:db8:10::99")
	vm := lab.Node(VM)
	// No one answers the ping: the neighbour entry is what counts.
	_, _ = vm.Run(ctx, "ping", "-6", "-c", "1", "-W", "1", other.String())
	err := nslab.Poll(ctx, "the VM resolving "+other.String()+" to the gateway MAC", func(context.Context) (bool, string, error) {
		ns, err := vm.Handle.NeighList(0, netlink.FAMILY_V6)
		if err != nil {
			return false, "", err
		}
		for _, n := range ns {
			if a, ok := netip.AddrFromSlice(n.IP); ok && a == other {
				return bytes.Equal(n.HardwareAddr, gatewayMAC), fmt.Sprintf("%s lladdr %s state %#x", a, n.HardwareAddr, n.State), nil
			}
		}
		return false, "no neighbour entry", nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestDualStackLiveMove moves the dual-stack VM hv1 → hv2 → hv1 with RARP
// only and checks, after each move, both families end to end.
func TestDualStackLiveMove(t *testing.T) {
	lab, traffic := startLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := placeVM6(ctx, lab, HV1); err != nil {
		t.Fatal(err)
	}
	checkSubnetNeighbour(t, ctx, lab)
	p6, err := startProbe6(ctx, lab, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p6.Stop(0)
	nd, err := watchNDP(lab.Node(VM), vmInterface(lab))
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()

	var results []*MoveResult
	for _, to := range []string{HV2, HV1} {
		r, err := MoveVM(ctx, lab, traffic, nslab.Move{To: to, Kind: nslab.Live})
		results = append(results, r)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(r.Report.Frames); n == 0 || slices.ContainsFunc(r.Report.Frames, func(f nslab.SentFrame) bool { return f.Kind != "rarp" }) {
			t.Fatalf("the VM announced itself with %+v, want RARPs only", r.Report.Frames)
		}
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		if err := waitVM6At(wctx, lab, to); err != nil {
			t.Error(err)
		}
		if err := p6.WaitReply(wctx, r.Report.Arrived); err != nil {
			t.Errorf("after moving to %s: %v", to, err)
		}
		if seen, err := waitGatewayAdvertised(wctx, nd, r.Report.Arrived); err != nil {
			t.Errorf("after moving to %s: %v", to, err)
		} else {
			t.Logf("the VM received after arriving on %s: %s", to, seen)
		}
		wcancel()
		checkAt(t, ctx, lab, to)
		checkAt6(t, ctx, lab, to)
		if t.Failed() {
			break
		}
	}
	rec4, rec6 := traffic.Close(), p6.Stop(time.Second)
	for i, r := range results {
		var end time.Time
		if i+1 < len(results) {
			end = results[i+1].Report.Start
		}
		s4, s6 := rec4.Window(r.Report.Start, end), rec6.Window(r.Report.Start, end)
		t.Logf("move %d %s → %s: IPv4 %s; IPv6 %s", i+1, r.Report.From, r.Report.To, s4, s6)
	}
}

// TestIPv6TowardTheHypervisors checks the files the dual-stack moves rely
// on: each roamd carries IPv6 unicast on its session with its uplink
// address as IPv6 next hop, and its leaf activates IPv6 unicast toward it
// and sends it all IPv6 paths (without which the old site never hears of
// the /128's new claim).
func TestIPv6TowardTheHypervisors(t *testing.T) {
	for _, hv := range []string{HV1, HV2} {
		tn := labtest.LoadRoamdConfig(t, hv).Tenants[0]
		if tn.IPv6NextHop != uplink6[hv] {
			t.Errorf("%s: ipv6_next_hop %s, want its uplink address %s", hv, tn.IPv6NextHop, uplink6[hv])
		}
		if len(tn.Peers) != 1 || !slices.Contains(tn.Peers[0].Families, config.FamilyIPv6) {
			t.Errorf("%s: the session to its leaf does not carry %s: %+v", hv, config.FamilyIPv6, tn.Peers)
		}
		frr, err := os.ReadFile(filepath.Join(LeafOf[hv], "frr.conf"))
		if err != nil {
			t.Fatal(err)
		}
		v6 := addressFamily(string(frr), "ipv6 unicast")
		for _, line := range []string{"neighbor " + Uplink[hv].String() + " activate", "neighbor " + Uplink[hv].String() + " addpath-tx-all-paths"} {
			if !slices.Contains(v6, line) {
				t.Errorf("%s/frr.conf: address-family ipv6 unicast lacks %q (has %q)", LeafOf[hv], line, v6)
			}
		}
	}
}

// addressFamily returns the trimmed lines of an FRR config's
// "address-family <afi>" block.
func addressFamily(conf, afi string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(conf, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "address-family "+afi:
			in = true
		case l == "exit-address-family":
			in = false
		case in:
			out = append(out, l)
		}
	}
	return out
}
