package twosite

import (
	"fmt"
	"iter"
	"time"

	"github.com/roamd/roamd/labs/nslab"
)

// moveWindows yields each move that has a report with the end of its
// window, in which its effects are looked for: the next move's start, or
// the zero time for the last move (open).
func moveWindows(results []*MoveResult) iter.Seq2[*MoveResult, time.Time] {
	return func(yield func(*MoveResult, time.Time) bool) {
		for i, r := range results {
			if r.Report == nil {
				continue
			}
			var end time.Time
			if i+1 < len(results) && results[i+1].Report != nil {
				end = results[i+1].Report.Start
			}
			if !yield(r, end) {
				return
			}
		}
	}
}

// Account splits the interruption one move caused into consecutive parts
// along a single timeline, from the first probe lost to the first reply
// after it:
//
//	Gap = Pause + Plumbing + VM + Missed + Delivery + Roamd + Fabric
//
// Each part is the interval between two timestamps, the end of one being
// the start of the next, so the parts add up to the gap exactly; what is
// measured is where each boundary lies. Lab timestamps (the runner's
// netlink calls, the frames the VM sent, the probe's record, the leaves'
// route changes) and roamd's (its move log) are compared on the wall
// clock, which both processes read on the same machine.
type Account struct {
	From, To string
	Kind     nslab.MoveKind

	// Lost counts the probes lost in the move's window; Outage is the
	// longest run of them times the probe interval; Gap runs from sending
	// the first lost probe to receiving the first reply to a later one
	// (about Outage plus one round trip). Recovered is false when no reply
	// came back.
	Lost        int
	Outage, Gap time.Duration
	Recovered   bool
	// MaxDelay is the slowest round trip of the probes that were answered.
	MaxDelay time.Duration
	// ProbeLag is how far the prober fell behind its schedule: beyond an
	// interval or so, Lost and Outage undercount the gap. ProbeBlind is how
	// long no probe left just before the first lost one: the gap (and so
	// the plumbing) may start up to that much too late.
	ProbeLag, ProbeBlind time.Duration

	// Pause is the configured time the port stays away.
	Pause time.Duration
	// Plumbing is the rest of the time from the first lost probe to the
	// port being up on the new hypervisor with carrier: moving the port out
	// of the old hypervisor (traffic stops as that netlink call starts),
	// into the new one and up, and the carrier coming up on the VM's side.
	Plumbing time.Duration
	// Unplug and Plug detail the plumbing: the netlink call that takes the
	// port away, and from the end of the pause to the port being up on the
	// new hypervisor with carrier.
	Unplug, Plug time.Duration
	// VM is from carrier to the VM's first announcement (a cold move's
	// boot, a live move's resume delay).
	VM time.Duration
	// Missed is from the VM's first announcement to the one roamd claimed
	// on: announcements roamd did not act on, each costing a step of
	// QEMU's RARP schedule.
	Missed time.Duration
	// ClaimFrame names the frame roamd claimed on ("rarp 1/5": the first of
	// five RARPs) or, when the lab did not send it, roamd's source.
	ClaimFrame string
	// Delivery is from the VM sending the claiming frame (stamped just
	// before the send call) to roamd reading it.
	Delivery time.Duration
	// Roamd is roamd's share: from reading the frame to its BGP UPDATE
	// leaving on the new hypervisor's uplink, or, when no UPDATE was
	// captured (UpdateSeen false), to handing the path to its speaker.
	// RoamdRoute and RoamdSpeaker are its parts roamd logs itself: frame
	// read → kernel route (detect_to_route_us) and → path handed to GoBGP
	// (detect_to_announce_us).
	Roamd, RoamdRoute, RoamdSpeaker time.Duration
	UpdateSeen                      bool
	// Fabric is the rest: from roamd's UPDATE to the first reply at the
	// client (BGP through the leaves, or the old site forwarding once
	// notified, and the probe's round trip).
	Fabric time.Duration
	// LeafSwitch is when, after roamd's UPDATE, the kernel routes of the
	// leaves on the probe's path (the client's leaf and the new site's)
	// all pointed at the new site (zebra installed what BGP chose): the
	// first part of Fabric. Zero when not watched.
	LeafSwitch time.Duration
	// OldGone is when the old site's path disappeared after the
	// announcement, as the new hypervisor saw it through ADD-PATH
	// (old_withdrawn_us); zero when it did not see it.
	OldGone time.Duration

	// Complete is false when a boundary is missing (no probe lost, no reply
	// came back, roamd logged no arrival); Missing says which.
	Complete bool
	Missing  string
}

// Direction labels the move's direction, "hv1 → hv2".
func (a Account) Direction() string { return a.From + " → " + a.To }

