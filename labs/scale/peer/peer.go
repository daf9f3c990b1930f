// Package peer stands in for the rest of the fabric in daemon tests and
// scale benchmarks: a BGP speaker (roamd's own routing/bgp, so its routes
// carry exactly roamd's attributes) that accepts one roamd's session,
// announces host routes as another site would, optionally yields like an
// old site when roamd claims one of them with a higher sequence, and
// reports what it hears as JSON lines.
//
// GoBGP opens its sockets on goroutines of its own, so it cannot be pinned
// to a network namespace from inside a process that lives in another: a
// peer runs as a child process (`ip netns exec NS <test binary>`), started
// with Start. The test binary runs the peer instead of its tests when its
// TestMain calls MaybeRun first.
package peer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/roamd/roamd/routing/bgp"
)

// Config is what the peer does.
type Config struct {
	// RouterID is the site the peer stands for: the Route Origin of its
	// routes, so roamd sees them as that site's claims.
	RouterID netip.Addr `json:"router_id"`
	ASN      uint32     `json:"asn"`
	// Listen is the TCP port roamd connects to (default 179).
	Listen   int        `json:"listen"`
	Roamd    netip.Addr `json:"roamd"`
	RoamdASN uint32     `json:"roamd_asn"`
	TenantID uint16     `json:"tenant_id"`
	// Prefixes are the mobility prefixes; routes outside are neither sent
	// nor accepted.
	Prefixes []netip.Prefix `json:"prefixes"`
	// Routes are announced once the peer runs.
	Routes []Route `json:"routes,omitempty"`
	// Generate, if set, announces Count host routes from First upwards,
	// each with Seq and MAC 52:54:xx (the address's last four bytes).
	Generate *Generate `json:"generate,omitempty"`
	// Yield withdraws one of the peer's routes as soon as roamd claims
	// the prefix with a higher sequence, as an old site does.
	Yield bool `json:"yield,omitempty"`
	// Quiet reports only counts, not one line per claim (large runs).
	Quiet bool `json:"quiet,omitempty"`
	// CPUProfile, if set, is a file the peer writes its CPU profile to
	// (from start to exit): is the stand-in the bottleneck?
	CPUProfile string `json:"cpu_profile,omitempty"`
}

// Route is a host route the peer announces.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	Seq    uint32       `json:"seq"`
	MAC    string       `json:"mac,omitempty"`
	Sticky bool         `json:"sticky,omitempty"`
}

// Generate describes many host routes.
type Generate struct {
	First netip.Addr `json:"first"`
	Count int        `json:"count"`
	Seq   uint32     `json:"seq"`
}

// Event is one line of the peer's report.
type Event struct {
	// Time is when the peer saw it.
	Time time.Time `json:"time"`
	// Kind is "running", "established", "announced" (every configured
	// route handed to the speaker; N is how many), "claim" (roamd
	// announces Prefix with Seq), "withdrawn" (roamd withdrew Prefix),
	// "yielded" (the peer withdrew its own Prefix), "claims" (N prefixes
	// carry a roamd claim now; Quiet mode) or "error".
	Kind   string       `json:"kind"`
	Prefix netip.Prefix `json:"prefix,omitzero"`
	Seq    uint32       `json:"seq,omitempty"`
	N      int          `json:"n,omitempty"`
	Error  string       `json:"error,omitempty"`
}

// envConfig carries the Config to a child process.
const envConfig = "ROAMD_LAB_PEER"

// MaybeRun runs the peer and exits when this process was started as one
// (by Start); otherwise it returns at once. Call it first in TestMain.
func MaybeRun() {
	raw := os.Getenv(envConfig)
	if raw == "" {
		return
	}
	runPeer(raw)
	os.Exit(0)
}

