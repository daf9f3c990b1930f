package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/labs/scale"
	"github.com/roamd/roamd/labs/scale/peer"
)

// TestRoamctlAgainstRunningRoamd runs every roamctl command against roamd in
// a namespace after a VM moved in from hv2, and checks what an operator
// reads in the table and what a script reads in the JSON.
func TestRoamctlAgainstRunningRoamd(t *testing.T) {
	s := startSite(t, siteConfig)
	s.arrive(t)
	s.attach(t, vm2)

	t.Run("show hosts", func(t *testing.T) {
		tb := parseTable(t, s.ctl(t, "show", "hosts"))
		if want := []string{"TENANT", "ADDRESS", "MAC", "PORT", "STATE", "SEQ", "FLAGS", "LAST SEEN", "SINCE"}; !slices.Equal(tb.header, want) {
			t.Errorf("header %q, want %q", tb.header, want)
		}
		r := tb.row(t, "ADDRESS", vm1.addr.String())
		want := map[string]string{"TENANT": "default", "MAC": vm1.mac.String(), "PORT": vm1.port, "STATE": "announced", "SEQ": "2", "FLAGS": "-"}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("%s = %q, want %q (row %v)", k, r[k], v, r)
			}
		}
		if !strings.HasPrefix(r["LAST SEEN"], "garp ") || !strings.HasSuffix(r["LAST SEEN"], " ago") {
			t.Errorf("LAST SEEN = %q, want the gratuitous ARP and how long ago", r["LAST SEEN"])
		}

		var hs []api.Host
		s.ctlJSON(t, &hs, "show", "hosts")
		i := slices.IndexFunc(hs, func(h api.Host) bool { return h.Address == vm1.addr.String() })
		if i < 0 {
			t.Fatalf("%s missing from %+v", vm1.addr, hs)
		}
		h := hs[i]
		if h.Tenant != "default" || h.MAC != vm1.mac.String() || h.Port != vm1.port || h.State != "announced" ||
			h.Sequence != 2 || h.LastSource != "garp" || h.Frozen || h.Pinned || time.Since(h.Since) > time.Minute || h.LastSeen.IsZero() {
			t.Errorf("JSON host %+v", h)
		}
	})

	t.Run("show host with history", func(t *testing.T) {
		out := s.ctl(t, "show", "host", vm1.addr.String())
		head, claims, history := hostSections(t, out)
		if !strings.Contains(head, "Host 10.10.0.10 (tenant default)") ||
			!strings.Contains(head, "state announced, sequence 2, MAC 52:54:00:00:00:10, port tapvm1") {
			t.Errorf("host summary:\n%s", head)
		}
		if len(claims.rows) != 0 {
			t.Errorf("hv2 yielded, yet claims are listed: %v", claims.rows)
		}
		r := history.row(t, "DIRECTION", "arrived")
		for k, v := range map[string]string{"FROM": hv2, "SEQ": "2", "SOURCE": "garp", "PORT": vm1.port} {
			if r[k] != v {
				t.Errorf("history %s = %q, want %q (row %v)", k, r[k], v, r)
			}
		}

		var h api.HostDetail
		s.ctlJSON(t, &h, "show", "host", vm1.addr.String())
		if h.State != "announced" || h.Sequence != 2 || len(h.RemoteClaims) != 0 {
			t.Errorf("JSON host %+v", h)
		}
		if len(h.History) != 1 || h.History[0].Direction != "arrived" || h.History[0].From != hv2 ||
			h.History[0].Sequence != 2 || h.History[0].Source != "garp" || h.History[0].Port != vm1.port {
			t.Errorf("JSON history %+v", h.History)
		}
	})

	t.Run("show host with remote claims", func(t *testing.T) {
		out := s.ctl(t, "show", "host", remote.addr.String())
		head, claims, _ := hostSections(t, out)
		if !strings.Contains(head, "Host 10.10.0.60 (tenant default)") || !strings.Contains(head, "state remote") {
			t.Errorf("host summary:\n%s", head)
		}
		r := claims.row(t, "ORIGIN", hv2)
		for k, v := range map[string]string{"SEQ": "4", "STICKY": "false", "MAC": remote.mac.String()} {
			if r[k] != v {
				t.Errorf("claim %s = %q, want %q (row %v)", k, r[k], v, r)
			}
		}

		var h api.HostDetail
		s.ctlJSON(t, &h, "show", "host", remote.addr.String())
		want := []api.Claim{{Origin: hv2, Sequence: 4, MAC: remote.mac.String()}}
		if h.State != "remote" || !slices.Equal(h.RemoteClaims, want) {
			t.Errorf("JSON host %+v, want state remote and claims %+v", h, want)
		}
	})

	t.Run("show host that does not exist", func(t *testing.T) {
		_, errOut, err := run(s.roamctl, "--socket", s.roamd.Socket(), "show", "host", "10.10.0.99")
		if err == nil || !strings.Contains(errOut, "no host 10.10.0.99") {
			t.Errorf("roamctl show host 10.10.0.99: err %v, stderr %q; want a failure naming the address", err, errOut)
		}
	})

	t.Run("show peers", func(t *testing.T) {
		tb := parseTable(t, s.ctl(t, "show", "peers"))
		r := tb.row(t, "PEER", leafAddr)
		// The leaf stand-in sends only its best path, so ADD-PATH is not
		// negotiated: the operator must see that.
		for k, v := range map[string]string{"TENANT": "default", "AS": "65001", "STATE": "established", "RCVD": "1", "ACCEPTED": "1",
			"REJECTED": "0", "SENT": "1", "ADD-PATH": "no", "LAST ERROR": "-"} {
			if r[k] != v {
				t.Errorf("%s = %q, want %q (row %v)", k, r[k], v, r)
			}
		}

		var ps []api.Peer
		s.ctlJSON(t, &ps, "show", "peers")
		if len(ps) != 1 {
			t.Fatalf("JSON peers %+v", ps)
		}
		p := ps[0]
		if p.Address != leafAddr || p.ASN != 65001 || p.State != "established" || p.AddPathRx || p.Accepted != 1 ||
			p.Advertised != 1 || !slices.Equal(p.Families, []string{"ipv4-unicast"}) || time.Since(p.Since) > time.Minute {
			t.Errorf("JSON peer %+v", p)
		}
	})

	t.Run("show moves", func(t *testing.T) {
		tb := parseTable(t, s.ctl(t, "show", "moves"))
		r := tb.row(t, "ADDRESS", vm1.addr.String())
		for k, v := range map[string]string{"DIRECTION": "arrived", "FROM": hv2, "SEQ": "2", "SOURCE": "garp"} {
			if r[k] != v {
				t.Errorf("%s = %q, want %q (row %v)", k, r[k], v, r)
			}
		}
		for _, col := range []string{"DETECT→ROUTE", "DETECT→ANNOUNCE", "OLD WITHDRAWN"} {
			if !strings.HasSuffix(r[col], "µs") && !strings.HasSuffix(r[col], "ms") {
				t.Errorf("%s = %q, want a duration", col, r[col])
			}
		}

		var ms []api.Move
		s.ctlJSON(t, &ms, "show", "moves")
		i := slices.IndexFunc(ms, func(m api.Move) bool { return m.Address == vm1.addr.String() })
		if i < 0 {
			t.Fatalf("no move of %s in %+v", vm1.addr, ms)
		}
		m := ms[i]
		if m.Direction != "arrived" || m.From != hv2 || m.Port != vm1.port || m.DetectToRouteUS <= 0 ||
			m.DetectToAnnounceUS < m.DetectToRouteUS || m.OldWithdrawnUS <= 0 {
			t.Errorf("JSON move %+v", m)
		}
	})

	t.Run("show status", func(t *testing.T) {
		out := s.ctl(t, "show", "status")
		first, rest, _ := strings.Cut(out, "\n")
		if !strings.HasPrefix(first, "roamd ") || !strings.Contains(first, "router ID 192.0.2.11, AS 65011, up ") {
			t.Errorf("status line %q", first)
		}
		hostsLine, ports, _ := strings.Cut(rest, "\n")
		if hostsLine != "hosts: 1 announced" {
			t.Errorf("hosts line %q, want %q", hostsLine, "hosts: 1 announced")
		}
		tb := parseTable(t, ports)
		for _, p := range []string{vm1.port, vm2.port} {
			if r := tb.row(t, "PORT", p); r["TENANT"] != "default" {
				t.Errorf("port %s: %v", p, r)
			}
		}

		var st api.Status
		s.ctlJSON(t, &st, "show", "status")
		if st.RouterID != hv1 || st.ASN != 65011 || st.Hosts["announced"] != 1 || len(st.Ports) != 2 || time.Since(st.Started) > 5*time.Minute {
			t.Errorf("JSON status %+v", st)
		}
	})

	// vm2 migrates in with hints: staged, switched, departed, switched back.
	t.Run("hint arrive", func(t *testing.T) {
		tb := parseTable(t, s.ctl(t, "hint", "arrive", "--mac", vm2.mac.String(), "--ip", vm2.addr.String(), "--port", vm2.port))
		if r := tb.row(t, "ADDRESS", vm2.addr.String()); r["STATE"] != "staged" || r["PORT"] != vm2.port || r["MAC"] != vm2.mac.String() {
			t.Errorf("row %v", r)
		}
		// Staged means the port is ready to queue the VM's packets: a
		// neighbour entry for the VM is in place.
		if out := s.hv.MustRun(t, "ip", "neigh", "show", vm2.addr.String(), "dev", vm2.port); !strings.Contains(out, vm2.mac.String()) {
			t.Errorf("no neighbour entry for the staged VM: %q", out)
		}
	})

	t.Run("switch", func(t *testing.T) {
		var res api.HintResult
		s.ctlJSON(t, &res, "switch", "--mac", vm2.mac.String(), "--port", vm2.port)
		if len(res.Hosts) != 1 || res.Hosts[0].Address != vm2.addr.String() || res.Hosts[0].State != "announced" || len(res.Refused) != 0 {
			t.Fatalf("JSON result %+v", res)
		}
		s.waitPeer(t, "roamd's claim on vm2", func(e peer.Event) bool { return e.Kind == "claim" && e.Prefix.Addr() == vm2.addr })
		if out := s.hv.MustRun(t, "ip", "route", "show", vm2.addr.String()); !strings.Contains(out, "dev "+vm2.port) {
			t.Errorf("route after switch: %q", out)
		}
	})

	t.Run("hint depart", func(t *testing.T) {
		var res api.HintResult
		s.ctlJSON(t, &res, "hint", "depart", "--ip", vm2.addr.String())
		if len(res.Hosts) != 1 || res.Hosts[0].State == "announced" {
			t.Errorf("JSON result %+v: want vm2 no longer announced", res)
		}
		s.waitPeer(t, "roamd to withdraw vm2", func(e peer.Event) bool { return e.Kind == "withdrawn" && e.Prefix.Addr() == vm2.addr })
	})

	t.Run("hint switch", func(t *testing.T) {
		tb := parseTable(t, s.ctl(t, "hint", "switch", "--mac", vm2.mac.String(), "--port", vm2.port))
		r := tb.row(t, "ADDRESS", vm2.addr.String())
		seq, _ := strconv.Atoi(r["SEQ"])
		if r["STATE"] != "announced" || seq < 2 {
			t.Errorf("row %v: want vm2 announced again with a higher sequence", r)
		}
		s.waitPeer(t, "roamd's new claim on vm2", func(e peer.Event) bool {
			return e.Kind == "claim" && e.Prefix.Addr() == vm2.addr && int(e.Seq) == seq
		})
	})

	t.Run("freeze and unfreeze", func(t *testing.T) {
		out := s.ctl(t, "freeze", vm1.addr.String())
		if want := "default/10.10.0.10: announced, frozen true\n"; out != want {
			t.Errorf("freeze printed %q, want %q", out, want)
		}
		if r := parseTable(t, s.ctl(t, "show", "hosts")).row(t, "ADDRESS", vm1.addr.String()); r["FLAGS"] != "frozen" {
			t.Errorf("FLAGS of a frozen host = %q", r["FLAGS"])
		}
		var h api.Host
		s.ctlJSON(t, &h, "unfreeze", vm1.addr.String())
		if h.Frozen || h.State != "announced" || h.Address != vm1.addr.String() {
			t.Errorf("JSON after unfreeze %+v", h)
		}
		if r := parseTable(t, s.ctl(t, "show", "hosts")).row(t, "ADDRESS", vm1.addr.String()); r["FLAGS"] != "-" {
			t.Errorf("FLAGS after unfreeze = %q", r["FLAGS"])
		}
	})

	t.Run("roamd stopped", func(t *testing.T) {
		s.roamd.Stop()
		_, errOut, err := run(s.roamctl, "--socket", s.roamd.Socket(), "show", "hosts")
		want := "roamctl: roamd is not running: no API socket at " + s.roamd.Socket() + "\n"
		if err == nil || errOut != want {
			t.Errorf("after roamd stopped: err %v, stderr %q; want %q", err, errOut, want)
		}
	})
}

