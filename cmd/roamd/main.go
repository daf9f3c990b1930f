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
	root.PersistentFlags().String("config", "/etc/roamd/roamd.yaml", "configuration file (env ROAMD_CONFIG)")
	_ = v.BindPFlag("config", root.PersistentFlags().Lookup("config"))
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
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, level)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d, err := daemon.Build(cfg, log, reg, version)
	if err != nil {
		return err
	}
	if cfg.Metrics.Listen != "" {
		d.AddTask(func(ctx context.Context) error {
			return serveMetrics(ctx, cfg.Metrics.Listen, cfg.Metrics.Pprof, reg, log)
		})
	}
	d.AddTask(func(ctx context.Context) error { reloadOnHUP(ctx, path, d, level, log); return nil })
	d.OnReady(func() {
		sdNotify("READY=1\nSTATUS=routing")
		go watchdog(ctx, func(c context.Context) error { _, err := d.Status(c); return err })
	})
	// SIGUSR2: exit for a restart (an upgrade) without withdrawing: peers
	// keep the routes under graceful restart until the new roamd takes over.
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	go func() {
		select {
		case <-usr2:
			log.Info("SIGUSR2: exiting for a restart, keeping routes at the peers")
			d.KeepRoutesOnExit()
			stop()
		case <-ctx.Done():
		}
	}()
	go func() {
		<-ctx.Done()
		sdNotify("STOPPING=1\nSTATUS=stopping")
	}()
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// reloadOnHUP re-reads the configuration on SIGHUP and applies what can be
// applied without a restart (see daemon.Reload). A bad file changes nothing.
func reloadOnHUP(ctx context.Context, path string, d *daemon.Daemon, level *slog.LevelVar, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		sdNotify("RELOADING=1")
		next, err := config.Load(path)
		if err != nil {
			log.Error("reload: configuration rejected, nothing changed", "err", err)
			sdNotify("READY=1")
			continue
		}
		level.Set(parseLevel(next.Log.Level))
		notes, err := d.Reload(ctx, next)
		if err != nil {
			log.Error("reload failed", "err", err, "notes", notes)
		}
		sdNotify("READY=1")
	}
}

func newLogger(c config.Log, level *slog.LevelVar) *slog.Logger {
	level.Set(parseLevel(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l
}
