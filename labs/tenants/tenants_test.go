package tenants

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
	"github.com/roamd/roamd/labs/nslab/probe"
)

// End-to-end test: the whole lab with real FRR leaves (four, one per tenant
// per leaf) and two real roamd hypervisors, torn down at the end. It needs
// root.

func TestMain(m *testing.M) { labtest.Main(m) }

// host is one address of a VM, where it runs and with which MAC.
type host struct {
	tenant *Tenant
	vm     string
	addr   netip.Addr
	mac    net.HardwareAddr
	hv     string
}

// Each VM's port and MAC.
var (
	portOf = map[string]string{Red.VM: Red.Port, RedStandby: RedStandbyPort, Blue.VM: Blue.Port}
	macOf  = map[string]net.HardwareAddr{Red.VM: Red.MAC, RedStandby: RedStandbyMAC, Blue.VM: Blue.MAC}
)

// labRun is the running lab with each VM's identity server and where every
// VM address is.
type labRun struct {
	lab   *nslab.Lab
	ids   map[string]*Identity // by VM
	hosts []*host
}

// startLab brings the lab up, places the VMs on their home hypervisors and
// starts the VMs' servers: the tenant's echo server (for its probes) and
// an identity server on the identity port and on the other tenant's echo
// port (where nothing of its own tenant ever arrives).
func startLab(t *testing.T) *labRun {
	t.Helper()
	opts := labtest.Options(t, slog.LevelInfo)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab := labtest.Up(t, ctx, opts, 40, Up)
	r := &labRun{lab: lab, ids: map[string]*Identity{}}
	for _, vm := range []struct {
		tenant *Tenant
		name   string
		addrs  []netip.Addr
		home   string
	}{
		{Red, Red.VM, []netip.Addr{VMAddr, VMAddr6}, HV1},
		{Red, RedStandby, []netip.Addr{RedStandbyAddr}, HV2},
		{Blue, Blue.VM, []netip.Addr{VMAddr, VMAddr6}, HV2},
	} {
		hv, err := Place(ctx, lab, vm.tenant, vm.name, vm.addrs...)
		if err != nil {
			t.Fatal(err)
		}
		if hv != vm.home {
			t.Fatalf("%s starts on %s, want %s", vm.name, hv, vm.home)
		}
		for _, a := range vm.addrs {
			r.hosts = append(r.hosts, &host{tenant: vm.tenant, vm: vm.name, addr: a, mac: macOf[vm.name], hv: hv})
		}
		echo, err := probe.StartEcho(lab.Node(vm.name), vm.tenant.EchoPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { echo.Close() })
		id, err := StartIdentity(lab.Node(vm.name), vm.tenant.Name, IdentityPort, vm.tenant.OtherTenant().EchoPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { id.Close() })
		r.ids[vm.name] = id
	}
	return r
}

// moved records that the VM's address addr (every address of vm when addr
// is invalid) now runs on hv, in vm.
func (r *labRun) moved(vm string, addr netip.Addr, hv string) {
	for _, h := range r.hosts {
		if (h.vm == vm && !addr.IsValid()) || h.addr == addr && h.tenant.hasVM(vm) {
			h.vm, h.hv = vm, hv
		}
	}
}

func (t *Tenant) hasVM(vm string) bool {
	return vm == t.VM || (t == Red && vm == RedStandby)
}

// checkTimeout bounds each wait of a check.
const checkTimeout = 15 * time.Second

// checkAnswers asks, from each tenant's client, the VM address over UDP and
// TCP, IPv4 and IPv6: the tenant's own VM must answer every time.
func (r *labRun) checkAnswers(t *testing.T, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, tn := range Tenants {
		for _, addr := range []netip.Addr{VMAddr, VMAddr6} {
			for _, network := range []string{"udp", "tcp"} {
				target := netip.AddrPortFrom(addr, IdentityPort)
				var got string
				err := nslab.Poll(ctx, fmt.Sprintf("%s asking %s over %s", tn.Client, target, network), func(context.Context) (bool, string, error) {
					var err error
					got, err = Ask(r.lab.Node(tn.Client), network, tn.Name, target, time.Second)
					return err == nil, "", err
				})
				switch {
				case err != nil:
					t.Error(err)
				case got != tn.Name:
					t.Errorf("%s asked %s over %s and %s's VM answered", tn.Client, target, network, got)
				}
			}
		}
	}
}

