package probe

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

var _ Conn = (*icmp.PacketConn)(nil)

// IANA protocol numbers icmp.ParseMessage wants.
const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// remote asks an owner at another site with ICMP echo requests, routed by
// the hypervisor's routing table through the fabric.
func (p *Prober) remote(r Request) (exchange, error) {
	addr := r.Addr.Unmap().WithZone("")
	v6 := addr.Is6()
	conn, err := p.opts.ListenICMP(v6)
	if err != nil {
		return exchange{}, err
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := int(binary.BigEndian.Uint16(idb[:]))
	request := func(i int) []byte {
		m := icmp.Message{Code: 0, Body: &icmp.Echo{ID: id, Seq: i + 1, Data: []byte("roamd owner probe")}}
		if v6 {
			m.Type = ipv6.ICMPTypeEchoRequest
		} else {
			m.Type = ipv4.ICMPTypeEcho
		}
		// The kernel fills in the ICMPv6 checksum (it needs the
		// addresses); Marshal computes the ICMPv4 one.
		b, err := m.Marshal(nil)
		if err != nil {
			panic(fmt.Sprintf("probe: marshalling an echo request: %v", err)) // never: a well-formed echo
		}
		return b
	}
	return exchange{
		conn:    conn,
		to:      &net.IPAddr{IP: addr.AsSlice()},
		request: request,
		answers: func(b []byte, from net.Addr) bool { return echoReply(b, from, addr, id, v6) },
	}, nil
}

// echoReply reports whether b, received from from, is the reply of addr to
// one of our requests (any attempt: a late reply to the first still shows
// the owner is there).
func echoReply(b []byte, from net.Addr, addr netip.Addr, id int, v6 bool) bool {
	ip, ok := from.(*net.IPAddr)
	if !ok {
		return false
	}
	src, ok := netip.AddrFromSlice(ip.IP)
	if !ok || src.Unmap() != addr {
		return false
	}
	proto, want := protoICMP, icmp.Type(ipv4.ICMPTypeEchoReply)
	if v6 {
		proto, want = protoICMPv6, ipv6.ICMPTypeEchoReply
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil || m.Type != want {
		return false
	}
	e, ok := m.Body.(*icmp.Echo)
	return ok && e.ID == id
}

// listenICMP opens a raw ICMP or ICMPv6 socket in the calling thread's
// namespace.
func listenICMP(v6 bool) (Conn, error) {
	network, laddr := "ip4:icmp", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	c, err := icmp.ListenPacket(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("probe: opening an %s socket: %w", network, err)
	}
	return c, nil
}
