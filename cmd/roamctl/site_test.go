package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/nstest"
	"github.com/roamd/roamd/labs/scale"
	"github.com/roamd/roamd/labs/scale/peer"
)

// The site of the privileged tests: roamd on hypervisor hv1 (router ID
// 192.0.2.11, AS 65011) with VM ports tapvm1 and tapvm2, peered with a leaf
// (198.51.100.2, AS 65001) that stands in for the rest of the fabric and
// for hv2 (192.0.2.12): it announces vm1's address as hv2's (the VM ran
// there before) and a host that stays on hv2, and yields vm1 once roamd
// claims it.
const (
	gatewayMAC  = "02:00:5e:10:00:01"
	hv1         = "192.0.2.11"
	hv2         = "192.0.2.12"
	leafAddr    = "198.51.100.2"
	uplinkAddr  = "198.51.100.3"
	metricsAddr = "127.0.0.1:9477"
)

// vmSpec is a VM of the site.
type vmSpec struct {
	port string
	mac  net.HardwareAddr
	addr netip.Addr
}

var (
	vm1    = vmSpec{"tapvm1", mustMAC("52:54:00:00:00:10"), netip.MustParseAddr("10.10.0.10")}
	vm2    = vmSpec{"tapvm2", mustMAC("52:54:00:00:00:20"), netip.MustParseAddr("10.10.0.20")}
	remote = vmSpec{"", mustMAC("52:54:00:00:00:60"), netip.MustParseAddr("10.10.0.60")}
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// siteConfig is roamd's configuration (reconcile at the default 30 s).
const siteConfig = `
version: 1
router_id: 192.0.2.11
asn: 65011
gateway_mac: "02:00:5e:10:00:01"
state: {journal: "{{dir}}/journal"}
api: {socket: "{{dir}}/roamd.sock"}
metrics: {listen: "127.0.0.1:9477"}
log: {level: debug}
tenants:
  - name: default
    id: 1
    ports: ["tap*"]
    gateways: [10.10.0.1]
    prefixes: [10.10.0.0/24]
    peers:
      - {address: 198.51.100.2, asn: 65001, local_address: 198.51.100.3, hold_time: 9s, keepalive: 3s, connect_retry: 1s}
`

type site struct {
	hv, leaf *nstest.NS
	vms      map[string]*nstest.NS // by port
	roamd    *scale.Roamd
	peer     *peer.Process
	roamctl  string
}

// startSite builds the site and returns once the BGP session is up and
// roamd holds the leaf's claims. config is roamd's configuration.
func startSite(t *testing.T, config string) *site {
	t.Helper()
	nstest.RequireRoot(t)
	s := &site{hv: nstest.New(t, "hv1"), leaf: nstest.New(t, "leaf"), vms: map[string]*nstest.NS{}}
	s.roamctl = scale.Binaries(t).Roamctl
	s.hv.MustRun(t, "ip", "addr", "add", hv1+"/32", "dev", "lo")
	nstest.Veth(t, s.hv, "up0", s.leaf, "eth0")
	s.hv.MustRun(t, "ip", "addr", "add", uplinkAddr+"/31", "dev", "up0")
	s.leaf.MustRun(t, "ip", "addr", "add", leafAddr+"/31", "dev", "eth0")

	var err error
	s.peer, err = peer.Start(s.leaf.Name, peer.Config{
		RouterID: netip.MustParseAddr(hv2), ASN: 65001,
		Roamd: netip.MustParseAddr(uplinkAddr), RoamdASN: 65011, TenantID: 1,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24")},
		Routes: []peer.Route{
			{Prefix: netip.PrefixFrom(vm1.addr, 32), Seq: 1, MAC: vm1.mac.String()},
			{Prefix: netip.PrefixFrom(remote.addr, 32), Seq: 4, MAC: remote.mac.String()},
		},
		Yield: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.peer.Stop() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := s.peer.WaitKind(ctx, "running"); err != nil {
		t.Fatal(err)
	}

	s.roamd = scale.StartRoamd(t, s.hv, config)
	s.eventually(t, "the leaf's claims to reach roamd", func() bool {
		h, err := s.roamd.API.Host(context.Background(), "", remote.addr.String())
		return err == nil && len(h.RemoteClaims) == 1
	})
	return s
}

// attach wires a VM to its port and waits until roamd made it a routed port.
func (s *site) attach(t *testing.T, vm vmSpec) *nstest.NS {
	t.Helper()
	ns := nstest.New(t, "vm")
	nstest.Veth(t, s.hv, vm.port, ns, "eth0")
	ns.MustRun(t, "ip", "link", "set", "eth0", "address", vm.mac.String())
	ns.MustRun(t, "ip", "addr", "add", vm.addr.String()+"/24", "dev", "eth0")
	s.vms[vm.port] = ns
	s.eventually(t, vm.port+" to be made a routed port", func() bool {
		out, _ := s.hv.Run("ip", "link", "show", vm.port)
		return strings.Contains(out, gatewayMAC)
	})
	return ns
}

// garp makes the VM on port send a gratuitous ARP for addr.
func (s *site) garp(t *testing.T, vm vmSpec, addr netip.Addr) {
	t.Helper()
	if err := s.vms[vm.port].SendFrame("eth0", frames.GratuitousARP(vm.mac, addr)); err != nil {
		t.Fatal(err)
	}
}

// arrive attaches vm1 and has it announce itself; it returns once the peer
// has yielded (the old site withdrew) and roamd timed that.
func (s *site) arrive(t *testing.T) {
	t.Helper()
	s.attach(t, vm1)
	s.garp(t, vm1, vm1.addr)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := s.peer.Wait(ctx, "roamd's claim on vm1", func(e peer.Event) bool {
		return e.Kind == "claim" && e.Prefix.Addr() == vm1.addr && e.Seq == 2
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.peer.Wait(ctx, "the leaf to yield vm1", func(e peer.Event) bool {
		return e.Kind == "yielded" && e.Prefix.Addr() == vm1.addr
	}); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "roamd to time the old site's withdrawal", func() bool {
		ms, err := s.roamd.API.Moves(context.Background())
		return err == nil && len(ms) > 0 && ms[len(ms)-1].OldWithdrawnUS > 0
	})
}

func (s *site) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := scale.Poll(t.Context(), 20*time.Second, what, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}

// ctl runs roamctl against the site's roamd.
func (s *site) ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := run(s.roamctl, append([]string{"--socket", s.roamd.Socket()}, args...)...)
	if err != nil {
		t.Fatalf("roamctl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// ctlJSON runs roamctl -o json and decodes its output into v, refusing
// fields the documented type does not have.
func (s *site) ctlJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := s.ctl(t, append([]string{"-o", "json"}, args...)...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("roamctl -o json %s: decoding into %T: %v\n%s", strings.Join(args, " "), v, err, out)
	}
}

func run(bin string, args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// table is roamctl's table output: a header line and rows, columns
// separated by two or more spaces.
type ctlTable struct {
	header []string
	rows   []map[string]string
}

var columnGap = regexp.MustCompile(`\s{2,}`)

func parseTable(t *testing.T, text string) ctlTable {
	t.Helper()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatalf("no table in %q", text)
	}
	tb := ctlTable{header: columnGap.Split(strings.TrimSpace(lines[0]), -1)}
	for _, l := range lines[1:] {
		cells := columnGap.Split(strings.TrimSpace(l), -1)
		if len(cells) != len(tb.header) {
			t.Fatalf("row %q has %d cells, header %q has %d", l, len(cells), lines[0], len(tb.header))
		}
		row := map[string]string{}
		for i, h := range tb.header {
			row[h] = cells[i]
		}
		tb.rows = append(tb.rows, row)
	}
	return tb
}

// row returns the row whose column col is val.
func (tb ctlTable) row(t *testing.T, col, val string) map[string]string {
	t.Helper()
	for _, r := range tb.rows {
		if r[col] == val {
			return r
		}
	}
	t.Fatalf("no row with %s = %s in %v", col, val, tb.rows)
	return nil
}

// host returns a host from roamd's API.
func (s *site) host(t *testing.T, addr netip.Addr) api.HostDetail {
	t.Helper()
	h, err := s.roamd.API.Host(context.Background(), "", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	return h
}