func runPeer(raw string) {
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "peer: decoding config:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "peer: cpu profile:", err)
			os.Exit(2)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// Run runs the peer in the current network namespace until ctx is done,
// writing one JSON Event per line to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Listen == 0 {
		cfg.Listen = bgp.DefaultPort
	}
	s, err := bgp.New(bgp.Config{
		RouterID: cfg.RouterID, ASN: cfg.ASN, ListenPort: cfg.Listen, TenantID: cfg.TenantID,
		Prefixes: cfg.Prefixes,
		// As a leaf configured for it: graceful restart negotiated means
		// End-of-RIB after the initial table, which roamd waits for before
		// it claims after a start (timers.startup_hold).
		GracefulRestart: 120 * time.Second,
		Peers: []bgp.PeerConfig{{Address: cfg.Roamd, ASN: cfg.RoamdASN,
			HoldTime: 9 * time.Second, ConnectRetry: time.Second}},
	})
	if err != nil {
		return err
	}
	r := &reporter{w: bufio.NewWriter(out)}
	defer r.flush()
	if err := s.Connect(ctx); err != nil {
		return err
	}
	r.emit(Event{Kind: "running"})

	mine := map[netip.Prefix]uint32{} // our routes and their sequences
	var mineMu sync.Mutex
	announce := func(rt bgp.Route) error {
		mineMu.Lock()
		mine[rt.Prefix] = rt.Seq
		mineMu.Unlock()
		return s.Announce(rt)
	}
	go func() {
		n := 0
		for _, rt := range cfg.Routes {
			mac, _ := net.ParseMAC(rt.MAC)
			if err := announce(bgp.Route{Prefix: rt.Prefix, Seq: rt.Seq, MAC: mac, Sticky: rt.Sticky}); err != nil {
				r.emit(Event{Kind: "error", Error: err.Error()})
				return
			}
			n++
		}
		if g := cfg.Generate; g != nil {
			a := g.First
			for range g.Count {
				b := a.As4()
				mac := net.HardwareAddr{0x52, 0x54, b[0], b[1], b[2], b[3]}
				if err := announce(bgp.Route{Prefix: netip.PrefixFrom(a, 32), Seq: g.Seq, MAC: mac}); err != nil {
					r.emit(Event{Kind: "error", Error: err.Error()})
					return
				}
				a = a.Next()
				n++
			}
		}
		r.emit(Event{Kind: "announced", N: n})
	}()

	claimed := map[netip.Prefix]uint32{} // roamd's claims, by prefix
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return s.Stop(sctx)
		case <-s.Established():
			r.emit(Event{Kind: "established"})
		case set, ok := <-s.Claims():
			if !ok {
				return nil
			}
			seq, had := uint32(0), false
			for _, c := range set.Claims {
				if c.Origin == cfg.Roamd || c.Peer == cfg.Roamd {
					seq, had = max(seq, c.Seq), true
				}
			}
			old, was := claimed[set.Prefix]
			switch {
			case had && (!was || old != seq):
				claimed[set.Prefix] = seq
				if cfg.Quiet {
					if !was {
						r.emit(Event{Kind: "claims", N: len(claimed)})
					}
				} else {
					r.emit(Event{Kind: "claim", Prefix: set.Prefix, Seq: seq})
				}
			case !had && was:
				delete(claimed, set.Prefix)
				if cfg.Quiet {
					r.emit(Event{Kind: "claims", N: len(claimed)})
				} else {
					r.emit(Event{Kind: "withdrawn", Prefix: set.Prefix})
				}
			}
			if had && cfg.Yield {
				mineMu.Lock()
				ours, isMine := mine[set.Prefix]
				if isMine && seq > ours {
					delete(mine, set.Prefix)
				}
				mineMu.Unlock()
				if isMine && seq > ours {
					if err := s.Withdraw(set.Prefix); err != nil {
						r.emit(Event{Kind: "error", Error: err.Error()})
					} else {
						r.emit(Event{Kind: "yielded", Prefix: set.Prefix})
					}
				}
			}
		}
	}
}

// reporter writes events as JSON lines, flushing each at once so the
// parent sees it when it happens.
type reporter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (r *reporter) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b, _ := json.Marshal(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Write(append(b, '\n'))
	r.w.Flush()
}

func (r *reporter) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Flush()
}
