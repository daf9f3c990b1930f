package hosts

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpOpts = cmpopts.EquateComparable(netip.Addr{})

var (
	t0     = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	self   = netip.MustParseAddr("192.0.2.11")
	hvB    = netip.MustParseAddr("192.0.2.12")
	hvLow  = netip.MustParseAddr("192.0.2.1")
	vmMAC  = mac("52:54:00:00:00:10")
	vm2MAC = mac("52:54:00:00:00:20")
	vmIP   = netip.MustParseAddr("10.10.0.10")
	vmIP6  = netip.MustParseAddr("2001:db8:10::10")
	key    = Key{Tenant: "default", Addr: vmIP}
	key6   = Key{Tenant: "default", Addr: vmIP6}
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func newTable() *Table {
	return New(Policy{
		Self: self,
		Tenants: []TenantPolicy{
			{Name: "default", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24"), netip.MustParsePrefix("2001:db8:10::/64")},
				Gateways: []netip.Addr{netip.MustParseAddr("10.10.0.1"), netip.MustParseAddr("fe80::1")}},
			{Name: "blue", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24")},
				Gateways: []netip.Addr{netip.MustParseAddr("10.10.0.1")}},
		},
		Hold:         2 * time.Second,
		StagedExpiry: time.Minute,
		FreezeMoves:  5,
		FreezeWindow: 180 * time.Second,
	})
}

// step is one input and the actions and host state it must produce.
type step struct {
	name  string
	in    Input
	want  []Action
	state State // state of key after the step; 0: do not check
	seq   uint32
}

func run(t *testing.T, tb *Table, steps []step) {
	t.Helper()
	for _, s := range steps {
		got := tb.Apply(s.in)
		if diff := cmp.Diff(s.want, got, cmpOpts); diff != "" {
			t.Fatalf("%s: actions (-want +got):\n%s", s.name, diff)
		}
		if s.state != 0 {
			h, ok := tb.Host(key)
			if !ok {
				t.Fatalf("%s: host %s missing, want %s", s.name, key, s.state)
			}
			if h.State != s.state || (s.seq != 0 && h.Seq != s.seq) {
				t.Fatalf("%s: host is %s seq %d, want %s seq %d", s.name, h.State, h.Seq, s.state, s.seq)
			}
		}
	}
}

func moved(k Key, mv Move, away bool) Moved { return Moved{Key: k, Move: mv, Away: away} }

// arrived is the Moved record of a first claim (no previous owner).
func arrived(k Key, ms int, src Source, port string, seq uint32) Moved {
	return Moved{Key: k, Move: Move{Time: at(ms), To: self, Seq: seq, Source: src, Port: port}}
}

func TestArrivalByGratuitousARP(t *testing.T) {
	run(t, newTable(), []step{
		{name: "port appears", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "GARP claims with sequence 1", in: Frame{Time: at(10), Port: "tap1", Source: SourceGARP, MAC: vmMAC, Addr: vmIP},
			want: []Action{
				InstallRoute{Key: key, Port: "tap1", MAC: vmMAC},
				Announce{Key: key, Seq: 1, MAC: vmMAC},
				arrived(key, 10, SourceGARP, "tap1", 1),
			}, state: Announced, seq: 1},
		{name: "a second frame only refreshes", in: Frame{Time: at(20), Port: "tap1", Source: SourceARPRequest, MAC: vmMAC, Addr: vmIP},
			want: nil, state: Announced, seq: 1},
		{name: "frame on another local port moves the route, same sequence", in: PortUp{Time: at(30), Port: "tap2", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap2", Tenant: "default"}}},
		{name: "frame on tap2", in: Frame{Time: at(40), Port: "tap2", Source: SourceGARP, MAC: vmMAC, Addr: vmIP},
			want: []Action{
				InstallRoute{Key: key, Port: "tap2", MAC: vmMAC},
				Announce{Key: key, Seq: 1, MAC: vmMAC},
			}, state: Announced, seq: 1},
	})
}

func TestRARPOnlyArrivalThroughBGPBinding(t *testing.T) {
	tb := newTable()
	run(t, tb, []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "hv B announces the VM (v4 and v6) with sequence 4", in: RemoteClaims{Time: at(1), Key: key,
			Claims: []Claim{{Origin: hvB, Seq: 4, MAC: vmMAC}}}},
		{name: "v6 claim", in: RemoteClaims{Time: at(1), Key: key6, Claims: []Claim{{Origin: hvB, Seq: 2, MAC: vmMAC}}}},
		{name: "RARP claims both addresses at once, each max(seen)+1", in: Frame{Time: at(100), Port: "tap1", Source: SourceRARP, MAC: vmMAC},
			want: []Action{
				InstallRoute{Key: key, Port: "tap1", MAC: vmMAC},
				NotifyOld{Key: key, To: hvB, Seq: 5, MAC: vmMAC},
				Announce{Key: key, Seq: 5, MAC: vmMAC},
				moved(key, Move{Time: at(100), From: hvB, To: self, Seq: 5, Source: SourceRARP, Port: "tap1"}, false),
				InstallRoute{Key: key6, Port: "tap1", MAC: vmMAC},
				NotifyOld{Key: key6, To: hvB, Seq: 3, MAC: vmMAC},
				Announce{Key: key6, Seq: 3, MAC: vmMAC},
				moved(key6, Move{Time: at(100), From: hvB, To: self, Seq: 3, Source: SourceRARP, Port: "tap1"}, false),
			}, state: Announced, seq: 5},
		{name: "hv B withdraws: nothing to do", in: RemoteClaims{Time: at(150), Key: key}, state: Announced, seq: 5},
	})
}

func TestRARPFromUnknownMACIsRefused(t *testing.T) {
	run(t, newTable(), []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "RARP, no binding", in: Frame{Time: at(1), Port: "tap1", Source: SourceRARP, MAC: vmMAC},
			want: []Action{Refused{Key: Key{Tenant: "default"}, Port: "tap1", MAC: vmMAC, Reason: RefuseUnknownMAC}}},
	})
}

