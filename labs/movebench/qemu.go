package movebench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	qm "github.com/roamd/roamd/labs/qemu-migration"
	"github.com/roamd/roamd/labs/qemu-migration/guest"
)

// GuestConfig is the QEMU guest of the address plan. IPv4 only, as the
// fabrics are.
var GuestConfig = guest.Config{MAC: VMMAC, Addr4: VMPrefix, Gateway4: Gateway, EchoPort: EchoPort}

// QEMULab is a variant running with a real QEMU guest (labs/qemu-migration
// drives QEMU and the migrations).
type QEMULab struct {
	*qm.Lab
	Net *Net
}

// UpQEMU brings the variant up with the QEMU guest booted on hv1 and placed
// (o.Fabric is set here; the rest of o configures the guest and the lab).
func UpQEMU(ctx context.Context, v Variant, o qm.Options) (*QEMULab, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &QEMULab{}
	o.Fabric = &qm.Fabric{
		Name:        v.String(),
		Extract:     v.Extract,
		Client:      Client,
		Hypervisors: [2]string{HV1, HV2},
		Ready: func(ctx context.Context, l *qm.Lab) error {
			n, err := Attach(v, l.Net, log)
			if err != nil {
				return err
			}
			q.Net = n
			return n.WaitReady(ctx)
		},
		PortUp: func(ctx context.Context, _ *qm.Lab, hv string) error { return q.Net.PreparePort(ctx, hv) },
		Placed: func(ctx context.Context, _ *qm.Lab, hv string) error { return q.Net.WaitPlaced(ctx, hv) },
	}
	lab, err := qm.Up(ctx, o)
	if err != nil {
		// qm.Up tore the lab down; what runs beside it is ours.
		if q.Net != nil {
			err = errors.Join(err, q.Net.Close())
		}
		return nil, err
	}
	q.Lab = lab
	return q, nil
}

// Close stops what runs beside the lab, then QEMU and the lab.
func (q *QEMULab) Close() error {
	var err error
	if q.Net != nil {
		err = q.Net.Close()
	}
	return errors.Join(err, q.Lab.Close())
}

// Strategy is one way of moving the VM, on the fabric it needs.
type Strategy struct {
	// Name is short, for flags and records: switchover, rarp, l2, diy,
	// evpn, byhand.
	Name string
	// Title names it in the report.
	Title  string
	Fabric Fabric
	// driver returns the migration driver's strategy for a lab.
	driver func(n *Net) qm.Strategy
}

// Strategies lists every strategy the benchmark knows, in report order.
// DefaultStrategies are the five the benchmark compares; "byhand" is the
// QEMU lab's reference (the ideal switch, made by hand on every router at
// pre-switchover), the floor any switchover can reach.
var (
	Strategies = []Strategy{
		{Name: "switchover", Title: "(a) roamd, lossless switchover", Fabric: FabricRoamd,
			driver: func(n *Net) qm.Strategy { return roamdStrategy{qm.Switchover{}, n} }},
		{Name: "rarp", Title: "(b) roamd, RARP only", Fabric: FabricRoamd,
			driver: func(n *Net) qm.Strategy { return roamdStrategy{qm.RARPOnly{}, n} }},
		{Name: "l2", Title: "(c) stretched L2", Fabric: FabricL2,
			driver: func(n *Net) qm.Strategy { return baseline{"stretched L2", n} }},
		{Name: "diy", Title: "(d) do-it-yourself", Fabric: FabricDIY,
			driver: func(n *Net) qm.Strategy { return diyStrategy{baseline{"do-it-yourself", n}} }},
		{Name: "evpn", Title: "(e) FRR EVPN", Fabric: FabricEVPN,
			driver: func(n *Net) qm.Strategy { return baseline{"FRR EVPN", n} }},
		{Name: "byhand", Title: "by-hand switch (reference)", Fabric: FabricRoamd,
			driver: func(n *Net) qm.Strategy { return roamdStrategy{qm.ByHand{}, n} }},
	}
	DefaultStrategies = []string{"switchover", "rarp", "l2", "diy", "evpn"}
)

// StrategyByName returns the named strategy.
func StrategyByName(name string) (Strategy, error) {
	for _, s := range Strategies {
		if s.Name == name {
			return s, nil
		}
	}
	var names []string
	for _, s := range Strategies {
		names = append(names, s.Name)
	}
	return Strategy{}, fmt.Errorf("unknown strategy %q (known: %v)", name, names)
}

// roamdStrategy is one of the QEMU lab's roamd strategies with a Settle
// that works with any leaves (the lab's own reads FRR's tables).
type roamdStrategy struct {
	qm.Strategy
	net *Net
}

// Settle waits until the fabric delivers to the destination and its roamd
// announces the guest, and notes roamd's account of the arrival.
func (s roamdStrategy) Settle(ctx context.Context, m *qm.Migration) error {
	if err := s.net.WaitDelivers(ctx, m.To); err != nil {
		return err
	}
	mv, err := qm.LastArrival(ctx, s.net.Lab, m.To, VMAddr, m.Start)
	if err != nil {
		return err
	}
	qm.NoteArrival(m, mv)
	return nil
}

// Cleanup runs the wrapped strategy's cleanup, if it has one.
func (s roamdStrategy) Cleanup(ctx context.Context, m *qm.Migration) error {
	if c, ok := s.Strategy.(qm.Cleaner); ok {
		return c.Cleanup(ctx, m)
	}
	return nil
}

// baseline is a strategy of a fabric without roamd: nothing tells the
// network about the migration (no pause before switchover); the fabric
// learns of the move from what the guest and QEMU send after it resumed.
type baseline struct {
	name string
	net  *Net
}

func (b baseline) Name() string                               { return b.name }
func (baseline) PauseBeforeSwitchover() bool                  { return false }
func (baseline) Prepare(context.Context, *qm.Migration) error { return nil }
func (baseline) Switch(context.Context, *qm.Migration) error  { return nil }

// Settle waits until the fabric delivers to the destination; for the
// do-it-yourself fabric it notes when the watcher routed the guest.
func (b baseline) Settle(ctx context.Context, m *qm.Migration) error {
	if err := b.net.WaitDelivers(ctx, m.To); err != nil {
		return err
	}
	if w := b.net.Watcher(m.To); w != nil {
		for _, in := range w.Installs() {
			if in.FrameAt.After(m.Start) {
				m.Claimed, m.ClaimedRoute = in.FrameAt, in.At
				m.Note("watcher on %s: routed on %s, frame→route %d µs", m.To, in.Trigger, in.At.Sub(in.FrameAt).Microseconds())
				break
			}
		}
	}
	return nil
}

// diyStrategy is the do-it-yourself baseline: its fabric moves only once
// the source's route goes, which goes with the source's tap, so the driver
// quits the source QEMU as soon as the guest runs on the destination, as
// libvirt does. (The other strategies keep the paused source until the
// network settled, as the QEMU lab does by default: deleting a tap holds
// the kernel's global RTNL lock, which on this one shared kernel stalls
// every namespace's routing, not only the source's.)
type diyStrategy struct{ baseline }

func (diyStrategy) QuitSourceEarly() bool { return true }

var _ qm.EarlyQuitter = diyStrategy{}
