package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/nstest"
	"github.com/roamd/roamd/routing/notify"
)

// hypervisor is a roamd binary running in a fresh namespace, with VMs
// attached by veth pairs.
type hypervisor struct {
	ns     *nstest.NS
	api    *api.Client
	logf   string
	dir    string
	binary string
}

const testConfig = `
version: 1
router_id: 192.0.2.11
asn: 65011
gateway_mac: "02:00:5e:10:00:01"
state: {journal: %[1]s/journal}
api: {socket: %[1]s/roamd.sock}
log: {level: debug}
tenants:
  - name: default
    id: 1
    ports: ["tap*"]
    gateways: [10.10.0.1, "fe80::1", "2001:db8:10::1"]
    prefixes: [10.10.0.0/24, "2001:db8:10::/64"]
hosts:
  - {tenant: default, mac: "52:54:00:00:00:20", addresses: [10.10.0.20]}
forwarding: {notify_port: 4790, notify_key: "lab-notify-key-0123456789"}
`

func buildRoamd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roamd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("building roamd: %v\n%s", err, out)
	}
	return bin
}

func startHypervisor(t *testing.T) *hypervisor {
	t.Helper()
	nstest.RequireRoot(t)
	hv := &hypervisor{ns: nstest.New(t, "hv"), dir: t.TempDir(), binary: buildRoamd(t)}
	hv.ns.MustRun(t, "ip", "addr", "add", "192.0.2.11/32", "dev", "lo")
	cfg := filepath.Join(hv.dir, "roamd.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(testConfig, hv.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	hv.logf = filepath.Join(hv.dir, "roamd.log")
	logf, err := os.Create(hv.logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", hv.ns.Name, hv.binary, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(hv.logf)
			t.Logf("roamd log:\n%s", b)
		}
	})
	hv.api = api.NewClient(filepath.Join(hv.dir, "roamd.sock"))
	hv.eventually(t, "roamd's API to answer", func() bool {
		_, err := hv.api.Status(context.Background())
		return err == nil
	})
	return hv
}

// attachVM creates a VM namespace whose eth0 (mac, addr/24, default via the
// gateway) is wired to port on the hypervisor.
func (hv *hypervisor) attachVM(t *testing.T, port, mac, addr string) *nstest.NS {
	t.Helper()
	vm := nstest.New(t, "vm")
	nstest.Veth(t, hv.ns, port, vm, "eth0")
	vm.MustRun(t, "ip", "link", "set", "eth0", "address", mac)
	vm.MustRun(t, "ip", "addr", "add", addr+"/24", "dev", "eth0")
	vm.MustRun(t, "ip", "route", "add", "default", "via", "10.10.0.1")
	vm.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
	hv.eventually(t, port+" to be made a routed port", func() bool {
		out, _ := hv.ns.Run("ip", "link", "show", port)
		return strings.Contains(out, "02:00:5e:10:00:01")
	})
	return vm
}

func (hv *hypervisor) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (hv *hypervisor) host(t *testing.T, addr string) (api.Host, bool) {
	hs, err := hv.api.Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Address == addr {
			return h, true
		}
	}
	return api.Host{}, false
}

func (hv *hypervisor) routes(t *testing.T) string {
	return hv.ns.MustRun(t, "ip", "route", "show", "proto", "77")
}

func TestGratuitousARPMakesTheVMRouted(t *testing.T) {
	hv := startHypervisor(t)
	vm := hv.attachVM(t, "tapvm1", "52:54:00:00:00:10", "10.10.0.10")
	mac, _ := net.ParseMAC("52:54:00:00:00:10")

	if err := vm.SendFrame("eth0", frames.GratuitousARP(mac, netip.MustParseAddr("10.10.0.10"))); err != nil {
		t.Fatal(err)
	}
	hv.eventually(t, "the /32 with roamd's protocol", func() bool {
		return strings.Contains(hv.routes(t), "10.10.0.10 dev tapvm1")
	})
	if h, _ := hv.host(t, "10.10.0.10"); h.State != "announced" || h.LastSource != "garp" || h.MAC != mac.String() {
		t.Fatalf("host after the GARP: %+v", h)
	}
	out, err := vm.Run("ping", "-c", "1", "-W", "2", "10.10.0.1")
	if err != nil {
		t.Fatalf("the VM cannot reach the anycast gateway: %v\n%s", err, out)
	}

	hv.ns.MustRun(t, "ip", "link", "del", "tapvm1")
	hv.eventually(t, "roamd to see the port go", func() bool {
		h, ok := hv.host(t, "10.10.0.10")
		return ok && h.State == "gone"
	})
	if r := hv.routes(t); strings.Contains(r, "10.10.0.10") {
		t.Fatalf("route left after the port was removed:\n%s", r)
	}
}