func TestYieldAndReclaim(t *testing.T) {
	run(t, newTable(), []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "claim", in: Frame{Time: at(1), Port: "tap1", Source: SourceGARP, MAC: vmMAC, Addr: vmIP},
			want:  []Action{InstallRoute{Key: key, Port: "tap1", MAC: vmMAC}, Announce{Key: key, Seq: 1, MAC: vmMAC}, arrived(key, 1, SourceGARP, "tap1", 1)},
			state: Announced, seq: 1},
		{name: "stale lower claim from B is ignored", in: RemoteClaims{Time: at(2), Key: key, Claims: []Claim{{Origin: hvB, Seq: 0, MAC: vmMAC}}},
			state: Announced},
		{name: "B claims with 2: withdraw, then forward to B", in: RemoteClaims{Time: at(1000), Key: key,
			Claims: []Claim{{Origin: hvB, Seq: 2, MAC: vmMAC}}},
			want: []Action{
				Withdraw{Key: key},
				ForwardRoute{Key: key, To: hvB},
				RepairNeighbours{Key: key, Port: "tap1"},
				moved(key, Move{Time: at(1000), From: self, To: hvB, Seq: 2, Source: SourceBGP, Port: "tap1"}, true),
			}, state: Yielded, seq: 1},
		{name: "the source tap goes away: forwarding continues", in: PortDown{Time: at(1500), Port: "tap1"}, state: Yielded},
		{name: "hold not over", in: Tick{Time: at(2999)}, state: Yielded},
		{name: "hold over: forwarding route removed, host gone", in: Tick{Time: at(3000)},
			want: []Action{RemoveRoute{Key: key}}, state: Gone},
		{name: "the VM comes back on a new port", in: PortUp{Time: at(5000), Port: "tap9", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap9", Tenant: "default"}}},
		{name: "re-claim takes max(seen)+1", in: Frame{Time: at(5001), Port: "tap9", Source: SourceRARP, MAC: vmMAC},
			want: []Action{
				InstallRoute{Key: key, Port: "tap9", MAC: vmMAC},
				NotifyOld{Key: key, To: hvB, Seq: 3, MAC: vmMAC},
				Announce{Key: key, Seq: 3, MAC: vmMAC},
				moved(key, Move{Time: at(5001), From: hvB, To: self, Seq: 3, Source: SourceRARP, Port: "tap9"}, false),
			}, state: Announced, seq: 3},
	})
}

