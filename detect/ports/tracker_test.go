package ports

import (
	"net"
	"path"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func tapGlob(name string) bool { ok, _ := path.Match("tap*", name); return ok }

var (
	mac1 = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	mac2 = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

func TestTrackerUpdate(t *testing.T) {
	type step struct {
		l       link
		deleted bool
		want    []Event
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "add, change, delete",
			steps: []step{
				{l: link{"tap0", 5, mac1, false}, want: []Event{{Added, "tap0", 5, mac1, false}}},
				{l: link{"tap0", 5, mac1, false}}, // a carrier flap or stats: nothing to say
				{l: link{"tap0", 5, mac1, true}, want: []Event{{Changed, "tap0", 5, mac1, true}}},
				{l: link{"tap0", 5, mac2, true}, want: []Event{{Changed, "tap0", 5, mac2, true}}},
				{l: link{"tap0", 5, mac2, true}, deleted: true, want: []Event{{Removed, "tap0", 5, mac2, true}}},
				{l: link{"tap0", 5, mac2, true}, deleted: true}, // deleted twice
			},
		},
		{
			name: "links that do not match are never reported",
			steps: []step{
				{l: link{"eth0", 2, mac1, true}},
				{l: link{"eth0", 2, mac2, true}},
				{l: link{"eth0", 2, mac2, true}, deleted: true},
			},
		},
		{
			name: "rename within and out of the pattern",
			steps: []step{
				{l: link{"tap1", 7, mac1, false}, want: []Event{{Added, "tap1", 7, mac1, false}}},
				{l: link{"tap9", 7, mac1, false}, want: []Event{{Removed, "tap1", 7, mac1, false}, {Added, "tap9", 7, mac1, false}}},
				{l: link{"vm9", 7, mac1, false}, want: []Event{{Removed, "tap9", 7, mac1, false}}},
				{l: link{"tap2", 7, mac1, false}, want: []Event{{Added, "tap2", 7, mac1, false}}},
			},
		},
		{
			name: "deleted and recreated with a new index",
			steps: []step{
				{l: link{"tap0", 5, mac1, true}, want: []Event{{Added, "tap0", 5, mac1, true}}},
				{l: link{"tap0", 5, mac1, true}, deleted: true, want: []Event{{Removed, "tap0", 5, mac1, true}}},
				{l: link{"tap0", 9, mac2, false}, want: []Event{{Added, "tap0", 9, mac2, false}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(tapGlob)
			for i, s := range tt.steps {
				got := tr.update(s.l, s.deleted)
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Fatalf("step %d (%+v deleted=%v) (-want +got):\n%s", i, s.l, s.deleted, diff)
				}
			}
		})
	}
}

func TestTrackerResync(t *testing.T) {
	tests := []struct {
		name    string
		known   []link
		current []link
		want    []Event
	}{
		{
			name:    "first listing adds what matches, sorted by name",
			current: []link{{"tap2", 12, mac2, true}, {"eth0", 2, mac1, true}, {"tap0", 10, mac1, false}},
			want:    []Event{{Added, "tap0", 10, mac1, false}, {Added, "tap2", 12, mac2, true}},
		},
		{
			name:    "nothing changed",
			known:   []link{{"tap0", 10, mac1, true}},
			current: []link{{"tap0", 10, mac1, true}, {"lo", 1, nil, true}},
		},
		{
			name:    "vanished while events were lost",
			known:   []link{{"tap0", 10, mac1, true}, {"tap1", 11, mac2, true}},
			current: []link{{"tap1", 11, mac2, true}},
			want:    []Event{{Removed, "tap0", 10, mac1, true}},
		},
		{
			name:    "recreated with a new index: removed first",
			known:   []link{{"tap0", 10, mac1, true}},
			current: []link{{"tap0", 14, mac1, false}},
			want:    []Event{{Removed, "tap0", 10, mac1, true}, {Added, "tap0", 14, mac1, false}},
		},
		{
			name:    "renamed",
			known:   []link{{"tap0", 10, mac1, true}},
			current: []link{{"tap7", 10, mac1, true}},
			want:    []Event{{Removed, "tap0", 10, mac1, true}, {Added, "tap7", 10, mac1, true}},
		},
		{
			name:    "renamed out of the pattern",
			known:   []link{{"tap0", 10, mac1, true}},
			current: []link{{"vm0", 10, mac1, true}},
			want:    []Event{{Removed, "tap0", 10, mac1, true}},
		},
		{
			name:    "changed, removed and added at once",
			known:   []link{{"tap0", 10, mac1, false}, {"tap1", 11, mac1, true}},
			current: []link{{"tap0", 10, mac2, true}, {"tap3", 13, mac1, true}},
			want: []Event{
				{Removed, "tap1", 11, mac1, true},
				{Changed, "tap0", 10, mac2, true},
				{Added, "tap3", 13, mac1, true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(tapGlob)
			tr.resync(tt.known)
			got := tr.resync(tt.current)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("resync (-want +got):\n%s", diff)
			}
			// A second identical listing reports nothing.
			if again := tr.resync(tt.current); len(again) != 0 {
				t.Errorf("second resync reported %v", again)
			}
		})
	}
}

func TestTrackerEventsDoNotAliasMAC(t *testing.T) {
	tr := newTracker(tapGlob)
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	evs := tr.update(link{"tap0", 5, mac, true}, false)
	evs[0].MAC[5] = 0xff
	if got := tr.update(link{"tap0", 5, net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, true}, false); len(got) != 0 {
		t.Errorf("a consumer changing an event's MAC changed the tracker's state: %v", got)
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{Added: "added", Removed: "removed", Changed: "changed", 0: "kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
