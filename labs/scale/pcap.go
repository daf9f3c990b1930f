package scale

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The pcap file format (https://www.tcpdump.org/manpages/pcap-savefile.5.html)
// is read here by hand: it is a 24-byte header and 16-byte record headers,
// and no module this project may use reads it.

// Link types of tcpdump's "any" pseudo-interface.
const (
	linkTypeLinuxSLL  = 113
	linkTypeLinuxSLL2 = 276
)

// Packet types of the cooked header (the kernel's PACKET_* values).
const (
	PacketHost      = 0
	PacketBroadcast = 1
	PacketMulticast = 2
	PacketOtherHost = 3
	PacketOutgoing  = 4
)

// Packet is one captured packet of a cooked ("any") capture.
type Packet struct {
	Time       time.Time // the kernel's timestamp
	Protocol   uint16    // ethertype of Data
	Ifindex    int       // interface (LINUX_SLL2 only; 0 otherwise)
	PacketType uint8     // PacketHost, ..., PacketOutgoing
	Data       []byte    // from the network header on (ARP, IPv4, ...)
}

// ReadPcap reads a pcap file of a Linux cooked capture (tcpdump -i any),
// in microsecond or nanosecond resolution.
func ReadPcap(r io.Reader) ([]Packet, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading pcap header: %w", err)
	}
	var order binary.ByteOrder
	var nanos bool
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4:
		order = binary.LittleEndian
	case 0xa1b23c4d:
		order, nanos = binary.LittleEndian, true
	case 0xd4c3b2a1:
		order = binary.BigEndian
	case 0x4d3cb2a1:
		order, nanos = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("not a pcap file (magic %x)", hdr[:4])
	}
	link := order.Uint32(hdr[20:24]) & 0x0fffffff
	if link != linkTypeLinuxSLL && link != linkTypeLinuxSLL2 {
		return nil, fmt.Errorf("pcap link type %d: want a Linux cooked capture (tcpdump -i any)", link)
	}
	var out []Packet
	var rec [16]byte
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return out, nil // tcpdump killed mid-record
			}
			return out, err
		}
		sec, frac := int64(order.Uint32(rec[0:4])), int64(order.Uint32(rec[4:8]))
		if !nanos {
			frac *= 1000
		}
		n := order.Uint32(rec[8:12])
		if n > 1<<20 {
			return out, fmt.Errorf("pcap record of %d bytes: corrupt file", n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return out, nil
		}
		p, ok := cooked(link, data)
		if !ok {
			continue
		}
		p.Time = time.Unix(sec, frac)
		out = append(out, p)
	}
}

// cooked decodes a Linux cooked header (v1: 16 bytes, v2: 20 bytes).
func cooked(link uint32, b []byte) (Packet, bool) {
	switch link {
	case linkTypeLinuxSLL:
		if len(b) < 16 {
			return Packet{}, false
		}
		return Packet{PacketType: uint8(binary.BigEndian.Uint16(b[0:2])), Protocol: binary.BigEndian.Uint16(b[14:16]), Data: b[16:]}, true
	case linkTypeLinuxSLL2:
		if len(b) < 20 {
			return Packet{}, false
		}
		return Packet{Protocol: binary.BigEndian.Uint16(b[0:2]), Ifindex: int(binary.BigEndian.Uint32(b[4:8])),
			PacketType: b[10], Data: b[20:]}, true
	}
	return Packet{}, false
}
