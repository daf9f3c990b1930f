package scale

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// FIBWatch follows a router's kernel routes for the host routes of one
// prefix through netlink notifications, so a storm of changes is timed
// per route as it happens, without dumping the table over and over.
type FIBWatch struct {
	prefix netip.Prefix

	mu    sync.Mutex
	via   map[netip.Addr]netip.Addr // host → gateway of its kernel route
	since map[netip.Addr]time.Time  // host → when via last changed
	err   error
}

// WatchFIB starts following the main table of the namespace whose file
// descriptor is nsFd, from its current content. Cleanup stops it.
func WatchFIB(tb testing.TB, nsFd int, prefix netip.Prefix) *FIBWatch {
	tb.Helper()
	w := &FIBWatch{prefix: prefix, via: map[netip.Addr]netip.Addr{}, since: map[netip.Addr]time.Time{}}
	ch := make(chan netlink.RouteUpdate, 4096)
	done := make(chan struct{})
	h := netns.NsHandle(nsFd)
	err := netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{
		Namespace:    &h,
		ListExisting: true,
		// A storm changes thousands of routes at once: a socket buffer
		// that overflows would lose some of them.
		ReceiveBufferSize:      32 << 20,
		ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		},
	})
	if err != nil {
		tb.Fatalf("watching routes: %v", err)
	}
	tb.Cleanup(func() { close(done) })
	go func() {
		for u := range ch {
			w.update(u, time.Now())
		}
	}()
	return w
}

func (w *FIBWatch) update(u netlink.RouteUpdate, at time.Time) {
	if u.Table != unix.RT_TABLE_MAIN || u.Dst == nil {
		return
	}
	ones, bits := u.Dst.Mask.Size()
	addr, ok := netip.AddrFromSlice(u.Dst.IP)
	if !ok || ones != bits {
		return
	}
	addr = addr.Unmap()
	if !w.prefix.Contains(addr) {
		return
	}
	var gw netip.Addr
	if g, ok := netip.AddrFromSlice(u.Gw); ok {
		gw = g.Unmap()
	} else if len(u.MultiPath) > 0 {
		if g, ok := netip.AddrFromSlice(u.MultiPath[0].Gw); ok {
			gw = g.Unmap()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if u.Type == unix.RTM_DELROUTE {
		if w.via[addr] == gw || !gw.IsValid() {
			delete(w.via, addr)
			w.since[addr] = at
		}
		return
	}
	if w.via[addr] != gw {
		w.via[addr] = gw
		w.since[addr] = at
	}
}

// Count is how many hosts of the prefix have a route via gw now.
func (w *FIBWatch) Count(gw netip.Addr) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.via {
		if v == gw {
			n++
		}
	}
	return n
}

// Converged reports whether every host in hosts has its route via gw, and
// then when each of them got there.
func (w *FIBWatch) Converged(hosts []netip.Addr, gw netip.Addr) ([]time.Time, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, false, fmt.Errorf("route notifications lost: %w", w.err)
	}
	at := make([]time.Time, len(hosts))
	for i, h := range hosts {
		if w.via[h] != gw {
			return nil, false, nil
		}
		at[i] = w.since[h]
	}
	return at, true, nil
}
