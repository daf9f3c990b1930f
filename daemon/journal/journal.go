// Package journal remembers each host's latest claim (sequence and MAC)
// across roamd restarts.
//
// A restarted roamd finds its routes in the kernel, but the MAC Mobility
// sequence it announced them with lives nowhere else it can read: leaves keep
// the old paths (graceful restart) and other sites compare against them. So
// every claim is appended here before it is announced, one line per claim
// ("tenant address sequence mac"); the file is compacted at start. Appending
// costs one write(2); a kill -9 loses nothing already written (only a power
// loss could, and then the VMs and routes are gone too).
package journal

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Entry is what the journal keeps of one host.
type Entry struct {
	Tenant string
	Addr   netip.Addr
	Seq    uint32
	MAC    net.HardwareAddr
}

// Journal is an append-only record of claims.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// Open reads the journal at path (a missing file is an empty journal),
// compacts it to the latest entry per host and opens it for appending.
// Malformed lines are skipped and reported in the returned error's text via
// the skipped count; they never stop a start.
func Open(path string) (*Journal, []Entry, int, error) {
	entries, skipped, err := read(path)
	if err != nil {
		return nil, nil, 0, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, 0, fmt.Errorf("creating journal directory: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("compacting journal: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, e := range entries {
		w.WriteString(format(e))
	}
	if err := errors.Join(w.Flush(), f.Close(), os.Rename(tmp, path)); err != nil {
		return nil, nil, 0, fmt.Errorf("compacting journal: %w", err)
	}
	f, err = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("opening journal: %w", err)
	}
	return &Journal{f: f, path: path}, entries, skipped, nil
}

func read(path string) ([]Entry, int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading journal: %w", err)
	}
	defer f.Close()
	latest := map[string]int{}
	var entries []Entry
	skipped := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e, err := parse(sc.Text())
		if err != nil {
			skipped++
			continue
		}
		k := e.Tenant + " " + e.Addr.String()
		if i, ok := latest[k]; ok {
			entries[i] = e
			continue
		}
		latest[k] = len(entries)
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading journal: %w", err)
	}
	return entries, skipped, nil
}

func parse(line string) (Entry, error) {
	f := strings.Fields(line)
	if len(f) != 4 {
		return Entry{}, fmt.Errorf("want 4 fields, got %d", len(f))
	}
	a, err := netip.ParseAddr(f[1])
	if err != nil {
		return Entry{}, err
	}
	seq, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return Entry{}, err
	}
	mac, err := net.ParseMAC(f[3])
	if err != nil {
		return Entry{}, err
	}
	return Entry{Tenant: f[0], Addr: a, Seq: uint32(seq), MAC: mac}, nil
}

func format(e Entry) string {
	return fmt.Sprintf("%s %s %d %s\n", e.Tenant, e.Addr, e.Seq, e.MAC)
}

// Record appends a claim.
func (j *Journal) Record(tenant string, addr netip.Addr, seq uint32, mac net.HardwareAddr) error {
	if len(mac) != 6 || strings.ContainsAny(tenant, " \n") {
		return fmt.Errorf("journal: not recording %s/%s: bad mac or tenant name", tenant, addr)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_, err := j.f.WriteString(format(Entry{Tenant: tenant, Addr: addr, Seq: seq, MAC: mac}))
	return err
}

// Close closes the journal.
func (j *Journal) Close() error { return j.f.Close() }
