package ports

import (
	"context"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/roamd/roamd/labs/nstest"
)

// TestWatcherInNamespace drives real links in a fresh namespace through
// every kind of change and checks the exact event sequence.
func TestWatcherInNamespace(t *testing.T) {
	ns := nstest.New(t, "ports")
	h := ns.Handle

	addVeth := func(name, peer string) {
		t.Helper()
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
			t.Fatalf("adding veth %s: %v", name, err)
		}
	}
	byName := func(name string) netlink.Link {
		t.Helper()
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatalf("finding %s: %v", name, err)
		}
		return l
	}
	event := func(kind EventKind, name string) Event {
		t.Helper()
		a := byName(name).Attrs()
		return Event{Kind: kind, Name: name, Index: a.Index, MAC: a.HardwareAddr, Up: a.Flags&net.FlagUp != 0}
	}

	// A port that exists before the watcher starts, and a link that never
	// matches.
	addVeth("tap0", "x0")
	tap0 := event(Added, "tap0")

	out := make(chan Event, 64)
	w := NewWatcher(tapGlob, out, nil, WithNetNS(netns.NsHandle(ns.Fd())))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	expect(t, out, tap0)

	// A new port (its peer y1 does not match).
	addVeth("tap1", "y1")
	expect(t, out, event(Added, "tap1"))

	// Administratively up.
	if err := h.LinkSetUp(byName("tap1")); err != nil {
		t.Fatal(err)
	}
	expect(t, out, event(Changed, "tap1"))

	// Deleted, then recreated under the same name with a new index.
	if err := h.LinkDel(byName("tap0")); err != nil {
		t.Fatal(err)
	}
	tap0.Kind = Removed
	expect(t, out, tap0)
	addVeth("tap0", "x0")
	tap0again := event(Added, "tap0")
	if tap0again.Index == tap0.Index {
		t.Fatalf("recreated tap0 kept index %d", tap0.Index)
	}
	expect(t, out, tap0again)

	// Renamed (a link must be down to be renamed).
	if err := h.LinkSetDown(byName("tap1")); err != nil {
		t.Fatal(err)
	}
	tap1down := event(Changed, "tap1")
	expect(t, out, tap1down)
	if err := h.LinkSetName(byName("tap1"), "tap9"); err != nil {
		t.Fatal(err)
	}
	tap1down.Kind = Removed
	expect(t, out, tap1down, event(Added, "tap9"))

	// Renamed out of the pattern.
	if err := h.LinkSetName(byName("tap9"), "vm9"); err != nil {
		t.Fatal(err)
	}
	gone := event(Removed, "vm9")
	gone.Name = "tap9"
	expect(t, out, gone)

	// A resync with nothing lost reports nothing; a last port marks the end
	// of the sequence, so any stray event would show up before it.
	w.Resync()
	addVeth("tapz", "z0")
	expect(t, out, event(Added, "tapz"))
	if len(out) != 0 {
		t.Fatalf("unexpected event %+v", <-out)
	}
}
