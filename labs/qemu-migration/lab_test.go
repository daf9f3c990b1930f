package qemumigration

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// End-to-end: real QEMU live migrations of a real guest between the two
// hypervisors of the two-site fabric, real FRR leaves, roamd on both
// hypervisors. Needs root.

func TestMain(m *testing.M) { labtest.Main(m) }

// One lab, three migrations under 1 kHz probe traffic and a TCP session:
// RARP-only hv1→hv2 with the guest's own announcement off (QEMU's RARP is
// all roamd gets), then the lossless switchover hv2→hv1 and hv1→hv2.
func TestLiveMigration(t *testing.T) {
	bins := labtest.Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lab, err := Up(ctx, Options{
		NoGuestAnnounce: true,
		Lab:             nslab.Options{RoamdBin: bins.Roamd, RoamctlBin: bins.Roamctl},
		Logger:          labtest.Logger(t, slog.LevelInfo),
	})
	if err != nil {
		t.Fatal(err)
	}
	labtest.CloseAtEnd(t, lab, 60)
	if lab.At != twosite.HV1 {
		t.Fatalf("the guest booted on %s, want hv1", lab.At)
	}
	traffic, err := lab.StartTraffic(ctx, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer traffic.Stop()

	steps := []struct {
		s      Strategy
		to     string
		source string // what roamd must have claimed the guest on
	}{
		{RARPOnly{}, twosite.HV2, "rarp"},
		{Switchover{}, twosite.HV1, "hint"},
		{Switchover{}, twosite.HV2, "hint"},
	}
	var ms []*Migration
	for _, st := range steps {
		m, err := lab.Migrate(ctx, st.s, traffic)
		ms = append(ms, m)
		if err != nil {
			t.Fatal(err)
		}
		if m.To != st.to {
			t.Fatalf("migration %d went to %s, want %s", m.Seq, m.To, st.to)
		}
		// Settle checked the fabric: both leaves route to the new
		// hypervisor, neither holds a path from the old one, the old one
		// has no roamd route left. What remains: how roamd found the guest,
		// its route at the new site, and the TCP session.
		if !strings.Contains(strings.Join(m.Notes, " "), "claimed on "+st.source+",") {
			t.Errorf("migration %d (%s): roamd did not claim the guest on %s: %v", m.Seq, m.Strategy, st.source, m.Notes)
		}
		checkHostRoute(t, lab, m.To)
		if m.TCPErr != nil {
			t.Errorf("migration %d (%s): the TCP session opened before the migrations failed: %v", m.Seq, m.Strategy, m.TCPErr)
		}
		if m.QEMU.Info.Downtime() <= 0 {
			t.Errorf("migration %d: QEMU reports no downtime: %+v", m.Seq, m.QEMU.Info)
		}
	}
	Summarise(ms, traffic.Stop())
	for _, m := range ms {
		if m.Probe.Sent == 0 {
			t.Errorf("migration %d: no probe sent during it", m.Seq)
		}
		if m.Strategy == (Switchover{}).Name() && m.LostAfterSwitch != 0 {
			t.Errorf("migration %d (%s → %s): %d probes sent after the switch were lost", m.Seq, m.From, m.To, m.LostAfterSwitch)
		}
	}
	var b bytes.Buffer
	PrintTable(&b, ms, time.Millisecond)
	b.WriteString("\n")
	PrintMigrations(&b, ms)
	t.Log("\n" + b.String())
}

// checkHostRoute checks roamd's kernel route for the guest on hv: the /32
// out of the tap, protocol 77.
func checkHostRoute(t *testing.T, lab *Lab, hv string) {
	t.Helper()
	n := lab.Net.Node(hv)
	rs, err := n.Handle.RouteGet(twosite.VMAddr.AsSlice())
	if err != nil {
		t.Errorf("route lookup for %s on %s: %v", twosite.VMAddr, hv, err)
		return
	}
	tap, err := n.Handle.LinkByName(Tap)
	if err != nil {
		t.Errorf("%s on %s: %v", Tap, hv, err)
		return
	}
	if len(rs) != 1 || rs[0].LinkIndex != tap.Attrs().Index {
		t.Errorf("%s routes %s via %v, want out of %s", hv, twosite.VMAddr, rs, Tap)
	}
	filter := &netlink.Route{Dst: &net.IPNet{IP: twosite.VMAddr.AsSlice(), Mask: net.CIDRMask(32, 32)}, Protocol: nslab.RoamdProtocol}
	own, err := n.Handle.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_PROTOCOL)
	if err != nil || len(own) == 0 {
		t.Errorf("%s has no roamd route (protocol %d) for the guest: %v %v", hv, nslab.RoamdProtocol, own, err)
	}
}
