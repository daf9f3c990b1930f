package scale

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/roamd/roamd/detect/frames"
)

// pcapWriter writes a nanosecond LINUX_SLL2 capture, as tcpdump -i any does.
type pcapWriter struct{ bytes.Buffer }

func newPcap() *pcapWriter {
	w := &pcapWriter{}
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b23c4d)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 262144)
	binary.LittleEndian.PutUint32(hdr[20:], linkTypeLinuxSLL2)
	w.Write(hdr)
	return w
}

func (w *pcapWriter) packet(at time.Time, proto uint16, ifindex int, pktType uint8, data []byte) {
	sll := make([]byte, 20)
	binary.BigEndian.PutUint16(sll[0:], proto)
	binary.BigEndian.PutUint32(sll[4:], uint32(ifindex))
	binary.BigEndian.PutUint16(sll[8:], 1)
	sll[10], sll[11] = pktType, 6
	rec := make([]byte, 16)
	binary.LittleEndian.PutUint32(rec[0:], uint32(at.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(at.Nanosecond()))
	binary.LittleEndian.PutUint32(rec[8:], uint32(20+len(data)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(20+len(data)))
	w.Write(rec)
	w.Write(sll)
	w.Write(data)
}

// tcp4 is an IPv4 TCP packet.
func tcp4(src, dst netip.AddrPort, seq uint32, payload []byte) []byte {
	b := make([]byte, 40+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 6
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], src.Port())
	binary.BigEndian.PutUint16(b[22:], dst.Port())
	binary.BigEndian.PutUint32(b[24:], seq)
	b[32] = 5 << 4
	b[33] = 0x18 // PSH ACK
	copy(b[40:], payload)
	return b
}

// update is a BGP UPDATE announcing an IPv4 /32 with a MAC Mobility
// sequence, or withdrawing one.
func update(p netip.Prefix, seq uint32, withdraw bool) []byte {
	a := p.Addr().As4()
	nlri := append([]byte{byte(p.Bits())}, a[:]...)
	var body []byte
	if withdraw {
		body = binary.BigEndian.AppendUint16(nil, uint16(len(nlri)))
		body = append(body, nlri...)
		body = binary.BigEndian.AppendUint16(body, 0)
	} else {
		ec := []byte{0xc0, 16, 8, 0x06, 0x00, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(ec[7:], seq)
		attrs := append([]byte{0x40, 1, 1, 0}, ec...) // ORIGIN, EXTENDED COMMUNITIES
		body = binary.BigEndian.AppendUint16(nil, 0)
		body = binary.BigEndian.AppendUint16(body, uint16(len(attrs)))
		body = append(append(body, attrs...), nlri...)
	}
	msg := bytes.Repeat([]byte{0xff}, 16)
	msg = binary.BigEndian.AppendUint16(msg, uint16(19+len(body)))
	msg = append(msg, 2)
	return append(msg, body...)
}

// TestCaptureAnalysis reads a capture like the latency benchmark's: a
// gratuitous ARP entering a VM port, then roamd's UPDATEs on the uplink in
// segments that split messages, with a retransmission and a keepalive.
func TestCaptureAnalysis(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	mac, _ := net.ParseMAC("52:54:00:00:00:10")
	vmAddr := netip.MustParseAddr("10.10.0.10")
	roamd := netip.MustParseAddrPort("198.51.100.3:40000")
	leaf := netip.MustParseAddrPort("198.51.100.2:179")

	keepalive := append(bytes.Repeat([]byte{0xff}, 16), 0, 19, 4)
	u1 := update(netip.PrefixFrom(vmAddr, 32), 2, false)
	u2 := update(netip.MustParsePrefix("10.10.0.11/32"), 0, true)
	stream := append(append(append([]byte{}, keepalive...), u1...), u2...)
	split1, split2 := len(keepalive)+10, len(keepalive)+len(u1)+5

	w := newPcap()
	garp := frames.GratuitousARP(mac, vmAddr)
	w.packet(at(0), EtherTypeARP, 7, PacketBroadcast, garp[14:])
	w.packet(at(10), EtherTypeRARP, 7, PacketBroadcast, frames.RARP(mac)[14:])
	const isn = 0xfffffff0 // the stream wraps around 2^32
	w.packet(at(100), EtherTypeIPv4, 2, PacketOutgoing, tcp4(roamd, leaf, isn, stream[:split1]))
	w.packet(at(250), EtherTypeIPv4, 2, PacketOutgoing, tcp4(roamd, leaf, isn+uint32(split1), stream[split1:split2]))
	w.packet(at(260), EtherTypeIPv4, 2, PacketOutgoing, tcp4(roamd, leaf, isn+uint32(split1), stream[split1:split2])) // retransmitted
	w.packet(at(300), EtherTypeIPv4, 2, PacketOutgoing, tcp4(roamd, leaf, isn+uint32(split2), stream[split2:]))
	w.packet(at(310), EtherTypeIPv4, 2, PacketHost, tcp4(leaf, roamd, 1, keepalive))

	pkts, err := ReadPcap(&w.Buffer)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 7 || !pkts[0].Time.Equal(t0) || pkts[0].Ifindex != 7 || pkts[0].PacketType != PacketBroadcast {
		t.Fatalf("packets %+v", pkts)
	}
	a, ok := DecodeARP(pkts[0])
	if !ok || a.RARP || a.SenderIP != vmAddr || a.SenderMAC.String() != mac.String() {
		t.Errorf("gratuitous ARP decoded as %+v, %v", a, ok)
	}
	if r, ok := DecodeARP(pkts[1]); !ok || !r.RARP || r.Op != 3 || r.SenderMAC.String() != mac.String() {
		t.Errorf("RARP decoded as %+v, %v", r, ok)
	}

	flows := TCPFlows(pkts)
	got := BGPUpdates(flows[Flow{Src: roamd, Dst: leaf}])
	want := []BGPUpdate{
		{Time: at(250), Announced: []netip.Prefix{netip.PrefixFrom(vmAddr, 32)}, Seq: 2},
		{Time: at(300), Withdrawn: []netip.Prefix{netip.MustParsePrefix("10.10.0.11/32")}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
	if back := BGPUpdates(flows[Flow{Src: leaf, Dst: roamd}]); len(back) != 0 {
		t.Errorf("a keepalive decoded as updates: %+v", back)
	}
}

// TestBGPUpdatesAfterACaptureGap skips bytes the capture missed up to the
// next message.
func TestBGPUpdatesAfterACaptureGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	u1 := update(netip.MustParsePrefix("10.10.0.1/32"), 1, false)
	u2 := update(netip.MustParsePrefix("10.10.0.2/32"), 1, false)
	segs := []Segment{
		{Seq: 100, Time: t0, Data: u1[:20]},
		// u1's tail was dropped by the kernel.
		{Seq: 100 + uint32(len(u1)), Time: t0.Add(time.Millisecond), Data: u2},
	}
	got := BGPUpdates(segs)
	if len(got) != 1 || got[0].Announced[0] != netip.MustParsePrefix("10.10.0.2/32") || !got[0].Time.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("updates after a gap: %+v", got)
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(1001-i)*time.Microsecond)
	}
	got := Summarize(ds)
	want := Summary{N: 1000, Min: time.Microsecond, P50: 500 * time.Microsecond, P99: 990 * time.Microsecond, Max: 1000 * time.Microsecond}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
}

func TestQuantileFromHistogramBuckets(t *testing.T) {
	m, err := ParseMetrics([]byte(`# TYPE d histogram
d_bucket{le="0.001"} 50
d_bucket{le="0.002"} 90
d_bucket{le="0.004"} 100
d_bucket{le="+Inf"} 100
d_sum 0.15
d_count 100
`))
	if err != nil {
		t.Fatal(err)
	}
	h := m.Histogram("d")
	for q, want := range map[float64]float64{0.5: 0.001, 0.7: 0.0015, 0.95: 0.003} {
		if got := Quantile(h, q); got < want-1e-9 || got > want+1e-9 {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
}
