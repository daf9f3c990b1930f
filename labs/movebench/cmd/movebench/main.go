// Command movebench runs the move benchmark: real QEMU live migrations of
// a small guest between two hypervisors, N per strategy, alternating
// strategies, with FRR leaves and with BIRD leaves, a 1 kHz probe and a TCP
// session around each; it prints one table and saves every migration's
// record in the run directory. It needs root (network namespaces, FRR,
// BIRD, QEMU); the default 100 migrations take about 14 minutes.
//
//	sudo go run ./labs/movebench/cmd/movebench            # 10 per strategy
//	sudo go run ./labs/movebench/cmd/movebench -n 3 -leaves bird -strategies switchover,evpn
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/roamd/roamd/labs/movebench"
	"github.com/roamd/roamd/labs/nslab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "movebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("movebench", flag.ContinueOnError)
	var (
		o          movebench.Options
		strategies = fs.String("strategies", strings.Join(movebench.DefaultStrategies, ","), "strategies to compare, in order (switchover, rarp, l2, diy, evpn, byhand)")
		leaves     = fs.String("leaves", "frr,bird", "kinds of leaves, in order")
		roamd      = fs.String("roamd", "", "prebuilt roamd binary (default: build ./cmd/roamd)")
		roamctl    = fs.String("roamctl", "", "prebuilt roamctl binary (default: build ./cmd/roamctl)")
		src        = fs.String("src", ".", "roamd source tree (to build roamd, roamctl and the guest's agent)")
		verbose    = fs.Bool("v", false, "log the labs' progress")
	)
	fs.IntVar(&o.N, "n", 10, "migrations per strategy and kind of leaves")
	fs.DurationVar(&o.Interval, "interval", time.Millisecond, "probe interval")
	fs.DurationVar(&o.Tail, "tail", time.Second, "probing after replies flow again, to count late losses")
	fs.BoolVar(&o.NoGuestAnnounce, "no-guest-announce", false, "guest_announce=off: only QEMU's RARPs announce the guest after a migration")
	fs.IntVar(&o.MemoryMiB, "memory", 0, "guest RAM in MiB (default: the QEMU lab's)")
	fs.StringVar(&o.RunDir, "run-dir", "", "directory for the records and the labs' logs (default: a new one under the temporary directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the benchmark needs root (network namespaces, FRR, BIRD, QEMU): run it with sudo")
	}
	for _, name := range strings.Split(*strategies, ",") {
		s, err := movebench.StrategyByName(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		o.Strategies = append(o.Strategies, s)
	}
	for _, l := range strings.Split(*leaves, ",") {
		switch lv := movebench.Leaves(strings.TrimSpace(l)); lv {
		case movebench.LeavesFRR, movebench.LeavesBIRD:
			o.Leaves = append(o.Leaves, lv)
		default:
			return fmt.Errorf("unknown leaves %q (frr or bird)", l)
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	o.Build.Logger = o.Logger
	o.Out = out

	root, err := nslab.FindModuleRoot(*src)
	if err != nil {
		return fmt.Errorf("%w: run movebench from the repository or pass -src", err)
	}
	o.Build.SourceDir = root
	if o.RunDir == "" {
		if o.RunDir, err = os.MkdirTemp("", "movebench-"+time.Now().Format("20060102-150405")+"-"); err != nil {
			return err
		}
	}
	o.Binaries = nslab.Binaries{Roamd: *roamd, Roamctl: *roamctl}
	if *roamd == "" || *roamctl == "" {
		fmt.Fprintln(out, "building roamd and roamctl...")
		bins, err := nslab.Build(ctx, root, filepath.Join(o.RunDir, "bin"))
		if err != nil {
			return err
		}
		o.Binaries = bins
	}

	fmt.Fprintf(out, "move benchmark: %d migrations per strategy, leaves %s, records in %s\n", o.N, *leaves, o.RunDir)
	start := time.Now()
	recs, err := movebench.Run(ctx, o)
	rows := movebench.Summarise(recs, o.Strategies, o.Leaves, o.Interval)
	var table strings.Builder
	movebench.PrintTable(&table, rows, o.Interval)
	fmt.Fprintf(out, "\n%s", table.String())
	fmt.Fprintf(out, "\n%d migrations in %s; records: %s, %s\n", len(recs), time.Since(start).Round(time.Second),
		filepath.Join(o.RunDir, movebench.RecordsCSV), filepath.Join(o.RunDir, movebench.RecordsJSON))
	if werr := os.WriteFile(filepath.Join(o.RunDir, "table.txt"), []byte(table.String()), 0o644); werr != nil {
		err = errors.Join(err, werr)
	}
	return err
}
