package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/frames"
)

var (
	gatewayMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	ownerMAC   = net.HardwareAddr{0x52, 0x54, 0x00, 0x10, 0x00, 0x10}
	hostileMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x66, 0x66, 0x66}
	owner4     = netip.MustParseAddr("10.10.0.10")
	owner6     = netip.MustParseAddr("2001:db8:10::10")
	gateway4   = netip.MustParseAddr("10.10.0.1")
	gateway6   = netip.MustParseAddr("fe80::1")
)

var equateAddrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// fakeConn answers each request it is sent with the frames respond returns
// (nothing: the owner is silent). A read with nothing queued times out at
// once, as if the interval had passed.
type fakeConn struct {
	respond func(req []byte, attempt int) []reply

	mu      sync.Mutex
	sent    [][]byte
	to      []net.Addr
	queue   []reply
	closed  bool
	readErr error
}

type reply struct {
	b    []byte
	from net.Addr
}

func (c *fakeConn) WriteTo(b []byte, to net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, append([]byte(nil), b...))
	c.to = append(c.to, to)
	if c.respond != nil {
		c.queue = append(c.queue, c.respond(b, len(c.sent))...)
	}
	return len(b), nil
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	if len(c.queue) == 0 {
		return 0, nil, os.ErrDeadlineExceeded
	}
	r := c.queue[0]
	c.queue = c.queue[1:]
	return copy(b, r.b), r.from, nil
}

func (c *fakeConn) SetReadDeadline(time.Time) error { return nil }

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// prober returns a prober whose local and remote probes use conn, and
// records which port the link was opened on and for which owner.
func prober(conn *fakeConn, source func(string, netip.Addr) netip.Addr) (*Prober, *[]string) {
	var opened []string
	return New(Options{
		GatewayMAC: gatewayMAC,
		Source:     source,
		ListenLink: func(port string, owner net.HardwareAddr) (Conn, error) {
			opened = append(opened, fmt.Sprintf("link %s %s", port, owner))
			return conn, nil
		},
		ListenICMP: func(v6 bool) (Conn, error) {
			opened = append(opened, fmt.Sprintf("icmp v6=%v", v6))
			return conn, nil
		},
	}), &opened
}

func gatewaySource(port string, addr netip.Addr) netip.Addr {
	if addr.Is4() {
		return gateway4
	}
	return gateway6
}

// answerARP makes mac answer ARP requests for addr from attempt on.
func answerARP(mac net.HardwareAddr, addr netip.Addr, from int) func([]byte, int) []reply {
	return func(req []byte, attempt int) []reply {
		o, err := frames.Decode(req)
		if err != nil || attempt < from || o.Target != addr {
			return nil
		}
		askIP := o.Addr
		if !askIP.IsValid() {
			askIP = netip.IPv4Unspecified()
		}
		if askIP.IsUnspecified() {
			// RFC 5227 probe: Linux answers with target IP 0.0.0.0.
			return []reply{{b: arpReply(mac, addr, o.MAC, askIP)}}
		}
		return []reply{{b: frames.ARPReply(mac, addr, o.MAC, askIP)}}
	}
}

// arpReply builds a reply to an ARP probe (target IP 0.0.0.0), which
// frames.ARPReply refuses to build.
func arpReply(src net.HardwareAddr, srcIP netip.Addr, dst net.HardwareAddr, dstIP netip.Addr) []byte {
	b := frames.ARPReply(src, srcIP, dst, netip.MustParseAddr("192.0.2.1"))
	copy(b[14+24:14+28], dstIP.AsSlice())
	return b
}

// answerNS makes mac answer neighbour solicitations for addr.
func answerNS(mac net.HardwareAddr, addr netip.Addr) func([]byte, int) []reply {
	return func(req []byte, _ int) []reply {
		o, err := frames.Decode(req)
		if err != nil || o.Target != addr {
			return nil
		}
		if o.Kind == frames.KindDADSolicit {
			return []reply{{b: frames.UnsolicitedNA(mac, addr, false)}}
		}
		return []reply{{b: frames.SolicitedNA(mac, addr, o.MAC, o.Addr, addr, false)}}
	}
}

