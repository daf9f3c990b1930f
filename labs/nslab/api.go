package nslab

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/roamd/roamd/daemon/api"
)

// apiClients are the lab's clients of roamd's API, one per node.
type apiClients struct {
	mu sync.Mutex
	m  map[string]*api.Client
}

// API returns a client of roamd's API on node, the same one for the lab's
// lifetime: it keeps its connection open, so a call (an orchestrator's
// hint) costs a round trip, as it would in production. Roamctl runs the
// command line instead, as an operator would.
func (l *Lab) API(node string) (*api.Client, error) {
	n, err := l.nodeWithRole(node, RoleRoamd)
	if err != nil {
		return nil, fmt.Errorf("roamd's API: %w", err)
	}
	l.apis.mu.Lock()
	defer l.apis.mu.Unlock()
	c := l.apis.m[node]
	if c == nil {
		if l.apis.m == nil {
			l.apis.m = map[string]*api.Client{}
		}
		c = api.NewClient(n.APISocket)
		l.apis.m[node] = c
	}
	return c, nil
}

// WaitRoamdPort waits until roamd on node manages port as a VM port (it has
// taken it: anycast gateway MAC, proxy ARP, capture open).
func (l *Lab) WaitRoamdPort(ctx context.Context, node, port string) error {
	c, err := l.API(node)
	if err != nil {
		return err
	}
	return Poll(ctx, "roamd on "+node+" managing port "+port, func(ctx context.Context) (bool, string, error) {
		st, err := c.Status(ctx)
		if err != nil {
			return false, "", err
		}
		var ports []string
		for _, p := range st.Ports {
			ports = append(ports, p.Name)
		}
		return slices.Contains(ports, port), fmt.Sprintf("ports %v", ports), nil
	})
}