func TestEqualSequenceTieGoesToLowerRouterID(t *testing.T) {
	setup := []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "claim", in: Frame{Time: at(1), Port: "tap1", Source: SourceGARP, MAC: vmMAC, Addr: vmIP},
			want:  []Action{InstallRoute{Key: key, Port: "tap1", MAC: vmMAC}, Announce{Key: key, Seq: 1, MAC: vmMAC}, arrived(key, 1, SourceGARP, "tap1", 1)},
			state: Announced, seq: 1},
	}
	t.Run("higher router ID loses the tie to us", func(t *testing.T) {
		run(t, newTable(), append(setup, step{
			name: "B (192.0.2.12) claims with 1", in: RemoteClaims{Time: at(2), Key: key, Claims: []Claim{{Origin: hvB, Seq: 1, MAC: vmMAC}}},
			state: Announced, seq: 1}))
	})
	t.Run("lower router ID wins the tie", func(t *testing.T) {
		run(t, newTable(), append(setup, step{
			name: "192.0.2.1 claims with 1", in: RemoteClaims{Time: at(2), Key: key, Claims: []Claim{{Origin: hvLow, Seq: 1, MAC: vmMAC}}},
			want: []Action{
				Withdraw{Key: key},
				ForwardRoute{Key: key, To: hvLow},
				RepairNeighbours{Key: key, Port: "tap1"},
				moved(key, Move{Time: at(2), From: self, To: hvLow, Seq: 1, Source: SourceBGP, Port: "tap1"}, true),
			},
			state: Yielded}))
	})
}

func TestPortRemovalWithdrawsThenRemoves(t *testing.T) {
	run(t, newTable(), []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "claim", in: Frame{Time: at(1), Port: "tap1", Source: SourceGARP, MAC: vmMAC, Addr: vmIP},
			want:  []Action{InstallRoute{Key: key, Port: "tap1", MAC: vmMAC}, Announce{Key: key, Seq: 1, MAC: vmMAC}, arrived(key, 1, SourceGARP, "tap1", 1)},
			state: Announced},
		{name: "port removed: withdraw first, then the route", in: PortDown{Time: at(2), Port: "tap1"},
			want: []Action{Withdraw{Key: key}, RemoveRoute{Key: key}}, state: Gone},
		{name: "a frame on a removed port is refused", in: Frame{Time: at(3), Port: "tap1", Source: SourceGARP, MAC: vmMAC, Addr: vmIP},
			want: []Action{Refused{Port: "tap1", MAC: vmMAC, Reason: RefuseUnknownPort}}, state: Gone},
	})
}

func TestSwitchHintClaimsStagedHostAtOnce(t *testing.T) {
	tb := newTable()
	run(t, tb, []step{
		{name: "B owns the VM", in: RemoteClaims{Time: at(0), Key: key, Claims: []Claim{{Origin: hvB, Seq: 7, MAC: vmMAC}}}},
		{name: "arrive hint before the tap exists: staged", in: Hint{Time: at(1), Kind: HintArrive, Tenant: "default", MAC: vmMAC, Port: "tap5"},
			state: Staged},
		{name: "the tap appears: prepared, then staged (neighbour, throwaway frame)", in: PortUp{Time: at(2), Port: "tap5", Tenant: "default"},
			want:  []Action{PreparePort{Port: "tap5", Tenant: "default"}, StagePort{Port: "tap5", MAC: vmMAC, Addrs: []netip.Addr{vmIP}}},
			state: Staged},
		{name: "switch: claim now", in: Hint{Time: at(3), Kind: HintSwitch, Tenant: "default", MAC: vmMAC},
			want: []Action{
				InstallRoute{Key: key, Port: "tap5", MAC: vmMAC},
				NotifyOld{Key: key, To: hvB, Seq: 8, MAC: vmMAC},
				Announce{Key: key, Seq: 8, MAC: vmMAC},
				moved(key, Move{Time: at(3), From: hvB, To: self, Seq: 8, Source: SourceHint, Port: "tap5"}, false),
			}, state: Announced, seq: 8},
		{name: "QEMU's RARPs after resume change nothing", in: Frame{Time: at(40), Port: "tap5", Source: SourceRARP, MAC: vmMAC},
			state: Announced, seq: 8},
	})
}

