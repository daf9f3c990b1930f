package qemumigration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
	"github.com/roamd/roamd/labs/qemu-migration/guest"
	"github.com/roamd/roamd/labs/qemu-migration/qemu"
)

// Tap is the guest's port on every hypervisor: QEMU creates it, roamd's
// port pattern (tap*) matches it.
const Tap = "tapvm1"

// Fabric is a network variant the guest migrates in: a topology whose two
// hypervisor nodes run QEMU, and the hooks that tell the driver when the
// network is ready. RoamdFabric is the two-site fabric with roamd; a
// benchmark brings up other variants (a stretched L2 segment, EVPN, BIRD
// leaves) by giving their own topology and hooks.
type Fabric struct {
	// Name names the variant in reports.
	Name string
	// Extract writes the topology and every file it binds into dir and
	// returns the topology file's path.
	Extract func(dir string) (string, error)
	// Client is the node that probes the guest; Hypervisors are the two
	// nodes QEMU runs in, the first one boots the guest.
	Client      string
	Hypervisors [2]string
	// Ready waits until the fabric forwards between the client and the
	// hypervisors (sessions up, routes in). Optional.
	Ready func(ctx context.Context, l *Lab) error
	// PortUp runs once QEMU has created the guest's tap on hypervisor hv
	// (the first boot, and each migration's destination), before the guest
	// runs there: attach the tap to a bridge, or wait until the
	// hypervisor's daemon has taken the port. Optional.
	PortUp func(ctx context.Context, l *Lab, hv string) error
	// Placed waits until the network delivers to the guest, which has just
	// booted on hv and announced itself. Optional.
	Placed func(ctx context.Context, l *Lab, hv string) error
	// Settled waits, after a migration, until the network has settled on
	// the guest's new hypervisor m.To (routes converged, the old site's
	// state gone), so the next migration starts from a quiet fabric; the
	// strategy's Settle runs first. Optional.
	Settled func(ctx context.Context, m *Migration) error
}

