package probe

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nstest"
)

// A client and a VM on one veth; the link is cut for a while under probe
// traffic, as a move cuts it.
func TestProbeMeasuresACutAndTCPSurvives(t *testing.T) {
	client := nstest.New(t, "client")
	vm := nstest.New(t, "vm")
	_, vmLink := nstest.Veth(t, client, "eth1", vm, "eth1")
	client.MustRun(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "eth1")
	vm.MustRun(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth1")

	echo, err := StartEcho(vm, 7007)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	target := netip.MustParseAddrPort("192.0.2.2:7007")
	p, err := Start(client, target, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitReply(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	tcp, err := DialTCP(client, target, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if _, err := tcp.Check(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	cut := time.Now()
	if err := vm.Handle.LinkSetDown(vmLink); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // the cut being measured
	if err := vm.Handle.LinkSetUp(vmLink); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	if err := p.WaitReply(ctx, restored); err != nil {
		t.Fatal(err)
	}
	if _, err := tcp.Check(10 * time.Second); err != nil {
		t.Errorf("the TCP session did not survive the cut: %v", err)
	}
	stopped := time.Now()
	res := p.Stop(time.Second)

	s := res.Window(cut, time.Time{})
	t.Logf("cut of %s: %s", restored.Sub(cut), s)
	if s.Lost == 0 || s.LongestLossRun == 0 {
		t.Fatalf("no probe lost during a %s cut: %s", restored.Sub(cut), s)
	}
	if s.Outage != time.Duration(s.LongestLossRun)*time.Millisecond {
		t.Errorf("outage %s is not the longest run %d × 1 ms", s.Outage, s.LongestLossRun)
	}
	// Nothing sent while the link was down can have come back.
	if max := restored.Sub(cut); s.Outage > max+20*time.Millisecond {
		t.Errorf("outage %s longer than the cut %s", s.Outage, max)
	}
	if s.Gap < s.Outage-time.Millisecond {
		t.Errorf("gap %s shorter than the loss run %s: the first reply after the loss cannot predate it", s.Gap, s.Outage)
	}
	if before := res.Window(res.Start, cut); before.Lost > before.Sent/100 {
		t.Errorf("%d of %d probes lost before the cut on an idle veth", before.Lost, before.Sent)
	}
	// Absolute-time pacing: probe i is due at start + i ms and never leaves
	// before that (a late wake-up sends the overdue probes at once); how
	// late it may be depends on the machine's load, so that is reported,
	// not asserted.
	var lateMax int64
	for i, at := range res.Sent {
		due := int64(i) * int64(time.Millisecond)
		if at < due {
			t.Fatalf("probe %d left %v before it was due", i, time.Duration(due-at))
		}
		lateMax = max(lateMax, at-due)
	}
	t.Logf("sent %d probes in %s, the latest %v behind schedule", len(res.Sent), stopped.Sub(res.Start), time.Duration(lateMax))
}
