package daemon

import (
	"context"
	"hash/fnv"
	"log/slog"
	"net"
	"time"

	"github.com/roamd/roamd/daemon/hosts"
	"github.com/roamd/roamd/detect/frames"
)

// tickEvery is the resolution of hold timers and staged-host expiry.
const tickEvery = 100 * time.Millisecond

// gaugeEvery is how often the hosts-by-state and peer gauges are refreshed.
const gaugeEvery = time.Second

// loop is the engine: the only goroutine that touches the host table.
func (d *Daemon) loop(ctx context.Context) error {
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	reconcile := time.NewTicker(d.cfg.Timers.Reconcile)
	defer reconcile.Stop()
	gauges := time.NewTicker(gaugeEvery)
	defer gauges.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case f := <-d.frames:
			if d.syncing {
				d.hold(f)
				continue
			}
			d.apply(f.frame, f.read)
		case ev := <-d.ports:
			d.portEvent(ev)
		case c := <-d.claims:
			d.claimSet(c)
		case in := <-d.inputs:
			d.apply(in, time.Now())
		case fn := <-d.requests:
			fn()
		case now := <-tick.C:
			d.apply(hosts.Tick{Time: now}, now)
		case <-reconcile.C:
			d.reconcile(ctx)
		case <-gauges.C:
			d.updateGauges()
			d.expireDiscovery()
		}
	}
}

func (d *Daemon) portEvent(ev PortEvent) {
	now := time.Now()
	if !ev.Added {
		if _, known := d.portIndex[ev.Name]; !known {
			return
		}
		delete(d.portIndex, ev.Name)
		delete(d.discovering, ev.Name)
		delete(d.arrivedAt, ev.Name)
		d.capture.Unwatch(ev.Name)
		d.apply(hosts.PortDown{Time: now, Port: ev.Name}, now)
		return
	}
	t := d.cfg.TenantForPort(ev.Name)
	if t == nil {
		return
	}
	if idx, known := d.portIndex[ev.Name]; known && idx == ev.Index {
		return
	}
	d.portIndex[ev.Name] = ev.Index
	d.apply(hosts.PortUp{Time: now, Port: ev.Name, Tenant: t.Name}, now)
}

func (d *Daemon) claimSet(c tenantClaims) {
	now := time.Now()
	key := hosts.Key{Tenant: c.tenant, Addr: c.set.Prefix.Addr()}
	d.apply(hosts.RemoteClaims{Time: now, Key: key, Claims: c.set.Claims}, now)
	d.checkOldWithdrawn(key, c.set.Claims, now)
}

// apply feeds one input to the table and carries out the actions. detected
// is when the triggering event was seen, for the move timings.
func (d *Daemon) apply(in hosts.Input, detected time.Time) {
	acts := d.table.Apply(in)
	if len(acts) > 0 {
		d.execute(acts, detected)
	}
}

