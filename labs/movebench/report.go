package movebench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Row is one line of the report: one strategy with one kind of leaves.
type Row struct {
	Strategy Strategy
	Leaves   Leaves
	// N counts the migrations that completed; Failed those that did not.
	N, Failed int
	// Lost is probes lost per migration.
	LostMedian, LostMax int
	// DowntimeMedian is QEMU's downtime, PauseMedian the guest's pause
	// (STOP to RESUME), in ms.
	DowntimeMedian, PauseMedian float64
	// Rest is lost × interval minus the pause, per migration, in ms: what
	// the network added to the outage (negative when it hid part of the
	// pause: probes held at the destination instead of lost).
	RestMedian, RestMax float64
	// MaxDelay is the slowest reply among probes sent once the source had
	// stopped, per migration, in ms: the median and the maximum.
	MaxDelayMedian, MaxDelayMax float64
	// LostAfterSwitchMax is -1 for strategies without a switch.
	LostAfterSwitchMax int
	TCPSurvived        int
}

// Summarise groups records into rows: strategies in the given order, each
// with its kinds of leaves in the given order.
func Summarise(recs []Record, strategies []Strategy, leaves []Leaves, interval time.Duration) []Row {
	var rows []Row
	for _, s := range strategies {
		for _, l := range leaves {
			row := Row{Strategy: s, Leaves: l, LostAfterSwitchMax: -1}
			var lost []int
			var down, pause, rest, delay []float64
			for _, r := range recs {
				if r.Strategy != s.Name || r.Leaves != l {
					continue
				}
				if r.Error != "" {
					row.Failed++
					continue
				}
				row.N++
				lost = append(lost, r.Lost)
				down = append(down, r.DowntimeMS)
				pause = append(pause, r.PauseMS)
				rest = append(rest, float64(r.Lost)*ms(interval)-r.PauseMS)
				delay = append(delay, r.MaxDelayPausedMS)
				if r.LostAfterSwitch >= 0 {
					row.LostAfterSwitchMax = max(row.LostAfterSwitchMax, r.LostAfterSwitch)
				}
				if r.TCPSurvived {
					row.TCPSurvived++
				}
			}
			if row.N+row.Failed == 0 {
				continue
			}
			if row.N > 0 {
				row.LostMedian, row.LostMax = median(lost), slices.Max(lost)
				row.DowntimeMedian, row.PauseMedian = median(down), median(pause)
				row.RestMedian, row.RestMax = median(rest), slices.Max(rest)
				row.MaxDelayMedian, row.MaxDelayMax = median(delay), slices.Max(delay)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// median returns the middle value (the mean of the two middle ones for an
// even count).
func median[T int | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// PrintTable writes the report table.
func PrintTable(w io.Writer, rows []Row, interval time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tleaves\tlost med\tlost max\tdowntime med\tpause med\trest med\trest max\tmax delay med\tmax delay max\tlost after switch\tTCP survived\t")
	for _, r := range rows {
		after := "-"
		if r.LostAfterSwitchMax >= 0 {
			after = fmt.Sprintf("max %d", r.LostAfterSwitchMax)
		}
		tcp := fmt.Sprintf("%d/%d", r.TCPSurvived, r.N+r.Failed)
		if r.N == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t%s\t%s\t\n", r.Strategy.Title, r.Leaves, after, tcp)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Strategy.Title, r.Leaves,
			r.LostMedian, r.LostMax, msText(r.DowntimeMedian), msText(r.PauseMedian), msText(r.RestMedian), msText(r.RestMax),
			msText(r.MaxDelayMedian), msText(r.MaxDelayMax), after, tcp)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nlost: probes lost per migration, one sent every %s; downtime: QEMU's figure (query-migrate); pause: the\n", interval)
	fmt.Fprintln(w, "guest's real pause, QEMU's STOP (source) to RESUME (destination); rest: lost × interval − pause, what the network")
	fmt.Fprintln(w, "added (negative: probes held at the destination during the pause instead of lost); max delay: per migration, the")
	fmt.Fprintln(w, "slowest reply to a probe sent after the source stopped; lost after switch: among probes sent after the switch hook returned; TCP")
	fmt.Fprintln(w, "survived: migrations after which a session opened before them still echoed (failed migrations count as not).")
}

// msText formats milliseconds rounded to whole ones, without "-0".
func msText(v float64) string {
	v = math.Round(v)
	if v == 0 {
		v = 0 // drops the sign of -0
	}
	return fmt.Sprintf("%.0f ms", v)
}
