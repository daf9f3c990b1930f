package qemumigration

import (
	"context"
	"embed"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// TopologyFile is the roamd fabric's topology. It binds two-site's node
// files by relative paths (../two-site/...), so it runs from the source
// tree as it is; RoamdFabric extracts both into the same layout.
const TopologyFile = "qemu-migration.clab.yml"

//go:embed qemu-migration.clab.yml
var topology embed.FS

// RoamdProtocol is the route protocol number roamd writes its kernel routes
// with.
const RoamdProtocol = 77

// RoamdFabric is the two-site fabric (FRR leaves, roamd on both
// hypervisors, the client under leaf1) with the guest on QEMU: the guest is
// the two-site plan's VM, 10.10.0.10.
func RoamdFabric() *Fabric {
	return &Fabric{
		Name:        "roamd, FRR leaves",
		Extract:     extractRoamdFabric,
		Client:      twosite.Client,
		Hypervisors: [2]string{twosite.HV1, twosite.HV2},
		Ready:       func(ctx context.Context, l *Lab) error { return twosite.WaitFabric(ctx, l.Net) },
		PortUp:      roamdPortUp,
		Placed:      roamdPlaced,
		Settled:     roamdSettled,
	}
}

// extractRoamdFabric writes two-site's files to dir/two-site and the
// topology to dir/qemu-migration, where its relative binds find them.
func extractRoamdFabric(dir string) (string, error) {
	if _, err := twosite.Extract(filepath.Join(dir, "two-site")); err != nil {
		return "", err
	}
	data, err := topology.ReadFile(TopologyFile)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "qemu-migration", TopologyFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, data, 0o644)
}

// roamdPortUp waits until roamd on hv has taken the tap as a VM port
// (anycast MAC, proxy ARP, capture open).
func roamdPortUp(ctx context.Context, l *Lab, hv string) error {
	c, err := l.API(hv)
	if err != nil {
		return err
	}
	return nslab.Poll(ctx, "roamd on "+hv+" managing port "+Tap, func(ctx context.Context) (bool, string, error) {
		st, err := c.Status(ctx)
		if err != nil {
			return false, "", err
		}
		var ports []string
		for _, p := range st.Ports {
			ports = append(ports, p.Name)
		}
		return slices.Contains(ports, Tap), fmt.Sprintf("ports %v", ports), nil
	})
}

// roamdPlaced waits until the fabric routes the freshly booted guest to hv
// (its agent announced it) and the other hypervisor's leaf has passed the
// route on, so the other roamd knows the guest's MAC (it rides on the route)
// and can claim it on a RARP, which carries no address.
func roamdPlaced(ctx context.Context, l *Lab, hv string) error {
	if err := twosite.WaitVMAt(ctx, l.Net, hv); err != nil {
		return err
	}
	other := l.Other(hv)
	return l.Net.WaitAdvertised(ctx, twosite.LeafOf[other], twosite.Uplink[other], twosite.VMRoute, twosite.ASN[hv])
}

// roamdSettled waits until the two-site fabric has settled on the guest's
// new hypervisor m.To: roamd there announces it, both leaves route to it and
// hold no path from m.From any more, and roamd on m.From has no route of its
// own for the guest left (its forwarding hold is over).
func roamdSettled(ctx context.Context, m *Migration) error {
	l := m.Lab
	if err := twosite.WaitVMAt(ctx, l.Net, m.To); err != nil {
		return err
	}
	if err := l.Net.WaitNoPathFrom(ctx, twosite.LeafOf[m.To], twosite.VMRoute, twosite.Uplink[m.From]); err != nil {
		return err
	}
	if _, err := l.Net.WaitRoamdHost(ctx, m.To, twosite.VMAddr, "announced"); err != nil {
		return err
	}
	return WaitNoRoamdRoute(ctx, l, m.From, twosite.VMAddr)
}

// RecordRoamdArrival waits until roamd on m.To has recorded the guest's
// arrival (it claims on a hint or a frame) and notes roamd's account of it
// in m: the trigger, detect→route, detect→announce, and when the old site's
// path disappeared (known once the fabric settled). It is the Settle step
// of the roamd strategies, on any fabric.
func RecordRoamdArrival(ctx context.Context, m *Migration) error {
	var mv api.Move
	err := nslab.Poll(ctx, "roamd on "+m.To+" recording the arrival of "+twosite.VMAddr.String(), func(ctx context.Context) (bool, string, error) {
		var err error
		mv, err = lastArrival(ctx, m.Lab, m.To, m.Start)
		return err == nil, "", err
	})
	if err != nil {
		return err
	}
	m.Claimed = mv.Time
	if mv.DetectToRouteUS > 0 {
		m.ClaimedRoute = mv.Time.Add(time.Duration(mv.DetectToRouteUS) * time.Microsecond)
	}
	m.Note("roamd on %s: claimed on %s, detect→route %d µs, detect→announce %d µs, old site's path gone %d µs after the announcement (ADD-PATH)",
		m.To, mv.Source, mv.DetectToRouteUS, mv.DetectToAnnounceUS, mv.OldWithdrawnUS)
	return nil
}

