package capture

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/nstest"
)

// Privileged tests: each builds a fresh namespace holding a veth pair, the
// watched end "w0" (the VM port as the host sees it) and the peer "p0"
// (where the VM sits), and sends frames from the peer with a packet socket.

const waitFor = 5 * time.Second

var (
	guestIP4 = netip.MustParseAddr("198.51.100.10")
	guestIP6 = netip.MustParseAddr("2001:db8:10::10")
	otherMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x77}
)

type lab struct {
	ns      *nstest.NS
	watched int // w0's ifindex
	peer    *packet.Conn
	peerIdx int
}

// newLab creates the namespace and veth pair. IPv6 is disabled on both ends
// so the kernel's own RS, DAD and MLD never show up among the test's frames.
func newLab(t testing.TB) *lab {
	t.Helper()
	ns := nstest.New(t, "cap")
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := ns.Sysctl(k, "1"); err != nil {
			t.Fatalf("sysctl %s: %v", k, err)
		}
	}
	w, p := nstest.Veth(t, ns, "w0", ns, "p0")
	l := &lab{ns: ns, watched: w.Attrs().Index, peerIdx: p.Attrs().Index}
	l.waitOperUp(t, "w0")
	l.waitOperUp(t, "p0")
	l.peer = l.socket(t, "p0", p.Attrs().Index, 0)
	return l
}

// waitOperUp waits until the kernel reports the link operationally up. Until
// then (the kernel's link watcher may take up to a second) its transmit queue
// silently drops frames.
func (l *lab) waitOperUp(t testing.TB, name string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		link, err := l.ns.Handle.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not operationally up within %v (state %v)", name, waitFor, link.Attrs().OperState)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// socket opens a packet socket in the lab namespace; protocol 0 sends only.
func (l *lab) socket(t testing.TB, name string, index, protocol int) *packet.Conn {
	t.Helper()
	var c *packet.Conn
	err := l.ns.Do(func() error {
		var err error
		c, err = packet.Listen(&net.Interface{Name: name, Index: index}, packet.Raw, protocol, nil)
		return err
	})
	if err != nil {
		t.Fatalf("packet socket on %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t testing.TB, c *packet.Conn, frame []byte) {
	t.Helper()
	if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: frame[0:6]}); err != nil {
		t.Fatalf("sending a frame: %v", err)
	}
}

// watch creates a Manager and watches w0 from inside the namespace.
func (l *lab) watch(t testing.TB, out chan Event, opts Options) *Manager {
	t.Helper()
	m := NewManager(out, opts)
	t.Cleanup(func() { m.Close() })
	if err := l.ns.Do(func() error { return m.Watch("w0", l.watched) }); err != nil {
		t.Fatal(err)
	}
	return m
}

// next waits for the next event.
func next(t testing.TB, out <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-out:
		return ev
	case <-time.After(waitFor):
		t.Fatalf("no event within %v", waitFor)
		return Event{}
	}
}

