package twosite

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
)

var dualStackMoves = flag.Int("dualstack.moves", 20, "moves of BenchmarkDualStackMoveLoss (alternating hv1→hv2, hv2→hv1)")

// BenchmarkDualStackMoveLoss measures the probes lost per RARP-only live
// move over IPv4 and IPv6 side by side: one lab, the same VM, two 1 kHz
// probes from the client (one per family) running at once. It ignores b.N
// and makes -dualstack.moves moves (default 20: ten each way), then prints
// each move and the median and maximum per family and direction:
//
//	go test ./labs/two-site/ -run '^$' -bench DualStackMoveLoss -benchtime 1x -dualstack.moves 20
func BenchmarkDualStackMoveLoss(b *testing.B) {
	bins := labtest.Binaries(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	// No logger: the runner's progress would drown the report.
	lab := labtest.Up(b, ctx, nslab.Options{RoamdBin: bins.Roamd, RoamctlBin: bins.Roamctl}, 40, Up)
	hv, err := PlaceVM(ctx, lab)
	if err != nil {
		b.Fatal(err)
	}
	if err := placeVM6(ctx, lab, hv); err != nil {
		b.Fatal(err)
	}
	traffic, err := StartTraffic(ctx, lab, time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	defer traffic.Close()
	p6, err := startProbe6(ctx, lab, time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	defer p6.Stop(0)

	b.ResetTimer()
	var reports []*nslab.MoveReport
	for range *dualStackMoves {
		to := Other(hv)
		r, err := MoveVM(ctx, lab, traffic, nslab.Move{To: to, Kind: nslab.Live})
		if r != nil && r.Report != nil {
			reports = append(reports, r.Report)
		}
		if err != nil {
			b.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		err = waitVM6At(wctx, lab, to)
		if err == nil {
			err = p6.WaitReply(wctx, r.Report.Arrived)
		}
		wcancel()
		if err != nil {
			b.Fatalf("move %d to %s: %v", len(reports), to, err)
		}
		hv = to
	}
	// The last move's window ends a second after it settled.
	if err := nslab.Sleep(ctx, time.Second); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	rec4, rec6 := traffic.Close(), p6.Stop(time.Second)

	rows := dualStackRows(reports, rec4, rec6)
	printDualStack(os.Stdout, rows)
	all4, all6 := column(rows, "", false), column(rows, "", true)
	b.ReportMetric(median(all4), "lost4-median/move")
	b.ReportMetric(float64(slices.Max(all4)), "lost4-max/move")
	b.ReportMetric(median(all6), "lost6-median/move")
	b.ReportMetric(float64(slices.Max(all6)), "lost6-max/move")
}

// dualStackRow is one move as both probes saw it.
type dualStackRow struct {
	from, to string
	v4, v6   probe.Stats
}

func dualStackRows(reports []*nslab.MoveReport, rec4, rec6 *probe.Result) []dualStackRow {
	var rows []dualStackRow
	for i, r := range reports {
		var end time.Time
		if i+1 < len(reports) {
			end = reports[i+1].Start
		}
		rows = append(rows, dualStackRow{from: r.From, to: r.To, v4: rec4.Window(r.Start, end), v6: rec6.Window(r.Start, end)})
	}
	return rows
}

// column returns the probes lost per move in one family, for the moves
// toward hypervisor to ("" for every move).
func column(rows []dualStackRow, to string, v6 bool) []int {
	var out []int
	for _, r := range rows {
		if to != "" && r.to != to {
			continue
		}
		if v6 {
			out = append(out, r.v6.Lost)
		} else {
			out = append(out, r.v4.Lost)
		}
	}
	return out
}

func median(xs []int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 1 {
		return float64(s[n/2])
	}
	return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
}

// gapMS formats a move's gap (first lost probe sent → first later reply).
func gapMS(s probe.Stats) string {
	switch {
	case s.Lost == 0:
		return "-"
	case s.Gap < 0:
		return "never"
	}
	return fmt.Sprintf("%.1f ms", float64(s.Gap)/1e6)
}

func printDualStack(w io.Writer, rows []dualStackRow) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "move\tfrom → to\tIPv4 lost\tIPv4 gap\tIPv6 lost\tIPv6 gap\t")
	for i, r := range rows {
		fmt.Fprintf(tw, "%d\t%s → %s\t%d\t%s\t%d\t%s\t\n", i+1, r.from, r.to, r.v4.Lost, gapMS(r.v4), r.v6.Lost, gapMS(r.v6))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nprobes lost per move (1 kHz probe, so also ms), median / max:")
	for _, to := range []string{HV2, HV1, ""} {
		what := "all moves"
		if to != "" {
			what = "moves to " + to
		}
		c4, c6 := column(rows, to, false), column(rows, to, true)
		if len(c4) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-12s (%2d)  IPv4 %6.1f / %4d   IPv6 %6.1f / %4d\n", what, len(c4), median(c4), slices.Max(c4), median(c6), slices.Max(c6))
	}
}
