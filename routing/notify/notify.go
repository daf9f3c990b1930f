// Package notify carries direct move notifications between roamds.
//
// When a host arrives at a new site, BGP tells the old site about it only
// after every router on the way has passed the update on (FRR holds each one
// ~50 ms per hop). The new site already knows the old site's underlay
// address (it rides on the route being replaced), so it also tells the old
// site directly with one UDP datagram: the old site yields and starts
// forwarding in-flight packets within a millisecond instead of a hundred.
// BGP stays the source of truth: a notification only brings the yield
// forward, and the next BGP update or reconcile replaces it.
//
// Wire format (big endian), 84 bytes:
//
//	0  magic "RMN1"
//	4  tenant id (2)      6  kind (1: 0 claim, 1 ack)  7 reserved (1)
//	8  sequence (4)       12 sticky (1) 13 address length (1: 4 or 16) 14 reserved (2)
//	16 origin IPv4 (4)    20 address (16, IPv4 in the first 4)
//	36 MAC (6)            42 reserved (2)
//	44 sent, Unix nanoseconds (8)
//	52 HMAC-SHA256 over bytes 0..51 with the shared key (32)
//
// Authentication is an HMAC with a key shared by all roamds; a datagram with
// a bad MAC, from the wrong source, or older than MaxAge is dropped and
// counted. No library carries such a message; it is written here by hand.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

const (
	magic   = "RMN1"
	bodyLen = 52
	msgLen  = bodyLen + sha256.Size
	// MaxAge bounds clock skew plus delay; older datagrams are replays.
	MaxAge = 10 * time.Second
)

// Kind says what a message is.
type Kind uint8

// Message kinds.
const (
	// Claim: Origin claimed Addr; the receiver yields and forwards to it.
	Claim Kind = 0
	// Ack: Origin (the old site) forwards Addr to the claimer now; the
	// claimer's `switch` returns only then.
	Ack Kind = 1
)

// Message is one notification: Origin claimed Addr in tenant TenantID with
// sequence Seq for the VM with MAC (Claim), or acknowledges such a claim (Ack).
type Message struct {
	Kind     Kind
	TenantID uint16
	Seq      uint32
	Sticky   bool
	Origin   netip.Addr
	Addr     netip.Addr
	MAC      net.HardwareAddr
	Sent     time.Time
}

// Marshal encodes and signs m.
func Marshal(m Message, key []byte) ([]byte, error) {
	if !m.Origin.Is4() {
		return nil, fmt.Errorf("notify: origin %s is not IPv4", m.Origin)
	}
	if !m.Addr.IsValid() || len(m.MAC) != 6 {
		return nil, errors.New("notify: address and 6-byte MAC required")
	}
	b := make([]byte, msgLen)
	copy(b, magic)
	binary.BigEndian.PutUint16(b[4:], m.TenantID)
	b[6] = byte(m.Kind)
	binary.BigEndian.PutUint32(b[8:], m.Seq)
	if m.Sticky {
		b[12] = 1
	}
	a := m.Addr.Unmap()
	b[13] = byte(a.BitLen() / 8)
	o := m.Origin.As4()
	copy(b[16:], o[:])
	copy(b[20:], a.AsSlice())
	copy(b[36:], m.MAC)
	binary.BigEndian.PutUint64(b[44:], uint64(m.Sent.UnixNano()))
	mac := hmac.New(sha256.New, key)
	mac.Write(b[:bodyLen])
	copy(b[bodyLen:], mac.Sum(nil))
	return b, nil
}

// Unmarshal verifies and decodes a datagram received at now.
func Unmarshal(b, key []byte, now time.Time) (Message, error) {
	var m Message
	if len(b) != msgLen {
		return m, fmt.Errorf("notify: datagram of %d bytes, want %d", len(b), msgLen)
	}
	if string(b[:4]) != magic {
		return m, errors.New("notify: bad magic")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(b[:bodyLen])
	if !hmac.Equal(mac.Sum(nil), b[bodyLen:]) {
		return m, errors.New("notify: authentication failed (wrong key?)")
	}
	m.TenantID = binary.BigEndian.Uint16(b[4:])
	m.Kind = Kind(b[6])
	if m.Kind != Claim && m.Kind != Ack {
		return m, fmt.Errorf("notify: unknown kind %d", b[6])
	}
	m.Seq = binary.BigEndian.Uint32(b[8:])
	m.Sticky = b[12] == 1
	m.Origin = netip.AddrFrom4([4]byte(b[16:20]))
	switch b[13] {
	case 4:
		m.Addr = netip.AddrFrom4([4]byte(b[20:24]))
	case 16:
		m.Addr = netip.AddrFrom16([16]byte(b[20:36]))
	default:
		return m, fmt.Errorf("notify: address length %d, want 4 or 16", b[13])
	}
	m.MAC = net.HardwareAddr(append([]byte(nil), b[36:42]...))
	m.Sent = time.Unix(0, int64(binary.BigEndian.Uint64(b[44:])))
	if age := now.Sub(m.Sent); age > MaxAge || age < -MaxAge {
		return m, fmt.Errorf("notify: sent %s ago, outside ±%s (replay or clock skew)", age.Round(time.Millisecond), MaxAge)
	}
	return m, nil
}