func TestRARPClaimsABoundMAC(t *testing.T) {
	hv := startHypervisor(t)
	vm := hv.attachVM(t, "tapvm2", "52:54:00:00:00:20", "10.10.0.20")
	mac, _ := net.ParseMAC("52:54:00:00:00:20")

	// One RARP, as QEMU sends after a migration: no IP inside. The MAC is
	// bound to 10.10.0.20 in the configuration.
	if err := vm.SendFrame("eth0", frames.RARP(mac)); err != nil {
		t.Fatal(err)
	}
	hv.eventually(t, "the /32 after the RARP", func() bool {
		return strings.Contains(hv.routes(t), "10.10.0.20 dev tapvm2")
	})
	if h, _ := hv.host(t, "10.10.0.20"); h.State != "announced" || h.LastSource != "rarp" {
		t.Fatalf("host after the RARP: %+v", h)
	}
	out, err := vm.Run("ping", "-c", "1", "-W", "2", "10.10.0.1")
	if err != nil {
		t.Fatalf("the VM cannot reach the anycast gateway: %v\n%s", err, out)
	}
}

func TestIPv6NeighbourAdvertisementAndGateway(t *testing.T) {
	hv := startHypervisor(t)
	vm := hv.attachVM(t, "tapvm3", "52:54:00:00:00:30", "10.10.0.30")
	vm.MustRun(t, "ip", "-6", "addr", "add", "2001:db8:10::30/64", "dev", "eth0", "nodad")
	vm.MustRun(t, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	mac, _ := net.ParseMAC("52:54:00:00:00:30")

	// What a virtio guest sends after a migration: an unsolicited NA to
	// all nodes with the Override flag.
	if err := vm.SendFrame("eth0", frames.UnsolicitedNA(mac, netip.MustParseAddr("2001:db8:10::30"), false)); err != nil {
		t.Fatal(err)
	}
	hv.eventually(t, "the /128 with roamd's protocol", func() bool {
		out := hv.ns.MustRun(t, "ip", "-6", "route", "show", "proto", "77")
		return strings.Contains(out, "2001:db8:10::30 dev tapvm3")
	})
	if h, _ := hv.host(t, "2001:db8:10::30"); h.State != "announced" || h.LastSource != "na" {
		t.Fatalf("host after the NA: %+v", h)
	}
	for _, gw := range []string{"fe80::1%eth0", "2001:db8:10::1"} {
		if out, err := vm.Run("ping", "-6", "-c", "1", "-W", "2", gw); err != nil {
			t.Fatalf("the VM cannot reach the gateway %s: %v\n%s", gw, err, out)
		}
	}
	// Another address of the VM's /64 lives elsewhere: roamd answers the
	// VM's solicitation with the anycast MAC, so the VM sends it to the
	// gateway to be routed.
	_, _ = vm.Run("ping", "-6", "-c", "1", "-W", "1", "2001:db8:10::99")
	out := vm.MustRun(t, "ip", "-6", "neigh", "show", "2001:db8:10::99", "dev", "eth0")
	if !strings.Contains(out, "02:00:5e:10:00:01") {
		t.Fatalf("the VM's neighbour entry for another subnet address is not the anycast MAC: %q", out)
	}
}

// TestBridgedSegmentNeighboursRepairedAfterDeparture uses the second port
// model: a bridge with several VMs behind it. When a VM on the segment is
// claimed by another site, roamd announces its address with the anycast MAC
// on the bridge, so a neighbour left behind routes to it instead of sending
// to a MAC that is gone.
func TestBridgedSegmentNeighboursRepairedAfterDeparture(t *testing.T) {
	hv := startHypervisor(t)
	hv.ns.MustRun(t, "ip", "link", "add", "name", "tapbr0", "type", "bridge")
	hv.ns.MustRun(t, "ip", "link", "set", "tapbr0", "up")
	hv.eventually(t, "the bridge to be made a routed port", func() bool {
		out, _ := hv.ns.Run("ip", "link", "show", "tapbr0")
		return strings.Contains(out, "02:00:5e:10:00:01")
	})
	vms := map[string]*nstest.NS{}
	for _, v := range []struct{ name, mac, addr string }{{"a", "52:54:00:00:00:41", "10.10.0.41"}, {"b", "52:54:00:00:00:42", "10.10.0.42"}} {
		vm := nstest.New(t, "vm"+v.name)
		nstest.Veth(t, hv.ns, "seg-"+v.name, vm, "eth0")
		hv.ns.MustRun(t, "ip", "link", "set", "seg-"+v.name, "master", "tapbr0")
		vm.MustRun(t, "ip", "link", "set", "eth0", "address", v.mac)
		vm.MustRun(t, "ip", "addr", "add", v.addr+"/24", "dev", "eth0")
		vm.MustRun(t, "sysctl", "-qw", "net.ipv4.neigh.eth0.locktime=0")
		vms[v.name] = vm
	}
	macA, _ := net.ParseMAC("52:54:00:00:00:41")
	hv.eventually(t, "VM a's claim on the bridge", func() bool {
		_ = vms["a"].SendFrame("eth0", frames.GratuitousARP(macA, netip.MustParseAddr("10.10.0.41")))
		h, ok := hv.host(t, "10.10.0.41")
		return ok && h.State == "announced" && h.Port == "tapbr0"
	})
	vms["b"].MustRun(t, "ping", "-c", "1", "-W", "2", "10.10.0.41")
	if out := vms["b"].MustRun(t, "ip", "neigh", "show", "10.10.0.41"); !strings.Contains(out, "52:54:00:00:00:41") {
		t.Fatalf("b does not know a directly: %q", out)
	}

	// Another site (192.0.2.99) claims a with a higher sequence and tells
	// this one directly.
	hv.ns.MustRun(t, "ip", "addr", "add", "192.0.2.99/32", "dev", "lo")
	var nc *notify.Conn
	if err := hv.ns.Do(func() (err error) {
		nc, err = notify.Listen(netip.MustParseAddr("192.0.2.99"), 4790, []byte("lab-notify-key-0123456789"), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	acks := make(chan notify.Message, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go nc.Run(ctx, func(m notify.Message) { acks <- m })
	if err := nc.Send(netip.MustParseAddr("192.0.2.11"), notify.Message{TenantID: 1, Seq: 5,
		Addr: netip.MustParseAddr("10.10.0.41"), MAC: macA}); err != nil {
		t.Fatal(err)
	}
	// The old site acknowledges once it forwards to the claimer.
	select {
	case m := <-acks:
		if m.Kind != notify.Ack || m.Seq != 5 || m.Addr != netip.MustParseAddr("10.10.0.41") || m.Origin != netip.MustParseAddr("192.0.2.11") {
			t.Fatalf("acknowledgement: %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the old site did not acknowledge the move notification")
	}
	hv.eventually(t, "a to yield to the other site", func() bool {
		h, _ := hv.host(t, "10.10.0.41")
		return h.State == "yielded" && h.ForwardTo == "192.0.2.99"
	})
	hv.eventually(t, "b's neighbour entry for a to point at the gateway", func() bool {
		out := vms["b"].MustRun(t, "ip", "neigh", "show", "10.10.0.41")
		return strings.Contains(out, "02:00:5e:10:00:01")
	})
}

// TestVMFoundByItsTraffic: a VM whose announcements roamd missed (it
// restarted meanwhile) and that keeps its ARP entry for the gateway sends no
// ARP at all; its first ordinary packet reveals it.
func TestVMFoundByItsTraffic(t *testing.T) {
	hv := startHypervisor(t)
	vm := hv.attachVM(t, "tapvm5", "52:54:00:00:00:50", "10.10.0.50")
	vm.MustRun(t, "ip", "neigh", "replace", "10.10.0.1", "lladdr", "02:00:5e:10:00:01", "dev", "eth0", "nud", "permanent")
	// One echo request: no ARP, no announcement, just traffic.
	_, _ = vm.Run("ping", "-c", "1", "-W", "1", "10.10.0.1")
	hv.eventually(t, "the VM to be claimed from its traffic", func() bool {
		h, ok := hv.host(t, "10.10.0.50")
		return ok && h.State == "announced" && h.LastSource == "traffic"
	})
	if !strings.Contains(hv.routes(t), "10.10.0.50 dev tapvm5") {
		t.Fatalf("no route after the traffic claim:\n%s", hv.routes(t))
	}
}

// TestConflictingClaimWaitsForTheOwner: a second VM claiming an address
// another VM holds is refused while the owner answers its probe, and gets it
// once the owner is gone.
func TestConflictingClaimWaitsForTheOwner(t *testing.T) {
	hv := startHypervisor(t)
	owner := hv.attachVM(t, "tapvm6", "52:54:00:00:00:60", "10.10.0.60")
	macOwner, _ := net.ParseMAC("52:54:00:00:00:60")
	addr := netip.MustParseAddr("10.10.0.60")
	hv.eventually(t, "the owner's claim", func() bool {
		_ = owner.SendFrame("eth0", frames.GratuitousARP(macOwner, addr))
		h, ok := hv.host(t, "10.10.0.60")
		return ok && h.State == "announced" && h.MAC == macOwner.String()
	})

	// Another VM takes the same address while the owner still answers.
	intruder := hv.attachVM(t, "tapvm7", "52:54:00:00:00:70", "10.10.0.70")
	macIntruder, _ := net.ParseMAC("52:54:00:00:00:70")
	if err := intruder.SendFrame("eth0", frames.GratuitousARP(macIntruder, addr)); err != nil {
		t.Fatal(err)
	}
	hv.eventually(t, "the probe of the owner to be answered", func() bool {
		b, _ := os.ReadFile(hv.logf)
		return strings.Contains(string(b), `msg="owner probed"`) && strings.Contains(string(b), "alive=true")
	})
	if h, _ := hv.host(t, "10.10.0.60"); h.MAC != macOwner.String() || h.Port != "tapvm6" {
		t.Fatalf("the address moved to the intruder while its owner answered: %+v", h)
	}

	// The owner goes silent (its interface down, its port still there):
	// the next claim is probed again and goes through.
	owner.MustRun(t, "ip", "link", "set", "eth0", "down")
	hv.eventually(t, "the claim to go through once the owner is gone", func() bool {
		_ = intruder.SendFrame("eth0", frames.GratuitousARP(macIntruder, addr))
		h, _ := hv.host(t, "10.10.0.60")
		return h.MAC == macIntruder.String() && h.Port == "tapvm7" && h.State == "announced"
	})
	if !strings.Contains(hv.routes(t), "10.10.0.60 dev tapvm7") {
		t.Fatalf("route not moved to the new owner:\n%s", hv.routes(t))
	}
}

// TestIPv6FoundAfterAnIPv4Arrival: a dual-stack VM that announced only its
// IPv4 address is asked for its IPv6 one (an echo to all nodes from the
// global gateway, answered from its global address).
func TestIPv6FoundAfterAnIPv4Arrival(t *testing.T) {
	hv := startHypervisor(t)
	vm := hv.attachVM(t, "tapvm8", "52:54:00:00:00:80", "10.10.0.80")
	vm.MustRun(t, "ip", "-6", "addr", "add", "2001:db8:10::80/64", "dev", "eth0", "nodad")
	mac, _ := net.ParseMAC("52:54:00:00:00:80")
	if err := vm.SendFrame("eth0", frames.GratuitousARP(mac, netip.MustParseAddr("10.10.0.80"))); err != nil {
		t.Fatal(err)
	}
	hv.eventually(t, "both families claimed", func() bool {
		h4, ok4 := hv.host(t, "10.10.0.80")
		h6, ok6 := hv.host(t, "2001:db8:10::80")
		return ok4 && ok6 && h4.State == "announced" && h6.State == "announced" && h6.Port == "tapvm8"
	})
}