// Options configure Up.
type Options struct {
	// Fabric is the network variant (default RoamdFabric()).
	Fabric *Fabric
	// Guest is the guest's identity (default guest.DefaultConfig(), the
	// two-site plan's VM, which RoamdFabric and its strategies expect).
	Guest *guest.Config
	// Build configures the guest image build (cache, kernel package).
	Build guest.Options
	// Lab configures the namespace runner (binaries, prefix, run
	// directory).
	Lab nslab.Options
	// MemoryMiB is the guest's RAM (default 128).
	MemoryMiB int
	// NoGuestAnnounce runs the guest with guest_announce=off: after a
	// migration only QEMU's RARPs announce it.
	NoGuestAnnounce bool
	// QuitSourceEarly quits the source QEMU as soon as the guest runs on
	// the destination, as libvirt does. By default the driver quits it once
	// the network has settled: every namespace shares one kernel, and
	// deleting the source's tap holds the kernel's global RTNL lock (up to
	// 0.6 s measured on the loaded lab machine), which stalls every route
	// change in every namespace, the leaves' zebra and the destination's
	// roamd included, at the worst moment. On real hosts it stalls only the
	// source. A strategy that needs the source gone says so itself
	// (EarlyQuitter).
	QuitSourceEarly bool
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// Lab is a running fabric with the guest booted on one of its hypervisors.
type Lab struct {
	Net    *nslab.Lab
	Fabric Fabric
	Image  *guest.Image
	// Dir holds QEMU's sockets, serial logs and output.
	Dir string
	// VM is the QEMU running the guest, on hypervisor At.
	VM *qemu.Instance
	At string

	opts       Options
	log        *slog.Logger
	migrations int

	mu    sync.Mutex
	qemus []*qemu.Instance // every QEMU started, for Close
}

// Up builds the guest image, brings the fabric up, boots the guest on the
// fabric's first hypervisor and waits until the network delivers to it. On
// error everything started is torn down again.
func Up(ctx context.Context, o Options) (l *Lab, err error) {
	if o.Fabric == nil {
		o.Fabric = RoamdFabric()
	}
	if o.Guest == nil {
		c := guest.DefaultConfig()
		o.Guest = &c
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Build.Logger == nil {
		o.Build.Logger = log
	}
	if o.Lab.Logger == nil {
		o.Lab.Logger = log
	}
	start := time.Now()
	img, err := guest.Build(ctx, *o.Guest, o.Build)
	if err != nil {
		return nil, err
	}
	log.Info("guest image ready", "kernel", img.Kernel.Release, "took", time.Since(start).Round(time.Millisecond))

	extract := func(dir string) (string, error) {
		p, err := o.Fabric.Extract(dir)
		if err != nil {
			return "", fmt.Errorf("extracting fabric %s: %w", o.Fabric.Name, err)
		}
		return p, nil
	}
	netLab, err := nslab.UpExtracted(ctx, extract, nil, o.Lab)
	if err != nil {
		return nil, err
	}
	lab := &Lab{Net: netLab, Fabric: *o.Fabric, Image: img, opts: o, log: log}
	defer func() {
		if err != nil {
			var b strings.Builder
			lab.DumpLogs(&b, 30)
			err = fmt.Errorf("%w\n%s", err, b.String())
			if cerr := lab.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("tearing down: %w", cerr))
			}
			l = nil
		}
	}()
	l = lab
	l.Dir = filepath.Join(netLab.RunDir, "qemu")
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return l, err
	}
	for _, hv := range l.Fabric.Hypervisors {
		if netLab.Node(hv) == nil {
			return l, fmt.Errorf("fabric %s has no hypervisor node %q", l.Fabric.Name, hv)
		}
	}
	if netLab.Node(l.Fabric.Client) == nil {
		return l, fmt.Errorf("fabric %s has no client node %q", l.Fabric.Name, l.Fabric.Client)
	}
	if l.Fabric.Ready != nil {
		if err := l.Fabric.Ready(ctx, l); err != nil {
			return l, err
		}
	}
	log.Info("fabric ready", "fabric", l.Fabric.Name, "prefix", netLab.Prefix, "took", time.Since(start).Round(time.Millisecond))
	if err := l.boot(ctx, l.Fabric.Hypervisors[0]); err != nil {
		return l, err
	}
	log.Info("guest running", "on", l.At, "took", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// boot starts the guest on hv and waits until the network delivers to it.
func (l *Lab) boot(ctx context.Context, hv string) error {
	vm, err := l.startQEMU(ctx, hv, "")
	if err != nil {
		return err
	}
	if err := l.portUp(ctx, hv); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := vm.WaitSerial(bctx, guest.NetworkUpMessage); err != nil {
		return err
	}
	l.log.Info("guest booted", "on", hv, "took", time.Since(vm.Started).Round(time.Millisecond))
	l.VM, l.At = vm, hv
	if l.Fabric.Placed != nil {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := l.Fabric.Placed(pctx, l, hv); err != nil {
			return fmt.Errorf("guest booted on %s but the network does not deliver to it: %w", hv, err)
		}
	}
	return nil
}

// startQEMU starts a QEMU for the guest on hv; incoming makes it a
// migration destination.
func (l *Lab) startQEMU(ctx context.Context, hv, incoming string) (*qemu.Instance, error) {
	n := l.Net.Node(hv)
	l.mu.Lock()
	name := fmt.Sprintf("vm%d-%s", len(l.qemus), hv)
	l.mu.Unlock()
	vm, err := qemu.Start(ctx, qemu.Options{
		Name: name, NetNS: n.NS, Image: l.Image, Tap: Tap, MemoryMiB: l.opts.MemoryMiB,
		NoGuestAnnounce: l.opts.NoGuestAnnounce, Incoming: incoming, Dir: l.Dir,
	})
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.qemus = append(l.qemus, vm)
	l.mu.Unlock()
	return vm, nil
}

// portUp waits until QEMU's tap exists on hv and runs the fabric's hook.
func (l *Lab) portUp(ctx context.Context, hv string) error {
	n := l.Net.Node(hv)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := nslab.Poll(wctx, Tap+" on "+hv, func(context.Context) (bool, string, error) {
		_, err := n.Handle.LinkByName(Tap)
		return err == nil, "", err
	})
	if err != nil {
		return err
	}
	if l.Fabric.PortUp != nil {
		return l.Fabric.PortUp(wctx, l, hv)
	}
	return nil
}

// Other returns the hypervisor the guest is not on.
func (l *Lab) Other(hv string) string {
	if hv == l.Fabric.Hypervisors[0] {
		return l.Fabric.Hypervisors[1]
	}
	return l.Fabric.Hypervisors[0]
}

// Target is the guest's echo service.
func (l *Lab) Target() netip.AddrPort {
	return netip.AddrPortFrom(l.Image.Config.Addr4.Addr(), uint16(l.Image.Config.EchoPort))
}

// DumpLogs writes the last lines of every daemon log, QEMU's output and the
// guest's console to w (for a failed test or run).
func (l *Lab) DumpLogs(w io.Writer, lines int) {
	l.Net.DumpLogs(w, lines)
	l.mu.Lock()
	qs := slices.Clone(l.qemus)
	l.mu.Unlock()
	for _, q := range qs {
		out, _ := os.ReadFile(q.Log)
		// A guest console is short unless the kernel complained, and then
		// the start of the complaint matters: show more of it.
		n := max(lines, 200)
		fmt.Fprintf(w, "==> QEMU %s in %s: output <==\n%s\n==> its guest console (last %d lines) <==\n%s\n",
			q.Name, q.NetNS, strings.TrimSpace(string(out)), n, q.SerialTail(n))
	}
}

// Close stops every QEMU the lab started, then the fabric.
func (l *Lab) Close() error {
	l.mu.Lock()
	qs := l.qemus
	l.qemus = nil
	l.mu.Unlock()
	var errs []error
	for _, q := range qs {
		errs = append(errs, q.Stop(2*time.Second))
	}
	if l.Net != nil {
		errs = append(errs, l.Net.Close())
	}
	return errors.Join(errs...)
}

// Traffic is the probe traffic between the client and the guest: a UDP
// probe every interval and one long-lived TCP session.
type Traffic struct {
	Prober *probe.Prober
	TCP    *probe.TCPSession
}

// StartTraffic starts the client's probe and TCP session toward the guest
// and waits until probe replies flow.
func (l *Lab) StartTraffic(ctx context.Context, interval time.Duration) (*Traffic, error) {
	client := l.Net.Node(l.Fabric.Client)
	t := &Traffic{}
	var err error
	if t.Prober, err = probe.StartAnswered(ctx, client, l.Target(), interval, 10*time.Second); err != nil {
		return nil, err
	}
	if t.TCP, err = probe.DialChecked(client, l.Target(), 5*time.Second); err != nil {
		t.Stop()
		return nil, err
	}
	return t, nil
}

// drain is how long Stop waits for replies still in flight: a TCG guest
// starved of CPU on a busy machine answers seconds late, and a late reply
// is a delay, not a loss.
const drain = 5 * time.Second

// Stop ends the traffic and returns what the probe recorded (nil if it
// was stopped before). It waits up to drain for outstanding replies.
func (t *Traffic) Stop() *probe.Result {
	var res *probe.Result
	if t.Prober != nil {
		res = t.Prober.Stop(drain)
		t.Prober = nil
	}
	if t.TCP != nil {
		t.TCP.Close()
		t.TCP = nil
	}
	return res
}
