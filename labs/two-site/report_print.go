package twosite

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// PrintReport writes the per-move table with each move's interruption
// split into its parts (Account), the summary (median and max per
// direction and over all moves), how each part is measured, and each
// move's timeline.
func PrintReport(w io.Writer, results []*MoveResult) {
	var accts []Account
	var moves []*MoveResult
	for _, r := range results {
		if r.Report != nil {
			accts = append(accts, AccountFor(r))
			moves = append(moves, r)
		}
	}
	printMoves(w, moves, accts)
	fmt.Fprintln(w)
	printSummary(w, accts)
	fmt.Fprintln(w)
	fmt.Fprint(w, footnote)
	fmt.Fprintln(w)
	printTimelines(w, moves)
}

func printMoves(w io.Writer, moves []*MoveResult, accts []Account) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "move\tfrom → to\tlost\toutage\tgap\t= pause\t+ plumbing\t+ VM\t+ missed\t+ delivery\t+ roamd\t+ fabric\tclaimed on\t→route\t→GoBGP\tleaves moved\told path gone\tTCP\t")
	fmt.Fprintln(tw, "\t\t\tms\tms\tms\tms\tms\tms\tµs\tµs\tms\t\tµs\tµs\tms\tms\t\t")
	for i, a := range accts {
		r := moves[i]
		tcp := "ok"
		if r.TCPErr != nil {
			tcp = "FAILED"
		}
		gap := msf(a.Gap)
		if !a.Recovered {
			gap = "never"
		}
		parts := []string{msf(a.Pause), "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"}
		if a.Complete {
			roamd := usf(a.Roamd)
			if !a.UpdateSeen {
				roamd += "*"
			}
			parts = []string{msf(a.Pause), msf(a.Plumbing), msf(a.VM), msf(a.Missed), usf(a.Delivery), roamd, msf(a.Fabric),
				a.ClaimFrame, usf(a.RoamdRoute), usf(a.RoamdSpeaker), optMs(a.LeafSwitch), optMs(a.OldGone)}
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t\n", i+1, a.Direction(), a.Lost, msf(a.Outage), gap,
			strings.Join(parts, "\t"), tcp)
	}
	tw.Flush()
	for i, a := range accts {
		if !a.Complete && a.Missing != "no probe lost" {
			fmt.Fprintf(w, "move %d: no split: %s\n", i+1, a.Missing)
		}
		if a.ProbeLag > lagWarning {
			fmt.Fprintf(w, "move %d: the prober fell %s ms behind its schedule (CPU contention) and caught up in a burst: lost × interval undercounts the gap\n", i+1, msf(a.ProbeLag))
		}
		if a.ProbeBlind > lagWarning {
			fmt.Fprintf(w, "move %d: no probe left in the %s ms before the first lost one: the loss may have begun that much before the gap (and the plumbing) say\n", i+1, msf(a.ProbeBlind))
		}
		if a.Complete && !a.UpdateSeen {
			fmt.Fprintf(w, "move %d: *no UPDATE captured: roamd's share ends when it handed the path to GoBGP\n", i+1)
		}
	}
}

// lagWarning is how far behind schedule the prober may fall before the
// report says the probe counts undercount the outage.
const lagWarning = 5 * time.Millisecond

// metric is one row of the summary: a value per move, or false when the
// move lacks it.
type metric struct {
	name  string
	unit  string // "ms", "µs" or "" (a count)
	value func(Account) (time.Duration, bool)
}