func decode(t *testing.T, b []byte) frames.Observation {
	t.Helper()
	o, err := frames.Decode(b)
	if err != nil {
		t.Fatalf("decoding the request: %v", err)
	}
	return o
}

func TestLocalIPv4(t *testing.T) {
	tests := []struct {
		name      string
		respond   func([]byte, int) []reply
		wantAlive bool
		wantSent  int
	}{
		{"owner answers at once", answerARP(ownerMAC, owner4, 1), true, 1},
		{"owner answers the third request", answerARP(ownerMAC, owner4, 3), true, 3},
		{"owner silent", nil, false, 3},
		{"another MAC answers for the owner", answerARP(hostileMAC, owner4, 1), false, 3},
		{"owner answers for another address", answerARP(ownerMAC, netip.MustParseAddr("10.10.0.11"), 1), false, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := &fakeConn{respond: tc.respond}
			p, opened := prober(conn, gatewaySource)
			got := p.Probe(context.Background(), Request{Addr: owner4, MAC: ownerMAC, Port: "tapvm1"})
			if got != tc.wantAlive {
				t.Errorf("Probe = %v, want %v", got, tc.wantAlive)
			}
			if len(conn.sent) != tc.wantSent {
				t.Errorf("sent %d requests, want %d", len(conn.sent), tc.wantSent)
			}
			if diff := cmp.Diff([]string{"link tapvm1 " + ownerMAC.String()}, *opened); diff != "" {
				t.Errorf("sockets opened (-want +got):\n%s", diff)
			}
			if !conn.closed {
				t.Error("the socket was not closed")
			}
			o := decode(t, conn.sent[0])
			want := frames.Observation{Kind: frames.KindARPRequest, SrcMAC: gatewayMAC, MAC: gatewayMAC, Addr: gateway4, Target: owner4}
			if diff := cmp.Diff(want, o, equateAddrs); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if to := conn.to[0].(*packet.Addr); to.HardwareAddr.String() != "ff:ff:ff:ff:ff:ff" {
				t.Errorf("request sent to %s, want broadcast", to.HardwareAddr)
			}
		})
	}
}

func TestLocalIPv6(t *testing.T) {
	conn := &fakeConn{respond: answerNS(ownerMAC, owner6)}
	p, _ := prober(conn, gatewaySource)
	if !p.Probe(context.Background(), Request{Addr: owner6, MAC: ownerMAC, Port: "tapvm1"}) {
		t.Error("Probe = false for an owner that answers its solicitation")
	}
	o := decode(t, conn.sent[0])
	want := frames.Observation{Kind: frames.KindNeighborSolicit, SrcMAC: gatewayMAC, MAC: gatewayMAC, Addr: gateway6, Target: owner6}
	if diff := cmp.Diff(want, o, equateAddrs); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}

	silent := &fakeConn{respond: answerNS(hostileMAC, owner6)}
	p, _ = prober(silent, gatewaySource)
	if p.Probe(context.Background(), Request{Addr: owner6, MAC: ownerMAC, Port: "tapvm1"}) {
		t.Error("Probe = true when only another MAC answered")
	}
}

// Without a gateway address, the probes are the address-less ones hosts
// answer anyway: an RFC 5227 ARP probe and a DAD solicitation.
func TestLocalWithoutSource(t *testing.T) {
	for _, tc := range []struct {
		addr    netip.Addr
		respond func([]byte, int) []reply
		kind    frames.Kind
	}{
		{owner4, answerARP(ownerMAC, owner4, 1), frames.KindARPProbe},
		{owner6, answerNS(ownerMAC, owner6), frames.KindDADSolicit},
	} {
		conn := &fakeConn{respond: tc.respond}
		p, _ := prober(conn, nil)
		if !p.Probe(context.Background(), Request{Addr: tc.addr, MAC: ownerMAC, Port: "tapvm1"}) {
			t.Errorf("%s: Probe = false for an owner that answers", tc.addr)
		}
		if o := decode(t, conn.sent[0]); o.Kind != tc.kind || o.Target != tc.addr {
			t.Errorf("%s: request is %v for %s, want %v", tc.addr, o.Kind, o.Target, tc.kind)
		}
	}
}

