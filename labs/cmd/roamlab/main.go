// Command roamlab runs containerlab topologies without Docker, as network
// namespaces with real FRR and roamd processes, and demonstrates roamd
// moving a VM between two sites.
//
//	roamlab up FILE     bring a topology up, print how to reach the nodes, wait for Ctrl-C
//	roamlab demo        the two-site lab: move a VM back and forth under probe traffic
//	roamlab clean       remove what crashed runs left behind
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand(os.Stdout).ExecuteContext(ctx)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "roamlab:", err)
		os.Exit(1)
	}
}

// runnerFlags are the flags every lab-running command shares.
type runnerFlags struct {
	prefix, runDir, roamd, roamctl, src string
	keep, verbose                       bool
}

func (f *runnerFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.prefix, "prefix", "", "namespace prefix of this run (default: rl + 4 random hex digits)")
	cmd.Flags().StringVar(&f.runDir, "run-dir", "", "directory for configs, sockets and logs (default: a new temporary directory)")
	cmd.Flags().BoolVar(&f.keep, "keep", false, "keep the run directory (logs) after tearing down")
	cmd.Flags().StringVar(&f.roamd, "roamd", "", "prebuilt roamd binary (default: build ./cmd/roamd)")
	cmd.Flags().StringVar(&f.roamctl, "roamctl", "", "prebuilt roamctl binary (default: build ./cmd/roamctl)")
	cmd.Flags().StringVar(&f.src, "src", ".", "roamd source tree to build from")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log the runner's steps")
}

// options builds the runner options, building roamd and roamctl into a
// temporary directory unless prebuilt binaries were given. The returned
// cleanup removes that directory.
func (f *runnerFlags) options(ctx context.Context, out io.Writer, needRoamd bool) (nslab.Options, func(), error) {
	o := nslab.Options{Prefix: f.prefix, RunDir: f.runDir, KeepRunDir: f.keep, RoamdBin: f.roamd, RoamctlBin: f.roamctl}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cleanup := func() {}
	if !needRoamd || (f.roamd != "" && f.roamctl != "") {
		return o, cleanup, nil
	}
	root, err := nslab.FindModuleRoot(f.src)
	if err != nil {
		return o, cleanup, fmt.Errorf("%w: run roamlab from the repository or pass --src, or give --roamd and --roamctl", err)
	}
	fmt.Fprintln(out, "building roamd and roamctl...")
	bins, cleanup, err := nslab.BuildTemp(ctx, root)
	if err != nil {
		return o, cleanup, err
	}
	if o.RoamdBin == "" {
		o.RoamdBin = bins.Roamd
	}
	if o.RoamctlBin == "" {
		o.RoamctlBin = bins.Roamctl
	}
	return o, cleanup, nil
}

func newRootCommand(out io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "roamlab",
		Short:         "Run containerlab topologies as network namespaces, and the roamd two-site demo",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(upCommand(out), demoCommand(out), cleanCommand(out))
	return root
}

