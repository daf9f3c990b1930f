// Command qemu-migrate live-migrates a real QEMU guest back and forth
// between the two hypervisors of the two-site fabric (FRR leaves, roamd on
// both hypervisors) under 1 kHz probe traffic and a TCP session, N times
// per strategy, alternating strategies, and prints what each cost:
//
//	sudo go run ./labs/qemu-migration/cmd/qemu-migrate -n 10
//
// The strategies are roamd's lossless switchover (`switchover`), roamd
// finding the guest by QEMU's RARP alone (`rarp-only`) and the ideal route
// switch by hand at pre-switchover (`by-hand`, the reference). See
// labs/qemu-migration/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/roamd/roamd/labs/nslab"
	qemumigration "github.com/roamd/roamd/labs/qemu-migration"
)

// strategies are the ones this command knows, by flag name.
var strategies = map[string]qemumigration.Strategy{
	"switchover": qemumigration.Switchover{},
	"rarp-only":  qemumigration.RARPOnly{},
	"by-hand":    qemumigration.ByHand{},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCommand().ExecuteContext(ctx)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "qemu-migrate:", err)
		os.Exit(1)
	}
}

type flags struct {
	n               int
	interval        time.Duration
	strategies      []string
	noGuestAnnounce bool
	memory          int
	src, runDir     string
	keep, verbose   bool
}

func newCommand() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:           "qemu-migrate",
		Short:         "Live-migrate a QEMU guest between two roamd hypervisors and print what each migration cost",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), f) },
	}
	cmd.Flags().IntVarP(&f.n, "n", "n", 10, "migrations per strategy")
	cmd.Flags().DurationVar(&f.interval, "interval", time.Millisecond, "probe interval")
	cmd.Flags().StringSliceVar(&f.strategies, "strategies", []string{"switchover", "rarp-only", "by-hand"}, "strategies to alternate: switchover, rarp-only, by-hand")
	cmd.Flags().BoolVar(&f.noGuestAnnounce, "no-guest-announce", false, "run the guest with guest_announce=off (only QEMU's RARPs announce it after a migration)")
	cmd.Flags().IntVar(&f.memory, "memory", 128, "guest RAM in MiB")
	cmd.Flags().StringVar(&f.src, "src", ".", "roamd source tree (roamd, roamctl and the guest agent are built from it)")
	cmd.Flags().StringVar(&f.runDir, "run-dir", "", "directory for configs, sockets and logs (default: a new temporary directory)")
	cmd.Flags().BoolVar(&f.keep, "keep", false, "keep the run directory after tearing down")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log every step")
	return cmd
}

func run(ctx context.Context, f flags) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, FRR, QEMU taps): run it with sudo")
	}
	var ss []qemumigration.Strategy
	for _, name := range f.strategies {
		s, ok := strategies[name]
		if !ok {
			return fmt.Errorf("unknown strategy %q (want switchover, rarp-only or by-hand)", name)
		}
		ss = append(ss, s)
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	root, err := nslab.FindModuleRoot(f.src)
	if err != nil {
		return fmt.Errorf("%w: run it from the repository or pass --src", err)
	}
	bins, remove, err := nslab.BuildTemp(ctx, root)
	defer remove()
	if err != nil {
		return err
	}
	o := qemumigration.Options{
		Lab:             nslab.Options{RoamdBin: bins.Roamd, RoamctlBin: bins.Roamctl, RunDir: f.runDir, KeepRunDir: f.keep},
		MemoryMiB:       f.memory,
		NoGuestAnnounce: f.noGuestAnnounce,
		Logger:          log,
	}
	o.Build.SourceDir = root
	lab, err := qemumigration.Up(ctx, o)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := lab.Close(); cerr != nil {
			fmt.Fprintln(os.Stderr, "qemu-migrate: tearing down:", cerr)
		}
	}()
	fmt.Printf("fabric %q up (namespaces %s-*, logs in %s), guest on %s; %d migrations per strategy: %s\n\n",
		lab.Fabric.Name, lab.Net.Prefix, lab.Net.RunDir, lab.At, f.n, strings.Join(f.strategies, ", "))
	ms, err := lab.Run(ctx, ss, f.n, f.interval)
	qemumigration.PrintTable(os.Stdout, ms, f.interval)
	fmt.Println()
	qemumigration.PrintMigrations(os.Stdout, ms)
	if err != nil {
		lab.DumpLogs(os.Stderr, 40)
		return err
	}
	return nil
}