func TestNotificationYieldsBeforeBGP(t *testing.T) {
	steps := []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "claim", in: Frame{Time: at(1), Port: "tap1", Source: SourceGARP, MAC: vmMAC, Addr: vmIP},
			want:  []Action{InstallRoute{Key: key, Port: "tap1", MAC: vmMAC}, Announce{Key: key, Seq: 1, MAC: vmMAC}, arrived(key, 1, SourceGARP, "tap1", 1)},
			state: Announced},
		{name: "B notifies directly: forward at once, keep the path (make before break)",
			in: Notified{Time: at(10), Key: key, Claim: Claim{Origin: hvB, Seq: 2, MAC: vmMAC}},
			want: []Action{
				ForwardRoute{Key: key, To: hvB},
				RepairNeighbours{Key: key, Port: "tap1"},
				moved(key, Move{Time: at(10), From: self, To: hvB, Seq: 2, Source: SourceNotify, Port: "tap1"}, true),
			}, state: Yielded},
	}
	t.Run("withdrawn when the winner's path arrives", func(t *testing.T) {
		tb := newTable()
		run(t, tb, append(steps,
			step{name: "an unrelated update does not let go", in: RemoteClaims{Time: at(50), Key: key,
				Claims: []Claim{{Origin: hvLow, Seq: 0, MAC: vmMAC}}}, state: Yielded},
			step{name: "B's path arrives through BGP: withdraw now", in: RemoteClaims{Time: at(110), Key: key,
				Claims: []Claim{{Origin: hvB, Seq: 2, MAC: vmMAC}}},
				want: []Action{Withdraw{Key: key}}, state: Yielded},
			step{name: "hold over: forwarding ends, nothing withdrawn twice", in: Tick{Time: at(2010)},
				want: []Action{RemoveRoute{Key: key}}, state: Yielded},
		))
	})
	t.Run("withdrawn at the end of the hold at the latest", func(t *testing.T) {
		run(t, newTable(), append(steps,
			step{name: "no BGP path from B within the hold", in: Tick{Time: at(2010)},
				want: []Action{Withdraw{Key: key}, RemoveRoute{Key: key}}, state: Yielded},
		))
	})
}

func TestClaimAuthorisation(t *testing.T) {
	tb := newTable()
	tb.Apply(PortUp{Time: at(0), Port: "tap1", Tenant: "default"})
	cases := []struct {
		addr string
		mac  net.HardwareAddr
		want RefuseReason
	}{
		{"10.10.1.5", vmMAC, RefuseOutsidePrefixes},
		{"10.10.0.1", vmMAC, RefuseGateway},
		{"0.0.0.0", vmMAC, RefuseSpecial},
		{"10.10.0.0", vmMAC, RefuseSpecial},
		{"10.10.0.255", vmMAC, RefuseSpecial},
		{"224.0.0.5", vmMAC, RefuseSpecial},
		{"169.254.1.1", vmMAC, RefuseSpecial},
		{"fe80::10", vmMAC, RefuseSpecial},
		{"10.10.0.20", mac("01:00:5e:00:00:01"), RefuseSpecial},
	}
	for _, c := range cases {
		a := netip.MustParseAddr(c.addr)
		got := tb.Apply(Frame{Time: at(1), Port: "tap1", Source: SourceGARP, MAC: c.mac, Addr: a})
		want := []Action{Refused{Key: Key{Tenant: "default", Addr: a}, Port: "tap1", MAC: c.mac, Reason: c.want}}
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Errorf("claim of %s (-want +got):\n%s", c.addr, diff)
		}
	}
	if n := len(tb.Hosts()); n != 0 {
		t.Fatalf("refused claims left %d hosts in the table", n)
	}
}