func upCommand(out io.Writer) *cobra.Command {
	var f runnerFlags
	cmd := &cobra.Command{
		Use:   "up FILE",
		Short: "Bring a topology up, print how to reach its nodes and wait for Ctrl-C",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			topo, err := clab.Load(args[0])
			if err != nil {
				return err
			}
			for _, k := range topo.Ignored {
				fmt.Fprintf(os.Stderr, "roamlab: ignoring %s (not realised without containers)\n", k)
			}
			needRoamd := false
			for _, n := range topo.Nodes {
				if r, err := nslab.RoleOf(n); err == nil && r == nslab.RoleRoamd {
					needRoamd = true
				}
			}
			opts, cleanup, err := f.options(ctx, out, needRoamd)
			defer cleanup()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "bringing up %s...\n", topo.Name)
			lab, err := nslab.Up(ctx, topo, opts)
			if err != nil {
				return err
			}
			defer func() {
				fmt.Fprintln(out, "\ntearing down...")
				if err := lab.Close(); err != nil {
					fmt.Fprintln(os.Stderr, "roamlab: teardown:", err)
				}
			}()
			// VMs come up and announce themselves, as a booting guest does.
			for _, n := range lab.Nodes() {
				if n.Role == nslab.RoleVM {
					if err := lab.Announce(n.Name); err != nil {
						fmt.Fprintln(os.Stderr, "roamlab:", err)
					}
				}
			}
			printAccess(out, lab)
			fmt.Fprintln(out, "\nCtrl-C tears the lab down.")
			<-ctx.Done()
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// printAccess tells how to reach each node.
func printAccess(out io.Writer, lab *nslab.Lab) {
	fmt.Fprintf(out, "\nlab %s is up (prefix %s, logs in %s):\n", lab.Topology.Name, lab.Prefix, lab.RunDir)
	for _, n := range lab.Nodes() {
		fmt.Fprintf(out, "  %-8s %-6s ip netns exec %s bash\n", n.Name, n.Role, n.NS)
		switch n.Role {
		case nslab.RoleFRR:
			fmt.Fprintf(out, "  %-8s %-6s vtysh -N %s\n", "", "", n.NS)
		case nslab.RoleRoamd:
			fmt.Fprintf(out, "  %-8s %-6s roamctl --socket %s show hosts\n", "", "", n.APISocket)
		}
	}
	logs := lab.LogFiles()
	for _, n := range lab.Nodes() {
		for _, l := range logs[n.Name] {
			fmt.Fprintf(out, "  log of %s: %s\n", n.Name, l)
		}
	}
}

func demoCommand(out io.Writer) *cobra.Command {
	var (
		f           runnerFlags
		o           twosite.DemoOptions
		cold        bool
		pause, boot time.Duration
		resume      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Bring up the two-site lab, move the VM back and forth under 1 kHz probe traffic, report, tear down",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			opts, cleanup, err := f.options(ctx, out, true)
			defer cleanup()
			if err != nil {
				return err
			}
			o.Lab, o.Out, o.Pause, o.Boot = opts, out, pause, resume
			if cold {
				o.Kind = nslab.Cold
				o.Boot = boot
				if !cmd.Flags().Changed("pause") {
					o.Pause = 2 * time.Second
				}
			}
			return twosite.Demo(ctx, o)
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&o.Moves, "moves", 4, "number of moves (hv1→hv2, hv2→hv1, ...)")
	cmd.Flags().BoolVar(&cold, "cold", false, "cold moves (HA restart: the VM announces itself with one gratuitous ARP) instead of live migrations (RARP)")
	cmd.Flags().DurationVar(&pause, "pause", 0, "time the VM's port is away between hypervisors (cold default: 2s)")
	cmd.Flags().DurationVar(&boot, "boot", 500*time.Millisecond, "cold moves: time from the port coming up to the guest's gratuitous ARP")
	cmd.Flags().DurationVar(&resume, "resume-after", 0, "live moves: time from the port coming up to the VM resuming and sending its first RARP (a real tap is up long before the VM resumes)")
	cmd.Flags().BoolVar(&o.GARP, "garp", false, "live moves: also send a gratuitous ARP with each RARP, as a virtio guest does")
	cmd.Flags().DurationVar(&o.Interval, "interval", time.Millisecond, "probe interval")
	return cmd
}

func cleanCommand(out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "clean [PREFIX...]",
		Short: "Remove namespaces, FRR instances and processes left by crashed runs (all stale runs without arguments)",
		RunE: func(cmd *cobra.Command, prefixes []string) error {
			if len(prefixes) == 0 {
				stale, err := nslab.Stale()
				if err != nil {
					return err
				}
				if len(stale) == 0 {
					fmt.Fprintln(out, "nothing to clean")
					return nil
				}
				prefixes = stale
			}
			var errs []error
			for _, p := range prefixes {
				fmt.Fprintf(out, "cleaning %s-*\n", p)
				if err := nslab.Clean(p); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", p, err))
				}
			}
			return errors.Join(errs...)
		},
	}
}
