package twosite

import (
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
)

// The lab's files must agree with each other and with the address plan the
// tests and README rely on; a typo here would only show as a lab that never
// converges.

func TestTopologyRolesAndLinks(t *testing.T) {
	labtest.CheckTopology(t, labtest.LoadTopology(t, TopologyFile), map[string]nslab.Role{
		Leaf1: nslab.RoleFRR, Leaf2: nslab.RoleFRR, HV1: nslab.RoleRoamd, HV2: nslab.RoleRoamd, Client: nslab.RoleHost, VM: nslab.RoleVM,
	})
}

func TestRoamdConfigsLoadAndMatchThePlan(t *testing.T) {
	var gatewayMACs []string
	for _, hv := range []string{HV1, HV2} {
		cfg := labtest.LoadRoamdConfig(t, hv)
		if cfg.RouterID != Loopbacks[hv] {
			t.Errorf("%s router_id %s, want its loopback %s", hv, cfg.RouterID, Loopbacks[hv])
		}
		gatewayMACs = append(gatewayMACs, cfg.GatewayMAC.String())
		if len(cfg.Tenants) != 1 || len(cfg.Tenants[0].Peers) != 1 {
			t.Fatalf("%s: want one tenant with one peer (its leaf)", hv)
		}
		tn := cfg.Tenants[0]
		p := tn.Peers[0]
		if p.LocalAddress != Uplink[hv] {
			t.Errorf("%s peers from %s, want its uplink %s", hv, p.LocalAddress, Uplink[hv])
		}
		if !tn.Contains(VMAddr) || !tn.Contains(VMAddr6) {
			t.Errorf("%s: the VM's addresses are outside the mobility prefixes %v", hv, tn.Prefixes)
		}
		if matched := cfg.TenantForPort("tapvm1"); matched == nil {
			t.Errorf("%s does not treat tapvm1 as a VM port", hv)
		}
		if cfg.Safety.FreezeMoves < 100 {
			t.Errorf("%s freezes the VM after %d moves; the lab moves it many times", hv, cfg.Safety.FreezeMoves)
		}
		if cfg.Forwarding.NotifyPort != 4790 {
			t.Errorf("%s notify_port %d, want 4790", hv, cfg.Forwarding.NotifyPort)
		}

		// The leaf's config peers with this hypervisor's uplink address
		// in the right AS, sends it all paths and routes its loopback.
		labtest.CheckFileHas(t, filepath.Join(LeafOf[hv], "frr.conf"),
			"neighbor "+Uplink[hv].String()+" remote-as "+itoa(cfg.ASN),
			"neighbor "+Uplink[hv].String()+" addpath-tx-all-paths",
			"ip route "+netip.PrefixFrom(Loopbacks[hv], 32).String()+" "+Uplink[hv].String(),
			"router bgp "+itoa(p.ASN),
		)
	}
	if gatewayMACs[0] != gatewayMACs[1] {
		t.Errorf("gateway MACs differ: %v; the anycast gateway needs one MAC everywhere", gatewayMACs)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
