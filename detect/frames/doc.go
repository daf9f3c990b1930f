// Package frames decodes the frames that reveal where a VM runs and builds
// the frames roamd sends to VMs.
//
// Decode turns one Ethernet frame into an Observation: who sent it (Ethernet
// source and the hardware address it claims), which address it claims as its
// own, and what kind of announcement it is (RARP, gratuitous ARP, ARP
// request/reply/probe, neighbor advertisement, neighbor solicitation,
// duplicate address detection, router solicitation). Frames of other
// protocols are well-formed but uninteresting: Decode returns an error that
// matches ErrNotInteresting. Every other error names the protocol and the
// field that is wrong, e.g. "arp: hardware address length 8, want 6".
//
// Parsing is done by mdlayher/ethernet, mdlayher/arp, golang.org/x/net/ipv6
// and mdlayher/ndp; this package checks the fields those libraries accept
// silently (lengths, hop limit, checksum, RFC 4861 validity rules) so a
// malformed frame is reported with a precise reason instead of being misread.
//
// 802.1Q-tagged frames are not decoded: a VM port is untagged, and a tagged
// frame belongs to a segment roamd does not route. Decode reports them as not
// interesting.
//
// The builders (RARP, GratuitousARP, ARPRequest, ARPReply, UnsolicitedNA,
// NeighborSolicit, RouterAdvert) produce complete frames with correct
// checksums, ready for a packet socket. They panic on arguments no caller
// should pass (a MAC that is not 6 bytes, an address of the wrong family):
// those are programming errors, and roamd validates its configuration first.
//
// Nothing here touches the network; everything is safe for concurrent use.
package frames
