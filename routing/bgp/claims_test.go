package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func announce(p netip.Prefix, peer netip.Addr, id uint32, origin netip.Addr, seq uint32) update {
	return update{prefix: p, key: pathKey{peer: peer, pathID: id}, mob: mobility{origin: origin, tenant: testTenant, seq: seq, hasOrig: true, hasMobil: true}}
}

func withdraw(p netip.Prefix, peer netip.Addr, id uint32) update {
	return update{prefix: p, key: pathKey{peer: peer, pathID: id}, withdraw: true}
}

// drain returns every claim set queued now.
func drain(t *claimTable) []ClaimSet {
	var out []ClaimSet
	for {
		cs, ok := t.next()
		if !ok {
			return out
		}
		out = append(out, cs)
	}
}

func TestClaimTableSets(t *testing.T) {
	p := host("198.51.100.10")
	leafA, leafB := loopback4, loopback4b
	claimOf := func(peer netip.Addr, id uint32, origin netip.Addr, seq uint32) Claim {
		return Claim{Prefix: p, Origin: origin, TenantID: testTenant, Seq: seq, Peer: peer, PathID: id}
	}
	for _, c := range []struct {
		name    string
		updates []update
		want    []ClaimSet // delivered, in order
	}{
		{"one claim", []update{announce(p, leafA, 1, otherOrigin, 4)},
			[]ClaimSet{{p, []Claim{claimOf(leafA, 1, otherOrigin, 4)}}}},
		{"paths from two peers and two ids, ordered", []update{
			announce(p, leafB, 1, otherOrigin, 4),
			announce(p, leafA, 2, thirdOrigin, 5),
			announce(p, leafA, 1, otherOrigin, 4),
		}, []ClaimSet{{p, []Claim{
			claimOf(leafA, 1, otherOrigin, 4), claimOf(leafA, 2, thirdOrigin, 5), claimOf(leafB, 1, otherOrigin, 4),
		}}}},
		{"replacement by the same path id", []update{
			announce(p, leafA, 1, otherOrigin, 4), announce(p, leafA, 1, otherOrigin, 6),
		}, []ClaimSet{{p, []Claim{claimOf(leafA, 1, otherOrigin, 6)}}}},
		{"last withdrawal gives an empty set", []update{
			announce(p, leafA, 1, otherOrigin, 4), withdraw(p, leafA, 1),
		}, []ClaimSet{{p, []Claim{}}}},
		{"withdrawal of an unknown path is silent", []update{withdraw(p, leafA, 9)}, nil},
		{"our own echo is never reported", []update{
			{prefix: p, key: pathKey{leafA, 1}, mob: mobility{origin: testRouterID, hasOrig: true}, own: true},
			withdraw(p, leafA, 1),
		}, nil},
		{"a claim replaced by our echo disappears", []update{
			announce(p, leafA, 1, otherOrigin, 4),
			{prefix: p, key: pathKey{leafA, 1}, mob: mobility{origin: testRouterID, hasOrig: true}, own: true},
		}, []ClaimSet{{p, []Claim{}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newClaimTable()
			for _, u := range c.updates {
				tb.apply(u)
			}
			if d := cmp.Diff(c.want, drain(tb), addrs); d != "" {
				t.Errorf("delivered (-want +got):\n%s", d)
			}
		})
	}
}

func TestClaimTableCountsAccepted(t *testing.T) {
	tb := newClaimTable()
	tb.apply(announce(host("198.51.100.1"), loopback4, 1, otherOrigin, 1))
	tb.apply(announce(host("198.51.100.1"), loopback4, 1, otherOrigin, 2)) // replaces
	tb.apply(announce(host("198.51.100.2"), loopback4, 1, otherOrigin, 1))
	tb.apply(update{prefix: host("198.51.100.3"), key: pathKey{loopback4, 1}, own: true})
	tb.apply(announce(host("198.51.100.1"), loopback4b, 1, otherOrigin, 1))
	if a, b := tb.acceptedBy(loopback4), tb.acceptedBy(loopback4b); a != 3 || b != 1 {
		t.Errorf("accepted = %d, %d; want 3 (own echo included), 1", a, b)
	}
	tb.apply(withdraw(host("198.51.100.3"), loopback4, 1))
	tb.apply(withdraw(host("198.51.100.3"), loopback4, 1))
	if a := tb.acceptedBy(loopback4); a != 2 {
		t.Errorf("accepted after withdrawals = %d, want 2", a)
	}
}

// Through a peer's graceful restart its paths are kept; at its End-of-RIB
// for a family the ones it did not announce again go, and only those.
func TestClaimTableStale(t *testing.T) {
	tb := newClaimTable()
	again, gone := host("198.51.100.1"), host("198.51.100.2")
	other, v6 := host("198.51.100.3"), host("2001:db8:10::1")
	tb.apply(announce(again, loopback4, 1, otherOrigin, 1))
	tb.apply(announce(gone, loopback4, 1, otherOrigin, 1))
	tb.apply(announce(v6, loopback4, 1, otherOrigin, 1))
	tb.apply(announce(other, loopback4b, 1, otherOrigin, 1))
	drain(tb)

	tb.markStale(loopback4)
	tb.apply(announce(again, loopback4, 1, otherOrigin, 1)) // the same path again
	if got := drain(tb); len(got) != 0 {
		t.Errorf("sets delivered while the peer restarts: %+v, want none", got)
	}
	tb.dropStale(loopback4, IPv4Unicast)
	if d := cmp.Diff([]ClaimSet{{Prefix: gone, Claims: []Claim{}}}, drain(tb), addrs); d != "" {
		t.Errorf("delivered at End-of-RIB (-want +got):\n%s", d)
	}
	var prefixes []netip.Prefix
	for _, cs := range tb.all() {
		prefixes = append(prefixes, cs.Prefix)
	}
	if d := cmp.Diff([]netip.Prefix{again, other, v6}, prefixes, addrs); d != "" {
		t.Errorf("prefixes left (-want +got):\n%s", d)
	}
	tb.dropStale(loopback4, IPv6Unicast)
	if a, b := tb.acceptedBy(loopback4), tb.acceptedBy(loopback4b); a != 1 || b != 1 {
		t.Errorf("accepted = %d, %d after both End-of-RIBs; want 1, 1", a, b)
	}
}

// A reader that is slower than the updates still ends with the final
// state of every prefix, and the writer never blocks.
func TestClaimTableSlowReaderGetsFinalState(t *testing.T) {
	tb := newClaimTable()
	out := make(chan ClaimSet) // unbuffered: every set waits for the reader
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tb.deliver(ctx, out)

	const prefixes, rounds = 50, 200
	start := time.Now()
	for r := 1; r <= rounds; r++ {
		for i := range prefixes {
			tb.apply(announce(host(fmt.Sprintf("198.51.100.%d", i)), loopback4, 1, otherOrigin, uint32(r)))
		}
	}
	for i := range prefixes {
		tb.apply(withdraw(host(fmt.Sprintf("198.51.100.%d", i%10)), loopback4, 1)) // the first ten end empty
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("writing took %v: the writer waited for the reader", d)
	}

	final := map[netip.Prefix]ClaimSet{}
	delivered := 0
	want := func() bool {
		if len(final) != prefixes {
			return false
		}
		for p, cs := range final {
			wantLen := 1
			if p.Addr().As4()[3] < 10 {
				wantLen = 0
			}
			if len(cs.Claims) != wantLen || (wantLen == 1 && cs.Claims[0].Seq != rounds) {
				return false
			}
		}
		return true
	}
	deadline := time.After(10 * time.Second)
	for !want() {
		select {
		case cs := <-out:
			final[cs.Prefix] = cs
			delivered++
		case <-deadline:
			t.Fatalf("final state not reached: %d sets delivered, latest %v", delivered, final)
		}
	}
	if delivered > prefixes*2 {
		t.Errorf("%d sets delivered for %d prefixes: updates were not coalesced", delivered, prefixes)
	}
}

// 100,000 learned host routes must be cheap to hold.
func TestClaimTableMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 routes")
	}
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tb := newClaimTable()
	base := netip.MustParseAddr("10.0.0.0").As4()
	for i := range n {
		a := base
		a[1], a[2], a[3] = byte(i>>16), byte(i>>8), byte(i)
		p := netip.PrefixFrom(netip.AddrFrom4(a), 32)
		u := announce(p, loopback4, 1, otherOrigin, 1)
		u.mob.hasMAC = true
		tb.apply(u)
	}
	drain(tb)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRoute := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per learned route", perRoute)
	if perRoute > 150 {
		t.Errorf("%.0f bytes per learned route, want at most 150", perRoute)
	}
	runtime.KeepAlive(tb)
}

// Redeliver queues the current set of each host prefix asked for: the
// claims of one that has them, an empty set for one nobody claims; what is
// not a host route is ignored.
func TestClaimTableRedeliver(t *testing.T) {
	tb := newClaimTable()
	claimed, unclaimed := host("198.51.100.1"), host("198.51.100.2")
	tb.apply(announce(claimed, loopback4, 1, otherOrigin, 3))
	drain(tb)

	tb.redeliver([]netip.Prefix{claimed, unclaimed, netip.MustParsePrefix("198.51.100.0/24")})
	got := drain(tb)
	want := []ClaimSet{
		{Prefix: claimed, Claims: []Claim{{Prefix: claimed, Origin: otherOrigin, TenantID: testTenant, Seq: 3, Peer: loopback4, PathID: 1}}},
		{Prefix: unclaimed, Claims: []Claim{}},
	}
	if d := cmp.Diff(want, got, addrs); d != "" {
		t.Errorf("redelivered (-want +got):\n%s", d)
	}
}
