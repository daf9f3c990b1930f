package nslab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// PollInterval is how often Poll re-checks a condition.
const PollInterval = 50 * time.Millisecond

// Poll calls cond every PollInterval until it reports done or ctx ends. cond
// also returns what it saw, so a timeout says how far things got; an error
// from cond counts as "not yet" (daemons answer errors while they start) and
// is reported as seen, unless it is wrapped by Abort, which ends the wait at
// once. ctx should carry a deadline.
func Poll(ctx context.Context, what string, cond func(context.Context) (done bool, seen string, err error)) error {
	return PollEvery(ctx, PollInterval, what, cond)
}

// PollEvery is Poll calling cond every interval.
func PollEvery(ctx context.Context, every time.Duration, what string, cond func(context.Context) (done bool, seen string, err error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	var seen string
	for {
		ok, s, err := cond(ctx)
		var abort abortError
		if errors.As(err, &abort) {
			return fmt.Errorf("waiting for %s: %w", what, abort.err)
		}
		if err != nil {
			s = err.Error()
		}
		if ok {
			return nil
		}
		if ctx.Err() == nil {
			// A check cut short by the deadline says nothing new.
			seen = s
		}
		select {
		case <-ctx.Done():
			if seen != "" {
				return fmt.Errorf("waiting for %s: %w (last seen: %s)", what, context.Cause(ctx), seen)
			}
			return fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Abort wraps an error that makes Poll give up at once: the condition can
// no longer become true (a daemon exited).
func Abort(err error) error { return abortError{err} }

type abortError struct{ err error }

func (e abortError) Error() string { return e.err.Error() }
func (e abortError) Unwrap() error { return e.err }

// BGPPeer is one neighbour in FRR's BGP summary.
type BGPPeer struct {
	Address  netip.Addr
	Family   string // ipv4Unicast, ipv6Unicast
	RemoteAS uint32
	State    string
	PfxRcd   int
}

// BGPSummary returns an FRR node's BGP neighbours per address family.
func (l *Lab) BGPSummary(ctx context.Context, node string) ([]BGPPeer, error) {
	out, err := l.Vtysh(ctx, node, "show bgp summary json")
	if err != nil {
		return nil, err
	}
	var sum map[string]struct {
		Peers map[string]struct {
			RemoteAS uint32 `json:"remoteAs"`
			State    string `json:"state"`
			PfxRcd   int    `json:"pfxRcd"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		return nil, fmt.Errorf("parsing BGP summary of %s: %w", node, err)
	}
	var peers []BGPPeer
	for fam, s := range sum {
		for addr, p := range s.Peers {
			a, err := netip.ParseAddr(addr)
			if err != nil {
				continue // an interface-named neighbour
			}
			peers = append(peers, BGPPeer{Address: a, Family: fam, RemoteAS: p.RemoteAS, State: p.State, PfxRcd: p.PfxRcd})
		}
	}
	slices.SortFunc(peers, func(a, b BGPPeer) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return strings.Compare(a.Family, b.Family)
	})
	return peers, nil
}

// WaitBGP waits until the FRR node's sessions with the given neighbours (all
// of its neighbours when none is given) are established in every family.
func (l *Lab) WaitBGP(ctx context.Context, node string, neighbours ...netip.Addr) error {
	what := "BGP sessions of " + node + " established"
	return Poll(ctx, what, func(ctx context.Context) (bool, string, error) {
		peers, err := l.BGPSummary(ctx, node)
		if err != nil {
			return false, "", err
		}
		var down []string
		found := map[netip.Addr]bool{}
		for _, p := range peers {
			found[p.Address] = true
			if len(neighbours) > 0 && !slices.Contains(neighbours, p.Address) {
				continue
			}
			if p.State != "Established" {
				down = append(down, fmt.Sprintf("%s(%s) %s", p.Address, p.Family, p.State))
			}
		}
		for _, want := range neighbours {
			if !found[want] {
				down = append(down, want.String()+" not configured")
			}
		}
		if len(peers) == 0 {
			down = append(down, "no neighbours yet")
		}
		return len(down) == 0, strings.Join(down, ", "), nil
	})
}

// Route is an FRR RIB entry for one prefix.
type Route struct {
	Protocol  string
	Selected  bool
	Installed bool
	NextHops  []netip.Addr // active next hops with an address
}

// Routes returns an FRR node's RIB entries for exactly prefix.
func (l *Lab) Routes(ctx context.Context, node string, prefix netip.Prefix) ([]Route, error) {
	family := "ip"
	if prefix.Addr().Is6() {
		family = "ipv6"
	}
	out, err := l.Vtysh(ctx, node, fmt.Sprintf("show %s route %s json", family, prefix.Masked()))
	if err != nil {
		return nil, err
	}
	var rib map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
		NextHops  []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &rib); err != nil {
		return nil, fmt.Errorf("parsing routes of %s for %s: %w", node, prefix, err)
	}
	var routes []Route
	for _, e := range rib[prefix.Masked().String()] {
		r := Route{Protocol: e.Protocol, Selected: e.Selected, Installed: e.Installed}
		for _, nh := range e.NextHops {
			if a, err := netip.ParseAddr(nh.IP); err == nil && nh.Active {
				r.NextHops = append(r.NextHops, a)
			}
		}
		routes = append(routes, r)
	}
	return routes, nil
}

func describeRoutes(rs []Route) string {
	if len(rs) == 0 {
		return "no route"
	}
	var parts []string
	for _, r := range rs {
		s := r.Protocol
		if r.Selected {
			s += " selected"
		}
		if r.Installed {
			s += " installed"
		}
		parts = append(parts, fmt.Sprintf("%s via %v", s, r.NextHops))
	}
	return strings.Join(parts, "; ")
}

// WaitRoute waits until the FRR node's selected, installed route for
// exactly prefix goes via nextHop (among its active next hops).
func (l *Lab) WaitRoute(ctx context.Context, node string, prefix netip.Prefix, nextHop netip.Addr) error {
	what := fmt.Sprintf("%s route %s via %s", node, prefix, nextHop)
	return Poll(ctx, what, func(ctx context.Context) (bool, string, error) {
		rs, err := l.Routes(ctx, node, prefix)
		if err != nil {
			return false, "", err
		}
		for _, r := range rs {
			if r.Selected && r.Installed && slices.Contains(r.NextHops, nextHop) {
				return true, "", nil
			}
		}
		return false, describeRoutes(rs), nil
	})
}

// WaitNoRoute waits until the FRR node has no route for exactly prefix.
func (l *Lab) WaitNoRoute(ctx context.Context, node string, prefix netip.Prefix) error {
	return Poll(ctx, fmt.Sprintf("%s without a route for %s", node, prefix), func(ctx context.Context) (bool, string, error) {
		rs, err := l.Routes(ctx, node, prefix)
		if err != nil {
			return false, "", err
		}
		return len(rs) == 0, describeRoutes(rs), nil
	})
}

// BGPPath is one path in an FRR node's BGP table.
type BGPPath struct {
	// Peer is the neighbour the path came from; invalid for a local path.
	Peer     netip.Addr
	RouterID netip.Addr
	ASPath   string
	NextHops []netip.Addr
	Best     bool
	Valid    bool
	// ExtCommunities is FRR's rendering of the path's extended
	// communities, e.g. "SoO:192.0.2.11:100".
	ExtCommunities string
}

// BGPPaths returns the paths an FRR node holds for exactly prefix.
func (l *Lab) BGPPaths(ctx context.Context, node string, prefix netip.Prefix) ([]BGPPath, error) {
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	out, err := l.Vtysh(ctx, node, fmt.Sprintf("show bgp %s unicast %s json", afi, prefix.Masked()))
	if err != nil {
		return nil, err
	}
	var entry struct {
		Paths []struct {
			ASPath struct {
				String string `json:"string"`
			} `json:"aspath"`
			Valid    bool `json:"valid"`
			BestPath *struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
			NextHops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
			ExtCommunity struct {
				String string `json:"string"`
			} `json:"extendedCommunity"`
			Peer struct {
				PeerID   string `json:"peerId"`
				RouterID string `json:"routerId"`
			} `json:"peer"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &entry); err != nil {
		return nil, fmt.Errorf("parsing BGP paths of %s for %s: %w", node, prefix, err)
	}
	var paths []BGPPath
	for _, p := range entry.Paths {
		bp := BGPPath{ASPath: p.ASPath.String, Valid: p.Valid, Best: p.BestPath != nil && p.BestPath.Overall, ExtCommunities: p.ExtCommunity.String}
		bp.Peer, _ = netip.ParseAddr(p.Peer.PeerID)
		bp.RouterID, _ = netip.ParseAddr(p.Peer.RouterID)
		for _, nh := range p.NextHops {
			if a, err := netip.ParseAddr(nh.IP); err == nil {
				bp.NextHops = append(bp.NextHops, a)
			}
		}
		paths = append(paths, bp)
	}
	return paths, nil
}

// WaitNoPathFrom waits until the FRR node holds no path for prefix learned
// from peer (the peer withdrew it).
func (l *Lab) WaitNoPathFrom(ctx context.Context, node string, prefix netip.Prefix, peer netip.Addr) error {
	what := fmt.Sprintf("%s without a path for %s from %s", node, prefix, peer)
	return Poll(ctx, what, func(ctx context.Context) (bool, string, error) {
		ps, err := l.BGPPaths(ctx, node, prefix)
		if err != nil {
			return false, "", err
		}
		var seen []string
		from := false
		for _, p := range ps {
			seen = append(seen, fmt.Sprintf("from %s as-path %q", p.Peer, p.ASPath))
			if p.Peer == peer {
				from = true
			}
		}
		return !from, strings.Join(seen, "; "), nil
	})
}

// WaitRoamdHost waits until roamd on node holds addr (in any tenant) in
// state, and returns the host as roamctl last printed it.
func (l *Lab) WaitRoamdHost(ctx context.Context, node string, addr netip.Addr, state string) (RoamdHost, error) {
	var got RoamdHost
	what := fmt.Sprintf("roamd on %s holding %s %s", node, addr, state)
	err := Poll(ctx, what, func(ctx context.Context) (bool, string, error) {
		hs, err := l.RoamdHosts(ctx, node)
		if err != nil {
			return false, "", err
		}
		for _, h := range hs {
			if h.Address == addr {
				got = h
				return h.State == state, fmt.Sprintf("%s %s port %q seq %d", h.Address, h.State, h.Port, h.Sequence), nil
			}
		}
		return false, "not in the host table", nil
	})
	return got, err
}

// WaitRoamdReady waits until roamd on node answers on its API socket.
func (l *Lab) WaitRoamdReady(ctx context.Context, node string) error {
	d := l.roamdOf(node)
	return Poll(ctx, "roamd on "+node+" answering on its API socket", func(ctx context.Context) (bool, string, error) {
		if d != nil && d.exited() {
			return false, "", Abort(fmt.Errorf("roamd exited: %v; log %s:\n%s", d.err, d.logPath, tail(d.logPath, 20)))
		}
		_, err := l.RoamdHosts(ctx, node)
		return err == nil, "", err
	})
}

// Advertised returns the AS paths an FRR node has advertised to neighbour
// for exactly prefix (its adj-RIB-out).
func (l *Lab) Advertised(ctx context.Context, node string, neighbour netip.Addr, prefix netip.Prefix) ([]string, error) {
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	out, err := l.Vtysh(ctx, node, fmt.Sprintf("show bgp %s unicast neighbors %s advertised-routes json", afi, neighbour))
	if err != nil {
		return nil, err
	}
	var adv struct {
		Routes map[string]struct {
			Path string `json:"path"`
		} `json:"advertisedRoutes"`
	}
	if err := json.Unmarshal([]byte(out), &adv); err != nil {
		return nil, fmt.Errorf("parsing routes %s advertised to %s: %w", node, neighbour, err)
	}
	var paths []string
	for p, r := range adv.Routes {
		if p == prefix.Masked().String() {
			paths = append(paths, r.Path)
		}
	}
	return paths, nil
}

// WaitAdvertised waits until the FRR node has advertised prefix to
// neighbour with an AS path that originates in originAS: the neighbour has
// been told of that AS's route.
func (l *Lab) WaitAdvertised(ctx context.Context, node string, neighbour netip.Addr, prefix netip.Prefix, originAS uint32) error {
	what := fmt.Sprintf("%s advertising %s from AS %d to %s", node, prefix, originAS, neighbour)
	suffix := fmt.Sprint(originAS)
	return Poll(ctx, what, func(ctx context.Context) (bool, string, error) {
		paths, err := l.Advertised(ctx, node, neighbour, prefix)
		if err != nil {
			return false, "", err
		}
		for _, p := range paths {
			f := strings.Fields(p)
			if len(f) > 0 && f[len(f)-1] == suffix {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("advertised paths %q", paths), nil
	})
}

// SelectedVia reports whether one of the routes is selected and has nextHop
// among its active next hops.
func SelectedVia(rs []Route, nextHop netip.Addr) bool {
	return slices.ContainsFunc(rs, func(r Route) bool { return r.Selected && slices.Contains(r.NextHops, nextHop) })
}

// WaitBestFrom waits until the FRR node's best BGP path for prefix comes
// from peer and the node has installed a BGP route for it. An IPv6 route
// learned over an IPv6 session goes via the peer's link-local address, so
// there the next hop alone (WaitRoute) does not name the peer.
func (l *Lab) WaitBestFrom(ctx context.Context, node string, prefix netip.Prefix, peer netip.Addr) error {
	what := fmt.Sprintf("%s route %s from %s", node, prefix, peer)
	return Poll(ctx, what, func(ctx context.Context) (bool, string, error) {
		ps, err := l.BGPPaths(ctx, node, prefix)
		if err != nil {
			return false, "", err
		}
		var seen []string
		best := false
		for _, p := range ps {
			seen = append(seen, fmt.Sprintf("from %s best %v", p.Peer, p.Best))
			best = best || (p.Best && p.Peer == peer)
		}
		if !best {
			return false, strings.Join(seen, "; "), nil
		}
		rs, err := l.Routes(ctx, node, prefix)
		if err != nil {
			return false, "", err
		}
		installed := slices.ContainsFunc(rs, func(r Route) bool { return r.Protocol == "bgp" && r.Selected && r.Installed })
		return installed, "best path from " + peer.String() + ", routes: " + describeRoutes(rs), nil
	})
}