func TestTenantsNeverMix(t *testing.T) {
	tb := newTable()
	blueKey := Key{Tenant: "blue", Addr: vmIP}
	tb.Apply(PortUp{Time: at(0), Port: "tap1", Tenant: "default"})
	tb.Apply(PortUp{Time: at(0), Port: "blue1", Tenant: "blue"})
	tb.Apply(Frame{Time: at(1), Port: "tap1", Source: SourceGARP, MAC: vmMAC, Addr: vmIP})
	got := tb.Apply(Frame{Time: at(2), Port: "blue1", Source: SourceGARP, MAC: vm2MAC, Addr: vmIP})
	want := []Action{InstallRoute{Key: blueKey, Port: "blue1", MAC: vm2MAC}, Announce{Key: blueKey, Seq: 1, MAC: vm2MAC},
		arrived(blueKey, 2, SourceGARP, "blue1", 1)}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Fatalf("same address in another tenant must be a separate host (-want +got):\n%s", diff)
	}
	// A claim in blue never makes default yield.
	if acts := tb.Apply(RemoteClaims{Time: at(3), Key: blueKey, Claims: []Claim{{Origin: hvB, Seq: 9, MAC: vm2MAC}}}); len(acts) == 0 {
		t.Fatal("blue host did not yield to a higher blue claim")
	}
	if h, _ := tb.Host(key); h.State != Announced {
		t.Fatalf("default host is %s after a blue claim, want announced", h.State)
	}
	// RARP in one tenant uses only that tenant's bindings.
	if b := tb.Binding("default", vm2MAC); len(b) != 0 {
		t.Fatalf("blue MAC bound in default: %v", b)
	}
}

func TestRARPBeforeTheBindingClaimsWhenItArrives(t *testing.T) {
	run(t, newTable(), []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "RARP before BGP brought the old site's route", in: Frame{Time: at(10), Port: "tap1", Source: SourceRARP, MAC: vmMAC},
			want: []Action{Refused{Key: Key{Tenant: "default"}, Port: "tap1", MAC: vmMAC, Reason: RefuseUnknownMAC}}},
		{name: "the old site's route arrives: claim at once", in: RemoteClaims{Time: at(60), Key: key, Claims: []Claim{{Origin: hvB, Seq: 3, MAC: vmMAC}}},
			want: []Action{
				InstallRoute{Key: key, Port: "tap1", MAC: vmMAC},
				NotifyOld{Key: key, To: hvB, Seq: 4, MAC: vmMAC},
				Announce{Key: key, Seq: 4, MAC: vmMAC},
				moved(key, Move{Time: at(10), From: hvB, To: self, Seq: 4, Source: SourceRARP, Port: "tap1"}, false),
			}, state: Announced, seq: 4},
	})
}

func TestStaleUnknownRARPIsForgotten(t *testing.T) {
	run(t, newTable(), []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "RARP", in: Frame{Time: at(10), Port: "tap1", Source: SourceRARP, MAC: vmMAC},
			want: []Action{Refused{Key: Key{Tenant: "default"}, Port: "tap1", MAC: vmMAC, Reason: RefuseUnknownMAC}}},
		{name: "time passes", in: Tick{Time: at(5000)}},
		{name: "a late route does not claim", in: RemoteClaims{Time: at(5001), Key: key, Claims: []Claim{{Origin: hvB, Seq: 3, MAC: vmMAC}}}},
	})
}

func TestSpoofedSenderMACIsRefused(t *testing.T) {
	tb := newTable()
	run(t, tb, []step{
		{name: "port", in: PortUp{Time: at(0), Port: "tap1", Tenant: "default"},
			want: []Action{PreparePort{Port: "tap1", Tenant: "default"}}},
		{name: "ARP claiming another MAC than the one that sent it", in: Frame{Time: at(1), Port: "tap1", Source: SourceGARP,
			MAC: vmMAC, Addr: vmIP, EthSrc: vm2MAC},
			want: []Action{Refused{Key: key, Port: "tap1", MAC: vm2MAC, Reason: RefuseSpoofedMAC}}},
	})
	if h, ok := tb.Host(key); ok {
		t.Fatalf("spoofed frame created a host: %+v", h)
	}
}

