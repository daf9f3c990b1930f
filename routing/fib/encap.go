package fib

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// Attributes of LWTUNNEL_ENCAP_IP and LWTUNNEL_ENCAP_IP6 (linux/lwtunnel.h):
// both enums number ID and DST alike.
const (
	lwtIPID    = 1
	lwtIPDst   = 2
	lwtIPFlags = 6

	// tunnelCsum asks for a UDP checksum on the outer header. Without it a
	// metadata-mode VXLAN sends a zero checksum, which IPv6 receivers drop.
	tunnelCsum = 0x01 // TUNNEL_CSUM, big-endian on the wire
)

// ipEncap is the lightweight-tunnel encapsulation `encap ip id <ID> dst
// <Dst>` (or ip6 for an IPv6 underlay). netlink v1.3.1 has no such type (its
// IP6tnlEncap always writes id 0), so the FIB carries its own; it implements
// netlink.Encap so routes are still written through the library.
type ipEncap struct {
	ID  uint64
	Dst netip.Addr
}

var _ netlink.Encap = (*ipEncap)(nil)

// Type implements netlink.Encap.
func (e *ipEncap) Type() int {
	if e.Dst.Is6() {
		return nl.LWTUNNEL_ENCAP_IP6
	}
	return nl.LWTUNNEL_ENCAP_IP
}

// Encode implements netlink.Encap: the tunnel id and flags are big-endian,
// as the kernel reads them (nla_get_be64, nla_get_be16).
func (e *ipEncap) Encode() ([]byte, error) {
	if !e.Dst.IsValid() {
		return nil, fmt.Errorf("encap ip: no destination")
	}
	id := make([]byte, 8)
	binary.BigEndian.PutUint64(id, e.ID)
	b := nl.NewRtAttr(lwtIPID, id).Serialize()
	b = append(b, nl.NewRtAttr(lwtIPDst, e.Dst.AsSlice()).Serialize()...)
	return append(b, nl.NewRtAttr(lwtIPFlags, nl.BEUint16Attr(tunnelCsum)).Serialize()...), nil
}

// Decode implements netlink.Encap.
func (e *ipEncap) Decode(buf []byte) error {
	attrs, err := parseAttrs(buf)
	if err != nil {
		return fmt.Errorf("decoding encap ip: %w", err)
	}
	for _, a := range attrs {
		switch a.Type {
		case lwtIPID:
			if len(a.Value) != 8 {
				return fmt.Errorf("decoding encap ip: id of %d bytes", len(a.Value))
			}
			e.ID = binary.BigEndian.Uint64(a.Value)
		case lwtIPDst:
			dst, ok := netip.AddrFromSlice(a.Value)
			if !ok {
				return fmt.Errorf("decoding encap ip: destination of %d bytes", len(a.Value))
			}
			e.Dst = dst
		}
	}
	return nil
}

// String implements netlink.Encap, in ip-route(8) words.
func (e *ipEncap) String() string {
	kind := "ip"
	if e.Dst.Is6() {
		kind = "ip6"
	}
	return fmt.Sprintf("%s id %d dst %s", kind, e.ID, e.Dst)
}

// Equal implements netlink.Encap.
func (e *ipEncap) Equal(x netlink.Encap) bool {
	o, ok := x.(*ipEncap)
	if !ok || e == nil || o == nil {
		return ok && e == o
	}
	return *e == *o
}
