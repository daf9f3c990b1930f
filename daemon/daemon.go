// Package daemon wires roamd together: one goroutine owns the host table and
// feeds it frames, port events, BGP claims, hints and clock ticks; it carries
// out the actions the table returns against the kernel and the BGP speakers,
// reconciles both periodically, serves the local API and drains on shutdown.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/daemon/hosts"
	"golang.org/x/sync/errgroup"
)

// Options are a daemon's parts. Build makes the real ones; tests pass fakes.
type Options struct {
	Config   *config.Config
	Logger   *slog.Logger
	Kernel   Kernel
	Routers  map[string]Router // by tenant name
	Capture  Capture
	Notifier Notifier                 // optional
	Prober   Prober                   // optional
	Journal  Journal                  // optional
	Restored map[hosts.Key]Remembered // from the journal
	Metrics  *Metrics                 // optional
	Version  string
	// Tasks run beside the engine under the same errgroup (port watcher,
	// frame readers, notification listener, metrics server).
	Tasks []func(ctx context.Context) error
	// Ready is called once the daemon has restored its state and connected
	// its sessions (sd_notify READY=1).
	Ready func()
}

// Daemon is a running roamd.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	kernel  Kernel
	routers map[string]Router
	capture Capture
	notify  Notifier
	prober  Prober
	journal Journal
	metrics *Metrics
	version string
	tasks   []func(ctx context.Context) error
	ready   func()

	// current is the configuration for goroutines other than the engine
	// (which reads cfg); a reload swaps both.
	current atomic.Pointer[config.Config]

	table    *hosts.Table
	tenantOf map[uint16]string // tenant ID → name
	idOf     map[string]uint16
	started  time.Time
	restored map[hosts.Key]Remembered

	frames   chan frameIn
	ports    chan PortEvent
	claims   chan tenantClaims
	inputs   chan hosts.Input // hints, notifications, probe answers
	requests chan func()      // API reads and writes run on the engine goroutine

	// keepRoutes makes the exit a planned restart (no withdrawals).
	keepRoutes atomic.Bool
	// resync asks the port watcher for a full re-list (reconcile).
	resync func()
	// closers release what Build opened, after the drain.
	closers []func() error

	// syncing holds new frames until the fabric's initial tables are in;
	// held are the frames waiting.
	syncing bool
	held    []frameIn
	// checkingClaims: a periodic check of the learned claims is running.
	checkingClaims bool

	portIndex map[string]int
	portJobs  [portWorkers]chan func()
	// discovering says which ports capture ordinary traffic; arrivedAt
	// when a VM last arrived on a port (see needsDiscovery).
	discovering map[string]bool
	arrivedAt   map[string]time.Time
	solicitSeq  uint16
	moves       *moveLog
	acks        ackWaiters
	pending     map[hosts.Key]pendingOld
}

type tenantClaims struct {
	tenant string
	set    ClaimSet
}

// pendingOld tracks an arrival until the old site's path is withdrawn.
type pendingOld struct {
	origin    netip.Addr
	announced time.Time
	move      int // index in the move log
}

