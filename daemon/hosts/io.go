package hosts

import (
	"net"
	"net/netip"
	"time"
)

// Input is something that happened: a frame, a port change, a remote claim,
// a hint or the passing of time.
type Input interface{ at() time.Time }

// PortUp says a VM port exists (appeared, or found at start).
type PortUp struct {
	Time   time.Time
	Port   string
	Tenant string
}

// PortDown says a VM port was removed.
type PortDown struct {
	Time time.Time
	Port string
}

// Frame is a frame from a VM on a local port. Addr is the address the frame
// claims; it is invalid for RARP, which carries only the MAC.
type Frame struct {
	Time   time.Time
	Port   string
	Source Source
	MAC    net.HardwareAddr
	Addr   netip.Addr
	// EthSrc is the frame's Ethernet source, when known: a frame whose
	// claimed MAC differs from the MAC that sent it is spoofed.
	EthSrc net.HardwareAddr
}

// RemoteClaims is the complete current set of other sites' claims on a host,
// as learned over BGP (all ADD-PATH paths, this site's own excluded).
type RemoteClaims struct {
	Time   time.Time
	Key    Key
	Claims []Claim
}

// Notified is a direct move notification from the site that claimed a host:
// it arrives before BGP has crossed the fabric.
type Notified struct {
	Time  time.Time
	Key   Key
	Claim Claim
}

// HintKind is what the migration engine says about a VM.
type HintKind uint8

// Hint kinds.
const (
	// HintArrive: the VM is coming to this site (stage its port).
	HintArrive HintKind = iota + 1
	// HintSwitch: the VM is paused at the source; claim it here now.
	HintSwitch
	// HintDepart: the VM left this site.
	HintDepart
)

func (k HintKind) String() string {
	switch k {
	case HintArrive:
		return "arrive"
	case HintSwitch:
		return "switch"
	case HintDepart:
		return "depart"
	}
	return "hint(?)"
}

// Hint is an explicit statement from the migration engine. Addrs may be empty
// when the MAC is bound to known addresses.
type Hint struct {
	Time   time.Time
	Kind   HintKind
	Tenant string
	MAC    net.HardwareAddr
	Addrs  []netip.Addr
	Port   string
}

// Tick is the passing of time: hold timers and staged hosts expire.
type Tick struct{ Time time.Time }

// Failed reports that carrying out an action failed; the host drops back so
// the next reconcile retries it.
type Failed struct {
	Time   time.Time
	Action Action
	Err    error
}

// Freeze and Unfreeze are operator commands on a host.
type Freeze struct {
	Time   time.Time
	Key    Key
	Frozen bool
}

// OwnerProbed answers a ProbeOwner: whether the owner of a contested address
// still answered.
type OwnerProbed struct {
	Time  time.Time
	Key   Key
	Alive bool
}

func (i OwnerProbed) at() time.Time  { return i.Time }
func (i PortUp) at() time.Time       { return i.Time }
func (i PortDown) at() time.Time     { return i.Time }
func (i Frame) at() time.Time        { return i.Time }
func (i RemoteClaims) at() time.Time { return i.Time }
func (i Notified) at() time.Time     { return i.Time }
func (i Hint) at() time.Time         { return i.Time }
func (i Tick) at() time.Time         { return i.Time }
func (i Failed) at() time.Time       { return i.Time }
func (i Freeze) at() time.Time       { return i.Time }

// Action is something the daemon must carry out, in the order returned.
type Action interface{ isAction() }

// PreparePort makes a port routed: anycast MAC, proxy ARP, gateways, rules.
type PreparePort struct {
	Port   string
	Tenant string
}

// StagePort readies a port to queue packets for a VM that is about to run
// there: a neighbour entry for its MAC and a throwaway frame into the tap.
type StagePort struct {
	Port  string
	MAC   net.HardwareAddr
	Addrs []netip.Addr
}

// InstallRoute writes the host route dev Port and a neighbour entry for MAC.
type InstallRoute struct {
	Key  Key
	Port string
	MAC  net.HardwareAddr
}

// RemoveRoute deletes the host route (local or forwarding) of Key.
type RemoveRoute struct {
	Key Key
}

// ForwardRoute replaces the host route by one that tunnels packets to the
// site To (the winner's underlay address).
type ForwardRoute struct {
	Key Key
	To  netip.Addr
}

// Announce adds (or replaces) the BGP path of the host.
type Announce struct {
	Key    Key
	Seq    uint32
	Sticky bool
	MAC    net.HardwareAddr
}

// Withdraw removes the BGP path of the host.
type Withdraw struct {
	Key Key
}

// NotifyOld tells the site that held the host until now that this site has
// claimed it, so it yields and forwards at once.
type NotifyOld struct {
	Key Key
	To  netip.Addr
	Seq uint32
	MAC net.HardwareAddr
}

// ProbeOwner asks whether the current owner of a contested address still
// answers; the answer comes back as an OwnerGone input.
type ProbeOwner struct {
	Key  Key
	MAC  net.HardwareAddr
	Port string // local port of the owner, or "" when it is remote
}

// Refused records a claim roamd would not make, with its reason.
type Refused struct {
	Key    Key
	Port   string
	MAC    net.HardwareAddr
	Reason RefuseReason
}

// Moved records a completed move, for logs, metrics and `show moves`.
type Moved struct {
	Key  Key
	Move Move
	// Away is true when the host moved away from this site.
	Away bool
}

// RepairNeighbours announces a departed host's address with the anycast MAC
// on the port it left (gratuitous ARP, unsolicited NA), so neighbours left
// behind on a bridged segment route to it instead of sending to a MAC that
// is gone.
type RepairNeighbours struct {
	Key  Key
	Port string
}

// FrozenHost records that duplicate detection froze a host.
type FrozenHost struct {
	Key   Key
	Moves int
}

func (PreparePort) isAction()      {}
func (StagePort) isAction()        {}
func (InstallRoute) isAction()     {}
func (RemoveRoute) isAction()      {}
func (ForwardRoute) isAction()     {}
func (Announce) isAction()         {}
func (Withdraw) isAction()         {}
func (NotifyOld) isAction()        {}
func (ProbeOwner) isAction()       {}
func (Refused) isAction()          {}
func (Moved) isAction()            {}
func (RepairNeighbours) isAction() {}
func (FrozenHost) isAction()       {}

// RefuseReason says why a claim was refused.
type RefuseReason string

// Reasons a claim is refused.
const (
	RefuseOutsidePrefixes RefuseReason = "outside-prefixes"
	RefuseGateway         RefuseReason = "gateway-address"
	RefuseSpecial         RefuseReason = "special-address"
	RefuseConflict        RefuseReason = "address-conflict"
	RefusePinned          RefuseReason = "pinned-elsewhere"
	RefuseFrozen          RefuseReason = "frozen"
	RefuseUnknownPort     RefuseReason = "unknown-port"
	RefuseUnknownMAC      RefuseReason = "unknown-mac"
	RefuseSpoofedMAC      RefuseReason = "spoofed-mac"
	// RefuseFamilyNotRouted: the tenant routes no prefix of the address's
	// family (a dual-stack guest in an IPv4-only tenant): not a claim.
	RefuseFamilyNotRouted RefuseReason = "family-not-routed"
)

// Restored puts a host found in the kernel at start back into the table:
// running here (Port set) or being forwarded to another site (ForwardTo set).
type Restored struct {
	Time      time.Time
	Key       Key
	Port      string
	MAC       net.HardwareAddr
	Seq       uint32
	ForwardTo netip.Addr
}

func (i Restored) at() time.Time { return i.Time }
