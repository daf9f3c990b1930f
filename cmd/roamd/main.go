// Command roamd is the VM mobility daemon: one runs beside every hypervisor,
// detects VMs arriving and leaving, serves the anycast gateway and routes
// each VM's /32 and /128 from wherever it runs.
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/roamd/roamd/daemon"
	"github.com/roamd/roamd/daemon/config"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "roamd:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	v := viper.New()
	root := &cobra.Command{
		Use:           "roamd --config FILE",
		Short:         "Layer-3 mobility for virtual machines: the network follows the VM by routing",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(v.GetString("config"))
		},
	}
	root.Flags().String("config", "/etc/roamd/roamd.yaml", "configuration file (env ROAMD_CONFIG)")
	_ = v.BindPFlag("config", root.Flags().Lookup("config"))
	_ = v.BindEnv("config", "ROAMD_CONFIG")

	root.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the configuration file and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := config.Load(v.GetString("config")); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	})
	return root
}

func run(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d, err := daemon.Build(cfg, log, reg, version)
	if err != nil {
		return err
	}
	if cfg.Metrics.Listen != "" {
		d.AddTask(func(ctx context.Context) error { return serveMetrics(ctx, cfg.Metrics.Listen, reg, log) })
	}
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func newLogger(c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
