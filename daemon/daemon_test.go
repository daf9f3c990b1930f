package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/daemon/hosts"
	"github.com/roamd/roamd/routing/bgp"
)

var (
	vmMAC = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x10}
	vmIP  = netip.MustParseAddr("10.10.0.10")
	vmPfx = netip.PrefixFrom(vmIP, 32)
	hv1ID = netip.MustParseAddr("192.0.2.11")
	hv2ID = netip.MustParseAddr("192.0.2.12")
)

// fakeKernel records what the daemon asks of the kernel.
type fakeKernel struct {
	mu    sync.Mutex
	calls []string
}

func (k *fakeKernel) record(format string, args ...any) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf(format, args...))
	return nil
}

func (k *fakeKernel) Setup() error { return nil }
func (k *fakeKernel) PreparePort(port, tenant string) error {
	return k.record("prepare %s %s", port, tenant)
}
func (k *fakeKernel) InstallHost(t string, a netip.Addr, port string, mac net.HardwareAddr) error {
	return k.record("install %s/%s dev %s lladdr %s", t, a, port, mac)
}
func (k *fakeKernel) ForwardHost(t string, a, to netip.Addr) error {
	return k.record("forward %s/%s to %s", t, a, to)
}
func (k *fakeKernel) RemoveHost(t string, a netip.Addr) error { return k.record("remove %s/%s", t, a) }
func (k *fakeKernel) StageNeighbors(port string, mac net.HardwareAddr, addrs []netip.Addr) error {
	return k.record("stage %s %s %v", port, mac, addrs)
}
func (k *fakeKernel) Routes() ([]KernelRoute, error) { return nil, nil }
func (k *fakeKernel) Sync([]KernelRoute) error       { return nil }

func (k *fakeKernel) has(call string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Contains(k.calls, call)
}

// fakeCapture accepts watches and records frames sent.
type fakeCapture struct{}

func (fakeCapture) Watch(string, int) error         { return nil }
func (fakeCapture) Unwatch(string)                  {}
func (fakeCapture) Send(string, []byte) error       { return nil }
func (fakeCapture) SetDiscovery(string, bool) error { return nil }

func testConfig(t testing.TB, peerPort int) *config.Config {
	t.Helper()
	dir := t.TempDir()
	y := fmt.Sprintf(`
version: 1
router_id: %s
asn: 65011
gateway_mac: "02:00:5e:10:00:01"
state: {journal: %s}
api: {socket: %s}
timers: {startup_hold: 0s}
tenants:
  - name: default
    id: 1
    ports: ["tap*"]
    gateways: [10.10.0.1]
    prefixes: [10.10.0.0/24]
    peers:
      - {address: 127.0.0.1, asn: 65012, port: %d, hold_time: 3s, keepalive: 1s, connect_retry: 1s}
`, hv1ID, filepath.Join(dir, "journal"), filepath.Join(dir, "api.sock"), peerPort)
	cfg, err := config.Parse([]byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDaemonOverBGP runs the daemon (fake kernel and capture, real BGP
// speaker) peered with a second speaker standing in for the other site: a
// claim reaches the peer with roamd's sequence and MAC, and a higher claim
// from the peer makes the daemon withdraw and forward to it.
func TestDaemonOverBGP(t *testing.T) {
	port := freeTCPPort(t)
	peer, err := bgp.New(bgp.Config{
		RouterID: hv2ID, ASN: 65012, ListenPort: port, TenantID: 1,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24")},
		Peers: []bgp.PeerConfig{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65011,
			HoldTime: 3 * time.Second, Keepalive: time.Second, ConnectRetry: time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := peer.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer peer.Stop(context.Background())
	claims := collect(ctx, peer.Claims())

	cfg := testConfig(t, port)
	sp, err := bgp.New(bgpConfig(cfg, cfg.Tenants[0], false, nil))
	if err != nil {
		t.Fatal(err)
	}
	kern := &fakeKernel{}
	d, err := New(Options{Config: cfg, Kernel: kern, Capture: fakeCapture{},
		Routers: map[string]Router{"default": &speaker{s: sp, tenantID: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	d.ports <- PortEvent{Added: true, Name: "tap1", Index: 7}
	eventually(t, "the port to be known", func() bool {
		st, err := d.Status(ctx)
		return err == nil && len(st.Ports) == 1
	})
	d.frames <- frameIn{frame: hosts.Frame{Time: time.Now(), Port: "tap1", Source: hosts.SourceGARP, MAC: vmMAC, Addr: vmIP}, read: time.Now()}

	eventually(t, "the peer to receive roamd's claim", func() bool {
		c, ok := claims.get(vmPfx)
		return ok && len(c) == 1 && c[0].Origin == hv1ID && c[0].Seq == 1 && c[0].MAC.String() == vmMAC.String()
	})
	if !kern.has("install default/10.10.0.10 dev tap1 lladdr 52:54:00:00:00:10") {
		t.Fatalf("kernel route not installed before the announcement: %v", kern.calls)
	}

	// The VM moved to the peer's site: it claims with a higher sequence.
	if err := peer.Announce(bgp.Route{Prefix: vmPfx, Seq: 2, MAC: vmMAC}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "roamd to withdraw its path", func() bool {
		c, ok := claims.get(vmPfx)
		return ok && len(c) == 0
	})
	eventually(t, "roamd to forward to the new site", func() bool {
		return kern.has("forward default/10.10.0.10 to 192.0.2.12")
	})
	hs, err := d.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].State != "yielded" || hs[0].ForwardTo != hv2ID.String() {
		t.Fatalf("host table after the move: %+v", hs)
	}
	ms, _ := d.Moves(ctx)
	if len(ms) != 2 || ms[0].Direction != "arrived" || ms[1].Direction != "departed" || ms[1].To != hv2ID.String() {
		t.Fatalf("moves: %+v", ms)
	}

	// Through the API socket, as roamctl sees it.
	c := api.NewClient(cfg.API.Socket)
	ps, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// (The stand-in peer does not send ADD-PATH, so AddPathRx stays false.)
	if len(ps) != 1 || ps[0].State != "established" || ps[0].Received != 1 {
		t.Fatalf("peers over the API: %+v", ps)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil && !strings.Contains(err.Error(), "context canceled") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not drain and stop")
	}
}

// claimLog keeps the latest claim set per prefix seen on a channel.
type claimLog struct {
	mu   sync.Mutex
	sets map[netip.Prefix][]bgp.Claim
}

func collect(ctx context.Context, ch <-chan bgp.ClaimSet) *claimLog {
	l := &claimLog{sets: map[netip.Prefix][]bgp.Claim{}}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-ch:
				l.mu.Lock()
				l.sets[s.Prefix] = s.Claims
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *claimLog) get(p netip.Prefix) ([]bgp.Claim, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.sets[p]
	return c, ok
}
