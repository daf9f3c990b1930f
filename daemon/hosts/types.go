// Package hosts is roamd's host table and its state machine.
//
// Everything here is pure: inputs (frames seen, ports appearing, claims
// learned over BGP, hints, clock ticks) go in through Table.Apply, which
// returns the actions to carry out (program a route, announce, withdraw,
// forward) and never touches the kernel or the network itself. One goroutine
// owns a Table; tests drive it with tables of inputs and expected actions.
//
// A host is keyed by tenant and address and moves through
//
//	staged → local → announced → yielded → gone
//
// staged: a hint or port says the VM is coming, not yet running here;
// local: a frame from the VM confirmed it but its route is not (yet) in place;
// announced: kernel route programmed, then the BGP path added;
// yielded: a better remote claim won, the path is withdrawn and in-flight
// packets are forwarded to the winner for a hold time;
// gone: its port was removed or it never showed up.
package hosts

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Key identifies a host: addresses may overlap between tenants.
type Key struct {
	Tenant string
	Addr   netip.Addr
}

func (k Key) String() string { return k.Tenant + "/" + k.Addr.String() }

// Prefix is the host route of the key: /32 or /128.
func (k Key) Prefix() netip.Prefix { return netip.PrefixFrom(k.Addr, k.Addr.BitLen()) }

// State is a host's lifecycle state.
type State uint8

// Host states, in lifecycle order.
const (
	Staged State = iota + 1
	Local
	Announced
	Yielded
	Gone
)

var stateNames = map[State]string{Staged: "staged", Local: "local", Announced: "announced", Yielded: "yielded", Gone: "gone"}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Source says what made roamd see a host.
type Source uint8

// Frame and event sources.
const (
	SourceRARP Source = iota + 1
	SourceGARP
	SourceARPRequest
	SourceARPReply
	SourceNA
	SourceNS
	SourceRS
	SourceHint
	SourceConfig
	SourceRestore
	SourceBGP
	SourceNotify
	SourceTraffic
)

var sourceNames = map[Source]string{
	SourceRARP: "rarp", SourceGARP: "garp", SourceARPRequest: "arp-request", SourceARPReply: "arp-reply",
	SourceNA: "na", SourceNS: "ns", SourceRS: "rs", SourceHint: "hint", SourceConfig: "config", SourceRestore: "restore",
	SourceBGP: "bgp", SourceNotify: "notify", SourceTraffic: "traffic",
}

func (s Source) String() string {
	if n, ok := sourceNames[s]; ok {
		return n
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Claim is another roamd's claim on a host, as carried by its BGP path (or
// its direct move notification).
type Claim struct {
	// Origin is the claiming roamd's router ID (its underlay address).
	Origin netip.Addr
	Seq    uint32
	Sticky bool
	MAC    net.HardwareAddr
}

// Beats reports whether claim a wins over claim b: a sticky claim beats a
// non-sticky one, then the higher sequence wins, then the lower router ID
// (RFC 7432 section 7.7 and 15).
func (a Claim) Beats(b Claim) bool {
	if a.Sticky != b.Sticky {
		return a.Sticky
	}
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	return a.Origin.Less(b.Origin)
}

// Host is one entry of the table.
type Host struct {
	Key
	MAC    net.HardwareAddr
	Port   string
	State  State
	Seq    uint32 // sequence of this site's latest claim
	Pinned bool   // sticky: configured to stay here
	Frozen bool   // duplicate detection stopped its moves

	Since      time.Time // when State was entered
	LastSeen   time.Time // last frame from the VM
	LastSource Source

	// ForwardTo is the site in-flight packets are forwarded to while yielded,
	// until ForwardUntil.
	ForwardTo    netip.Addr
	ForwardUntil time.Time
	// PathKept: yielded on a notification, the path stays announced until
	// the winner's path arrives through BGP (make before break).
	PathKept bool

	// moves are the times of recent moves, for duplicate detection.
	moves []time.Time
	// History is the host's recent moves, newest last.
	History []Move
}

// Move is one change of where a host runs, as seen from this site.
type Move struct {
	Time   time.Time
	From   netip.Addr // origin router ID that lost; invalid: not known
	To     netip.Addr // origin router ID that won
	Seq    uint32
	Source Source
	Port   string
}

// Port is a VM port known to the table.
type Port struct {
	Name   string
	Tenant string
}