// hostSections splits `show host` output into its summary and its claims
// and history tables.
func hostSections(t *testing.T, out string) (head string, claims, history ctlTable) {
	t.Helper()
	parts := strings.Split(strings.TrimRight(out, "\n"), "\n\n")
	if len(parts) != 3 {
		t.Fatalf("show host printed %d sections, want 3:\n%s", len(parts), out)
	}
	table := func(p, title string) ctlTable {
		body, ok := strings.CutPrefix(p, title+"\n")
		if !ok {
			t.Fatalf("section %q does not start with %q", p, title)
		}
		return parseTable(t, body)
	}
	return parts[0], table(parts[1], "Claims by other sites:"), table(parts[2], "History:")
}

func (s *site) waitPeer(t *testing.T, what string, cond func(peer.Event) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := s.peer.Wait(ctx, what, cond); err != nil {
		t.Fatal(err)
	}
}

// TestRoamctlSaysWhenRoamdIsNotRunning checks the errors an operator gets
// when there is no roamd to talk to.
func TestRoamctlSaysWhenRoamdIsNotRunning(t *testing.T) {
	bin := scale.Binaries(t).Roamctl
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.sock")
	stale := filepath.Join(dir, "stale.sock")
	// A socket file left by a crashed roamd: nothing listens on it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()

	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"no socket", []string{"--socket", missing, "show", "hosts"}, "",
			"roamctl: roamd is not running: no API socket at " + missing + "\n"},
		{"socket from the environment", []string{"show", "peers"}, "ROAMD_API_SOCKET=" + missing,
			"roamctl: roamd is not running: no API socket at " + missing + "\n"},
		{"stale socket", []string{"--socket", stale, "-o", "json", "show", "moves"}, "",
			"roamctl: roamd is not running: nothing listens on " + stale + "\n"},
		{"unknown output format", []string{"--socket", missing, "-o", "yaml", "show", "hosts"}, "",
			"roamctl: --output \"yaml\": want table or json\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			if tc.env != "" {
				cmd.Env = append(os.Environ(), tc.env)
			}
			var errOut strings.Builder
			cmd.Stderr = &errOut
			out, err := cmd.Output()
			if err == nil || cmd.ProcessState.ExitCode() != 1 {
				t.Errorf("exit %v, want status 1", err)
			}
			if errOut.String() != tc.want || len(out) != 0 {
				t.Errorf("stdout %q, stderr %q; want stderr %q", out, errOut.String(), tc.want)
			}
		})
	}
}