// checkNoStrangers checks that nothing but its own tenant's requests
// reached any VM: no identity request from the other tenant's client, no
// probe of the other tenant (sent to a port only that tenant's VMs answer
// on).
func (r *labRun) checkNoStrangers(t *testing.T) {
	t.Helper()
	for vm, id := range r.ids {
		if s := id.Strangers(); len(s) > 0 {
			t.Errorf("%s received traffic of another tenant: %v", vm, s)
		}
	}
}

// wantRoutes returns the roamd routes hypervisor hv should hold once
// everything settled: a /32 or /128 for each VM address running there, in
// its tenant's table, via its VM's port; nothing in main or in another
// table.
func (r *labRun) wantRoutes(hv string) map[int][]string {
	want := map[int][]string{}
	for _, h := range r.hosts {
		if h.hv == hv {
			want[h.tenant.Table] = append(want[h.tenant.Table], hostRoute(h.addr).String()+" dev "+portOf[h.vm])
		}
	}
	for t := range want {
		slices.Sort(want[t])
	}
	return want
}

// checkKernel waits until each hypervisor's roamd routes are exactly where
// the VMs run (a hypervisor an address left may forward for a hold time
// first), and checks roamd's policy rules: every tenant device (uplink,
// port, the forward device with the tenant's VNI) leads to its tenant's
// table only.
func (r *labRun) checkKernel(t *testing.T, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, hv := range Hypervisors {
		n := r.lab.Node(hv)
		want := r.wantRoutes(hv)
		err := nslab.Poll(ctx, hv+"'s roamd routes "+fmt.Sprint(want), func(context.Context) (bool, string, error) {
			got, err := KernelRoutes(n)
			if err != nil {
				return false, "", err
			}
			return cmp.Equal(want, got), fmt.Sprint(got), nil
		})
		if err != nil {
			t.Error(err)
		}

		rules, err := PolicyRules(n)
		if err != nil {
			t.Fatal(err)
		}
		var required, allowed []string
		for _, tn := range Tenants {
			static := []string{
				fmt.Sprintf("iif roamd-fwd tun_id %d → %d", tn.ID, tn.Table),
				fmt.Sprintf("iif %s → %d", tn.UplinkDev, tn.Table),
			}
			required = append(required, static...)
			allowed = append(allowed, static...)
		}
		for vm, port := range portOf {
			tn := Red
			if Blue.hasVM(vm) {
				tn = Blue
			}
			rule := fmt.Sprintf("iif %s → %d", port, tn.Table)
			if loc, _ := r.lab.PortLocation(vm); loc == hv {
				required = append(required, rule)
			}
			// A port that left keeps its rule until a port of that
			// name comes back (routing/fib's documented limit).
			allowed = append(allowed, rule)
		}
		for _, want := range required {
			if !slices.Contains(rules, want) {
				t.Errorf("%s lacks the rule %q; roamd's rules: %v", hv, want, rules)
			}
		}
		for _, got := range rules {
			if !slices.Contains(allowed, got) {
				t.Errorf("%s has the rule %q, which crosses tenants or is unknown; roamd's rules: %v", hv, got, rules)
			}
		}
	}
}

// checkBGP waits until every path each tenant's leaves hold for each of
// its VM addresses comes from the hypervisor the address runs on, with the
// tenant's own id in its Route Origin; a path with another id would be
// another tenant's route leaking in.
func (r *labRun) checkBGP(t *testing.T, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, h := range r.hosts {
		want := fmt.Sprintf("%s:%d", RouterIDs[h.hv], h.tenant.ID)
		p := hostRoute(h.addr)
		for _, leaf := range h.tenant.Leaves() {
			err := nslab.Poll(ctx, fmt.Sprintf("%s: every path for %s from origin %s", leaf, p, want), func(ctx context.Context) (bool, string, error) {
				ps, err := LeafPaths(ctx, r.lab, leaf, p)
				if err != nil {
					return false, "", err
				}
				for _, lp := range ps {
					if lp.Origin != want {
						return false, fmt.Sprintf("%+v", ps), nil
					}
				}
				return len(ps) > 0, fmt.Sprintf("%+v", ps), nil
			})
			if err != nil {
				t.Error(err)
			}
		}
	}
}

