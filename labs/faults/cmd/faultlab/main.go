// Command faultlab runs the faults lab (labs/faults) without Docker.
//
//	faultlab up         bring the lab up with every VM placed, wait for Ctrl-C
//	faultlab campaign   run the full fault campaign and print the fault table
//
// Both build roamd and roamctl from the source tree first (run from the
// repository, as root).
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
	"strings"
	"syscall"
	"time"

	"github.com/roamd/roamd/labs/faults"
	"github.com/roamd/roamd/labs/nslab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "faultlab:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: faultlab up|campaign [flags]")
	}
	fs := flag.NewFlagSet("faultlab "+args[0], flag.ContinueOnError)
	src := fs.String("src", ".", "roamd source tree to build from")
	keep := fs.Bool("keep", false, "keep the run directory (logs) after tearing down")
	verbose := fs.Bool("v", false, "log the runner's steps")
	reps := fs.Int("reps", 5, "campaign: rounds (each fault once a round)")
	only := fs.String("faults", "", "campaign: comma-separated faults to inject (idle, source, destination, leaf, session, port; default all)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	root, err := nslab.FindModuleRoot(*src)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "building roamd and roamctl...")
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	bins, remove, err := nslab.BuildTemp(bctx, root)
	cancel()
	defer remove()
	if err != nil {
		return err
	}
	opts := nslab.Options{RoamdBin: bins.Roamd, RoamctlBin: bins.Roamctl, KeepRunDir: *keep, Logger: log}

	uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	lab, err := faults.Up(uctx, opts)
	cancel()
	if lab != nil {
		defer func() {
			if err := lab.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "faultlab: tearing down:", err)
			}
		}()
	}
	if err != nil {
		if lab != nil {
			lab.DumpLogs(os.Stderr, 40)
		}
		return err
	}
	switch args[0] {
	case "up":
		fmt.Fprintf(out, "lab up: prefix %s, run directory %s\n", lab.Prefix, lab.RunDir)
		for _, n := range lab.Nodes() {
			fmt.Fprintf(out, "  %-7s ip netns exec %s bash\n", n.Name, n.NS)
		}
		fmt.Fprintln(out, "Ctrl-C tears it down")
		<-ctx.Done()
		return nil
	case "campaign":
		list := faults.AllFaults
		if *only != "" {
			list = nil
			for name := range strings.SplitSeq(*only, ",") {
				f, ok := faults.FaultNames[name]
				if !ok {
					return fmt.Errorf("unknown fault %q", name)
				}
				list = append(list, f)
			}
		}
		c := &faults.Campaign{Lab: lab, Log: log, Progress: out}
		start := time.Now()
		res, err := c.Run(ctx, list, *reps)
		fmt.Fprintf(out, "\nfault table (%d rounds, %s):\n", *reps, time.Since(start).Round(time.Second))
		faults.PrintTable(out, list, res)
		if err != nil {
			lab.DumpLogs(os.Stderr, 60)
		}
		return err
	}
	return fmt.Errorf("unknown command %q (want up or campaign)", args[0])
}