// pending returns the events already queued, without waiting.
func pending(out <-chan Event) []Event {
	var evs []Event
	for {
		select {
		case ev := <-out:
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// waitStats polls the Manager's counters until cond holds.
func waitStats(t testing.TB, m *Manager, what string, cond func(map[string]Stats) bool) map[string]Stats {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		s := m.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v; stats %+v", what, waitFor, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var cmpEvent = []cmp.Option{
	cmpopts.IgnoreFields(Event{}, "Time"),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

func TestCaptureDeliversObservations(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 64)
	m := l.watch(t, out, Options{IgnoreMAC: gatewayMAC})

	start := time.Now()
	send(t, l.peer, frames.RARP(guestMAC))
	send(t, l.peer, frames.GratuitousARP(guestMAC, guestIP4))
	send(t, l.peer, udpFrame(guestMAC))                         // dropped by the filter
	send(t, l.peer, frames.GratuitousARP(gatewayMAC, guestIP4)) // from the gateway MAC: dropped
	send(t, l.peer, frames.UnsolicitedNA(guestMAC, guestIP6, false))
	send(t, l.peer, frames.NeighborSolicit(guestMAC, netip.IPv6Unspecified(), guestIP6)) // DAD
	send(t, l.peer, frames.ARPRequest(guestMAC, guestIP4, netip.MustParseAddr("198.51.100.1")))

	want := []Event{
		{Port: "w0", Index: l.watched, Obs: frames.Observation{Kind: frames.KindRARP, SrcMAC: guestMAC, MAC: guestMAC}},
		{Port: "w0", Index: l.watched, Obs: frames.Observation{Kind: frames.KindGratuitousARP, SrcMAC: guestMAC, MAC: guestMAC, Addr: guestIP4, Target: guestIP4}},
		{Port: "w0", Index: l.watched, Obs: frames.Observation{Kind: frames.KindNeighborAdvert, SrcMAC: guestMAC, MAC: guestMAC, Addr: guestIP6, Target: guestIP6, Unsolicited: true, Override: true}},
		{Port: "w0", Index: l.watched, Obs: frames.Observation{Kind: frames.KindDADSolicit, SrcMAC: guestMAC, MAC: guestMAC, Target: guestIP6}},
		{Port: "w0", Index: l.watched, Obs: frames.Observation{Kind: frames.KindARPRequest, SrcMAC: guestMAC, MAC: guestMAC, Addr: guestIP4, Target: netip.MustParseAddr("198.51.100.1")}},
	}
	var got []Event
	for range want {
		got = append(got, next(t, out))
	}
	// One reader per port keeps the order: anything wrongly let through
	// would have arrived before the last expected event.
	got = append(got, pending(out)...)
	if diff := cmp.Diff(want, got, cmpEvent...); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	for _, ev := range got {
		if ev.Time.Before(start) || ev.Time.After(time.Now()) {
			t.Errorf("event time %v outside the test's run", ev.Time)
		}
	}
	// The UDP frame and the gateway's frame never left the kernel.
	s := m.Stats()
	if want := (Stats{Frames: 5}); s["w0"] != want || s[AllPorts] != want {
		t.Errorf("stats %+v, want w0 and total %+v", s, want)
	}
}

func TestCaptureIgnoresHostFrames(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 64)
	m := l.watch(t, out, Options{IgnoreMAC: gatewayMAC})
	hostSide := l.socket(t, "w0", l.watched, 0)
	peerRx := l.socket(t, "p0", l.peerIdx, unix.ETH_P_ALL)

	// The host sends out of the watched port, once through another socket
	// and once through the Manager itself, from a MAC that is not the
	// gateway's: only the packet type tells these frames apart.
	fromHost := frames.GratuitousARP(otherMAC, netip.MustParseAddr("198.51.100.77"))
	send(t, hostSide, fromHost)
	viaManager := frames.GratuitousARP(otherMAC, netip.MustParseAddr("198.51.100.78"))
	if err := m.Send("w0", viaManager); err != nil {
		t.Fatal(err)
	}
	// Both really left: the VM side received them.
	for _, f := range [][]byte{fromHost, viaManager} {
		if !receive(t, peerRx, f) {
			t.Fatalf("the peer never received %x", f[:42])
		}
	}
	marker := frames.RARP(guestMAC)
	send(t, l.peer, marker)
	if ev := next(t, out); ev.Obs.Kind != frames.KindRARP {
		t.Fatalf("first event %v, want the marker RARP: a frame the host sent was captured", ev.Obs)
	}
	if evs := pending(out); len(evs) != 0 {
		t.Fatalf("unexpected events %v", evs)
	}
	if err := m.Send("nope0", marker); err == nil {
		t.Errorf("Send on a port not watched succeeded")
	}
}

// receive reports whether frame (or its padded form) arrives on c.
func receive(t testing.TB, c *packet.Conn, frame []byte) bool {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(waitFor)
	if err := c.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return false
		}
		if bytes.HasPrefix(buf[:n], frame[:42]) {
			return true
		}
	}
}

func TestCaptureUnwatchStopsDelivery(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 64)
	m := l.watch(t, out, Options{})

	send(t, l.peer, frames.GratuitousARP(guestMAC, guestIP4))
	if ev := next(t, out); ev.Obs.Kind != frames.KindGratuitousARP {
		t.Fatalf("got %v, want the GARP", ev.Obs)
	}
	m.Unwatch("w0")
	if _, ok := m.Stats()["w0"]; ok {
		t.Fatalf("w0 still in Stats after Unwatch")
	}
	m.Unwatch("w0") // twice is fine

	send(t, l.peer, frames.RARP(guestMAC)) // nobody listens
	if err := l.ns.Do(func() error { return m.Watch("w0", l.watched) }); err != nil {
		t.Fatal(err)
	}
	send(t, l.peer, frames.UnsolicitedNA(guestMAC, guestIP6, false))
	if ev := next(t, out); ev.Obs.Kind != frames.KindNeighborAdvert {
		t.Fatalf("got %v after re-watching, want the NA: a frame sent while unwatched was delivered", ev.Obs)
	}
	// Totals survive Unwatch: 1 frame before, 1 after.
	if got := m.Stats()[AllPorts].Frames; got != 2 {
		t.Errorf("total frames %d, want 2", got)
	}
}

func TestCaptureWatchIsIdempotent(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 64)
	m := l.watch(t, out, Options{})
	if err := l.ns.Do(func() error { return m.Watch("w0", l.watched) }); err != nil {
		t.Fatal(err)
	}
	send(t, l.peer, frames.RARP(guestMAC))
	next(t, out)
	send(t, l.peer, frames.RARP(guestMAC))
	next(t, out)
	// Two sockets on the port would have doubled the events.
	if evs := pending(out); len(evs) != 0 {
		t.Fatalf("extra events %v: watching twice opened two sockets", evs)
	}
}

