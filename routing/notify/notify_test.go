package notify

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var key = []byte("0123456789abcdef-shared")

func TestRoundTripAndRejects(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:00:00:10")
	now := time.Now()
	for _, addr := range []string{"10.10.0.10", "2001:db8:10::10"} {
		m := Message{Kind: Ack, TenantID: 7, Seq: 42, Sticky: true, Origin: netip.MustParseAddr("192.0.2.12"),
			Addr: netip.MustParseAddr(addr), MAC: mac, Sent: now}
		b, err := Marshal(m, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(b, key, now.Add(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != Ack || got.TenantID != 7 || got.Seq != 42 || !got.Sticky || got.Addr != m.Addr || got.Origin != m.Origin ||
			got.MAC.String() != mac.String() || !got.Sent.Equal(now) {
			t.Fatalf("round trip of %s: got %+v", addr, got)
		}
		if _, err := Unmarshal(b, []byte("another-key-0123456"), now); err == nil || !strings.Contains(err.Error(), "authentication") {
			t.Fatalf("wrong key accepted: %v", err)
		}
		b[10] ^= 1 // flip a bit of the sequence
		if _, err := Unmarshal(b, key, now); err == nil {
			t.Fatal("tampered datagram accepted")
		}
		b[10] ^= 1
		if _, err := Unmarshal(b, key, now.Add(MaxAge+time.Second)); err == nil {
			t.Fatal("replayed old datagram accepted")
		}
		if _, err := Unmarshal(b[:40], key, now); err == nil {
			t.Fatal("truncated datagram accepted")
		}
	}
}

func TestSendReceiveOnLoopback(t *testing.T) {
	self := netip.MustParseAddr("127.0.0.1")
	c, err := Listen(self, freePort(t), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Message, 1)
	go c.Run(ctx, func(m Message) { got <- m })
	mac, _ := net.ParseMAC("52:54:00:00:00:10")
	if err := c.Send(self, Message{TenantID: 1, Seq: 3, Addr: netip.MustParseAddr("10.10.0.10"), MAC: mac}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Seq != 3 || m.Origin != self {
			t.Fatalf("got %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("notification not received")
	}
	// A datagram claiming another origin than its source is dropped.
	b, _ := Marshal(Message{TenantID: 1, Seq: 4, Origin: netip.MustParseAddr("192.0.2.99"),
		Addr: netip.MustParseAddr("10.10.0.10"), MAC: mac, Sent: time.Now()}, key)
	u, _ := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(self, uint16(c.port))))
	u.Write(b)
	u.Close()
	deadline := time.Now().Add(5 * time.Second)
	for c.Dropped.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c.Dropped.Load() != 1 {
		t.Fatal("spoofed-origin datagram not dropped")
	}
	select {
	case m := <-got:
		t.Fatalf("spoofed datagram delivered: %+v", m)
	default:
	}
}

func freePort(t *testing.T) int {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.LocalAddr().(*net.UDPAddr).Port
}
