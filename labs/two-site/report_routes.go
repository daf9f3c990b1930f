package twosite

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/labs/nslab"
)

// ClientLeaf is the leaf the client hangs off.
const ClientLeaf = Leaf1

// RouteChange is a change of a leaf's kernel route to the VM, as zebra
// wrote it.
type RouteChange struct {
	Node string
	At   time.Time
	// Via is the new next hop; invalid when the route was deleted.
	Via netip.Addr
}

// RouteVia returns the next hop a leaf routes the VM through when it runs
// on hypervisor hv: hv itself under its own leaf, else hv's leaf.
func RouteVia(leaf, hv string) netip.Addr {
	if LeafOf[hv] == leaf {
		return Uplink[hv]
	}
	return InterLeaf[LeafOf[hv]]
}

// LeafRoutes records when the leaves' kernel routes to the VM change: the
// moment a leaf's data path switches, which BGP tables do not show.
type LeafRoutes struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	changes []RouteChange
	errs    []error
}

// WatchLeafRoutes subscribes to route changes in each leaf's namespace.
func WatchLeafRoutes(lab *nslab.Lab, leaves ...string) (*LeafRoutes, error) {
	w := &LeafRoutes{done: make(chan struct{})}
	for _, leaf := range leaves {
		n := lab.Node(leaf)
		if n == nil {
			w.Close()
			return nil, fmt.Errorf("no node %q", leaf)
		}
		ns := netns.NsHandle(n.Fd())
		updates := make(chan netlink.RouteUpdate, 64)
		err := netlink.RouteSubscribeWithOptions(updates, w.done, netlink.RouteSubscribeOptions{
			Namespace:         &ns,
			ReceiveBufferSize: 1 << 20,
			ErrorCallback: func(err error) {
				select {
				case <-w.done:
					return // Close ends the subscription with a read error
				default:
				}
				w.mu.Lock()
				w.errs = append(w.errs, fmt.Errorf("route updates of %s: %w", leaf, err))
				w.mu.Unlock()
			},
		})
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("subscribing to route changes in %s: %w", n.NS, err)
		}
		w.wg.Add(1)
		go w.record(leaf, updates)
	}
	return w, nil
}

func (w *LeafRoutes) record(leaf string, updates <-chan netlink.RouteUpdate) {
	defer w.wg.Done()
	for u := range updates {
		at := time.Now()
		if dst, ok := nslab.RoutePrefix(u.Dst); !ok || dst != VMRoute {
			continue
		}
		c := RouteChange{Node: leaf, At: at}
		if u.Type == unix.RTM_NEWROUTE {
			c.Via, _ = netip.AddrFromSlice(u.Gw)
			c.Via = c.Via.Unmap()
		}
		w.mu.Lock()
		w.changes = append(w.changes, c)
		w.mu.Unlock()
	}
}

// Close stops watching; the changes recorded stay readable.
func (w *LeafRoutes) Close() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
}

// Attach gives each move the route changes from its start to the next
// move's start, and returns the errors the subscriptions reported (lost
// updates make the moves' leaf timings unreliable).
func (w *LeafRoutes) Attach(results []*MoveResult) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for r, end := range moveWindows(results) {
		r.LeafRoutes = nil
		for _, c := range w.changes {
			if !c.At.Before(r.Report.Start) && (end.IsZero() || c.At.Before(end)) {
				r.LeafRoutes = append(r.LeafRoutes, c)
			}
		}
	}
	if len(w.errs) > 0 {
		return fmt.Errorf("%d route subscription errors, first: %w", len(w.errs), w.errs[0])
	}
	return nil
}

// pathSwitchedAt returns when every leaf on the probe's path to the VM on
// hv (the client's leaf, hv's leaf) routed it toward hv, each for the
// first time after the time given: the fabric has moved for the probe.
func pathSwitchedAt(changes []RouteChange, hv string, after time.Time) (time.Time, bool) {
	var last time.Time
	for _, leaf := range []string{ClientLeaf, LeafOf[hv]} {
		at, ok := switchedAt(changes, leaf, RouteVia(leaf, hv), after)
		if !ok {
			return time.Time{}, false
		}
		if at.After(last) {
			last = at
		}
	}
	return last, true
}

// switchedAt returns when leaf's route first pointed via after the time
// given.
func switchedAt(changes []RouteChange, leaf string, via netip.Addr, after time.Time) (time.Time, bool) {
	for _, c := range changes {
		if c.Node == leaf && c.Via == via && !c.At.Round(0).Before(after.Round(0)) {
			return c.At, true
		}
	}
	return time.Time{}, false
}
