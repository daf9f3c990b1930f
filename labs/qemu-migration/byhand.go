package qemumigration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// Policy routing the by-hand switch uses on each router: a table of its
// own and a rule ahead of every other (FRR and roamd touch neither).
const (
	byHandTable    = 4077
	byHandPriority = 100
)

// ByHand is the reference roamd is measured against: the ideal routing
// switch, made by hand at `pre-switchover` with no roamd involvement and no
// routing protocol on the way. Before the migration it prepares, in a table
// of its own on every router between the client and the destination, the
// guest's /32 toward the destination (the client's leaf via the other
// leaf, the destination's leaf via the destination, the destination via its
// tap), and readies the destination tap as roamd's arrive hint does (a
// permanent neighbour entry for the guest's MAC and one throwaway frame,
// which QEMU drops before the guest runs). At pre-switchover it adds the
// rules that select those tables, destination first, so the whole path
// flips within a fraction of a millisecond. What it still loses is what
// reaches the paused source between the pause and the switch: the floor of
// any switchover (about 2 probes at 1 kHz).
//
// roamd keeps running: after the guest resumes, the destination's roamd
// claims it on QEMU's RARP and the fabric converges underneath the rules;
// the fabric's Settled hook waits for the convergence, Settle records the
// claim, and Cleanup then removes the rules and tables. IPv4 only:
// the probe is. It knows the two-site fabric's routers (leaf of each
// hypervisor, their addresses), whichever routing daemon runs on them.
type ByHand struct{}

func (ByHand) Name() string                { return "by-hand switch (reference)" }
func (ByHand) PauseBeforeSwitchover() bool { return true }

// hop is one router's route toward the destination.
type hop struct {
	node  *nslab.Node
	route *netlink.Route
}

// byHandPath returns the routes the switch selects, destination first.
func byHandPath(m *Migration) ([]hop, error) {
	l := m.Lab
	dst := l.Net.Node(m.To)
	tap, err := dst.Handle.LinkByName(Tap)
	if err != nil {
		return nil, fmt.Errorf("finding %s on %s: %w", Tap, m.To, err)
	}
	guest := twosite.VMRoute
	dstLeaf := twosite.LeafOf[m.To]
	otherLeaf := twosite.LeafOf[m.From]
	ipnet := prefixNet(guest)
	return []hop{
		{dst, &netlink.Route{Dst: ipnet, LinkIndex: tap.Attrs().Index, Scope: netlink.SCOPE_LINK, Table: byHandTable}},
		{l.Net.Node(dstLeaf), &netlink.Route{Dst: ipnet, Gw: twosite.Uplink[m.To].AsSlice(), Table: byHandTable}},
		{l.Net.Node(otherLeaf), &netlink.Route{Dst: ipnet, Gw: twosite.InterLeaf[dstLeaf].AsSlice(), Table: byHandTable}},
	}, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func byHandRule(p netip.Prefix) *netlink.Rule {
	r := netlink.NewRule()
	r.Dst = prefixNet(p)
	r.Table = byHandTable
	r.Priority = byHandPriority
	r.Family = unix.AF_INET
	return r
}

// Prepare installs the tables and readies the destination tap.
func (ByHand) Prepare(ctx context.Context, m *Migration) error {
	hops, err := byHandPath(m)
	if err != nil {
		return err
	}
	for _, h := range hops {
		if err := h.node.Handle.RouteReplace(h.route); err != nil {
			return fmt.Errorf("by-hand route on %s: %w", h.node.Name, err)
		}
	}
	cfg := m.Lab.Image.Config
	dst := hops[0].node
	tap, err := dst.Handle.LinkByIndex(hops[0].route.LinkIndex)
	if err != nil {
		return err
	}
	neigh := &netlink.Neigh{LinkIndex: tap.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: cfg.Addr4.Addr().AsSlice(), HardwareAddr: cfg.MAC}
	if err := dst.Handle.NeighSet(neigh); err != nil {
		return fmt.Errorf("neighbour entry for the guest on %s: %w", m.To, err)
	}
	// The throwaway frame: a gratuitous ARP for the gateway, from the tap.
	var conn *packet.Conn
	err = dst.Do(func() error {
		var err error
		conn, err = packet.Listen(&net.Interface{Index: tap.Attrs().Index, Name: Tap, HardwareAddr: tap.Attrs().HardwareAddr}, packet.Raw, 0, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("opening a packet socket on %s in %s: %w", Tap, m.To, err)
	}
	defer conn.Close()
	frame := frames.GratuitousARP(tap.Attrs().HardwareAddr, cfg.Gateway4)
	if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
		return fmt.Errorf("sending the throwaway frame into %s on %s: %w", Tap, m.To, err)
	}
	return nil
}

// Switch adds the rules, destination first: one netlink request per router
// and nothing else on the way.
func (ByHand) Switch(ctx context.Context, m *Migration) error {
	fabric := m.Lab.Net
	for _, name := range []string{m.To, twosite.LeafOf[m.To], twosite.LeafOf[m.From]} {
		if err := fabric.Node(name).Handle.RuleAdd(byHandRule(twosite.VMRoute)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("by-hand rule on %s: %w", name, err)
		}
	}
	return nil
}

// Settle records roamd's claim on the RARP (RecordRoamdArrival).
func (ByHand) Settle(ctx context.Context, m *Migration) error { return RecordRoamdArrival(ctx, m) }

// Cleanup removes the rules and tables from every router (the neighbour
// entry stays: roamd owns the same entry once it claimed the guest).
func (ByHand) Cleanup(ctx context.Context, m *Migration) error {
	var errs []error
	for _, name := range []string{m.From, m.To, twosite.Leaf1, twosite.Leaf2} {
		n := m.Lab.Net.Node(name)
		if err := n.Handle.RuleDel(byHandRule(twosite.VMRoute)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing the by-hand rule on %s: %w", name, err))
		}
		r := &netlink.Route{Dst: prefixNet(twosite.VMRoute), Table: byHandTable}
		if err := n.Handle.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("removing the by-hand route on %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
