package bgp

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// globalRIB is the name GoBGP gives the assignment point of the global
// import and export policies.
const globalRIB = "global"

// installPolicies sets GoBGP's global policies:
//
// Import accepts only our own paths. Learned paths are claims, which the
// speaker takes from the paths as received (with its own filter, see
// Speaker.onPaths): rejecting them keeps them out of GoBGP's global RIB,
// so GoBGP holds each one once (its Adj-RIB-In) and runs neither best
// path selection nor the export policy for them.
//
// Export accepts only locally originated paths, so roamd never carries a
// path from one leaf to another. /128 paths on IPv4 sessions get the
// configured IPv6 next hop: a local path's next hop is still the
// session's local address when the export policy runs, so "next hop
// inside 0.0.0.0/0" selects exactly the IPv4 sessions.
func installPolicies(ctx context.Context, s *server.BgpServer, v6NextHop netip.Addr) error {
	local := &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL}
	accept := &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT}

	imp := &api.Policy{Name: "roamd-import", Statements: []*api.Statement{
		{Name: "roamd-import-local", Conditions: local, Actions: accept},
	}}

	exp := &api.Policy{Name: "roamd-export"}
	if v6NextHop.IsValid() {
		exp.Statements = append(exp.Statements, &api.Statement{
			Name: "roamd-export-v6-over-v4",
			Conditions: &api.Conditions{
				RouteType:     api.Conditions_ROUTE_TYPE_LOCAL,
				AfiSafiIn:     []*api.Family{{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}},
				NextHopInList: []string{"0.0.0.0/0"},
			},
			Actions: &api.Actions{
				RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
				Nexthop:     &api.NexthopAction{Address: v6NextHop.String()},
			},
		})
	}
	exp.Statements = append(exp.Statements, &api.Statement{Name: "roamd-export-local", Conditions: local, Actions: accept})

	for _, pa := range []struct {
		policy *api.Policy
		dir    api.PolicyDirection
	}{{imp, api.PolicyDirection_POLICY_DIRECTION_IMPORT}, {exp, api.PolicyDirection_POLICY_DIRECTION_EXPORT}} {
		if err := s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pa.policy}); err != nil {
			return fmt.Errorf("adding policy %s: %w", pa.policy.Name, err)
		}
		if err := s.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name:          globalRIB,
			Direction:     pa.dir,
			Policies:      []*api.Policy{{Name: pa.policy.Name}},
			DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
		}}); err != nil {
			return fmt.Errorf("assigning policy %s: %w", pa.policy.Name, err)
		}
	}
	return nil
}