func TestRemote(t *testing.T) {
	echoFrom := func(src netip.Addr, idDelta int, v6 bool) func([]byte, int) []reply {
		return func(req []byte, _ int) []reply {
			proto, typ := protoICMP, icmp.Type(ipv4.ICMPTypeEchoReply)
			if v6 {
				proto, typ = protoICMPv6, ipv6.ICMPTypeEchoReply
			}
			m, err := icmp.ParseMessage(proto, req)
			if err != nil {
				return nil
			}
			e := m.Body.(*icmp.Echo)
			b, _ := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: e.ID + idDelta, Seq: e.Seq, Data: e.Data}}).Marshal(nil)
			return []reply{{b: b, from: &net.IPAddr{IP: src.AsSlice()}}}
		}
	}
	other := netip.MustParseAddr("10.10.0.99")
	tests := []struct {
		name    string
		addr    netip.Addr
		respond func([]byte, int) []reply
		want    bool
		sent    int
	}{
		{"IPv4 owner answers", owner4, echoFrom(owner4, 0, false), true, 1},
		{"IPv6 owner answers", owner6, echoFrom(owner6, 0, true), true, 1},
		{"silent", owner4, nil, false, 3},
		{"reply from another address", owner4, echoFrom(other, 0, false), false, 3},
		{"reply to another prober", owner4, echoFrom(owner4, 1, false), false, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := &fakeConn{respond: tc.respond}
			p, opened := prober(conn, gatewaySource)
			if got := p.Probe(context.Background(), Request{Addr: tc.addr, MAC: ownerMAC}); got != tc.want {
				t.Errorf("Probe = %v, want %v", got, tc.want)
			}
			if len(conn.sent) != tc.sent {
				t.Errorf("sent %d requests, want %d", len(conn.sent), tc.sent)
			}
			if diff := cmp.Diff([]string{fmt.Sprintf("icmp v6=%v", tc.addr.Is6())}, *opened); diff != "" {
				t.Errorf("sockets opened (-want +got):\n%s", diff)
			}
			if to := conn.to[0].(*net.IPAddr); !to.IP.Equal(tc.addr.AsSlice()) {
				t.Errorf("echo sent to %s, want %s", to, tc.addr)
			}
		})
	}
}

// A probe that cannot be carried out keeps the owner (true); only a port
// that is gone means the owner is.
func TestFailures(t *testing.T) {
	req := Request{Addr: owner4, MAC: ownerMAC, Port: "tapvm1"}
	tests := []struct {
		name   string
		listen func(string, net.HardwareAddr) (Conn, error)
		ctx    func() context.Context
		want   bool
	}{
		{
			name:   "port gone",
			listen: func(string, net.HardwareAddr) (Conn, error) { return nil, fmt.Errorf("port tapvm1: %w", ErrNoPort) },
			want:   false,
		},
		{
			name:   "no socket",
			listen: func(string, net.HardwareAddr) (Conn, error) { return nil, unix.EPERM },
			want:   true,
		},
		{
			name:   "read error",
			listen: func(string, net.HardwareAddr) (Conn, error) { return &fakeConn{readErr: unix.ENETDOWN}, nil },
			want:   true,
		},
		{
			name:   "cancelled",
			listen: func(string, net.HardwareAddr) (Conn, error) { return &fakeConn{}, nil },
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			want: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Options{GatewayMAC: gatewayMAC, ListenLink: tc.listen})
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			if got := p.Probe(ctx, req); got != tc.want {
				t.Errorf("Probe = %v, want %v", got, tc.want)
			}
		})
	}
	// Nothing to send from: a local probe needs the gateway MAC.
	p := New(Options{ListenLink: func(string, net.HardwareAddr) (Conn, error) { return &fakeConn{}, nil }})
	if !p.Probe(context.Background(), req) {
		t.Error("Probe without a gateway MAC = false, want true (not carried out)")
	}
}

