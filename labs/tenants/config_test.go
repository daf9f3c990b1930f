package tenants

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
)

// The lab's files must agree with each other and with the address plan the
// tests and README rely on; a typo here would only show as a lab that never
// converges, or worse, as tenants that meet.

func TestTopologyRolesAndLinks(t *testing.T) {
	topo := labtest.LoadTopology(t, TopologyFile)
	want := map[string]nslab.Role{HV1: nslab.RoleRoamd, HV2: nslab.RoleRoamd, Underlay: nslab.RoleHost, RedStandby: nslab.RoleVM}
	for _, tn := range Tenants {
		want[tn.Leaf(1)], want[tn.Leaf(2)] = nslab.RoleFRR, nslab.RoleFRR
		want[tn.Client], want[tn.VM] = nslab.RoleHost, nslab.RoleVM
	}
	labtest.CheckTopology(t, topo, want)

	// Each tenant's uplink on each hypervisor leads to that tenant's leaf
	// above it, and each VM's port starts where the plan says.
	links := map[string]string{}
	for _, l := range topo.Links {
		links[l.A.String()], links[l.B.String()] = l.B.String(), l.A.String()
	}
	for _, tn := range Tenants {
		for _, hv := range Hypervisors {
			if got, want := links[hv+":"+tn.UplinkDev], tn.LeafAbove(hv)+":eth2"; got != want {
				t.Errorf("%s:%s (%s's uplink) leads to %q, want %s", hv, tn.UplinkDev, tn.Name, got, want)
			}
		}
		if got, want := links[tn.Home+":"+tn.Port], tn.VM+":eth1"; got != want {
			t.Errorf("%s:%s leads to %q, want %s", tn.Home, tn.Port, got, want)
		}
	}
	if got, want := links[HV2+":"+RedStandbyPort], RedStandby+":eth1"; got != want {
		t.Errorf("%s:%s leads to %q, want %s", HV2, RedStandbyPort, got, want)
	}
}

func TestRoamdConfigsLoadAndMatchThePlan(t *testing.T) {
	for _, hv := range Hypervisors {
		cfg := labtest.LoadRoamdConfig(t, hv)
		if cfg.RouterID != RouterIDs[hv] || cfg.ASN != ASN[hv] {
			t.Errorf("%s: router_id %s AS %d, want %s AS %d", hv, cfg.RouterID, cfg.ASN, RouterIDs[hv], ASN[hv])
		}
		if cfg.Forwarding.NotifyPort == 0 || cfg.Safety.FreezeMoves < 100 {
			t.Errorf("%s: notifications off or freezing after %d moves", hv, cfg.Safety.FreezeMoves)
		}
		if len(cfg.Tenants) != len(Tenants) {
			t.Fatalf("%s has %d tenants, want %d", hv, len(cfg.Tenants), len(Tenants))
		}
		for _, tn := range Tenants {
			c := cfg.Tenant(tn.Name)
			if c == nil {
				t.Errorf("%s has no tenant %s", hv, tn.Name)
				continue
			}
			if c.ID != tn.ID || c.Table != tn.Table || !slices.Equal(c.Uplinks, []string{tn.UplinkDev}) {
				t.Errorf("%s tenant %s: id %d table %d uplinks %v, want %d, %d, [%s]", hv, tn.Name, c.ID, c.Table, c.Uplinks, tn.ID, tn.Table, tn.UplinkDev)
			}
			if c.IPv6NextHop != tn.Uplink6[hv] {
				t.Errorf("%s tenant %s: ipv6_next_hop %s, want its uplink address %s", hv, tn.Name, c.IPv6NextHop, tn.Uplink6[hv])
			}
			if !c.Contains(VMAddr) || !c.Contains(VMAddr6) || !c.Contains(FloatingAddr) {
				t.Errorf("%s tenant %s: the VM addresses are outside the mobility prefixes %v", hv, tn.Name, c.Prefixes)
			}
			if got := cfg.TenantForPort(tn.Port); got == nil || got.Name != tn.Name {
				t.Errorf("%s: port %s belongs to %v, want %s", hv, tn.Port, got, tn.Name)
			}
			if len(c.Peers) != 1 {
				t.Errorf("%s tenant %s: want one peer (its leaf), have %d", hv, tn.Name, len(c.Peers))
				continue
			}
			p := c.Peers[0]
			if p.LocalAddress != tn.Uplink[hv] || !slices.Contains(p.Families, config.FamilyIPv6) {
				t.Errorf("%s tenant %s: peer from %s families %v, want from %s with IPv6", hv, tn.Name, p.LocalAddress, p.Families, tn.Uplink[hv])
			}

			// The tenant's leaf peers with this uplink address in the
			// hypervisor's AS and sends it all paths in both families.
			up := tn.Uplink[hv].String()
			frr := labtest.CheckFileHas(t, filepath.Join(tn.LeafAbove(hv), "frr.conf"),
				fmt.Sprintf("router bgp %d", p.ASN),
				fmt.Sprintf("neighbor %s remote-as %d", up, cfg.ASN),
				fmt.Sprintf("ip address %s/31", p.Address),
			)
			if n := strings.Count(frr, "neighbor "+up+" addpath-tx-all-paths"); n != 2 {
				t.Errorf("%s/frr.conf sends %s all paths in %d address families, want 2 (IPv4 and IPv6)", tn.LeafAbove(hv), up, n)
			}
		}
		if got := cfg.TenantForPort(RedStandbyPort); got == nil || got.Name != Red.Name {
			t.Errorf("%s: port %s belongs to %v, want red", hv, RedStandbyPort, got)
		}
	}
}
