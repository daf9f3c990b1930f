package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// Defaults of Options.
const (
	DefaultAttempts = 3
	DefaultInterval = 300 * time.Millisecond
)

// Request names the owner to ask about.
type Request struct {
	// Addr is the contested address.
	Addr netip.Addr
	// MAC is the owner's MAC: a local answer must come from it.
	MAC net.HardwareAddr
	// Port is the local port of the owner; "" when it runs at another site.
	Port string
}

func (r Request) String() string {
	where := "remote"
	if r.Port != "" {
		where = "port " + r.Port
	}
	return fmt.Sprintf("%s at %s (%s)", r.Addr, r.MAC, where)
}

// Conn is the part of a net.PacketConn a probe uses. *packet.Conn (local
// probes) and *icmp.PacketConn (remote probes) are Conns.
type Conn interface {
	ReadFrom(b []byte) (int, net.Addr, error)
	WriteTo(b []byte, addr net.Addr) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// Options configure a Prober.
type Options struct {
	// Attempts is how many requests a probe sends at most (default 3).
	Attempts int
	// Interval is how long each request waits for an answer (default
	// 300 ms).
	Interval time.Duration
	// GatewayMAC is the anycast gateway MAC, the source of local probes.
	// Required for local probes.
	GatewayMAC net.HardwareAddr
	// Source returns the address a local probe for addr out of port is
	// sent from: the gateway of the port's tenant in addr's family. nil, or
	// an invalid address, sends an RFC 5227 ARP probe (from 0.0.0.0) or a
	// duplicate address detection solicitation (from ::) instead, which
	// owners answer too.
	Source func(port string, addr netip.Addr) netip.Addr
	// ListenLink opens the owner's port for a local probe, receiving at
	// least the frames whose Ethernet source is owner; it returns an error
	// matching ErrNoPort when the port does not exist. nil: a packet socket
	// with a kernel filter.
	ListenLink func(port string, owner net.HardwareAddr) (Conn, error)
	// ListenICMP opens an ICMP (v6: ICMPv6) socket for a remote probe. nil:
	// a raw socket.
	ListenICMP func(v6 bool) (Conn, error)
	// Logger receives one line per probe; nil discards.
	Logger *slog.Logger
}

// ErrNoPort is matched by the error of a ListenLink whose port does not
// exist: an owner whose port is gone cannot answer.
var ErrNoPort = errors.New("no such port")

// Prober probes owners of contested addresses. It is safe for concurrent
// use; each probe uses sockets of its own.
type Prober struct {
	opts Options
	log  *slog.Logger
}

// New returns a Prober.
func New(opts Options) *Prober {
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.ListenLink == nil {
		opts.ListenLink = listenLink
	}
	if opts.ListenICMP == nil {
		opts.ListenICMP = listenICMP
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Prober{opts: opts, log: log}
}

// Probe reports whether the owner of r.Addr answered. It is false only
// when every request went out unanswered or the owner's port is gone; when
// the probe cannot be carried out it is true, so a claim against the owner
// stays refused.
func (p *Prober) Probe(ctx context.Context, r Request) bool {
	start := time.Now()
	alive, sent, err := p.probe(ctx, r)
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case errors.Is(err, ErrNoPort):
		p.log.Info("owner probe: port gone", "request", r.String(), "err", err)
		return false
	case err != nil:
		p.log.Warn("owner probe could not be carried out; keeping the owner", "request", r.String(), "sent", sent, "took", took, "err", err)
		return true
	}
	p.log.Info("owner probed", "request", r.String(), "alive", alive, "sent", sent, "took", took)
	return alive
}

// probe sends up to Attempts requests and returns whether one was
// answered and how many were sent.
func (p *Prober) probe(ctx context.Context, r Request) (alive bool, sent int, err error) {
	if !r.Addr.IsValid() {
		return false, 0, errors.New("probe: no address")
	}
	var ex exchange
	if r.Port != "" {
		ex, err = p.local(r)
	} else {
		ex, err = p.remote(r)
	}
	if err != nil {
		return false, 0, err
	}
	defer ex.conn.Close()

	// The context's end interrupts a read at once.
	stop := context.AfterFunc(ctx, func() { _ = ex.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	buf := make([]byte, 9216)
	for sent < p.opts.Attempts {
		if err := ctx.Err(); err != nil {
			return false, sent, fmt.Errorf("probe of %s: %w", r.Addr, err)
		}
		if _, err := ex.conn.WriteTo(ex.request(sent), ex.to); err != nil {
			return false, sent, fmt.Errorf("probe of %s: sending: %w", r.Addr, err)
		}
		sent++
		deadline := time.Now().Add(p.opts.Interval)
		for {
			if err := ex.conn.SetReadDeadline(deadline); err != nil {
				return false, sent, fmt.Errorf("probe of %s: %w", r.Addr, err)
			}
			if ctx.Err() != nil {
				// Cancelled between AfterFunc and the deadline just set.
				return false, sent, fmt.Errorf("probe of %s: %w", r.Addr, ctx.Err())
			}
			n, from, err := ex.conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return false, sent, fmt.Errorf("probe of %s: %w", r.Addr, ctx.Err())
				}
				if isTimeout(err) {
					break // unanswered: next attempt
				}
				return false, sent, fmt.Errorf("probe of %s: reading: %w", r.Addr, err)
			}
			if ex.answers(buf[:n], from) {
				return true, sent, nil
			}
		}
	}
	return false, sent, nil
}

// exchange is one kind of probe: where requests go, what they are and what
// counts as an answer.
type exchange struct {
	conn Conn
	to   net.Addr
	// request returns the frame or message of attempt i (from 0).
	request func(i int) []byte
	// answers reports whether a received frame or message is the owner's
	// answer.
	answers func(b []byte, from net.Addr) bool
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
