package daemon

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/roamd/roamd/daemon/hosts"
)

// restore rebuilds the table from the routes roamd left in the kernel, before
// anything is programmed or announced: a restarted roamd re-announces what
// runs here instead of flapping it.
func (d *Daemon) restore() error {
	routes, err := d.kernel.Routes()
	if err != nil {
		return err
	}
	now := time.Now()
	for _, r := range routes {
		if _, ok := d.routers[r.Tenant]; !ok {
			continue // a tenant removed from the config: Sync prunes it
		}
		key := hosts.Key{Tenant: r.Tenant, Addr: r.Addr}
		// Without a journal entry the sequence restarts at 1: a competing
		// claim, if any, then wins, which is right for a host whose
		// history is unknown.
		e, ok := d.restored[key]
		if !ok {
			e.Seq = 1
		}
		d.apply(hosts.Restored{Time: now, Key: key, Port: r.Port, MAC: e.MAC, Seq: e.Seq, ForwardTo: r.ForwardTo}, now)
	}
	// Hosts remembered but no longer here: their highest sequence still
	// counts, so a later claim outbids it.
	here := map[hosts.Key]bool{}
	for _, r := range routes {
		here[hosts.Key{Tenant: r.Tenant, Addr: r.Addr}] = true
	}
	for k, e := range d.restored {
		if !here[k] {
			d.table.SeenSeq(k, e.Seq)
		}
	}
	if len(routes) > 0 {
		d.log.Info("restored hosts from the kernel", "routes", len(routes))
	}
	return nil
}

// desiredRoutes is what the kernel should hold according to hs, the table's
// hosts.
func desiredRoutes(hs []hosts.Host) []KernelRoute {
	var want []KernelRoute
	for _, h := range hs {
		switch {
		case h.State == hosts.Announced || h.State == hosts.Local:
			want = append(want, KernelRoute{Tenant: h.Tenant, Addr: h.Addr, Port: h.Port})
		case h.State == hosts.Yielded && h.ForwardTo.IsValid():
			want = append(want, KernelRoute{Tenant: h.Tenant, Addr: h.Addr, ForwardTo: h.ForwardTo})
		}
	}
	return want
}

// claimCheckChunk is how many learned claim sets the engine compares in
// one go during the periodic check: ~2 ms of its time, so an arrival waits
// no longer than that behind the check.
const claimCheckChunk = 2048

// reconcile repairs whatever lost events left behind: the kernel's routes
// and the paths announced (here, on the engine: they are this site's
// hosts, a few thousand at most), and the claims learned from the fabric
// (checkClaims, on its own goroutine: 100,000 and more).
func (d *Daemon) reconcile(ctx context.Context) {
	start := time.Now()
	hs := d.table.Hosts() // one copy of this site's hosts serves every comparison
	if err := d.kernel.Sync(desiredRoutes(hs)); err != nil {
		d.log.Warn("reconcile: kernel", "err", err)
	}
	for tenant, r := range d.routers {
		d.reconcilePaths(tenant, r, hs)
	}
	if d.resync != nil {
		d.resync()
	}
	if d.checkingClaims {
		return // the previous check is still running
	}
	d.checkingClaims = true
	engine := time.Since(start)
	go func() {
		for tenant, r := range d.routers {
			d.checkClaims(ctx, tenant, r)
		}
		_ = d.do(ctx, func() { d.checkingClaims = false })
		took := time.Since(start)
		d.metrics.reconcile.Observe(took.Seconds())
		d.log.Debug("reconciled", "took", took, "kernelAndPaths", engine)
	}()
}

// checkClaims compares the engine's learned claims with the speaker's
// without holding the engine for long: the snapshot is taken and indexed
// here, compared on the engine a chunk at a time, and what differs is
// redelivered by the speaker with its latest state (the snapshot may be
// older than a set the engine took meanwhile, so it is never applied).
func (d *Daemon) checkClaims(ctx context.Context, tenant string, r Router) {
	sets, err := r.AllClaims()
	if err != nil {
		d.log.Warn("reconcile: listing claims", "tenant", tenant, "err", err)
		return
	}
	var differ []netip.Prefix
	claimed, engineClaimed := 0, 0
	for chunk := range slices.Chunk(sets, claimCheckChunk) {
		err := d.do(ctx, func() {
			for _, s := range chunk {
				if d.claimsDiffer(tenant, s) {
					differ = append(differ, s.Prefix)
				}
			}
		})
		if err != nil {
			return
		}
	}
	if err := d.do(ctx, func() { engineClaimed = d.table.RemoteKeyCount(tenant) }); err != nil {
		return
	}
	for _, s := range sets {
		if len(s.Claims) > 0 {
			claimed++
		}
	}
	// Hosts the engine has claims for and the speaker has none. When every
	// set matched and the counts agree there are none, and the engine's
	// 100,000 keys need not be listed.
	if len(differ) > 0 || engineClaimed != claimed {
		var keys []hosts.Key
		if err := d.do(ctx, func() { keys = d.table.RemoteKeys(tenant) }); err != nil {
			return
		}
		for _, k := range unlisted(keys, sets) {
			differ = append(differ, k.Prefix())
		}
	}
	if len(differ) == 0 {
		return
	}
	// A set that changed while the check ran differs too: redelivering it
	// is harmless, and counted all the same.
	d.metrics.reconcileFixes.WithLabelValues("claims").Add(float64(len(differ)))
	d.log.Warn("reconcile: learned claims differ from the speaker's, redelivering", "tenant", tenant, "prefixes", len(differ),
		"first", differ[0])
	r.Redeliver(differ)
}

