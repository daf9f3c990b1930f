package movebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"

	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/nslab"
)

// SimVM is the simulated VM's node: a namespace whose one link (eth1) is
// its port, Port, on a hypervisor.
const SimVM = "vm"

// SimLab is a variant running with a simulated VM instead of a QEMU guest,
// for tests: cheap to bring up, and moved by SimulatedMove.
type SimLab struct {
	*Net
}

// UpSimulated brings the variant up with the simulated VM's port on hv1,
// waits until it is ready and the VM placed (reachable from the client).
// On error after the lab came up, the lab is returned, still up, for its
// logs.
func UpSimulated(ctx context.Context, v Variant, opts nslab.Options) (*SimLab, error) {
	dir, err := os.MkdirTemp("", "movebench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	topo, err := v.Load(dir)
	if err != nil {
		return nil, err
	}
	addSimulatedVM(topo)
	lab, err := nslab.Up(ctx, topo, opts)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n, err := Attach(v, lab, log)
	if err != nil {
		return nil, errors.Join(err, lab.Close())
	}
	s := &SimLab{Net: n}
	if err := s.WaitReady(ctx); err != nil {
		return s, err
	}
	if err := s.PreparePort(ctx, HV1); err != nil {
		return s, err
	}
	return s, s.place(ctx)
}

// addSimulatedVM adds the VM node, with the QEMU guest's MAC and addresses,
// and its port on hv1.
func addSimulatedVM(topo *clab.Topology) {
	topo.Nodes[SimVM] = &clab.Node{
		Name:   SimVM,
		Kind:   "linux",
		Labels: map[string]string{nslab.RoleLabel: string(nslab.RoleVM)},
		Exec: []string{
			"ip link set eth1 address " + VMMAC.String(),
			"ip addr add " + VMPrefix.String() + " dev eth1",
			"ip route add default via " + Gateway.String(),
		},
	}
	topo.Links = append(topo.Links, clab.Link{
		A: clab.Endpoint{Node: HV1, Interface: Port},
		B: clab.Endpoint{Node: SimVM, Interface: "eth1"},
	})
}

// Close stops what runs beside the lab and tears the lab down.
func (s *SimLab) Close() error {
	return errors.Join(s.Net.Close(), s.Lab.Close())
}

// DumpLogs writes the last lines of every daemon log to w.
func (s *SimLab) DumpLogs(w io.Writer, lines int) { s.Lab.DumpLogs(w, lines) }

// place makes the VM announce itself (a gratuitous ARP, as a booting guest)
// until the network delivers to it on hv1.
func (s *SimLab) place(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// roamd or the watcher may still be opening its capture on the port:
	// repeat the announcement, as a guest does, until the VM is reachable.
	err := nslab.Poll(pctx, "the VM reachable on hv1", func(ctx context.Context) (bool, string, error) {
		if err := s.announce(frames.GratuitousARP(VMMAC, VMAddr)); err != nil {
			return false, "", nslab.Abort(err)
		}
		_, err := s.Lab.Node(Client).Run(ctx, "ping", "-c", "1", "-W", "1", VMAddr.String())
		return err == nil, "", err
	})
	if err != nil {
		return err
	}
	return s.WaitPlaced(pctx, HV1)
}

// announce sends one frame from the VM, to everyone.
func (s *SimLab) announce(frame []byte) error {
	conn, err := s.Lab.Node(SimVM).OpenSender("eth1")
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
		return fmt.Errorf("sending from the VM: %w", err)
	}
	return nil
}

// SimMove is one simulated migration.
type SimMove struct {
	From, To string
	// Paused is when the port went down at the source; Resumed when it was
	// up on the destination.
	Paused, Resumed time.Time
}

// SimulatedMove moves the VM's port to the other hypervisor the way a live
// migration looks from the network, without QEMU: the port goes down at
// the source (the VM pauses; what is routed to it is lost), leaves the
// source after pause (as QEMU quits: the kernel drops the routes via the
// port), appears on the destination, is prepared (PreparePort) and comes
// up (the VM resumes), and the VM sends QEMU's five RARPs on QEMU's
// schedule. The VM keeps its addresses, MAC and sockets. It returns once
// the last RARP is sent.
func (s *SimLab) SimulatedMove(ctx context.Context, pause time.Duration) (SimMove, error) {
	var m SimMove
	from, err := s.Lab.PortLocation(SimVM)
	if err != nil {
		return m, err
	}
	if from == "" {
		return m, fmt.Errorf("the VM's port %s is on no hypervisor", Port)
	}
	m.From, m.To = from, Other(from)
	src, dst := s.Lab.Node(m.From), s.Lab.Node(m.To)
	link, err := src.Handle.LinkByName(Port)
	if err != nil {
		return m, fmt.Errorf("finding %s on %s: %w", Port, m.From, err)
	}
	if err := src.Handle.LinkSetDown(link); err != nil {
		return m, fmt.Errorf("pausing: setting %s down on %s: %w", Port, m.From, err)
	}
	m.Paused = time.Now()
	if err := nslab.Sleep(ctx, pause); err != nil {
		return m, err
	}
	if err := src.Handle.LinkSetNsFd(link, dst.Fd()); err != nil {
		return m, fmt.Errorf("moving %s from %s to %s: %w", Port, m.From, m.To, err)
	}
	if err := s.PreparePort(ctx, m.To); err != nil {
		return m, err
	}
	if link, err = dst.Handle.LinkByName(Port); err == nil {
		err = dst.Handle.LinkSetUp(link)
	}
	if err != nil {
		return m, fmt.Errorf("resuming: bringing %s up on %s: %w", Port, m.To, err)
	}
	m.Resumed = time.Now()

	// A veth passes carrier on a while after it is up; QEMU announces once
	// the VM runs, and its tap has carrier long before.
	vm := s.Lab.Node(SimVM)
	err = nslab.Poll(ctx, "the VM's carrier on "+m.To, func(context.Context) (bool, string, error) {
		l, err := vm.Handle.LinkByName("eth1")
		if err != nil {
			return false, "", err
		}
		return l.Attrs().OperState == netlink.OperUp, "no carrier", nil
	})
	if err != nil {
		return m, err
	}
	first := time.Now()
	for _, at := range nslab.RARPSchedule {
		if err := nslab.Sleep(ctx, time.Until(first.Add(at))); err != nil {
			return m, err
		}
		if err := s.announce(frames.RARP(VMMAC)); err != nil {
			return m, err
		}
	}
	return m, nil
}