// checkRoamd waits until each roamd holds each VM address of each tenant
// as running where it runs (its own host where the VM is, a remote claim
// from there elsewhere), and checks that every claim a roamd knows for a
// tenant's address carries the MAC of one of that tenant's VMs.
func (r *labRun) checkRoamd(t *testing.T, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, hv := range Hypervisors {
		for _, want := range r.hosts {
			var h RoamdHostDetail
			local := want.hv == hv
			err := nslab.Poll(ctx, fmt.Sprintf("roamd on %s holding %s's %s where %s runs", hv, want.tenant.Name, want.addr, want.vm), func(ctx context.Context) (bool, string, error) {
				var err error
				if h, err = RoamdHost(ctx, r.lab, hv, want.tenant.Name, want.addr); err != nil {
					return false, "", err
				}
				seen := fmt.Sprintf("%+v", h)
				if local {
					return h.State == "announced" && h.Port == portOf[want.vm] && h.MAC == want.mac.String(), seen, nil
				}
				// "remote" where it never ran, "gone" where its port left,
				// "yielded" where its port stayed.
				from := RouterIDs[want.hv].String()
				return h.State != "announced" && h.ForwardTo == "" &&
					slices.ContainsFunc(h.RemoteClaims, func(c RemoteClaim) bool { return c.Origin == from && c.MAC == want.mac.String() }), seen, nil
			})
			if err != nil {
				t.Error(err)
			}
			for _, c := range h.RemoteClaims {
				if !slices.ContainsFunc(r.hosts, func(o *host) bool { return o.tenant == want.tenant && o.mac.String() == c.MAC }) {
					t.Errorf("roamd on %s: %s's host %s has a claim with MAC %s, none of %s's VMs': %+v", hv, want.tenant.Name, want.addr, c.MAC, want.tenant.Name, h)
				}
			}
		}
	}
}

// snapshot is everything of one tenant that another tenant's moves must
// leave alone.
type snapshot struct {
	Hosts  map[string]RoamdHostDetail // by "<hv> <address>"
	Paths  map[string][]LeafPath      // by "<leaf> <prefix>"
	Routes map[string][]string        // the tenant's table, by hypervisor
}

func (r *labRun) snapshot(ctx context.Context, tn *Tenant) (snapshot, error) {
	s := snapshot{Hosts: map[string]RoamdHostDetail{}, Paths: map[string][]LeafPath{}, Routes: map[string][]string{}}
	for _, hv := range Hypervisors {
		for _, addr := range []netip.Addr{VMAddr, VMAddr6} {
			h, err := RoamdHost(ctx, r.lab, hv, tn.Name, addr)
			if err != nil {
				return s, err
			}
			s.Hosts[hv+" "+addr.String()] = h
		}
		rs, err := KernelRoutes(r.lab.Node(hv))
		if err != nil {
			return s, err
		}
		s.Routes[hv] = rs[tn.Table]
	}
	for _, leaf := range tn.Leaves() {
		for _, p := range []netip.Prefix{VMRoute, VMRoute6} {
			ps, err := LeafPaths(ctx, r.lab, leaf, p)
			if err != nil {
				return s, err
			}
			s.Paths[leaf+" "+p.String()] = ps
		}
	}
	return s, nil
}

// startProbe starts a probe every interval from the tenant's client to
// addr at the tenant's echo port and waits until it is answered.
func startProbe(t *testing.T, ctx context.Context, lab *nslab.Lab, tn *Tenant, addr netip.Addr, interval time.Duration) *probe.Prober {
	t.Helper()
	p, err := probe.StartAnswered(ctx, lab.Node(tn.Client), netip.AddrPortFrom(addr, uint16(tn.EchoPort)), interval, 10*time.Second)
	if err != nil {
		t.Fatalf("probe of %s from %s: %v", addr, tn.Client, err)
	}
	t.Cleanup(func() { p.Stop(0) })
	return p
}

// forwardRx returns how many packets hypervisor hv received on roamd's
// forward device: in-flight packets another site forwarded to it.
func forwardRx(lab *nslab.Lab, hv string) (uint64, error) {
	l, err := lab.Node(hv).Handle.LinkByName("roamd-fwd")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", hv, err)
	}
	if l.Attrs().Statistics == nil {
		return 0, fmt.Errorf("%s: no statistics for roamd-fwd", hv)
	}
	return l.Attrs().Statistics.RxPackets, nil
}

// lastArrival returns roamd's record on hv of the tenant's addr arriving
// there after t0.
func lastArrival(ctx context.Context, lab *nslab.Lab, hv string, tn *Tenant, addr netip.Addr, t0 time.Time) (nslab.RoamdMove, error) {
	ms, err := lab.RoamdMoves(ctx, hv)
	if err != nil {
		return nslab.RoamdMove{}, err
	}
	if m, ok := nslab.LastArrival(ms, tn.Name, addr, t0); ok {
		return m, nil
	}
	return nslab.RoamdMove{}, fmt.Errorf("roamd on %s recorded no arrival of %s's %s: %+v", hv, tn.Name, addr, ms)
}