// lastArrival returns roamd's record of the guest arriving at hv after t.
func lastArrival(ctx context.Context, l *Lab, hv string, after time.Time) (api.Move, error) {
	c, err := l.API(hv)
	if err != nil {
		return api.Move{}, err
	}
	ms, err := c.Moves(ctx)
	if err != nil {
		return api.Move{}, err
	}
	var last api.Move
	for _, mv := range ms {
		if mv.Address == twosite.VMAddr.String() && mv.Direction == "arrived" && mv.Time.After(after) && mv.Time.After(last.Time) {
			last = mv
		}
	}
	if last.Time.IsZero() {
		return last, fmt.Errorf("roamd on %s recorded no arrival of %s since %s: %+v", hv, twosite.VMAddr, after.Format(time.StampMicro), ms)
	}
	return last, nil
}

// WaitNoRoamdRoute waits until hv has no kernel route of roamd's (protocol
// 77, any table) covering addr: roamd removed its host route and its
// forwarding route.
func WaitNoRoamdRoute(ctx context.Context, l *Lab, hv string, addr netip.Addr) error {
	n := l.Net.Node(hv)
	return nslab.Poll(ctx, hv+" without a roamd route for "+addr.String(), func(context.Context) (bool, string, error) {
		filter := &netlink.Route{Protocol: RoamdProtocol, Table: unix.RT_TABLE_UNSPEC}
		rs, err := n.Handle.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if err != nil {
			return false, "", err
		}
		var left []string
		for _, r := range rs {
			if r.Dst != nil && r.Dst.Contains(addr.AsSlice()) {
				left = append(left, r.String())
			}
		}
		return len(left) == 0, strings.Join(left, "; "), nil
	})
}

// RARPOnly is the vMotion-like way: nothing tells roamd about the
// migration. The destination's roamd claims the guest on the first frame it
// sends after resuming: QEMU's RARP, or the guest's gratuitous ARP unless
// the guest runs with guest_announce=off.
type RARPOnly struct{}

func (RARPOnly) Name() string                                   { return "roamd rarp-only" }
func (RARPOnly) PauseBeforeSwitchover() bool                    { return false }
func (RARPOnly) Prepare(context.Context, *Migration) error      { return nil }
func (RARPOnly) Switch(context.Context, *Migration) error       { return nil }
func (RARPOnly) Settle(ctx context.Context, m *Migration) error { return RecordRoamdArrival(ctx, m) }

// Switchover is the lossless switchover: the orchestrator stages the guest
// on the destination before the migration (`arrive` hint: roamd readies the
// tap with a neighbour entry and a throwaway frame), runs the migration with
// pause-before-switchover, and at `pre-switchover` sends the `switch` hint
// to the destination's roamd, which claims the guest at once and notifies
// the source's roamd; the source's roamd forwards what still reaches it to
// the destination until the fabric has moved. Packets routed to the
// destination wait in its tap until the guest resumes. Both hints go over
// the API's persistent connection (Lab.API), as an orchestrator would.
type Switchover struct{}

func (Switchover) Name() string                { return "roamd switchover" }
func (Switchover) PauseBeforeSwitchover() bool { return true }

// Prepare sends the `arrive` hint for the guest's MAC and the tap.
func (Switchover) Prepare(ctx context.Context, m *Migration) error {
	c, err := m.Lab.API(m.To)
	if err != nil {
		return err
	}
	h := api.Hint{Kind: "arrive", MAC: m.Lab.Image.Config.MAC.String(), Port: Tap}
	res, err := c.Hint(ctx, h)
	if err != nil {
		return fmt.Errorf("arrive hint to roamd on %s: %w", m.To, err)
	}
	for _, host := range res.Hosts {
		if host.Address == twosite.VMAddr.String() && host.State == "staged" {
			return nil
		}
	}
	return fmt.Errorf("arrive hint to roamd on %s did not stage %s: %+v", m.To, twosite.VMAddr, res)
}

// Switch sends the `switch` hint: roamd claims the guest now.
func (Switchover) Switch(ctx context.Context, m *Migration) error {
	c, err := m.Lab.API(m.To)
	if err != nil {
		return err
	}
	_, err = c.Hint(ctx, api.Hint{Kind: "switch", MAC: m.Lab.Image.Config.MAC.String(), Port: Tap})
	return err
}

// Settle records roamd's account of the arrival (RecordRoamdArrival).
func (Switchover) Settle(ctx context.Context, m *Migration) error { return RecordRoamdArrival(ctx, m) }