// execute carries out actions in order. When programming a host's route
// fails, the rest of that host's actions are skipped (never announce what
// the kernel cannot deliver) and the table is told, so it retries.
func (d *Daemon) execute(acts []hosts.Action, detected time.Time) {
	var solicit []string // ports to ask for IPv6 addresses, once discovery is on
	defer func() {
		d.updateDiscovery(acts)
		for _, port := range solicit {
			d.solicitIPv6(port)
		}
	}()
	var failed map[hosts.Key]bool
	var announced map[string]bool // ports whose gateway was advertised
	var routeAt, announceAt map[hosts.Key]time.Time
	skip := func(k hosts.Key) bool { return failed[k] }
	fail := func(k hosts.Key, a hosts.Action, err error) {
		if failed == nil {
			failed = map[hosts.Key]bool{}
		}
		failed[k] = true
		d.log.Error("action failed", "host", k.String(), "action", actionName(a), "err", err)
		d.metrics.actionErrors.WithLabelValues(actionName(a)).Inc()
		d.table.Apply(hosts.Failed{Time: time.Now(), Action: a, Err: err})
	}
	mark := func(m *map[hosts.Key]time.Time, k hosts.Key) {
		if *m == nil {
			*m = map[hosts.Key]time.Time{}
		}
		(*m)[k] = time.Now()
	}

	for _, a := range acts {
		switch a := a.(type) {
		case hosts.PreparePort:
			// Capture first: a VM may announce itself the moment its port
			// appears. Preparing the port (sysctls, addresses, rules: a
			// millisecond or more) runs off the engine, so a hundred ports
			// appearing at once do not stall every claim.
			if err := d.capture.Watch(a.Port, d.portIndex[a.Port]); err != nil {
				d.log.Error("capturing on port", "port", a.Port, "err", err)
			}
			d.onPortWorker(a.Port, func() {
				if err := d.kernel.PreparePort(a.Port, a.Tenant); err != nil {
					d.log.Error("preparing port", "port", a.Port, "err", err)
					d.metrics.actionErrors.WithLabelValues("prepare-port").Inc()
				}
			})
		case hosts.StagePort:
			d.onPortWorker(a.Port, func() { d.stagePort(a) }) // after the port is prepared
		case hosts.InstallRoute:
			if skip(a.Key) {
				continue
			}
			if err := d.kernel.InstallHost(a.Key.Tenant, a.Key.Addr, a.Port, a.MAC); err != nil {
				fail(a.Key, a, err)
				continue
			}
			mark(&routeAt, a.Key)
		case hosts.Announce:
			if skip(a.Key) {
				continue
			}
			if d.journal != nil {
				if err := d.journal.Record(a.Key.Tenant, a.Key.Addr, a.Seq, a.MAC); err != nil {
					d.log.Warn("recording sequence", "host", a.Key.String(), "err", err)
				}
			}
			err := d.routers[a.Key.Tenant].Announce(Path{Prefix: a.Key.Prefix(), Seq: a.Seq, Sticky: a.Sticky, MAC: a.MAC})
			if err != nil {
				fail(a.Key, a, err)
				continue
			}
			mark(&announceAt, a.Key)
		case hosts.Withdraw:
			if err := d.routers[a.Key.Tenant].Withdraw(a.Key.Prefix()); err != nil {
				d.log.Error("withdrawing", "host", a.Key.String(), "err", err)
				d.metrics.actionErrors.WithLabelValues("withdraw").Inc()
			}
		case hosts.RemoveRoute:
			if err := d.kernel.RemoveHost(a.Key.Tenant, a.Key.Addr); err != nil {
				d.log.Error("removing route", "host", a.Key.String(), "err", err)
				d.metrics.actionErrors.WithLabelValues("remove-route").Inc()
			}
		case hosts.ForwardRoute:
			if err := d.kernel.ForwardHost(a.Key.Tenant, a.Key.Addr, a.To); err != nil {
				d.log.Error("forwarding route", "host", a.Key.String(), "to", a.To, "err", err)
				d.metrics.actionErrors.WithLabelValues("forward-route").Inc()
				// Without the tunnel, at least do not deliver into a dead port.
				_ = d.kernel.RemoveHost(a.Key.Tenant, a.Key.Addr)
			}
		case hosts.NotifyOld:
			if d.notify != nil && !skip(a.Key) {
				c := hosts.Claim{Origin: d.cfg.RouterID, Seq: a.Seq, MAC: a.MAC}
				if err := d.notify.Notify(a.To, d.idOf[a.Key.Tenant], c, a.Key.Addr); err != nil {
					d.log.Warn("notifying old site", "host", a.Key.String(), "to", a.To, "err", err)
				}
			}
		case hosts.ProbeOwner:
			d.probe(a)
		case hosts.Refused:
			d.refused(a)
			if a.Reason == hosts.RefuseUnknownMAC && a.Port != "" {
				solicit = append(solicit, a.Port) // the VM may show itself by IPv6
			}
		case hosts.Moved:
			if skip(a.Key) {
				continue
			}
			d.moved(a, detected, routeAt[a.Key], announceAt[a.Key])
			if a.Away {
				d.movedAway(a)
			}
			if !a.Away && !announced[a.Move.Port] {
				if announced == nil {
					announced = map[string]bool{}
				}
				announced[a.Move.Port] = true
				d.announceGateway(a.Move.Port)
				d.arrivedAt[a.Move.Port] = time.Now()
				if _, r6 := d.routedFamilies(a.Move.Port); r6 && a.Key.Addr.Is4() {
					if _, v6 := d.table.RunningFamilies(a.Move.Port); !v6 {
						solicit = append(solicit, a.Move.Port)
					}
				}
			}
		case hosts.RepairNeighbours:
			d.repairNeighbours(a)
		case hosts.FrozenHost:
			d.metrics.frozen.Inc()
			d.log.Warn("host frozen: it moved too often (duplicate address or flapping VM)",
				"host", a.Key.String(), "moves", a.Moves, "window", d.cfg.Safety.FreezeWindow)
		}
	}
}