// The kernel filter passes the owner's ARP and IPv6 frames arriving on the
// port and nothing else.
func TestOwnerFilter(t *testing.T) {
	ipv4Frame := frames.ARPReply(ownerMAC, owner4, gatewayMAC, gateway4)
	ipv4Frame[12], ipv4Frame[13] = 0x08, 0x00
	tests := []struct {
		name    string
		frame   []byte
		pktType uint32
		want    bool
	}{
		{"owner's ARP reply", frames.ARPReply(ownerMAC, owner4, gatewayMAC, gateway4), unix.PACKET_HOST, true},
		{"owner's NA", frames.UnsolicitedNA(ownerMAC, owner6, false), unix.PACKET_MULTICAST, true},
		{"our own request going out", frames.ARPRequest(ownerMAC, gateway4, owner4), unix.PACKET_OUTGOING, false},
		{"another MAC's ARP", frames.ARPReply(hostileMAC, owner4, gatewayMAC, gateway4), unix.PACKET_HOST, false},
		{"MAC differing in the last bytes", frames.ARPReply(net.HardwareAddr{0x52, 0x54, 0x00, 0x10, 0x00, 0x11}, owner4, gatewayMAC, gateway4), unix.PACKET_HOST, false},
		{"owner's IPv4 traffic", ipv4Frame, unix.PACKET_HOST, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prog := ownerFilter(ownerMAC)
			loads := 0
			for i, ins := range prog {
				if ext, ok := ins.(bpf.LoadExtension); ok {
					if ext.Num != bpf.ExtType {
						t.Fatalf("filter uses ancillary load %d the test cannot simulate", ext.Num)
					}
					// x/net/bpf's VM has no ancillary loads: load what the
					// kernel would.
					prog[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: tc.pktType}
					loads++
				}
			}
			if loads != 1 {
				t.Fatalf("filter makes %d packet type loads, want 1", loads)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm.Run(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			if got := n >= len(tc.frame); got != tc.want || (n != 0 && n < len(tc.frame)) {
				t.Errorf("filter keeps %d of %d bytes, want pass=%v", n, len(tc.frame), tc.want)
			}
		})
	}
	if _, err := bpf.Assemble(ownerFilter(ownerMAC)); err != nil {
		t.Errorf("the filter does not assemble: %v", err)
	}
}

func TestProbeWaitsTheInterval(t *testing.T) {
	// A real deadline: the silent owner costs attempts × interval.
	conn := &blockingConn{}
	p := New(Options{GatewayMAC: gatewayMAC, Attempts: 2, Interval: 20 * time.Millisecond,
		ListenLink: func(string, net.HardwareAddr) (Conn, error) { return conn, nil }})
	start := time.Now()
	if p.Probe(context.Background(), Request{Addr: owner4, MAC: ownerMAC, Port: "tapvm1"}) {
		t.Error("Probe = true for a silent owner")
	}
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("a probe of 2 × 20 ms took %s: it did not wait for answers", took)
	}
	if conn.writes != 2 {
		t.Errorf("sent %d requests, want 2", conn.writes)
	}

	// Cancelling interrupts the wait at once.
	ctx, cancel := context.WithCancel(context.Background())
	p = New(Options{GatewayMAC: gatewayMAC, Interval: time.Hour,
		ListenLink: func(string, net.HardwareAddr) (Conn, error) { return &blockingConn{}, nil }})
	done := make(chan bool)
	go func() { done <- p.Probe(ctx, Request{Addr: owner4, MAC: ownerMAC, Port: "tapvm1"}) }()
	cancel()
	select {
	case alive := <-done:
		if !alive {
			t.Error("a cancelled probe reported the owner gone")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Probe did not return after its context was cancelled")
	}
}

// blockingConn never receives anything: reads wait for the deadline.
type blockingConn struct {
	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{}
	writes   int
}

func (c *blockingConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return len(b), nil
}

func (c *blockingConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
	return nil
}

func (c *blockingConn) ReadFrom([]byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		d, changed := c.deadline, c.changed
		c.mu.Unlock()
		wait := time.Until(d)
		if wait <= 0 {
			return 0, nil, os.ErrDeadlineExceeded
		}
		select {
		case <-time.After(wait):
		case <-changed:
		}
	}
}

func (c *blockingConn) Close() error { return nil }
