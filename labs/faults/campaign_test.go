package faults

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/labtest"
)

// ciFaults is the lean campaign CI runs: every fault once, the kill faults
// at both of their moments (see KillSource).
var ciFaults = []Fault{KillIdle, KillSource, KillSource, KillDestination, KillDestination, RestartLeaf, ResetSession, DeletePort}

// TestFaultCampaign injects every fault with the client's probe running.
// After each: every VM is reachable where it runs and routed only from
// there (leaves and hypervisors), and while a roamd restarted the leaves
// never withdrew the routes of the VMs that stayed on its hypervisor (they
// kept them as stale: graceful restart). The full campaign, with more
// repetitions, is `faultlab campaign`.
func TestFaultCampaign(t *testing.T) {
	lab := startLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := &Campaign{
		Lab:      lab,
		Log:      labtest.Logger(t, slog.LevelInfo),
		Progress: labtest.Writer(t),
	}
	ins, err := c.Run(ctx, ciFaults, 1)
	var b bytes.Buffer
	PrintTable(&b, AllFaults, ins)
	t.Log("fault table:\n" + b.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		for _, v := range in.Violations {
			t.Errorf("%s #%d (%s): %s, %s after the fault", in.Fault, in.Rep, in.Detail, v, ConvergeDeadline)
		}
		if w := in.Watch; w != nil {
			for _, wd := range w.Withdrawals {
				t.Errorf("%s #%d (%s): a leaf withdrew a route of a VM that stayed: %s", in.Fault, in.Rep, in.Detail, wd)
			}
			if len(w.Errors) > 0 || w.RIBSamples == 0 {
				t.Errorf("%s #%d: the leaves were not watched: %s", in.Fault, in.Rep, w)
			}
			if in.Fault == KillIdle && w.RIBStale == 0 {
				t.Errorf("%s #%d: the leaves never marked the restarting roamd's paths stale: no graceful restart? %s", in.Fault, in.Rep, w)
			}
		}
	}
}
