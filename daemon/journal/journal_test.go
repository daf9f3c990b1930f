package journal

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJournalKeepsLatestClaimAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "journal")
	j, entries, _, err := Open(path)
	if err != nil || len(entries) != 0 {
		t.Fatalf("new journal: %v %v", entries, err)
	}
	mac, _ := net.ParseMAC("52:54:00:00:00:10")
	a := netip.MustParseAddr("10.10.0.10")
	for seq := uint32(1); seq <= 3; seq++ {
		if err := j.Record("default", a, seq, mac); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Record("blue", a, 9, mac); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// A torn last line (crash mid-write) is skipped, not fatal.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("default 10.10.0.11 4")
	f.Close()

	j2, entries, skipped, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if skipped != 1 {
		t.Errorf("skipped %d malformed lines, want 1", skipped)
	}
	got := map[string]uint32{}
	for _, e := range entries {
		got[e.Tenant+"/"+e.Addr.String()] = e.Seq
	}
	if got["default/10.10.0.10"] != 3 || got["blue/10.10.0.10"] != 9 || len(got) != 2 {
		t.Fatalf("entries after reopen: %v", got)
	}
	raw, _ := os.ReadFile(path)
	if n := strings.Count(string(raw), "\n"); n != 2 {
		t.Fatalf("journal not compacted: %d lines:\n%s", n, raw)
	}
}