func TestWaitingRARPClaimsEveryAddressAsItsBindingArrives(t *testing.T) {
	tb := newTable()
	tb.Apply(PortUp{Time: at(0), Port: "tap1", Tenant: "default"})
	tb.Apply(Frame{Time: at(10), Port: "tap1", Source: SourceRARP, MAC: vmMAC})
	tb.Apply(RemoteClaims{Time: at(40), Key: key6, Claims: []Claim{{Origin: hvB, Seq: 2, MAC: vmMAC}}})
	tb.Apply(RemoteClaims{Time: at(60), Key: key, Claims: []Claim{{Origin: hvB, Seq: 7, MAC: vmMAC}}})
	for k, seq := range map[Key]uint32{key6: 3, key: 8} {
		h, ok := tb.Host(k)
		if !ok || h.State != Announced || h.Seq != seq {
			t.Errorf("%s after its binding arrived: %+v, want announced with seq %d", k, h, seq)
		}
	}
}

// TestAnyFrameClaimsTheVMsOtherAddresses: an ARP from a dual-stack VM
// arriving here claims its IPv6 address too (same MAC, same NIC), so a VM
// whose IPv6 announcement was missed does not stay unreachable over IPv6.
func TestAnyFrameClaimsTheVMsOtherAddresses(t *testing.T) {
	tb := newTable()
	tb.Apply(PortUp{Time: at(0), Port: "tap1", Tenant: "default"})
	tb.Apply(RemoteClaims{Time: at(1), Key: key, Claims: []Claim{{Origin: hvB, Seq: 3, MAC: vmMAC}}})
	tb.Apply(RemoteClaims{Time: at(1), Key: key6, Claims: []Claim{{Origin: hvB, Seq: 5, MAC: vmMAC}}})
	tb.Apply(Frame{Time: at(10), Port: "tap1", Source: SourceARPRequest, MAC: vmMAC, Addr: vmIP})
	for k, seq := range map[Key]uint32{key: 4, key6: 6} {
		if h, ok := tb.Host(k); !ok || h.State != Announced || h.Seq != seq || h.Port != "tap1" {
			t.Errorf("%s after the VM's ARP: %+v, want announced on tap1 with seq %d", k, h, seq)
		}
	}
}

func TestFamilyTheTenantDoesNotRouteIsNotAClaim(t *testing.T) {
	tb := newTable()
	tb.Apply(PortUp{Time: at(0), Port: "blue1", Tenant: "blue"}) // blue routes IPv4 only
	got := tb.Apply(Frame{Time: at(1), Port: "blue1", Source: SourceNA, MAC: vmMAC, Addr: vmIP6})
	want := []Action{Refused{Key: Key{Tenant: "blue", Addr: vmIP6}, Port: "blue1", MAC: vmMAC, Reason: RefuseFamilyNotRouted}}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// RemoteKeyCount follows the hosts with BGP claims per tenant, as
// RemoteKeys lists them: the reconcile trusts it to skip the listing.
func TestRemoteKeyCount(t *testing.T) {
	tb := newTable()
	blueKey := Key{Tenant: "blue", Addr: vmIP}
	claims := []Claim{{Origin: hvB, Seq: 1, MAC: vmMAC}}
	steps := []struct {
		in          Input
		wantDefault int
		wantBlue    int
	}{
		{RemoteClaims{Time: at(1), Key: key, Claims: claims}, 1, 0},
		{RemoteClaims{Time: at(2), Key: key, Claims: []Claim{{Origin: hvB, Seq: 2, MAC: vmMAC}}}, 1, 0}, // changed, still one
		{RemoteClaims{Time: at(3), Key: key6, Claims: claims}, 2, 0},
		{RemoteClaims{Time: at(4), Key: blueKey, Claims: claims}, 2, 1},
		{RemoteClaims{Time: at(5), Key: key}, 1, 1}, // withdrawn
		{RemoteClaims{Time: at(6), Key: key}, 1, 1}, // withdrawn again
		{RemoteClaims{Time: at(7), Key: blueKey}, 1, 0},
	}
	for i, s := range steps {
		tb.Apply(s.in)
		for tenant, want := range map[string]int{"default": s.wantDefault, "blue": s.wantBlue} {
			if got, listed := tb.RemoteKeyCount(tenant), len(tb.RemoteKeys(tenant)); got != want || listed != want {
				t.Errorf("step %d: %s: RemoteKeyCount %d, RemoteKeys %d; want %d", i, tenant, got, listed, want)
			}
		}
	}
}
