package ports

import (
	"bytes"
	"cmp"
	"net"
	"slices"
)

// link is what the watcher knows of one interface.
type link struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
	Up    bool
}

func (l link) event(kind EventKind) Event {
	return Event{Kind: kind, Name: l.Name, Index: l.Index, MAC: slices.Clone(l.MAC), Up: l.Up}
}

// tracker is the pure core of the watcher: it holds the matching links it
// has reported and turns link updates and full listings into events.
type tracker struct {
	match func(name string) bool
	known map[int]link // by ifindex: a rename keeps the index
}

func newTracker(match func(string) bool) *tracker {
	return &tracker{match: match, known: map[int]link{}}
}

// update applies one netlink message about l (deleted: RTM_DELLINK).
func (t *tracker) update(l link, deleted bool) []Event {
	old, isKnown := t.known[l.Index]
	switch {
	case deleted:
		if !isKnown {
			return nil
		}
		delete(t.known, l.Index)
		return []Event{old.event(Removed)}
	case isKnown && old.Name != l.Name:
		// Renamed: the old name is gone, the new one may match.
		delete(t.known, l.Index)
		evs := []Event{old.event(Removed)}
		if t.match(l.Name) {
			t.known[l.Index] = l
			evs = append(evs, l.event(Added))
		}
		return evs
	case isKnown:
		t.known[l.Index] = l
		if old.Up != l.Up || !bytes.Equal(old.MAC, l.MAC) {
			return []Event{l.event(Changed)}
		}
		return nil
	case t.match(l.Name):
		t.known[l.Index] = l
		return []Event{l.event(Added)}
	}
	return nil
}

// resync compares what the tracker knows with a full listing of the links
// and returns the events that bring its consumer up to date: removals first
// (a link gone, renamed, or recreated with a new index), then changes, then
// additions, each group sorted by name.
func (t *tracker) resync(current []link) []Event {
	now := map[int]link{}
	for _, l := range current {
		if t.match(l.Name) {
			now[l.Index] = l
		}
	}
	var removed, changed, added []Event
	for idx, old := range t.known {
		l, ok := now[idx]
		switch {
		case !ok || l.Name != old.Name:
			removed = append(removed, old.event(Removed))
		case l.Up != old.Up || !bytes.Equal(l.MAC, old.MAC):
			changed = append(changed, l.event(Changed))
		}
	}
	for idx, l := range now {
		if old, ok := t.known[idx]; !ok || old.Name != l.Name {
			added = append(added, l.event(Added))
		}
	}
	t.known = now
	byName := func(a, b Event) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Index, b.Index)) }
	slices.SortFunc(removed, byName)
	slices.SortFunc(changed, byName)
	slices.SortFunc(added, byName)
	return slices.Concat(removed, changed, added)
}