func TestCaptureRateLimit(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 64)
	m := NewManager(out, Options{RatePerSecond: 5})
	t.Cleanup(func() { m.Close() })
	// A frozen clock: all frames arrive in the same instant, so exactly one
	// second's budget gets through.
	frozen := time.Now()
	m.now = func() time.Time { return frozen }
	if err := l.ns.Do(func() error { return m.Watch("w0", l.watched) }); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		send(t, l.peer, frames.RARP(guestMAC))
	}
	s := waitStats(t, m, "20 frames read", func(s map[string]Stats) bool { return s["w0"].Frames == 20 })
	if got := len(pending(out)); got != 5 {
		t.Errorf("%d events delivered, want 5", got)
	}
	if got := s["w0"].RateLimited; got != 15 {
		t.Errorf("%d frames rate-limited, want 15", got)
	}
}

func TestCaptureCountsMalformed(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 64)
	m := l.watch(t, out, Options{})
	bad := frames.GratuitousARP(guestMAC, guestIP4)
	bad[14+4] = 8 // hardware address length
	send(t, l.peer, bad)
	send(t, l.peer, frames.RARP(guestMAC))
	if ev := next(t, out); ev.Obs.Kind != frames.KindRARP {
		t.Fatalf("got %v, want the RARP after the malformed ARP", ev.Obs)
	}
	if s := m.Stats()["w0"]; s.Malformed != 1 || s.Frames != 2 {
		t.Errorf("stats %+v, want 2 frames, 1 malformed", s)
	}
}

func TestCaptureFullChannelDropsAndCounts(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 1)
	m := l.watch(t, out, Options{})
	for range 3 {
		send(t, l.peer, frames.RARP(guestMAC))
	}
	// One event fits; the reader gives up on the others after
	// deliverTimeout each instead of blocking.
	waitStats(t, m, "2 events dropped", func(s map[string]Stats) bool { return s["w0"].Dropped == 2 })
	if got := len(pending(out)); got != 1 {
		t.Errorf("%d events queued, want 1", got)
	}
	// The reader is still alive.
	send(t, l.peer, frames.GratuitousARP(guestMAC, guestIP4))
	if ev := next(t, out); ev.Obs.Kind != frames.KindGratuitousARP {
		t.Fatalf("got %v, want the GARP", ev.Obs)
	}
}

func TestCapturePortDownUpAndDeleted(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 64)
	m := l.watch(t, out, Options{})
	w0, err := l.ns.Handle.LinkByIndex(l.watched)
	if err != nil {
		t.Fatal(err)
	}

	// Down and up again: capture goes on.
	if err := l.ns.Handle.LinkSetDown(w0); err != nil {
		t.Fatal(err)
	}
	if err := l.ns.Handle.LinkSetUp(w0); err != nil {
		t.Fatal(err)
	}
	l.waitOperUp(t, "w0")
	l.waitOperUp(t, "p0")
	send(t, l.peer, frames.RARP(guestMAC))
	if ev := next(t, out); ev.Obs.Kind != frames.KindRARP {
		t.Fatalf("got %v, want the RARP", ev.Obs)
	}
	if _, ok := m.Stats()["w0"]; !ok {
		t.Fatalf("w0 no longer watched after down/up")
	}

	// Deleted: the reader ends by itself and the port leaves Stats.
	if err := l.ns.Handle.LinkDel(w0); err != nil {
		t.Fatal(err)
	}
	waitStats(t, m, "reader of the deleted port ends", func(s map[string]Stats) bool {
		_, ok := s["w0"]
		return !ok
	})
	if got := m.Stats()[AllPorts].Frames; got == 0 {
		t.Errorf("the deleted port's frames left the totals")
	}
	if err := m.Send("w0", frames.RARP(guestMAC)); err == nil {
		t.Errorf("Send on the deleted port succeeded")
	}
}

func TestCaptureWatchMissingPort(t *testing.T) {
	l := newLab(t)
	m := NewManager(make(chan Event, 1), Options{})
	defer m.Close()
	err := l.ns.Do(func() error { return m.Watch("gone0", 99999) })
	if err == nil {
		t.Fatal("Watch of a missing interface succeeded")
	}
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("error %v, want ENODEV", err)
	}
}

func TestCaptureClose(t *testing.T) {
	l := newLab(t)
	out := make(chan Event, 4)
	m := l.watch(t, out, Options{})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.ns.Do(func() error { return m.Watch("w0", l.watched) }); err == nil {
		t.Errorf("Watch after Close succeeded")
	}
	if s := m.Stats(); len(s) != 1 {
		t.Errorf("ports still watched after Close: %v", s)
	}
}

// BenchmarkFrameToEvent measures the time from writing a RARP into the VM
// end of a veth pair to receiving its Event, and reports the median and
// 99th percentile. Run with at least 1000 frames:
//
//	go test -run '^$' -bench FrameToEvent -benchtime 2000x ./detect/capture/
func BenchmarkFrameToEvent(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	l := newLab(b)
	out := make(chan Event, 16)
	l.watch(b, out, Options{})
	frame := frames.RARP(guestMAC)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		send(b, l.peer, frame)
		next(b, out)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
}
