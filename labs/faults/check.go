package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// Violation is one thing the lab holds that contradicts where the VMs run.
type Violation struct {
	// Kind is "lost" (a VM's route or reachability is missing where it
	// runs) or "stale" (a route where the VM does not run).
	Kind string
	VM   string
	// Node is where the violation was seen.
	Node string
	What string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s %s at %s: %s", v.Kind, v.VM, v.Node, v.What)
}

// Locations returns the hypervisor each routed VM runs on ("" when its
// port is parked or gone).
func (l *Lab) Locations() (map[string]string, error) {
	out := map[string]string{}
	for _, name := range RoutedVMs {
		hv, err := l.PortLocation(name)
		if err != nil && !strings.Contains(err.Error(), "exactly one link") {
			return nil, err
		}
		out[name] = hv
	}
	return out, nil
}

// Check compares, once, what the leaves and the hypervisors hold with where
// each routed VM runs: every leaf has paths for the VM's /32 and /128 only
// from the VM's hypervisor (and none when it runs nowhere); the VM's
// hypervisor has roamd's kernel routes for it on its port and roamd
// announces it; the other hypervisor has neither; the client reaches it.
func (l *Lab) Check(ctx context.Context) ([]Violation, error) {
	loc, err := l.Locations()
	if err != nil {
		return nil, err
	}
	var vs []Violation
	owner := map[netip.Prefix]string{} // prefix → VM
	for _, name := range RoutedVMs {
		for _, p := range VMs[name].Prefixes() {
			owner[p] = name
		}
	}

	for _, leaf := range []string{twosite.Leaf1, twosite.Leaf2} {
		paths, err := l.LeafPaths(ctx, leaf)
		if err != nil {
			return nil, err
		}
		seen := map[netip.Prefix]bool{}
		for _, p := range paths {
			vm, ok := owner[p.Prefix]
			if !ok {
				if inMobility(p.Prefix) {
					vs = append(vs, Violation{"stale", "?", leaf, fmt.Sprintf("path for %s (no VM has it) from AS %d", p.Prefix, p.OriginAS)})
				}
				continue
			}
			want := loc[vm]
			if want == "" || p.OriginAS != twosite.ASN[want] {
				vs = append(vs, Violation{"stale", vm, leaf, fmt.Sprintf("path for %s originated by AS %d (the VM runs on %q)", p.Prefix, p.OriginAS, want)})
				continue
			}
			seen[p.Prefix] = true
		}
		for p, vm := range owner {
			if loc[vm] != "" && !seen[p] {
				vs = append(vs, Violation{"lost", vm, leaf, fmt.Sprintf("no path for %s from %s", p, loc[vm])})
			}
		}
	}

	for _, hv := range []string{twosite.HV1, twosite.HV2} {
		routes, err := l.RoamdRoutes(hv)
		if err != nil {
			return nil, err
		}
		hosts, err := l.RoamdHosts(ctx, hv)
		if err != nil {
			return nil, fmt.Errorf("roamd on %s: %w", hv, err)
		}
		announced := map[netip.Addr]nslab.RoamdHost{}
		for _, h := range hosts {
			if h.Tenant == TenantDefault && h.State == "announced" {
				announced[h.Address] = h
			}
		}
		client, err := l.API(hv)
		if err != nil {
			return nil, err
		}
		for p, vm := range owner {
			r, has := routes[p]
			h, ann := announced[p.Addr()]
			if other := loc[vm]; other != "" && other != hv {
				// Every roamd must see the other sites' claims (ADD-PATH):
				// a RARP from a VM arriving here is claimed by the MAC they
				// carry, and a claim by another MAC is a conflict.
				if err := knowsClaim(ctx, client, p.Addr(), twosite.Loopbacks[other], VMs[vm].MAC); err != nil {
					vs = append(vs, Violation{"lost", vm, hv, err.Error()})
				}
			}
			if loc[vm] == hv {
				switch {
				case !has:
					vs = append(vs, Violation{"lost", vm, hv, fmt.Sprintf("no roamd route for %s", p)})
				case r.port != VMs[vm].Port:
					vs = append(vs, Violation{"lost", vm, hv, fmt.Sprintf("roamd route for %s is %s, want dev %s", p, r, VMs[vm].Port)})
				}
				if !ann || h.Port != VMs[vm].Port {
					vs = append(vs, Violation{"lost", vm, hv, fmt.Sprintf("roamd does not announce %s on %s", p.Addr(), VMs[vm].Port)})
				}
				continue
			}
			if has {
				vs = append(vs, Violation{"stale", vm, hv, fmt.Sprintf("roamd route for %s: %s", p, r)})
			}
			if ann {
				vs = append(vs, Violation{"stale", vm, hv, fmt.Sprintf("roamd announces %s on %s", p.Addr(), h.Port)})
			}
		}
	}

	client := l.Node(twosite.Client)
	for _, name := range RoutedVMs {
		if loc[name] == "" {
			continue
		}
		for _, p := range VMs[name].Prefixes() {
			if _, err := client.Run(ctx, "ping", "-n", "-c", "1", "-W", "1", p.Addr().String()); err != nil {
				vs = append(vs, Violation{"lost", name, twosite.Client, fmt.Sprintf("no answer from %s", p.Addr())})
			}
		}
	}
	return vs, nil
}

