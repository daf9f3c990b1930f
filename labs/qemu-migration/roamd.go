package qemumigration

import (
	"context"
	"embed"
	"fmt"
	"net/netip"
	"time"

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

// extractRoamdFabric writes the topology and two-site's files, which
// every node uses.
func extractRoamdFabric(dir string) (string, error) {
	return twosite.ExtractBeside(dir, "qemu-migration", topology, TopologyFile)
}

// roamdPortUp waits until roamd on hv has taken the tap as a VM port.
func roamdPortUp(ctx context.Context, l *Lab, hv string) error {
	return l.Net.WaitRoamdPort(ctx, hv, Tap)
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
	return l.Net.WaitNoRoamdRoute(ctx, m.From, twosite.VMAddr)
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
		mv, err = LastArrival(ctx, m.Lab.Net, m.To, twosite.VMAddr, m.Start)
		return err == nil, "", err
	})
	if err != nil {
		return err
	}
	NoteArrival(m, mv)
	return nil
}

// NoteArrival notes roamd's account of the guest's arrival in m: when it
// claimed the guest and installed its route, on which frame or hint, how
// long each step took, and when the old site's path disappeared.
func NoteArrival(m *Migration, mv api.Move) {
	m.Claimed = mv.Time
	if mv.DetectToRouteUS > 0 {
		m.ClaimedRoute = mv.Time.Add(time.Duration(mv.DetectToRouteUS) * time.Microsecond)
	}
	m.Note("roamd on %s: claimed on %s, detect→route %d µs, detect→announce %d µs, old site's path gone %d µs after the announcement (ADD-PATH)",
		m.To, mv.Source, mv.DetectToRouteUS, mv.DetectToAnnounceUS, mv.OldWithdrawnUS)
}

// LastArrival returns roamd's latest record on node of addr arriving there
// after t.
func LastArrival(ctx context.Context, lab *nslab.Lab, node string, addr netip.Addr, after time.Time) (api.Move, error) {
	c, err := lab.API(node)
	if err != nil {
		return api.Move{}, err
	}
	ms, err := c.Moves(ctx)
	if err != nil {
		return api.Move{}, err
	}
	last, ok := nslab.LastArrival(ms, "", addr, after)
	if !ok {
		return last, fmt.Errorf("roamd on %s recorded no arrival of %s since %s: %+v", node, addr, after.Format(time.StampMicro), ms)
	}
	return last, nil
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
// the API's persistent connection (nslab's Lab.API), as an orchestrator
// would.
type Switchover struct{}

func (Switchover) Name() string                { return "roamd switchover" }
func (Switchover) PauseBeforeSwitchover() bool { return true }

// Prepare sends the `arrive` hint for the guest's MAC and the tap.
func (Switchover) Prepare(ctx context.Context, m *Migration) error {
	c, err := m.Lab.Net.API(m.To)
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
	c, err := m.Lab.Net.API(m.To)
	if err != nil {
		return err
	}
	_, err = c.Hint(ctx, api.Hint{Kind: "switch", MAC: m.Lab.Image.Config.MAC.String(), Port: Tap})
	return err
}

// Settle records roamd's account of the arrival (RecordRoamdArrival).
func (Switchover) Settle(ctx context.Context, m *Migration) error { return RecordRoamdArrival(ctx, m) }
