package daemon

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/daemon/hosts"
)

// runDaemon starts a daemon on cfg with a fake kernel and capture and the
// router rt; edit may change the options first. It stops with the test.
func runDaemon(t testing.TB, cfg *config.Config, rt Router, edit func(*Options)) (*Daemon, context.Context) {
	t.Helper()
	o := Options{Config: cfg, Kernel: &fakeKernel{}, Capture: fakeCapture{}, Routers: map[string]Router{"default": rt}}
	if edit != nil {
		edit(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go d.Run(ctx)
	return d, ctx
}

// adopt reports a VM port to d and waits until it has n ports.
func adopt(t testing.TB, ctx context.Context, d *Daemon, port string, index, n int) {
	t.Helper()
	d.ports <- PortEvent{Added: true, Name: port, Index: index}
	eventually(t, port+" adopted", func() bool { st, err := d.Status(ctx); return err == nil && len(st.Ports) == n })
}

// garp delivers a gratuitous ARP from mac for addr on port, as the capture would.
func garp(d *Daemon, port string, mac net.HardwareAddr, addr netip.Addr) {
	now := time.Now()
	d.frames <- frameIn{frame: hosts.Frame{Time: now, Port: port, Source: hosts.SourceGARP, MAC: mac, Addr: addr}, read: now}
}