func (d *Daemon) reconcilePaths(tenant string, r Router, hs []hosts.Host) {
	want := map[netip.Prefix]Path{}
	for _, h := range hs {
		if h.Tenant == tenant && (h.State == hosts.Announced || (h.State == hosts.Yielded && h.PathKept)) {
			want[h.Key.Prefix()] = Path{Prefix: h.Key.Prefix(), Seq: h.Seq, Sticky: h.Pinned, MAC: h.MAC}
		}
	}
	have := map[netip.Prefix]Path{}
	for _, p := range r.Announced() {
		have[p.Prefix] = p
	}
	for pfx, p := range want {
		if h, ok := have[pfx]; ok && h.Seq == p.Seq && h.Sticky == p.Sticky && bytes.Equal(h.MAC, p.MAC) {
			continue
		}
		d.metrics.reconcileFixes.WithLabelValues("announce").Inc()
		d.log.Warn("reconcile: path missing or wrong, announcing", "tenant", tenant, "prefix", pfx)
		if err := r.Announce(p); err != nil {
			d.log.Error("reconcile: announcing", "prefix", pfx, "err", err)
		}
	}
	for pfx := range have {
		if _, ok := want[pfx]; ok {
			continue
		}
		d.metrics.reconcileFixes.WithLabelValues("withdraw").Inc()
		d.log.Warn("reconcile: stale path, withdrawing", "tenant", tenant, "prefix", pfx)
		if err := r.Withdraw(pfx); err != nil {
			d.log.Error("reconcile: withdrawing", "prefix", pfx, "err", err)
		}
	}
}

func (d *Daemon) reconcileClaims(tenant string, r Router) {
	sets, err := r.AllClaims()
	if err != nil {
		d.log.Warn("reconcile: listing claims", "tenant", tenant, "err", err)
		return
	}
	now := time.Now()
	for _, s := range sets {
		if d.claimsDiffer(tenant, s) {
			d.metrics.reconcileFixes.WithLabelValues("claims").Inc()
			d.apply(hosts.RemoteClaims{Time: now, Key: hosts.Key{Tenant: tenant, Addr: s.Prefix.Addr()}, Claims: s.Claims}, now)
		}
	}
	for _, key := range unlisted(d.table.RemoteKeys(tenant), sets) {
		d.metrics.reconcileFixes.WithLabelValues("claims").Inc()
		d.apply(hosts.RemoteClaims{Time: now, Key: key}, now)
	}
}

// claimsDiffer reports whether the table holds other claims on s.Prefix
// than s. Engine only.
func (d *Daemon) claimsDiffer(tenant string, s ClaimSet) bool {
	return !d.table.RemoteClaimsEqual(hosts.Key{Tenant: tenant, Addr: s.Prefix.Addr()}, s.Claims)
}

// unlisted returns the keys whose address no set lists: hosts the table
// has claims for and the speaker has none.
func unlisted(keys []hosts.Key, sets []ClaimSet) []hosts.Key {
	listed := make(map[netip.Addr]struct{}, len(sets))
	for _, s := range sets {
		listed[s.Prefix.Addr()] = struct{}{}
	}
	var out []hosts.Key
	for _, k := range keys {
		if _, ok := listed[k.Addr]; !ok {
			out = append(out, k)
		}
	}
	return out
}

func (d *Daemon) updateGauges() {
	counts := d.table.Counts()
	for _, s := range []hosts.State{hosts.Staged, hosts.Local, hosts.Announced, hosts.Yielded, hosts.Gone} {
		d.metrics.hosts.WithLabelValues(s.String()).Set(float64(counts[s]))
	}
	for tenant, r := range d.routers {
		for _, p := range r.Peers() {
			v := 0.0
			if p.State == "established" {
				v = 1
			}
			d.metrics.peers.WithLabelValues(tenant, p.Address).Set(v)
		}
	}
}
