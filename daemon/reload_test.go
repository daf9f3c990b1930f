package daemon

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/config"
)

// fakeRouter is a BGP speaker that records what it is asked.
type fakeRouter struct {
	mu        sync.Mutex
	setPeers  [][]config.Peer
	announced []Path
	all       []ClaimSet
	claims    chan ClaimSet
	redeliver [][]netip.Prefix
	synced    chan struct{} // nil: synced from the start
}

func (r *fakeRouter) Connect(context.Context) error { return nil }
func (r *fakeRouter) Announce(p Path) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.announced = append(r.announced, p)
	return nil
}
func (r *fakeRouter) Withdraw(netip.Prefix) error { return nil }
func (r *fakeRouter) Announced() []Path           { return nil }
func (r *fakeRouter) Claims() <-chan ClaimSet     { return r.claims }
func (r *fakeRouter) AllClaims() ([]ClaimSet, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all, nil
}

// Redeliver sends the current set (from all) of each prefix on claims, as
// the speaker does.
func (r *fakeRouter) Redeliver(prefixes []netip.Prefix) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.redeliver = append(r.redeliver, prefixes)
	var sets []ClaimSet
	for _, p := range prefixes {
		cs := ClaimSet{Prefix: p}
		for _, s := range r.all {
			if s.Prefix == p {
				cs = s
			}
		}
		sets = append(sets, cs)
	}
	go func() {
		for _, cs := range sets {
			r.claims <- cs
		}
	}()
}

func (r *fakeRouter) Peers() []api.Peer { return nil }
func (r *fakeRouter) Ready() error      { return nil }
func (r *fakeRouter) Synced() <-chan struct{} {
	if r.synced == nil {
		return closed
	}
	return r.synced
}
func (r *fakeRouter) Stop(context.Context) error   { return nil }
func (r *fakeRouter) Detach(context.Context) error { return nil }
func (r *fakeRouter) SetPeers(_ context.Context, p []config.Peer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setPeers = append(r.setPeers, p)
	return nil
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func TestReloadAppliesPeersAndPortPatterns(t *testing.T) {
	cfg := testConfig(t, 1790)
	rt := &fakeRouter{claims: make(chan ClaimSet)}
	d, ctx := runDaemon(t, cfg, rt, nil)
	d.ports <- PortEvent{Added: true, Name: "vm1", Index: 4} // matches no pattern yet
	adopt(t, ctx, d, "tap1", 3, 1)

	next := *cfg
	next.Tenants = []config.Tenant{cfg.Tenants[0]}
	next.Tenants[0].Ports = []string{"vm*"}
	next.Tenants[0].Peers = append(append([]config.Peer{}, cfg.Tenants[0].Peers...),
		config.Peer{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65013, HoldTime: 3 * time.Second, Keepalive: time.Second, ConnectRetry: time.Second, Port: 179, Families: []string{"ipv4-unicast"}})
	next.Timers.Drain = 9 * time.Second
	notes, err := d.Reload(ctx, &next)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(notes, "\n")
	for _, want := range []string{"peers applied", "port patterns [vm*] applied", "timers changed: needs a restart"} {
		if !strings.Contains(joined, want) {
			t.Errorf("reload notes %q lack %q", joined, want)
		}
	}
	rt.mu.Lock()
	if len(rt.setPeers) != 1 || len(rt.setPeers[0]) != 2 {
		t.Errorf("speaker got peer lists %v, want one list of 2", rt.setPeers)
	}
	rt.mu.Unlock()
	// tap1 no longer matches: released. The port watcher's resync then
	// reports vm1, which now matches.
	d.ports <- PortEvent{Added: true, Name: "vm1", Index: 4}
	eventually(t, "vm1 adopted and tap1 released", func() bool {
		st, err := d.Status(ctx)
		return err == nil && len(st.Ports) == 1 && st.Ports[0].Name == "vm1"
	})

	bad := next
	bad.Tenants = append(append([]config.Tenant{}, next.Tenants...), config.Tenant{Name: "blue"})
	if _, err := d.Reload(ctx, &bad); err == nil {
		t.Fatal("adding a tenant on reload was accepted")
	}
}
