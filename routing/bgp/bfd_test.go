package bgp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/roamd/roamd/labs/nstest"
	"github.com/vishvananda/netlink"
)

// BFD needs UDP port 3784 to itself, once per network namespace, so the
// two ends run as helper processes (this test binary again), each in a
// namespace of its own, joined by a veth.
const (
	bfdHelperEnv  = "ROAMD_BFD_HELPER"
	bfdLinePrefix = "roamd-bfd: "
)

var (
	bfdHV   = netip.MustParseAddr("192.0.2.11")
	bfdLeaf = netip.MustParseAddr("192.0.2.1")
)

func TestBFD(t *testing.T) {
	nstest.RequireRoot(t)
	hv := nstest.New(t, "bfd-hv")
	lf := nstest.New(t, "bfd-leaf")
	a, b := nstest.Veth(t, hv, "hv0", lf, "leaf0")
	for _, x := range []struct {
		ns   *nstest.NS
		link netlink.Link
		addr netip.Addr
	}{{hv, a, bfdHV}, {lf, b, bfdLeaf}} {
		ipn := &net.IPNet{IP: x.addr.AsSlice(), Mask: net.CIDRMask(24, 32)}
		if err := x.ns.Handle.AddrAdd(x.link, &netlink.Addr{IPNet: ipn}); err != nil {
			t.Fatal(err)
		}
	}

	leafProc, _ := startBFDHelper(t, lf, "leaf")
	_, lines := startBFDHelper(t, hv, "speaker")
	expect := func(prefix string, within time.Duration) string {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("speaker helper exited before %q", prefix)
				}
				if strings.HasPrefix(l, "fail") {
					t.Fatalf("speaker helper: %s", l)
				}
				if strings.HasPrefix(l, prefix) {
					return strings.TrimPrefix(l, prefix)
				}
			case <-deadline:
				t.Fatalf("no %q from the speaker helper within %v", prefix, within)
			}
		}
	}
	expect("bfd-up", 60*time.Second)

	// The leaf freezes: keepalives and BFD both stop. BFD (3 x 1s)
	// notices long before the 9s hold timer, and GoBGP resets the session
	// with an administrative reset; a hold timer expiry reads differently.
	if err := leafProc.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	reason := expect("down ", 30*time.Second)
	t.Logf("session reset: %s", reason)
	if !strings.Contains(reason, "administrative reset") {
		t.Errorf("session went down with %q, want the administrative reset BFD triggers", reason)
	}
}

// startBFDHelper runs this test binary as the given helper inside ns and
// returns its process and its protocol lines.
func startBFDHelper(t *testing.T, ns *nstest.NS, role string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^TestBFDHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), bfdHelperEnv+"="+role)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the %s helper: %v", role, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), bfdLinePrefix); ok {
				lines <- l
			}
		}
	}()
	return cmd, lines
}

// TestBFDHelper is one end of TestBFD, run in a namespace of its own.
func TestBFDHelper(t *testing.T) {
	switch os.Getenv(bfdHelperEnv) {
	case "leaf":
		runBFDLeaf(t)
	case "speaker":
		runBFDSpeaker(t)
	default:
		t.Skip("helper process of TestBFD")
	}
}

func say(format string, args ...any) { fmt.Printf(bfdLinePrefix+format+"\n", args...) }

func runBFDLeaf(t *testing.T) {
	s := server.NewBgpServer()
	go s.Serve()
	ctx := context.Background()
	err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: leafASN, RouterId: bfdLeaf.String(), ListenPort: 179, ListenAddresses: []string{bfdLeaf.String()},
	}})
	if err == nil {
		err = s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: bfdHV.String(), PeerAsn: testASN},
			Transport: &api.Transport{PassiveMode: true},
			Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3}},
			Bfd:       &api.BfdPeerConfig{Enabled: true},
		}})
	}
	if err != nil {
		say("fail %v", err)
		t.Fatal(err)
	}
	select {} // until the test kills it
}

func runBFDSpeaker(t *testing.T) {
	fail := func(format string, args ...any) {
		say("fail "+format, args...)
		t.Fatalf(format, args...)
	}
	cfg := testConfig(PeerConfig{Address: bfdLeaf, ASN: leafASN, LocalAddress: bfdHV, ConnectRetry: time.Second, BFD: true})
	cfg.RouterID = bfdHV
	s, err := New(cfg)
	if err != nil {
		fail("%v", err)
	}
	if err := s.Connect(context.Background()); err != nil {
		fail("%v", err)
	}
	wait := func(what string, within time.Duration, cond func() bool) {
		for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				fail("no %s within %v", what, within)
			}
		}
	}
	state := func() PeerStatus { return s.Peers()[0] }
	wait("established session", 30*time.Second, func() bool { return state().State == "established" })
	wait("BFD session up", 30*time.Second, func() bool {
		up := false
		s.srv.ListBfdPeer(context.Background(), func(addr string, st *api.BfdPeerState) {
			up = up || (addr == bfdLeaf.String() && st.GetSessionState() == api.BfdSessionState_BFD_SESSION_STATE_UP)
		})
		return up
	})
	say("bfd-up")
	wait("session reset", 60*time.Second, func() bool { return state().State != "established" })
	say("down %s", state().LastError)
	_ = s.Stop(context.Background())
}