// TestTenants runs the lab through a failover of red's floating address
// from hv1 to hv2 and a live move of red's VM from hv1 to hv2. Before and
// after, each tenant's client reaches only its own VM and each tenant's
// routes and claims stay in its own table, its own fabric and its own host
// table; red's failover and move work, and blue sees none of it.
func TestTenants(t *testing.T) {
	r := startLab(t)
	lab := r.lab
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("isolated", func(t *testing.T) {
		r.checkAnswers(t, ctx)
		r.checkKernel(t, ctx)
		r.checkBGP(t, ctx)
		r.checkRoamd(t, ctx)
		r.checkNoStrangers(t)
	})
	if t.Failed() {
		return
	}

	// Blue is probed in both families throughout; red's events are the
	// windows in which blue must lose nothing. 100 Hz catches any
	// disruption of 10 ms or more (a route change through FRR takes at
	// least 50); at 1 kHz, a scheduling stall of a few hundred ms on a
	// shared two-core machine overflows the echo socket's buffer and
	// loses probes that say nothing about roamd.
	blueProbes := map[string]*probe.Prober{
		"IPv4": startProbe(t, ctx, lab, Blue, VMAddr, 10*time.Millisecond),
		"IPv6": startProbe(t, ctx, lab, Blue, VMAddr6, 10*time.Millisecond),
	}
	blueBefore, err := r.snapshot(ctx, Blue)
	if err != nil {
		t.Fatal(err)
	}
	blueFrom := time.Now()
	type event struct {
		what     string
		from, to time.Time // from its start to red's traffic flowing again
	}
	var redEvents []event

	t.Run("red fails over to hv2, hv1 forwards", func(t *testing.T) {
		// red-vm takes the floating address; hv1 claims it and hv2 learns
		// of the claim.
		if err := TakeFloating(ctx, lab, Red.VM); err != nil {
			t.Fatal(err)
		}
		r.hosts = append(r.hosts, &host{tenant: Red, vm: Red.VM, addr: FloatingAddr, mac: FloatingMAC, hv: HV1})
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		if err := WaitRoutedTo(wctx, lab, Red, HV1, FloatingAddr); err != nil {
			t.Fatal(err)
		}
		err := nslab.Poll(wctx, "hv2 knowing hv1's claim on the floating address", func(ctx context.Context) (bool, string, error) {
			h, err := RoamdHost(ctx, lab, HV2, Red.Name, FloatingAddr)
			return slices.ContainsFunc(h.RemoteClaims, func(c RemoteClaim) bool { return c.Origin == RouterIDs[HV1].String() }), fmt.Sprintf("%+v", h), err
		})
		if err != nil {
			t.Fatal(err)
		}
		fipProbe := startProbe(t, ctx, lab, Red, FloatingAddr, time.Millisecond)
		rx0, err := forwardRx(lab, HV2)
		if err != nil {
			t.Fatal(err)
		}

		// The failover: red-vm gives the address up, red-vm2 takes it.
		t0 := time.Now()
		if err := ReleaseFloating(ctx, lab, Red.VM); err != nil {
			t.Fatal(err)
		}
		if err := TakeFloating(ctx, lab, RedStandby); err != nil {
			t.Fatal(err)
		}
		r.moved(RedStandby, FloatingAddr, HV2)
		err = nslab.Poll(wctx, "hv1 forwarding the floating address to hv2", func(ctx context.Context) (bool, string, error) {
			h, err := RoamdHost(ctx, lab, HV1, Red.Name, FloatingAddr)
			return h.ForwardTo == RouterIDs[HV2].String(), fmt.Sprintf("%+v", h), err
		})
		if err != nil {
			t.Error(err)
		}
		if err := WaitRoutedTo(wctx, lab, Red, HV2, FloatingAddr); err != nil {
			t.Fatal(err)
		}
		if err := fipProbe.WaitReply(wctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		redEvents = append(redEvents, event{"red's failover", t0, time.Now()})
		if m, err := lastArrival(ctx, lab, HV2, Red, FloatingAddr, t0); err != nil {
			t.Error(err)
		} else {
			t.Logf("hv2 claimed %s on %s, frame→announce %d µs; hv1 withdrew %d µs after", FloatingAddr, m.Source, m.DetectToAnnounceUS, m.OldWithdrawnUS)
		}
		s := fipProbe.Stop(time.Second).Window(t0, time.Time{})
		t.Logf("red's floating address probe from the failover on: %s", s)
		// Forwarding is what keeps the failover short: the fabric still
		// sends to hv1 for a while, and hv1 hands it all to hv2.
		if rx, err := forwardRx(lab, HV2); err != nil {
			t.Error(err)
		} else if rx == rx0 {
			t.Errorf("hv2 received no forwarded packet over the underlay during the failover (roamd-fwd rx stayed at %d)", rx)
		} else {
			t.Logf("hv1 forwarded %d in-flight packets to hv2 over the underlay (VNI %d)", rx-rx0, Red.ID)
		}
		r.checkKernel(t, ctx)
		r.checkRoamd(t, ctx)
		r.checkBGP(t, ctx)
	})
	if t.Failed() {
		return
	}

	t.Run("red moves to hv2", func(t *testing.T) {
		// 100 Hz is enough to see red's traffic come back, and keeps the
		// lab light (the probes share two cores with everything else).
		redProbes := map[string]*probe.Prober{
			"IPv4": startProbe(t, ctx, lab, Red, VMAddr, 10*time.Millisecond),
			"IPv6": startProbe(t, ctx, lab, Red, VMAddr6, 10*time.Millisecond),
		}
		rep, err := lab.Move(ctx, nslab.Move{VM: Red.VM, To: HV2, Kind: nslab.Live})
		if err != nil {
			t.Fatal(err)
		}
		r.moved(Red.VM, netip.Addr{}, HV2)
		if slices.ContainsFunc(rep.Frames, func(f nslab.SentFrame) bool { return f.Kind != "rarp" }) {
			t.Fatalf("the VM announced itself with %+v, want RARPs only", rep.Frames)
		}
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		if err := WaitRoutedTo(wctx, lab, Red, HV2, VMAddr, VMAddr6); err != nil {
			t.Fatal(err)
		}
		for fam, p := range redProbes {
			if err := p.WaitReply(wctx, rep.Arrived); err != nil {
				t.Errorf("%s probe of %s after its move: %v", fam, Red.VM, err)
			}
		}
		redEvents = append(redEvents, event{"red's move", rep.Start, time.Now()})
		for _, addr := range []netip.Addr{VMAddr, VMAddr6} {
			if m, err := lastArrival(ctx, lab, HV2, Red, addr, rep.Start); err != nil {
				t.Error(err)
			} else if m.Source != "rarp" {
				t.Errorf("roamd on hv2 claimed red's %s on %q, want the RARP", addr, m.Source)
			}
		}
		r.checkKernel(t, ctx)
		r.checkRoamd(t, ctx)
		r.checkBGP(t, ctx)
		for fam, p := range redProbes {
			t.Logf("red %s probe from the move on: %s", fam, p.Stop(time.Second).Window(rep.Start, time.Time{}))
		}
	})

	t.Run("blue undisturbed", func(t *testing.T) {
		after, err := r.snapshot(ctx, Blue)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(blueBefore, after); d != "" {
			t.Errorf("blue's routes or claims changed while red moved (-before +after):\n%s", d)
		}
		for fam, p := range blueProbes {
			rec := p.Stop(time.Second)
			t.Logf("blue %s probe from red's failover to the end: %s", fam, rec.Window(blueFrom, time.Time{}))
			for _, ev := range redEvents {
				s := rec.Window(ev.from, ev.to)
				if s.Lost > 0 || s.Sent == 0 {
					t.Errorf("blue's %s probe during %s (%s): %s", fam, ev.what, ev.to.Sub(ev.from).Round(time.Millisecond), s)
				}
			}
		}
	})

	t.Run("isolated after the moves", func(t *testing.T) {
		r.checkAnswers(t, ctx)
		r.checkNoStrangers(t)
	})

	// A VM must not reach into another tenant through roamd's forward
	// device: a VXLAN-GPE packet from red's VM to its gateway address,
	// carrying blue's VNI, must not come out in blue's table.
	t.Run("no tenant crossing through the forward port", func(t *testing.T) {
		err := InjectGPE(lab.Node(Red.VM), netip.AddrPortFrom(Gateway, VXLANPort), uint32(Blue.ID),
			netip.AddrPortFrom(netip.MustParseAddr("10.10.0.99"), 40000), netip.AddrPortFrom(VMAddr, IdentityPort),
			[]byte("who red injected-by-red-vm\n"))
		if err != nil {
			t.Fatal(err)
		}
		// The packet would arrive within milliseconds; a second without
		// it is the answer.
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		defer wcancel()
		err = nslab.Poll(wctx, "", func(context.Context) (bool, string, error) {
			return len(r.ids[Blue.VM].Strangers()) > 0, "", nil
		})
		if err == nil {
			t.Errorf("red's VM reached blue's VM through hv2's VXLAN port with VNI %d: %v", Blue.ID, r.ids[Blue.VM].Strangers())
		}
	})
}