// movedAway records the winner's sequence of a host that left, and
// acknowledges the notification that moved it.
func (d *Daemon) movedAway(a hosts.Moved) {
	h, _ := d.table.Host(a.Key)
	if d.journal != nil {
		// A restarted roamd must outbid the winner even if its path is
		// gone by then.
		if err := d.journal.Record(a.Key.Tenant, a.Key.Addr, a.Move.Seq, h.MAC); err != nil {
			d.log.Warn("recording sequence", "host", a.Key.String(), "err", err)
		}
	}
	if a.Move.Source == hosts.SourceNotify && d.notify != nil {
		// The new site's `switch` waits for this: forwarding is on.
		if err := d.notify.Ack(a.Move.To, d.idOf[a.Key.Tenant], a.Move.Seq, a.Key.Addr, h.MAC); err != nil {
			d.log.Warn("acknowledging a move notification", "host", a.Key.String(), "to", a.Move.To, "err", err)
		}
	}
}

// stagePort readies a port to queue packets for a VM about to resume there:
// a neighbour entry (else packets wait in the ARP queue, ~250 at most, the
// oldest dropped) and one throwaway frame (QEMU drops the first frame
// written to a tap before the VM runs).
func (d *Daemon) stagePort(a hosts.StagePort) {
	if err := d.kernel.StageNeighbors(a.Port, a.MAC, a.Addrs); err != nil {
		d.log.Warn("staging neighbours", "port", a.Port, "err", err)
	}
	// A port worker runs this, not the engine: read the configuration as
	// published, not the engine's own.
	cfg := d.current.Load()
	for _, addr := range a.Addrs {
		if addr.Is4() {
			if frame := throwawayFrame(cfg, a.Port); frame != nil {
				if err := d.capture.Send(a.Port, frame); err != nil {
					d.log.Warn("sending throwaway frame", "port", a.Port, "err", err)
				}
			}
			break
		}
	}
	d.log.Info("port staged", "port", a.Port, "mac", a.MAC.String(), "addresses", a.Addrs)
}

func (d *Daemon) refused(a hosts.Refused) {
	d.metrics.refused.WithLabelValues(string(a.Reason)).Inc()
	lvl := slog.LevelWarn
	switch a.Reason {
	case hosts.RefuseUnknownMAC, hosts.RefuseUnknownPort:
		lvl = slog.LevelInfo
	case hosts.RefuseFamilyNotRouted:
		lvl = slog.LevelDebug // every NA of a dual-stack guest in an IPv4-only tenant
	}
	if !d.log.Enabled(context.Background(), lvl) {
		return // the strings below are not built for nothing
	}
	addr := ""
	if a.Key.Addr.IsValid() {
		addr = a.Key.Addr.String()
	}
	d.log.Log(context.Background(), lvl, "claim refused", "reason", string(a.Reason), "tenant", a.Key.Tenant, "address", addr,
		"port", a.Port, "mac", a.MAC.String())
}

func (d *Daemon) probe(a hosts.ProbeOwner) {
	if d.prober == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		alive := d.prober.Probe(ctx, a)
		d.log.Info("owner probed", "host", a.Key.String(), "owner", a.MAC.String(), "alive", alive)
		d.inputs <- hosts.OwnerProbed{Time: time.Now(), Key: a.Key, Alive: alive}
	}()
}

func actionName(a hosts.Action) string {
	switch a.(type) {
	case hosts.InstallRoute:
		return "install-route"
	case hosts.Announce:
		return "announce"
	case hosts.Withdraw:
		return "withdraw"
	case hosts.RemoveRoute:
		return "remove-route"
	case hosts.ForwardRoute:
		return "forward-route"
	}
	return "other"
}

// maxHeld bounds the frames kept while waiting for the fabric's tables.
const maxHeld = 8192

func (d *Daemon) hold(f frameIn) {
	if len(d.held) >= maxHeld {
		d.held = d.held[1:]
	}
	d.held = append(d.held, f)
}

