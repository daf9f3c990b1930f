package daemon

import (
	"net"
	"net/netip"
	"testing"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/hosts"
)

// ackingSite stands in for the old site: it answers a notification with an
// acknowledgement, as a roamd does once it forwards.
type ackingSite struct {
	d        *Daemon
	answer   bool
	notified chan hosts.Claim
}

func (s *ackingSite) Notify(to netip.Addr, _ uint16, c hosts.Claim, addr netip.Addr) error {
	s.notified <- c
	if s.answer {
		go s.d.acks.deliver(ackKey{tenant: "default", addr: addr, seq: c.Seq, from: to})
	}
	return nil
}

func (s *ackingSite) Ack(netip.Addr, uint16, uint32, netip.Addr, net.HardwareAddr) error { return nil }

func TestSwitchReturnsOnceTheOldSiteForwards(t *testing.T) {
	for _, answer := range []bool{true, false} {
		cfg := testConfig(t, 1790)
		rt := &fakeRouter{claims: make(chan ClaimSet, 1)}
		site := &ackingSite{answer: answer, notified: make(chan hosts.Claim, 4)}
		d, ctx := runDaemon(t, cfg, rt, func(o *Options) { o.Notifier = site })
		site.d = d
		adopt(t, ctx, d, "tap1", 3, 1)
		rt.claims <- ClaimSet{Prefix: vmPfx, Claims: []hosts.Claim{{Origin: hv2ID, Seq: 4, MAC: vmMAC}}}
		eventually(t, "the old site's claim and the port", func() bool {
			st, err := d.Status(ctx)
			h, herr := d.Host(ctx, "default", vmIP.String())
			return err == nil && len(st.Ports) == 1 && herr == nil && len(h.RemoteClaims) == 1
		})
		res, err := d.Hint(ctx, api.Hint{Kind: "switch", MAC: vmMAC.String(), Port: "tap1"})
		if err != nil {
			t.Fatal(err)
		}
		if c := <-site.notified; c.Seq != 5 || c.Origin != hv1ID {
			t.Fatalf("notification %+v, want seq 5 from %s", c, hv1ID)
		}
		if len(res.Hosts) != 1 || res.Hosts[0].State != "announced" || res.Hosts[0].Sequence != 5 {
			t.Fatalf("switch result hosts: %+v", res.Hosts)
		}
		if len(res.OldSites) != 1 || res.OldSites[0].Site != hv2ID.String() || res.OldSites[0].Forwarding != answer {
			t.Fatalf("old site answering %v: switch reported %+v", answer, res.OldSites)
		}
	}
}