// knowsClaim returns an error unless roamd (client) holds origin's claim
// on addr with mac.
func knowsClaim(ctx context.Context, client *api.Client, addr, origin netip.Addr, mac net.HardwareAddr) error {
	d, err := client.Host(ctx, TenantDefault, addr.String())
	if err != nil {
		return fmt.Errorf("roamd knows no claim on %s: %w", addr, err)
	}
	var seen []string
	for _, c := range d.RemoteClaims {
		if c.Origin == origin.String() && c.MAC == mac.String() {
			return nil
		}
		seen = append(seen, c.Origin+" "+c.MAC)
	}
	return fmt.Errorf("roamd does not hold %s's claim on %s (claims: %v)", origin, addr, seen)
}

// WaitConverged polls Check until it finds nothing wrong, or returns the
// violations it last saw when ctx ends.
func (l *Lab) WaitConverged(ctx context.Context) error {
	_, err := l.Converge(ctx)
	return err
}

// Converge polls Check until it finds nothing wrong and returns how long
// that took; when ctx ends first, the error (a *NotConverged) lists what a
// last complete Check found still wrong.
func (l *Lab) Converge(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := nslab.Poll(ctx, "the lab to agree with where the VMs run", func(ctx context.Context) (bool, string, error) {
		vs, err := l.Check(ctx)
		if err != nil {
			return false, "", err
		}
		return len(vs) == 0, describe(vs), nil
	})
	if err == nil {
		return time.Since(start), nil
	}
	took := time.Since(start)
	// The deadline may have cut the last check short: check once more,
	// completely, to say what is wrong.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	vs, cerr := l.Check(fctx)
	if cerr != nil {
		return took, fmt.Errorf("%w; checking again: %w", err, cerr)
	}
	if len(vs) == 0 {
		return time.Since(start), nil
	}
	return took, &NotConverged{Violations: vs, err: err}
}

// NotConverged is Converge's error: what was still wrong at the deadline.
type NotConverged struct {
	Violations []Violation
	err        error
}

func (e *NotConverged) Error() string { return e.err.Error() }
func (e *NotConverged) Unwrap() error { return e.err }

func describe(vs []Violation) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	return strings.Join(s, "; ")
}

func inMobility(p netip.Prefix) bool {
	for _, m := range MobilityPrefixes {
		if m.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// LeafPath is one path in a leaf's BGP table.
type LeafPath struct {
	Prefix   netip.Prefix
	OriginAS uint32 // last AS of the AS path
	Peer     netip.Addr
	Best     bool
	Stale    bool
}

// LeafPaths returns every IPv4 and IPv6 unicast path a leaf holds for
// prefixes inside the mobility ranges.
func (l *Lab) LeafPaths(ctx context.Context, leaf string) ([]LeafPath, error) {
	var out []LeafPath
	for _, afi := range []string{"ipv4", "ipv6"} {
		text, err := l.Vtysh(ctx, leaf, "show bgp "+afi+" unicast json")
		if err != nil {
			return nil, err
		}
		paths, err := parseLeafPaths(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", leaf, err)
		}
		for _, p := range paths {
			if inMobility(p.Prefix) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// parseLeafPaths reads FRR's `show bgp <afi> unicast json`.
func parseLeafPaths(text string) ([]LeafPath, error) {
	var table struct {
		Routes map[string][]struct {
			Path     string `json:"path"`
			PeerID   string `json:"peerId"`
			BestPath bool   `json:"bestpath"`
			Stale    bool   `json:"stale"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(text), &table); err != nil {
		return nil, fmt.Errorf("parsing a BGP table: %w", err)
	}
	var out []LeafPath
	for prefix, paths := range table.Routes {
		pfx, err := netip.ParsePrefix(prefix)
		if err != nil {
			return nil, fmt.Errorf("BGP table prefix %q: %w", prefix, err)
		}
		for _, p := range paths {
			lp := LeafPath{Prefix: pfx, Best: p.BestPath, Stale: p.Stale}
			lp.Peer, _ = netip.ParseAddr(p.PeerID)
			if f := strings.Fields(p.Path); len(f) > 0 {
				fmt.Sscan(f[len(f)-1], &lp.OriginAS)
			}
			out = append(out, lp)
		}
	}
	slices.SortFunc(out, func(a, b LeafPath) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out, nil
}

// kernelRoute is one of roamd's kernel routes on a hypervisor.
type kernelRoute struct {
	port    string // local route: its device
	forward bool   // forwarding route (to another site)
	table   int
}

func (r kernelRoute) String() string {
	if r.forward {
		return fmt.Sprintf("forward (table %d)", r.table)
	}
	return fmt.Sprintf("dev %s (table %d)", r.port, r.table)
}

// RoamdRoutes returns roamd's own kernel routes (nslab.RoamdProtocol) on a
// hypervisor, in every table, by prefix.
func (l *Lab) RoamdRoutes(hv string) (map[netip.Prefix]kernelRoute, error) {
	n := l.Node(hv)
	rs, err := n.RoamdRoutes()
	if err != nil {
		return nil, err
	}
	out := map[netip.Prefix]kernelRoute{}
	for _, r := range rs {
		p, ok := nslab.RoutePrefix(r.Dst)
		if !ok {
			continue
		}
		kr := kernelRoute{table: r.Table}
		link, err := n.Handle.LinkByIndex(r.LinkIndex)
		if err == nil {
			kr.port = link.Attrs().Name
		}
		if _, ok := link.(*netlink.Vxlan); ok || r.Encap != nil {
			kr.forward = true
		}
		out[p] = kr
	}
	return out, nil
}