// waitStartupSync waits until every speaker has its initial table, or the
// startup hold is over, then lets the held frames through: new claims made
// after that outbid the sequences and respect the bindings the fabric has.
func (d *Daemon) waitStartupSync(ctx context.Context) {
	if !d.syncing {
		return
	}
	start := time.Now()
	deadline := time.NewTimer(d.cfg.Timers.StartupHold)
	defer deadline.Stop()
	complete := true
wait:
	for _, r := range d.routers {
		select {
		case <-r.Synced():
		case <-deadline.C:
			complete = false
			break wait
		case <-ctx.Done():
			return
		}
	}
	_ = d.do(ctx, func() {
		for tenant, r := range d.routers {
			d.reconcileClaims(tenant, r)
		}
		held := d.held
		d.syncing, d.held = false, nil
		d.log.Info("fabric tables in: claiming", "complete", complete, "waited", time.Since(start).Round(time.Millisecond), "heldFrames", len(held))
		for _, f := range held {
			d.apply(f.frame, f.read)
		}
	})
}

// updateDiscovery turns discovery on for the ports the actions touched that
// need it (see needsDiscovery), and off for the others.
func (d *Daemon) updateDiscovery(acts []hosts.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case hosts.PreparePort:
			d.setDiscovery(a.Port)
		case hosts.InstallRoute:
			d.setDiscovery(a.Port)
		case hosts.RepairNeighbours:
			d.setDiscovery(a.Port)
		case hosts.Moved:
			d.setDiscovery(a.Move.Port)
		}
	}
}

// discoverAfterArrival is how long after a VM arrives on a port discovery
// stays on while a family its tenant routes has no address there yet: a
// dual-stack VM found by one family shows the other in its next packets.
const discoverAfterArrival = 10 * time.Second

// needsDiscovery: a port with no VM known, or one that had a VM arrive
// recently and still misses a family the tenant routes.
func (d *Daemon) needsDiscovery(port string) bool {
	v4, v6 := d.table.RunningFamilies(port)
	if !v4 && !v6 {
		return true
	}
	at, recent := d.arrivedAt[port]
	if !recent || time.Since(at) >= discoverAfterArrival {
		return false
	}
	r4, r6 := d.routedFamilies(port)
	return (r4 && !v4) || (r6 && !v6)
}

// routedFamilies reports which families the port's tenant has prefixes in.
func (d *Daemon) routedFamilies(port string) (v4, v6 bool) {
	if t := d.cfg.TenantForPort(port); t != nil {
		for _, p := range t.Prefixes {
			if p.Addr().Is4() {
				v4 = true
			} else {
				v6 = true
			}
		}
	}
	return v4, v6
}

func (d *Daemon) setDiscovery(port string) {
	if _, up := d.portIndex[port]; !up {
		return
	}
	on := d.needsDiscovery(port)
	if was, known := d.discovering[port]; known && was == on {
		return
	}
	if err := d.capture.SetDiscovery(port, on); err != nil {
		d.log.Debug("switching discovery", "port", port, "on", on, "err", err)
		return
	}
	d.discovering[port] = on
}

// expireDiscovery ends the discovery window of ports whose arrival is old.
func (d *Daemon) expireDiscovery() {
	for port, at := range d.arrivedAt {
		if time.Since(at) >= discoverAfterArrival {
			delete(d.arrivedAt, port)
			d.setDiscovery(port)
		}
	}
}

// solicitIPv6 asks the VMs on port to show their global IPv6 addresses:
// an echo request to all nodes from the tenant's global IPv6 gateway, which
// a guest answers from its global address (seen by discovery). Used when a
// VM arrived by another family, or announced a MAC roamd cannot bind.
func (d *Daemon) solicitIPv6(port string) {
	t := d.cfg.TenantForPort(port)
	if t == nil {
		return
	}
	if g := globalGateway6(t); g.IsValid() {
		d.solicitSeq++
		frame := frames.EchoToAllNodes(net.HardwareAddr(d.cfg.GatewayMAC), g, 0x726d, d.solicitSeq)
		if err := d.capture.Send(port, frame); err != nil {
			d.log.Debug("soliciting IPv6 addresses", "port", port, "err", err)
		}
	}
}

// portWorkers is how many goroutines prepare ports. A port's jobs always go
// to the same one, so they run in order.
const portWorkers = 4

// onPortWorker runs job on the worker of port.
func (d *Daemon) onPortWorker(port string, job func()) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(port))
	d.portJobs[h.Sum32()%portWorkers] <- job
}

// runPortWorker runs port jobs until ctx is done.
func (d *Daemon) runPortWorker(ctx context.Context, jobs <-chan func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-jobs:
			job()
		}
	}
}
