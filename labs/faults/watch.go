package faults

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// reinstallGap is how soon a kernel route deleted on a leaf must be back
// to count as zebra re-installing it (it deletes and adds IPv6 routes when
// a path's attributes change) rather than as a withdrawal.
const reinstallGap = 10 * time.Millisecond

// RouteWatch watches the leaves while roamd restarts: every change of the
// watched prefixes' kernel routes on each leaf (a netlink subscription in
// the leaf's namespace, so nothing is missed between samples), and the
// leaves' BGP tables, polled as fast as vtysh answers, for a path from the
// expected origin and its stale flag (graceful restart).
type RouteWatch struct {
	l      *Lab
	origin map[netip.Prefix]uint32 // watched prefix → AS that must keep a path
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	stopOnce sync.Once
	mu       sync.Mutex
	deleted  map[string]time.Time // leaf/prefix → when its kernel route went
	report   WatchReport
}

// WatchReport is what a RouteWatch saw.
type WatchReport struct {
	Duration time.Duration
	// Withdrawals are the watched routes that went from a leaf: a kernel
	// route deleted and not back within reinstallGap, or a BGP table
	// sample without a path from the expected origin.
	Withdrawals []string
	// Reinstalls counts kernel routes deleted and added again within
	// reinstallGap.
	Reinstalls int
	// Replaced lists kernel routes replaced in place (a new next hop, or
	// the same one written again).
	Replaced []string
	// RIBSamples counts BGP table samples per leaf and prefix; RIBStale
	// those in which the path was marked stale (the leaf was keeping it
	// for a restarting roamd).
	RIBSamples, RIBStale int
	// Errors are problems of the watch itself (a vtysh that failed).
	Errors []string
}

// WatchRoutes starts watching prefixes on both leaves; origin gives, per
// prefix, the AS (hypervisor) whose path must stay.
func (l *Lab) WatchRoutes(origin map[netip.Prefix]uint32) (*RouteWatch, error) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &RouteWatch{l: l, origin: origin, start: time.Now(), cancel: cancel, deleted: map[string]time.Time{}, done: make(chan struct{})}
	for _, leaf := range []string{twosite.Leaf1, twosite.Leaf2} {
		updates := make(chan netlink.RouteUpdate, 1024)
		err := l.Node(leaf).Do(func() error {
			return netlink.RouteSubscribeWithOptions(updates, w.done, netlink.RouteSubscribeOptions{
				ErrorCallback: func(err error) {
					select {
					case <-w.done: // the socket was closed by Stop
					default:
						w.fail(fmt.Sprintf("%s: route subscription: %v", leaf, err))
					}
				},
			})
		})
		if err != nil {
			w.Stop()
			return nil, fmt.Errorf("subscribing to %s's routes: %w", leaf, err)
		}
		w.wg.Go(func() { w.kernel(leaf, updates) })
		w.wg.Go(func() { w.poll(ctx, leaf) })
	}
	return w, nil
}

func (w *RouteWatch) fail(s string) {
	w.mu.Lock()
	w.report.Errors = append(w.report.Errors, s)
	w.mu.Unlock()
}

// kernel follows one leaf's route updates.
func (w *RouteWatch) kernel(leaf string, updates <-chan netlink.RouteUpdate) {
	for u := range updates {
		p, ok := nslab.RoutePrefix(u.Dst)
		if !ok {
			continue
		}
		if _, watched := w.origin[p]; !watched || u.Table != unix.RT_TABLE_MAIN {
			continue
		}
		key := leaf + " " + p.String()
		now := time.Now()
		w.mu.Lock()
		switch u.Type {
		case unix.RTM_DELROUTE:
			w.deleted[key] = now
		case unix.RTM_NEWROUTE:
			at, ok := w.deleted[key]
			if !ok {
				w.report.Replaced = append(w.report.Replaced, fmt.Sprintf("%s: kernel route replaced (via %s) at +%s", key, u.Gw, now.Sub(w.start).Round(time.Millisecond)))
			}
			if ok {
				delete(w.deleted, key)
				if gap := now.Sub(at); gap <= reinstallGap {
					w.report.Reinstalls++
				} else {
					w.report.Withdrawals = append(w.report.Withdrawals,
						fmt.Sprintf("%s: kernel route gone for %s at +%s", key, gap.Round(time.Millisecond), at.Sub(w.start).Round(time.Millisecond)))
				}
			}
		}
		w.mu.Unlock()
	}
}

// poll samples one leaf's BGP tables until the watch stops.
func (w *RouteWatch) poll(ctx context.Context, leaf string) {
	for ctx.Err() == nil {
		paths, err := w.l.LeafPaths(ctx, leaf)
		if err != nil {
			if ctx.Err() == nil {
				w.fail(fmt.Sprintf("%s: %v", leaf, err))
				time.Sleep(10 * time.Millisecond) // a failing vtysh must not spin
			}
			continue
		}
		at := time.Since(w.start).Round(time.Millisecond)
		w.mu.Lock()
		for p, as := range w.origin {
			w.report.RIBSamples++
			found := false
			for _, lp := range paths {
				if lp.Prefix == p && lp.OriginAS == as {
					found = true
					if lp.Stale {
						w.report.RIBStale++
					}
				}
			}
			if !found {
				w.report.Withdrawals = append(w.report.Withdrawals, fmt.Sprintf("%s %s: no path from AS %d in the BGP table at +%s", leaf, p, as, at))
			}
		}
		w.mu.Unlock()
	}
}

// Stop ends the watch and returns what it saw; it may be called again and
// returns the same report.
func (w *RouteWatch) Stop() WatchReport {
	w.stopOnce.Do(func() {
		w.cancel()
		close(w.done)
		w.wg.Wait()
		w.mu.Lock()
		defer w.mu.Unlock()
		for key, at := range w.deleted {
			w.report.Withdrawals = append(w.report.Withdrawals, fmt.Sprintf("%s: kernel route gone at +%s and not back", key, at.Sub(w.start).Round(time.Millisecond)))
		}
		slices.Sort(w.report.Withdrawals)
		w.report.Duration = time.Since(w.start)
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.report
}

func (r WatchReport) String() string {
	s := fmt.Sprintf("watched %s: %d withdrawals, %d kernel re-installs, %d replaced, %d BGP samples (%d stale)",
		r.Duration.Round(time.Millisecond), len(r.Withdrawals), r.Reinstalls, len(r.Replaced), r.RIBSamples, r.RIBStale)
	if len(r.Withdrawals) > 0 {
		s += ": " + strings.Join(r.Withdrawals, "; ")
	}
	if len(r.Replaced) > 0 {
		s += "; " + strings.Join(r.Replaced, "; ")
	}
	if len(r.Errors) > 0 {
		s += "; watch errors: " + strings.Join(r.Errors, "; ")
	}
	return s
}
