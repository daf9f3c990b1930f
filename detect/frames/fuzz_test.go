package frames

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// FuzzDecode checks that Decode never panics, never aliases its input, and
// that whatever it accepts means the same thing when written out again: the
// observation is rebuilt into a fresh frame, which must decode identically.
func FuzzDecode(f *testing.F) {
	for _, h := range realFrames {
		f.Add(unhex(h))
	}
	for _, b := range [][]byte{
		RARP(macGuest),
		GratuitousARP(macGuest, ip("198.51.100.10")),
		ARPReply(macGateway, ip("198.51.100.1"), macGuest, ip("198.51.100.10")),
		UnsolicitedNA(macGuest, ip("2001:db8:10::10"), true),
		NeighborSolicit(macGuest, ip("::"), ip("2001:db8:10::10")),
		RouterAdvert(macGateway, ip("fe80::1"), time.Minute, netip.MustParsePrefix("2001:db8:10::/64")),
		vlanTag(unhex(hexLinuxGARP), 100),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		obs, err := Decode(frame)
		if !bytes.Equal(frame, orig) {
			t.Fatalf("Decode modified its input")
		}
		if err != nil {
			return
		}
		if obs.Kind == KindDADSolicit && !bytes.Equal(obs.MAC, obs.SrcMAC) {
			t.Fatalf("DAD solicitation with a claimed MAC %s other than the source %s", obs.MAC, obs.SrcMAC)
		}
		// No aliasing: wiping the input leaves the observation intact.
		clear(frame)
		again, err := Decode(orig)
		if err != nil {
			t.Fatalf("second Decode failed: %v", err)
		}
		if diff := cmp.Diff(again, obs, cmpAddrs); diff != "" {
			t.Fatalf("observation aliases the input (-fresh +kept):\n%s", diff)
		}
		// Meaning survives a rebuild.
		rebuilt := rebuild(obs)
		got, err := Decode(rebuilt)
		if err != nil {
			t.Fatalf("rebuilt frame %x of %v does not decode: %v", rebuilt, obs, err)
		}
		if diff := cmp.Diff(obs, got, cmpAddrs); diff != "" {
			t.Fatalf("rebuilt frame decodes differently (-original +rebuilt):\n%s", diff)
		}
	})
}

// rebuild writes an observation out as a frame of its kind, with the same
// Ethernet source, claimed MAC, addresses and flags.
func rebuild(o Observation) []byte {
	someMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 9}
	switch o.Kind {
	case KindRARP:
		return arpFrame(etherTypeRARP, arpOpRequestReverse, o.SrcMAC, ethernet.Broadcast, o.MAC, unspecified, o.MAC, unspecified)
	case KindGratuitousARP:
		return arpFrame(ethernet.EtherTypeARP, arp.OperationRequest, o.SrcMAC, ethernet.Broadcast, o.MAC, o.Addr, zeroMAC, o.Addr)
	case KindARPRequest:
		return arpFrame(ethernet.EtherTypeARP, arp.OperationRequest, o.SrcMAC, ethernet.Broadcast, o.MAC, o.Addr, zeroMAC, o.Target)
	case KindARPReply:
		return arpFrame(ethernet.EtherTypeARP, arp.OperationReply, o.SrcMAC, someMAC, o.MAC, o.Addr, someMAC, o.Target)
	case KindARPProbe:
		return arpFrame(ethernet.EtherTypeARP, arp.OperationRequest, o.SrcMAC, ethernet.Broadcast, o.MAC, unspecified, zeroMAC, o.Target)
	case KindNeighborAdvert:
		dst, ethDst := allNodes, net.HardwareAddr(nil)
		if !o.Unsolicited {
			dst, ethDst = netip.MustParseAddr("fe80::9"), someMAC
		}
		na := &ndp.NeighborAdvertisement{
			Solicited:     !o.Unsolicited,
			Override:      o.Override,
			TargetAddress: o.Target,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: o.MAC}},
		}
		return ndpFrame(o.SrcMAC, ethDst, o.Addr, dst, na)
	case KindNeighborSolicit:
		snm, _ := ndp.SolicitedNodeMulticast(o.Target)
		ns := &ndp.NeighborSolicitation{
			TargetAddress: o.Target,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: o.MAC}},
		}
		return ndpFrame(o.SrcMAC, nil, o.Addr, snm, ns)
	case KindDADSolicit:
		snm, _ := ndp.SolicitedNodeMulticast(o.Target)
		return ndpFrame(o.SrcMAC, nil, netip.IPv6Unspecified(), snm, &ndp.NeighborSolicitation{TargetAddress: o.Target})
	case KindRouterSolicit:
		if !o.Addr.IsValid() {
			return ndpFrame(o.SrcMAC, nil, netip.IPv6Unspecified(), netip.MustParseAddr("ff02::2"), &ndp.RouterSolicitation{})
		}
		rs := &ndp.RouterSolicitation{Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: o.MAC}}}
		return ndpFrame(o.SrcMAC, nil, o.Addr, netip.MustParseAddr("ff02::2"), rs)
	}
	panic("rebuild: unknown kind " + o.Kind.String())
}