// AccountFor splits a move's interruption into its parts (see Account).
func AccountFor(r *MoveResult) Account {
	rep := r.Report
	a := Account{
		From: rep.From, To: rep.To, Kind: rep.Kind, Pause: rep.Pause,
		Lost: r.Probe.Lost, Outage: r.Probe.Outage, Gap: r.Probe.Gap, Recovered: r.Probe.Gap >= 0,
		MaxDelay: r.Probe.MaxDelay, ProbeLag: r.ProbeLag, ProbeBlind: r.ProbeBlind,
	}
	if !rep.Left.IsZero() {
		a.Unplug = wallSub(rep.Left, rep.Start)
	}
	if !rep.CarrierUp.IsZero() && !rep.Left.IsZero() {
		a.Plug = wallSub(rep.CarrierUp, rep.Left) - rep.Pause
	}
	switch {
	case r.Probe.Lost == 0:
		a.Missing = "no probe lost"
		return a
	case r.Probe.Gap < 0:
		a.Missing = "replies never came back"
		return a
	case rep.CarrierUp.IsZero():
		a.Missing = "the port never came up"
		return a
	case r.Arrival == nil:
		a.Missing = "roamd logged no arrival"
		return a
	}
	firstLost := rep.Start.Add(r.Probe.FirstLoss)
	repliesAgain := firstLost.Add(r.Probe.Gap)
	seen := r.Arrival.Time
	announced := seen.Add(time.Duration(r.Arrival.DetectToAnnounceUS) * time.Microsecond)

	a.Plumbing = wallSub(rep.CarrierUp, firstLost) - rep.Pause
	// The VM's first announcement; roamd reading the frame it claimed on
	// when the lab sent none.
	firstSent := seen
	if len(rep.Frames) > 0 && !rep.Frames[0].At.After(seen) {
		firstSent = rep.Frames[0].At
	}
	claimSent, name := claimingFrame(rep.Frames, r.Arrival.Source, seen)
	a.ClaimFrame = name
	if claimSent.IsZero() {
		// Claimed on something the lab did not send (the guest's own ARP,
		// a neighbour advertisement...): delivery is unknown.
		claimSent = seen
	}
	a.VM = wallSub(firstSent, rep.CarrierUp)
	a.Missed = wallSub(claimSent, firstSent)
	a.Delivery = wallSub(seen, claimSent)
	a.RoamdSpeaker = time.Duration(r.Arrival.DetectToAnnounceUS) * time.Microsecond
	a.RoamdRoute = time.Duration(r.Arrival.DetectToRouteUS) * time.Microsecond
	// GoBGP may put the UPDATE on the wire before AddPath returns to
	// roamd: look for it from the frame on.
	sharesEnd := announced
	if at, ok := firstUpdate(r.Updates, rep.To, seen); ok {
		sharesEnd, a.UpdateSeen = at, true
	}
	a.Roamd = wallSub(sharesEnd, seen)
	a.Fabric = wallSub(repliesAgain, sharesEnd)
	a.OldGone = time.Duration(r.Arrival.OldWithdrawnUS) * time.Microsecond
	if at, ok := pathSwitchedAt(r.LeafRoutes, rep.To, sharesEnd); ok {
		a.LeafSwitch = wallSub(at, sharesEnd)
	}
	a.Complete = true
	return a
}

// claimingFrame finds the frame of roamd's claim source that roamd read
// at seen: the last one of that kind sent before it (frames are stamped
// just before the send call, and the VM's announcements of one kind are
// ≥ 50 ms apart). It names it by its rank among frames of its kind, "rarp
// 2/5". Without such a frame it returns the zero time and roamd's source.
func claimingFrame(frames []nslab.SentFrame, source string, seen time.Time) (time.Time, string) {
	var at time.Time
	rank, total := 0, 0
	for _, f := range frames {
		if f.Kind != source {
			continue
		}
		total++
		if !f.At.Round(0).After(seen.Round(0)) {
			at, rank = f.At, total
		}
	}
	if rank == 0 {
		return time.Time{}, source + " (not sent by the lab)"
	}
	return at, fmt.Sprintf("%s %d/%d", source, rank, total)
}

// wallSub returns a − b on the wall clock: roamd's timestamps come from
// another process and carry no monotonic reading, so the lab's own are
// compared the same way.
func wallSub(a, b time.Time) time.Duration { return a.Round(0).Sub(b.Round(0)) }

// firstUpdate returns when hv first sent an UPDATE announcing the VM at or
// after the time given.
func firstUpdate(updates []SentUpdate, hv string, after time.Time) (time.Time, bool) {
	for _, u := range updates {
		if u.Node == hv && !u.At.Before(after.Round(0)) {
			return u.At, true
		}
	}
	return time.Time{}, false
}
