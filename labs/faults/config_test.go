package faults

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// The lab's files must agree with the VM table and the constants the tests
// rely on; a mismatch would only show as a lab that never converges.

func TestTopologyMatchesTheVMTable(t *testing.T) {
	topo := labtest.LoadTopology(t, TopologyFile)
	for name, v := range VMs {
		n := topo.Nodes[name]
		if n == nil {
			t.Errorf("VM %s is not in the topology", name)
			continue
		}
		if role, err := nslab.RoleOf(n); err != nil || role != nslab.RoleVM {
			t.Errorf("node %s has role %q (%v), want vm", name, role, err)
		}
		exec := strings.Join(n.Exec, "\n")
		for _, want := range []string{
			"ip link set eth1 address " + v.MAC.String(),
			fmt.Sprintf("ip addr add %s/24 dev eth1", v.Addr4),
		} {
			if !strings.Contains(exec, want) {
				t.Errorf("VM %s's exec lines lack %q", name, want)
			}
		}
		if v.Addr6.IsValid() && !strings.Contains(exec, fmt.Sprintf("ip addr add %s/64 dev eth1", v.Addr6)) {
			t.Errorf("VM %s's exec lines lack its IPv6 address %s", name, v.Addr6)
		}
		var ports []string
		for _, l := range topo.Links {
			if l.B.Node == name && l.B.Interface == vmIface {
				ports = append(ports, l.A.String())
			}
		}
		if want := []string{v.Home + ":" + v.Port}; !slices.Equal(ports, want) {
			t.Errorf("VM %s is linked to %v, want %v", name, ports, want)
		}
	}
	for _, name := range []string{twosite.Leaf1, twosite.Leaf2, twosite.HV1, twosite.HV2, twosite.Client} {
		if topo.Nodes[name] == nil {
			t.Errorf("node %s missing", name)
		}
	}
}

func TestRoamdConfigsMatchTheLab(t *testing.T) {
	for _, hv := range []string{twosite.HV1, twosite.HV2} {
		cfg := labtest.LoadRoamdConfig(t, hv)
		if cfg.RouterID != twosite.Loopbacks[hv] || cfg.ASN != twosite.ASN[hv] {
			t.Errorf("%s: router_id %s asn %d, want %s and %d", hv, cfg.RouterID, cfg.ASN, twosite.Loopbacks[hv], twosite.ASN[hv])
		}
		if cfg.Metrics.Listen != MetricsAddr {
			t.Errorf("%s: metrics.listen %q, want %q", hv, cfg.Metrics.Listen, MetricsAddr)
		}
		if cfg.BGP.GracefulRestart == 0 {
			t.Errorf("%s: graceful restart is off", hv)
		}
		for name, v := range VMs {
			tn := cfg.TenantForPort(v.Port)
			if tn == nil || tn.Name != v.Tenant {
				t.Errorf("%s: port %s of %s belongs to %+v, want tenant %s", hv, v.Port, name, tn, v.Tenant)
				continue
			}
			if !slices.ContainsFunc(tn.Prefixes, func(p netip.Prefix) bool { return p.Contains(v.Addr4) }) {
				t.Errorf("%s: %s's address %s is outside tenant %s's prefixes", hv, name, v.Addr4, tn.Name)
			}
			if v.Tenant == TenantBlue && tn.Table != BlueTable {
				t.Errorf("%s: tenant blue's table is %d, want %d", hv, tn.Table, BlueTable)
			}
			if v.Tenant == TenantDefault && !slices.Equal(tn.Prefixes, MobilityPrefixes) {
				t.Errorf("%s: tenant default's prefixes %v, want %v", hv, tn.Prefixes, MobilityPrefixes)
			}
		}
	}
}

func TestParseLeafPaths(t *testing.T) {
	// Trimmed from FRR 8.4's `show bgp ipv4 unicast json` on leaf1, with a
	// path kept as stale while a roamd restarted.
	text := `{"vrfId": 0, "routerId": "192.0.2.1",
 "routes": { "10.10.0.10/32": [{"valid":true,"bestpath":true,"peerId":"198.51.100.3","path":"65011","stale":true,"nexthops":[{"ip":"198.51.100.3"}]}],
 "10.10.0.22/32": [{"valid":true,"bestpath":true,"peerId":"198.51.100.1","path":"65002 65012","nexthops":[{"ip":"198.51.100.1"}]},
                   {"valid":true,"peerId":"198.51.100.3","path":"65011","nexthops":[{"ip":"198.51.100.3"}]}],
 "192.0.2.1/32": [{"valid":true,"bestpath":true,"peerId":"(unspec)","path":"","nexthops":[{"ip":"0.0.0.0"}]}] } }`
	got, err := parseLeafPaths(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []LeafPath{
		{Prefix: netip.MustParsePrefix("10.10.0.10/32"), OriginAS: 65011, Peer: netip.MustParseAddr("198.51.100.3"), Best: true, Stale: true},
		{Prefix: netip.MustParsePrefix("10.10.0.22/32"), OriginAS: 65012, Peer: netip.MustParseAddr("198.51.100.1"), Best: true},
		{Prefix: netip.MustParsePrefix("10.10.0.22/32"), OriginAS: 65011, Peer: netip.MustParseAddr("198.51.100.3")},
		{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Best: true},
	}
	opts := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	pfx := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	sortPaths := func(ps []LeafPath) {
		slices.SortStableFunc(ps, func(a, b LeafPath) int {
			if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
				return c
			}
			return int(b.OriginAS) - int(a.OriginAS)
		})
	}
	sortPaths(got)
	if diff := cmp.Diff(want, got, opts, pfx); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if _, err := parseLeafPaths("not json"); err == nil {
		t.Error("parsing garbage succeeded")
	}
}

func TestTable(t *testing.T) {
	ins := []*Injection{
		{Fault: KillIdle, Converged: 5e9, Watch: &WatchReport{Reinstalls: 2}},
		{Fault: KillIdle, Converged: 9e9, Watch: &WatchReport{Withdrawals: []string{"leaf1 10.10.0.21/32: gone"}}},
		{Fault: KillIdle, Converged: 7e9, Watch: &WatchReport{}},
		{Fault: DeletePort, Converged: 2e9, Violations: []Violation{
			{Kind: "lost", VM: "vm", Node: "leaf1"}, {Kind: "lost", VM: "vm", Node: "leaf2"}, {Kind: "stale", VM: "vm", Node: "hv2"}}},
	}
	got := Table([]Fault{KillIdle, DeletePort}, ins)
	want := []Row{
		{Fault: KillIdle, Injections: 3, LeafWithdrawals: 1, Reinstalls: 2, Watched: 3, ConvergedMedian: 7e9, ConvergedMax: 9e9},
		{Fault: DeletePort, Injections: 1, HostsLost: 1, StaleRoutes: 1, ConvergedMedian: 2e9, ConvergedMax: 2e9},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}