var metrics = []metric{
	{"probes lost", "", func(a Account) (time.Duration, bool) { return time.Duration(a.Lost), true }},
	{"outage", "ms", func(a Account) (time.Duration, bool) { return a.Outage, true }},
	{"gap (the sum below)", "ms", func(a Account) (time.Duration, bool) { return a.Gap, a.Recovered && a.Lost > 0 }},
	{"  pause (configured)", "ms", func(a Account) (time.Duration, bool) { return a.Pause, true }},
	{"  plumbing", "ms", complete(func(a Account) time.Duration { return a.Plumbing })},
	{"  VM: carrier → first announcement", "ms", complete(func(a Account) time.Duration { return a.VM })},
	{"  missed: first → claiming announcement", "ms", complete(func(a Account) time.Duration { return a.Missed })},
	{"  delivery: frame sent → read by roamd", "µs", complete(func(a Account) time.Duration { return a.Delivery })},
	{"  roamd: frame read → UPDATE sent", "µs", complete(func(a Account) time.Duration { return a.Roamd })},
	{"    frame read → kernel route", "µs", complete(func(a Account) time.Duration { return a.RoamdRoute })},
	{"    frame read → path handed to GoBGP", "µs", complete(func(a Account) time.Duration { return a.RoamdSpeaker })},
	{"    path handed to GoBGP → UPDATE sent", "µs", func(a Account) (time.Duration, bool) { return a.Roamd - a.RoamdSpeaker, a.Complete && a.UpdateSeen }},
	{"  fabric: UPDATE sent → replies again", "ms", complete(func(a Account) time.Duration { return a.Fabric })},
	{"    UPDATE → leaves on the path moved", "ms", func(a Account) (time.Duration, bool) { return a.LeafSwitch, a.Complete && a.LeafSwitch > 0 }},
	{"    leaves moved → replies again", "ms", func(a Account) (time.Duration, bool) { return a.Fabric - a.LeafSwitch, a.Complete && a.LeafSwitch > 0 }},
	{"max delay of the replies that came", "ms", func(a Account) (time.Duration, bool) { return a.MaxDelay, true }},
	{"prober's lag behind its schedule", "ms", func(a Account) (time.Duration, bool) { return a.ProbeLag, true }},
	{"old site's path gone after announce", "ms", func(a Account) (time.Duration, bool) { return a.OldGone, a.OldGone > 0 }},
	{"unplug (netlink, old hypervisor)", "ms", func(a Account) (time.Duration, bool) { return a.Unplug, a.Unplug > 0 }},
	{"plug (pause end → up with carrier)", "ms", func(a Account) (time.Duration, bool) { return a.Plug, a.Plug > 0 }},
}

func complete(f func(Account) time.Duration) func(Account) (time.Duration, bool) {
	return func(a Account) (time.Duration, bool) { return f(a), a.Complete }
}

// group is a set of moves summarised together.
type group struct {
	label string
	accts []Account
}

// groups splits the moves by direction, in the order first seen, and adds
// all of them when there is more than one direction.
func groups(accts []Account) []group {
	var gs []group
	for _, a := range accts {
		i := slices.IndexFunc(gs, func(g group) bool { return g.label == a.Direction() })
		if i < 0 {
			gs = append(gs, group{label: a.Direction()})
			i = len(gs) - 1
		}
		gs[i].accts = append(gs[i].accts, a)
	}
	if len(gs) > 1 {
		gs = append(gs, group{label: "all", accts: accts})
	}
	return gs
}

func printSummary(w io.Writer, accts []Account) {
	gs := groups(accts)
	if len(gs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	head, sub := "summary\t\t", "\tunit\t"
	for _, g := range gs {
		head += fmt.Sprintf("%s (%d)\t\t", g.label, len(g.accts))
		sub += "median\tmax\t"
	}
	fmt.Fprintln(tw, head)
	fmt.Fprintln(tw, sub)
	for _, m := range metrics {
		// Left-align the metric's name in a right-aligned table.
		row := m.name + "\t" + m.unit + "\t"
		for _, g := range gs {
			var vs []time.Duration
			for _, a := range g.accts {
				if v, ok := m.value(a); ok {
					vs = append(vs, v)
				}
			}
			if len(vs) == 0 {
				row += "-\t-\t"
				continue
			}
			med, mx := medianMax(vs)
			row += format(med, m.unit) + "\t" + format(mx, m.unit) + "\t"
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	for _, g := range gs {
		counts := map[string]int{}
		var names []string
		for _, a := range g.accts {
			if a.ClaimFrame == "" {
				continue
			}
			if counts[a.ClaimFrame] == 0 {
				names = append(names, a.ClaimFrame)
			}
			counts[a.ClaimFrame]++
		}
		slices.Sort(names)
		var parts []string
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("%s ×%d", n, counts[n]))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "claimed on, %s: %s\n", g.label, strings.Join(parts, ", "))
		}
	}
}

// medianMax returns the median (the mean of the middle two for an even
// count) and the maximum.
func medianMax(vs []time.Duration) (median, maximum time.Duration) {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[n-1]
}

func format(d time.Duration, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.1f", float64(d)/1e6)
	case "µs":
		return fmt.Sprintf("%d", d.Microseconds())
	default: // a count stored as a duration
		return fmt.Sprintf("%d", int64(d))
	}
}

const footnote = `How each part is measured (one timeline per move; each part ends where the next begins, so
pause + plumbing + VM + missed + delivery + roamd + fabric = gap exactly; medians of parts need not add up):
  lost, outage: probes sent by the client every interval and never answered; outage = longest run of
    them × interval. gap: first lost probe sent → first reply to a later probe received (≈ outage + a
    round trip). Probe times are the prober's CLOCK_MONOTONIC stamps.
  pause: configured (--pause): the time the port stays parked between the hypervisors.
  plumbing: first lost probe → the port up on the new hypervisor with carrier at the VM, less the pause:
    the netlink call moving the port out of the old hypervisor (traffic stops as it starts: "unplug"),
    then moving it into the new one and setting it up, and the VM's veth seeing carrier ("plug").
  VM: carrier → the VM's first announcement (--boot: a cold guest's boot, a live guest's resume).
  missed: first announcement → the one roamd claimed on ("claimed on": rarp 2/5 = QEMU's second RARP,
    sent ~50 ms after the first): announcements roamd did not act on. Frames are stamped just before
    the VM's send call.
  delivery: claiming frame sent → read by roamd's capture (the arrival's "time" in
    ` + "`roamctl show moves -o json`" + ` on the new hypervisor).
  roamd: frame read → roamd's BGP UPDATE for the /32 leaving the new hypervisor's uplink (kernel
    timestamp of a packet socket on it). Its parts roamd logs itself: →route = frame read → kernel route
    (detect_to_route_us), →GoBGP = frame read → path handed to its embedded GoBGP (detect_to_announce_us);
    the rest is GoBGP queueing and encoding the UPDATE.
  fabric: the rest, UPDATE sent → first reply at the client: the UPDATE crossing the leaves (FRR holds
    each ~50 ms per hop), or the old site forwarding once notified, and the probe's round trip.
    leaves moved: UPDATE sent → the kernel routes to the VM of the leaves on the probe's path (leaf1,
    and leaf2 when the VM is on hv2) pointing at the new site (rtnetlink events in the leaves'
    namespaces, i.e. zebra's installs): the fabric's part before the probe's round trip.
  max delay: the slowest round trip among the probes answered (delayed, not lost). prober's lag: how far
    the client's prober fell behind its 1-per-interval schedule (a CPU-starved prober sends what it owes
    in a burst, so lost × interval undercounts the outage; the gap, from timestamps, does not, unless
    the stall came just before the loss: then the report says by how much it may start late).
  old path gone: announce → the old site's path withdrawn, seen on the new hypervisor through ADD-PATH
    (old_withdrawn_us).
Lab and roamd timestamps are compared on the wall clock (same machine).
`

// printTimelines writes each move's steps, in ms after the port started
// to leave its hypervisor.
func printTimelines(w io.Writer, moves []*MoveResult) {
	fmt.Fprintln(w, "timeline (ms after the port started to leave):")
	for i, r := range moves {
		rep := r.Report
		at := func(t time.Time) string { return fmt.Sprintf("%.1f", float64(wallSub(t, rep.Start))/1e6) }
		var frames []string
		for _, f := range rep.Frames {
			frames = append(frames, f.Kind+" "+at(f.At))
		}
		line := fmt.Sprintf("  move %d: gone from %s %s, up on %s %s, carrier %s, sent [%s]", i+1,
			rep.From, at(rep.Left), rep.To, at(rep.Arrived), at(rep.CarrierUp), strings.Join(frames, ", "))
		for _, c := range r.LeafRoutes {
			via := "deleted"
			if c.Via.IsValid() {
				via = "via " + c.Via.String()
			}
			line += fmt.Sprintf(", %s route %s %s", c.Node, via, at(c.At))
		}
		if a := r.Arrival; a != nil {
			line += fmt.Sprintf("; roamd read %s %s, route %s, to GoBGP %s", a.Source, at(a.Time),
				at(a.Time.Add(time.Duration(a.DetectToRouteUS)*time.Microsecond)),
				at(a.Time.Add(time.Duration(a.DetectToAnnounceUS)*time.Microsecond)))
			if u, ok := firstUpdate(r.Updates, rep.To, a.Time); ok {
				line += ", UPDATE sent " + at(u)
			}
			if a.OldWithdrawnUS > 0 {
				line += ", old path gone " + at(a.Time.Add(time.Duration(a.DetectToAnnounceUS+a.OldWithdrawnUS)*time.Microsecond))
			}
		}
		if d := r.Departure; d != nil {
			line += fmt.Sprintf("; %s yielded on %s %s", rep.From, d.Source, at(d.Time))
		} else if r.Arrival != nil {
			line += fmt.Sprintf("; %s logged no yield", rep.From)
		}
		switch {
		case r.Probe.Lost == 0:
			line += "; no probe lost"
		case r.Probe.Gap < 0:
			line += fmt.Sprintf("; probes lost from %s, no reply since", at(rep.Start.Add(r.Probe.FirstLoss)))
		default:
			first := rep.Start.Add(r.Probe.FirstLoss)
			line += fmt.Sprintf("; probes lost from %s, replies again %s", at(first), at(first.Add(r.Probe.Gap)))
		}
		fmt.Fprintln(w, line)
	}
}

func msf(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }

func usf(d time.Duration) string { return fmt.Sprintf("%d", d.Microseconds()) }

// optMs formats a duration that may be unknown (zero).
func optMs(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return msf(d)
}