// New builds a daemon from its parts.
func New(o Options) (*Daemon, error) {
	if o.Config == nil || o.Kernel == nil || o.Capture == nil || len(o.Routers) == 0 {
		return nil, errors.New("daemon: config, kernel, capture and routers are required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	d := &Daemon{
		cfg: cfg, log: log, kernel: o.Kernel, routers: o.Routers, capture: o.Capture,
		notify: o.Notifier, prober: o.Prober, journal: o.Journal, metrics: o.Metrics,
		version: o.Version, tasks: o.Tasks, ready: o.Ready, restored: o.Restored,
		tenantOf:    map[uint16]string{},
		idOf:        map[string]uint16{},
		frames:      make(chan frameIn, 4096),
		ports:       make(chan PortEvent, 1024),
		claims:      make(chan tenantClaims, 4096),
		inputs:      make(chan hosts.Input, 256),
		requests:    make(chan func(), 64),
		portIndex:   map[string]int{},
		discovering: map[string]bool{},
		arrivedAt:   map[string]time.Time{},
		moves:       newMoveLog(512),
		pending:     map[hosts.Key]pendingOld{},
	}
	d.current.Store(cfg)
	for i := range d.portJobs {
		d.portJobs[i] = make(chan func(), 4096)
	}
	d.syncing = cfg.Timers.StartupHold > 0
	if d.metrics == nil {
		d.metrics = NewMetrics(nil)
	}
	pol := hosts.Policy{
		Self:         cfg.RouterID,
		Hold:         cfg.Forwarding.Hold,
		StagedExpiry: cfg.Timers.StagedExpiry,
		FreezeMoves:  cfg.Safety.FreezeMoves,
		FreezeWindow: cfg.Safety.FreezeWindow,
	}
	for _, t := range cfg.Tenants {
		if o.Routers[t.Name] == nil {
			return nil, fmt.Errorf("daemon: no BGP speaker for tenant %q", t.Name)
		}
		d.tenantOf[t.ID] = t.Name
		d.idOf[t.Name] = t.ID
		pol.Tenants = append(pol.Tenants, hosts.TenantPolicy{Name: t.Name, Prefixes: t.Prefixes, Gateways: t.Gateways})
	}
	d.table = hosts.New(pol)
	for _, h := range cfg.Hosts {
		d.table.Bind(h.Tenant, []byte(h.MAC), h.Addresses, h.Pinned)
	}
	return d, nil
}

// Run runs the daemon until ctx is cancelled, then drains: every path is
// withdrawn within the configured drain time.
func (d *Daemon) Run(ctx context.Context) error {
	d.started = time.Now()
	if err := d.kernel.Setup(); err != nil {
		return fmt.Errorf("setting up the kernel: %w", err)
	}
	if err := d.restore(); err != nil {
		return fmt.Errorf("restoring state from the kernel: %w", err)
	}
	// The socket listens before readiness is reported: a caller told roamd
	// is ready can talk to it.
	apiLn, err := api.Listen(d.cfg.API.Socket)
	if err != nil {
		return err
	}
	serving := false
	defer func() {
		if !serving { // an error before the API served: do not leave the socket
			apiLn.Close()
		}
	}()
	for name, r := range d.routers {
		if err := r.Connect(ctx); err != nil {
			return fmt.Errorf("tenant %s: starting BGP sessions: %w", name, err)
		}
		if err := r.Ready(); err != nil {
			return fmt.Errorf("tenant %s: ending BGP restart: %w", name, err)
		}
	}

	work, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(work)
	for name, r := range d.routers {
		g.Go(func() error { return d.forwardClaims(gctx, name, r) })
	}
	for _, task := range d.tasks {
		g.Go(func() error { return task(gctx) })
	}
	serving = true
	g.Go(func() error { return api.Serve(gctx, apiLn, d, d.log) })
	g.Go(func() error { return d.loop(gctx) })
	for _, jobs := range d.portJobs {
		g.Go(func() error { d.runPortWorker(gctx, jobs); return nil })
	}
	g.Go(func() error { d.waitStartupSync(gctx); return nil })
	if d.ready != nil {
		d.ready()
	}
	// The engine owns d.cfg now (a reload replaces it): read the copy.
	cfg := d.current.Load()
	d.log.Info("roamd running", "routerID", cfg.RouterID, "asn", cfg.ASN, "tenants", len(cfg.Tenants))

	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	drainCtx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timers.Drain)
	defer dcancel()
	err = errors.Join(err, d.drain(drainCtx))
	for _, c := range d.closers {
		_ = c()
	}
	return err
}

// drain withdraws every path and closes the sessions. Kernel routes stay:
// VMs keep local connectivity, and a restarted roamd finds its state there.
// After KeepRoutesOnExit it only closes the sessions, as a crash would:
// peers keep the routes (graceful restart) for the next roamd to take over.
func (d *Daemon) drain(ctx context.Context) error {
	start := time.Now()
	var errs []error
	if d.keepRoutes.Load() {
		for name, r := range d.routers {
			if err := r.Detach(ctx); err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: detaching BGP: %w", name, err))
			}
		}
		d.log.Info("exited keeping routes: peers hold them for the graceful restart time", "took", time.Since(start).Round(time.Millisecond))
		return errors.Join(errs...)
	}
	for name, r := range d.routers {
		for _, p := range r.Announced() {
			if err := r.Withdraw(p.Prefix); err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: withdrawing %s: %w", name, p.Prefix, err))
			}
		}
		if err := r.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: stopping BGP: %w", name, err))
		}
	}
	d.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// forwardClaims moves one tenant's claim sets onto the engine's channel.
func (d *Daemon) forwardClaims(ctx context.Context, tenant string, r Router) error {
	ch := r.Claims()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case set, ok := <-ch:
			if !ok {
				return nil
			}
			select {
			case d.claims <- tenantClaims{tenant: tenant, set: set}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// do runs fn on the engine goroutine and waits for it.
func (d *Daemon) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case d.requests <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AddTask adds a task to run beside the engine (before Run).
func (d *Daemon) AddTask(task func(ctx context.Context) error) { d.tasks = append(d.tasks, task) }

// OnReady sets what to call once the daemon has restored its state and
// connected its sessions (before Run).
func (d *Daemon) OnReady(fn func()) { d.ready = fn }

// KeepRoutesOnExit makes the coming shutdown a planned restart: BGP sessions
// close without withdrawing, so peers keep roamd's routes (graceful restart)
// until the next roamd re-announces them. For upgrades.
func (d *Daemon) KeepRoutesOnExit() { d.keepRoutes.Store(true) }
