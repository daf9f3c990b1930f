package frames

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrNotInteresting is matched (errors.Is) by the error Decode returns for a
// well-formed frame that says nothing about where a host runs: another
// protocol, another ICMPv6 type, a RARP reply, a tagged frame.
var ErrNotInteresting = errors.New("not interesting")

// Kind is the kind of announcement a frame is.
//
// The constants carry a Kind prefix because the builders of the same frames
// (RARP, GratuitousARP, ...) own the plain names.
type Kind uint8

// Kinds of frames Decode recognises.
const (
	// KindRARP is a reverse ARP request (opcode 3), sent by QEMU and VMware
	// for a VM that just resumed after a migration. It carries no IP.
	KindRARP Kind = iota + 1
	// KindGratuitousARP is an ARP request or reply whose sender IP equals
	// its target IP: the sender announces its own address.
	KindGratuitousARP
	// KindARPRequest is an ordinary ARP request; the sender claims its
	// sender IP.
	KindARPRequest
	// KindARPReply is an ordinary ARP reply.
	KindARPReply
	// KindARPProbe is an ARP request with sender IP 0.0.0.0 (RFC 5227
	// address conflict detection): it claims nothing yet.
	KindARPProbe
	// KindNeighborAdvert is an IPv6 neighbor advertisement; the sender
	// claims the target address.
	KindNeighborAdvert
	// KindNeighborSolicit is an IPv6 neighbor solicitation from an
	// address the sender owns.
	KindNeighborSolicit
	// KindDADSolicit is a neighbor solicitation from :: (duplicate address
	// detection): the target is only tentative.
	KindDADSolicit
	// KindRouterSolicit is an IPv6 router solicitation.
	KindRouterSolicit
	// KindTraffic is an ordinary IPv4 or IPv6 packet from the VM: its
	// source address is the one it uses (DecodeTraffic).
	KindTraffic
)

var kindNames = map[Kind]string{
	KindRARP:            "rarp",
	KindGratuitousARP:   "garp",
	KindARPRequest:      "arp-request",
	KindARPReply:        "arp-reply",
	KindARPProbe:        "arp-probe",
	KindNeighborAdvert:  "na",
	KindNeighborSolicit: "ns",
	KindDADSolicit:      "dad-ns",
	KindRouterSolicit:   "rs",
	KindTraffic:         "traffic",
}

// String returns the short name used in logs, e.g. "garp" or "dad-ns".
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Observation is what one frame says about its sender.
type Observation struct {
	Kind Kind
	// SrcMAC is the Ethernet source address.
	SrcMAC net.HardwareAddr
	// MAC is the hardware address the sender claims: the ARP/RARP sender
	// hardware address, the NDP source or target link-layer address option,
	// or SrcMAC when the frame carries none.
	MAC net.HardwareAddr
	// Addr is the address the sender claims as its own. It is invalid when
	// the frame claims none: RARP, ARP probe, DAD solicitation, router
	// solicitation from ::.
	Addr netip.Addr
	// Target is the ARP target IP, or the NS/NA/DAD target. Invalid for
	// RARP and router solicitations.
	Target netip.Addr
	// Unsolicited is set on a neighbor advertisement without the Solicited
	// flag (an announcement, not an answer).
	Unsolicited bool
	// Override is the neighbor advertisement's Override flag.
	Override bool
}

// String formats the observation for logs, e.g.
// "na 52:54:00:12:34:57 2001:db8:10::10 unsolicited override".
func (o Observation) String() string {
	var b strings.Builder
	b.WriteString(o.Kind.String())
	b.WriteString(" ")
	b.WriteString(o.MAC.String())
	if o.Addr.IsValid() {
		b.WriteString(" " + o.Addr.String())
	}
	if o.Target.IsValid() && o.Target != o.Addr {
		b.WriteString(" target " + o.Target.String())
	}
	if o.Unsolicited {
		b.WriteString(" unsolicited")
	}
	if o.Override {
		b.WriteString(" override")
	}
	return b.String()
}
