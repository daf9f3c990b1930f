package frames

import (
	"encoding/hex"
	"net"
	"net/netip"
)

// Real frames, captured with tcpdump -xx in lab namespaces (Linux 6.18,
// QEMU 7.2). The guest-side frames come from the same kernel code a Linux
// virtio guest runs after a migration (NETDEV_NOTIFY_PEERS →
// inetdev_send_gratuitous_arp and ndisc_send_unsol_na), triggered on a veth
// by changing its MAC with arp_notify=1 and ndisc_notify=1.
const (
	// QEMU announce-self for a virtio-net NIC with MAC 52:54:00:12:34:56: the
	// 60-byte RARP QEMU sends 5 times after a migration.
	hexQEMURARP = "ffffffffffff525400123456803500010800060400035254001234560000000052540012345600000000000000000000000000000000000000000000"

	// Gratuitous ARP request for 198.51.100.10 at 52:54:00:12:34:57 (42 bytes:
	// veth frames are not padded).
	hexLinuxGARP = "ffffffffffff52540012345708060001080006040001525400123457c633640a000000000000c633640a"

	// arping -D: ARP probe for 198.51.100.11 from 0.0.0.0.
	hexLinuxARPProbe = "ffffffffffff5254001234570806000108000604000152540012345700000000ffffffffffffc633640b"

	// arping: request from 198.51.100.10 for 198.51.100.12.
	hexLinuxARPRequest = "ffffffffffff52540012345708060001080006040001525400123457c633640affffffffffffc633640c"

	// The kernel's reply: 198.51.100.10 is at 52:54:00:12:34:56, to 198.51.100.1.
	hexLinuxARPReply = "02005e10000152540012345608060001080006040002525400123456c633640a02005e100001c6336401"

	// Unsolicited NA for 2001:db8:10::10 to ff02::1, Override set, target
	// link-layer address 52:54:00:12:34:57.
	hexLinuxUnsolicitedNA = "33330000000152540012345786dd6000000000203aff20010db8001000000000000000000010ff020000000000000000000000000001880074302000000020010db80010000000000000000000100201525400123457"

	// The same for the link-local address fe80::5054:ff:fe12:3456 (kept
	// from the old MAC) at the new MAC 52:54:00:12:34:57.
	hexLinuxUnsolicitedNALinkLocal = "33330000000152540012345786dd6000000000203afffe80000000000000505400fffe123456ff0200000000000000000000000000018800cb6720000000fe80000000000000505400fffe1234560201525400123457"

	// DAD NS from :: for 2001:db8:10::10, with a nonce option (RFC 7527).
	hexLinuxDADNS = "3333ff00001052540012345686dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff000010870097140000000020010db80010000000000000000000100e014e520e084b47"

	// DAD NS from :: for the link-local fe80::5054:ff:fe12:3456.
	hexLinuxDADNSLinkLocal = "3333ff12345652540012345686dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff1234568700c7f700000000fe80000000000000505400fffe1234560e01b238f4cc46fc"

	// RS from fe80::5054:ff:fe12:3456 with source link-layer address.
	hexLinuxRS = "33330000000252540012345686dd6000000000103afffe80000000000000505400fffe123456ff020000000000000000000000000002850071b5000000000101525400123456"

	// NS from 2001:db8:10::10 (52:54:00:12:34:57) for 2001:db8:10::20.
	hexLinuxNS = "3333ff00002052540012345786dd6000000000203aff20010db8001000000000000000000010ff0200000000000000000001ff000020870096ff0000000020010db80010000000000000000000200101525400123457"

	// MLDv2 report from :: (hop-by-hop header before ICMPv6).
	hexLinuxMLD = "33330000001652540012345686dd600000000038000100000000000000000000000000000000ff0200000000000000000000000000163a000502000001008f0038f80000000204000000ff0200000000000000000001ff00001004000000ff0200000000000000000001ff123456"

	// UDP broadcast 198.51.100.10:42618 → 198.51.100.255:9999.
	hexLinuxUDP = "ffffffffffff52540012345608004500001ff8e740004011ec75c633640ac63364ffa67a270f000b558d68690a"
)

// realFrames are all the captured frames, for fuzz seeds.
var realFrames = []string{
	hexQEMURARP, hexLinuxGARP, hexLinuxARPProbe, hexLinuxARPRequest, hexLinuxARPReply,
	hexLinuxUnsolicitedNA, hexLinuxUnsolicitedNALinkLocal, hexLinuxDADNS, hexLinuxDADNSLinkLocal,
	hexLinuxRS, hexLinuxNS, hexLinuxMLD, hexLinuxUDP,
}

var (
	macGuest    = hwaddr("52:54:00:12:34:56")
	macGuestNew = hwaddr("52:54:00:12:34:57")
	macGateway  = hwaddr("02:00:5e:10:00:01")
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func hwaddr(s string) net.HardwareAddr {
	mac, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return mac
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }
