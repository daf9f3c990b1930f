package qemumigration

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is one strategy's migrations in figures.
type Summary struct {
	Strategy string
	N        int
	// Lost is probes lost per migration; LostAfterSwitch among those sent
	// after the switch (strategies with a switch only).
	LostMedian, LostMax         int
	LostAfterSwitchMax          int
	HasSwitch                   bool
	DowntimeMedian, DowntimeMax time.Duration
	// MaxDelay is the slowest reply that came back (delayed, not lost).
	MaxDelayMedian, MaxDelayMax time.Duration
	// Total is QEMU's total migration time.
	TotalMedian time.Duration
	TCPOK       int
}

// Summaries groups migrations by strategy, in order of first appearance.
func Summaries(ms []*Migration) []Summary {
	var order []string
	by := map[string][]*Migration{}
	for _, m := range ms {
		if m == nil || m.QEMU == nil {
			continue
		}
		if _, ok := by[m.Strategy]; !ok {
			order = append(order, m.Strategy)
		}
		by[m.Strategy] = append(by[m.Strategy], m)
	}
	var out []Summary
	for _, name := range order {
		g := by[name]
		s := Summary{Strategy: name, N: len(g), LostAfterSwitchMax: -1}
		var lost []int
		var down, delay, total []time.Duration
		for _, m := range g {
			lost = append(lost, m.Probe.Lost)
			down = append(down, m.QEMU.Info.Downtime())
			delay = append(delay, m.Probe.MaxDelay)
			total = append(total, m.QEMU.Info.TotalTime())
			if m.LostAfterSwitch >= 0 {
				s.HasSwitch = true
				s.LostAfterSwitchMax = max(s.LostAfterSwitchMax, m.LostAfterSwitch)
			}
			if m.TCPErr == nil && m.TCPRTT > 0 {
				s.TCPOK++
			}
		}
		s.LostMedian, s.LostMax = median(lost), slices.Max(lost)
		s.DowntimeMedian, s.DowntimeMax = median(down), slices.Max(down)
		s.MaxDelayMedian, s.MaxDelayMax = median(delay), slices.Max(delay)
		s.TotalMedian = median(total)
		out = append(out, s)
	}
	return out
}

// median returns the middle value (the lower of the two middle ones for
// an even count).
func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// PrintTable writes one line per strategy: probes lost (median, max), lost
// after the switch (max), QEMU's downtime and total time, the largest delay
// of the replies that did come, and how many TCP checks passed.
func PrintTable(w io.Writer, ms []*Migration, interval time.Duration) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tn\tlost med\tlost max\tlost after switch (max)\tQEMU downtime med\tmax\tmax delay med\tmax\tmigration med\tTCP\t")
	for _, s := range Summaries(ms) {
		after := "-"
		if s.HasSwitch {
			after = fmt.Sprint(s.LostAfterSwitchMax)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d ok\t\n", s.Strategy, s.N, s.LostMedian, s.LostMax, after,
			msf(s.DowntimeMedian), msf(s.DowntimeMax), msf(s.MaxDelayMedian), msf(s.MaxDelayMax), msf(s.TotalMedian), s.TCPOK, s.N)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nlost: probes (one every %s) without a reply, sent from a migration's start to the next one's;\n", interval)
	fmt.Fprintln(w, "lost after switch: among those sent after the switch returned; QEMU downtime: query-migrate's;")
	fmt.Fprintln(w, "max delay: slowest reply that came back; migration: QEMU's total time; TCP: session opened before the migrations, checked after each.")
}

// PrintMigrations writes each migration's timeline, in milliseconds after
// the source's vCPUs stopped.
func PrintMigrations(w io.Writer, ms []*Migration) {
	for _, m := range ms {
		if m == nil || m.QEMU == nil {
			continue
		}
		q := m.QEMU
		at := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return fmt.Sprintf("%+.1f", float64(t.Sub(q.Stopped))/1e6)
		}
		var parts []string
		add := func(what string, t time.Time) {
			if !t.IsZero() {
				parts = append(parts, what+" "+at(t))
			}
		}
		add("migrate", q.Start)
		add("pre-switchover", q.PreSwitchover)
		add("switch", m.SwitchStart)
		add("switched", m.Switched)
		add("continue", q.Continued)
		add("completed", q.Completed)
		add("resumed", q.Resumed)
		add("claimed", m.Claimed)
		add("route", m.ClaimedRoute)
		add("source quit", m.SourceGone)
		tcp := "TCP ok"
		if m.TCPErr != nil {
			tcp = "TCP FAILED: " + m.TCPErr.Error()
		}
		fmt.Fprintf(w, "%d %s %s→%s: downtime %d ms, %s; %s; %s\n", m.Seq, m.Strategy, m.From, m.To, q.Info.DowntimeMS, strings.Join(parts, ", "), m.Probe, tcp)
		if len(m.LossRuns) > 0 {
			var runs []string
			for _, r := range m.LossRuns {
				runs = append(runs, fmt.Sprintf("%d from %s", r.Count, at(r.First)))
			}
			fmt.Fprintf(w, "    lost probes (sent at ms): %s\n", strings.Join(runs, ", "))
		}
		for _, n := range m.Notes {
			fmt.Fprintf(w, "    %s\n", n)
		}
	}
}

func msf(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
