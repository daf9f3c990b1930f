package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// probeLen is the size of a probe: run id, sequence number, send time.
const probeLen = 24

// notReceived marks a probe without a reply.
const notReceived = -1

// Prober sends numbered UDP probes at a fixed rate and records the replies.
type Prober struct {
	interval time.Duration
	conn     *net.UDPConn
	target   netip.AddrPort
	run      uint64

	// start and base are the same instant on the wall/monotonic clock of
	// Go and on CLOCK_MONOTONIC: offsets from base convert to time.Time.
	start time.Time
	base  int64

	stop     atomic.Bool
	sendDone chan struct{}
	recvDone chan struct{}

	mu         sync.Mutex
	sent       []int64 // send time of probe i, ns after base
	recv       []int64 // reply time of probe i, ns after base, or notReceived
	duplicates int
	received   int
	lastReply  int64 // send time of the newest probe that got a reply
	sendErrors int
}

// Start opens a UDP socket inside ns and sends a probe to target every
// interval until Stop. target must run an echo server (StartEcho).
func Start(ns Netns, target netip.AddrPort, interval time.Duration) (*Prober, error) {
	if interval <= 0 {
		return nil, errors.New("probe interval must be positive")
	}
	p := &Prober{interval: interval, target: target, sendDone: make(chan struct{}), recvDone: make(chan struct{}), lastReply: notReceived}
	var b [8]byte
	_, _ = rand.Read(b[:])
	p.run = binary.BigEndian.Uint64(b[:])
	network := "udp4"
	if target.Addr().Is6() {
		network = "udp6"
	}
	// Not connected: ICMP errors for lost probes must not turn into read
	// and write errors on the socket.
	err := ns.Do(func() error {
		var err error
		p.conn, err = net.ListenUDP(network, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening the probe socket: %w", err)
	}
	_ = p.conn.SetReadBuffer(4 << 20)
	p.start, p.base = time.Now(), monotonic()
	go p.receive()
	go p.send()
	return p, nil
}

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// send runs on its own locked thread: clock_nanosleep to absolute deadlines
// keeps probe n at base + n*interval however late one wake-up was, and a
// 1 ns timer slack keeps wake-ups within tens of microseconds.
func (p *Prober) send() {
	defer close(p.sendDone)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) // back to the default

	buf := make([]byte, probeLen)
	binary.BigEndian.PutUint64(buf[0:8], p.run)
	for seq := int64(0); !p.stop.Load(); seq++ {
		ts := unix.NsecToTimespec(p.base + (seq+1)*int64(p.interval))
		for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
		}
		if p.stop.Load() {
			return
		}
		now := monotonic() - p.base
		binary.BigEndian.PutUint64(buf[8:16], uint64(seq))
		binary.BigEndian.PutUint64(buf[16:24], uint64(now))
		p.mu.Lock()
		p.sent = append(p.sent, now)
		p.recv = append(p.recv, notReceived)
		p.mu.Unlock()
		if _, err := p.conn.WriteToUDPAddrPort(buf, p.target); err != nil {
			// No route while the fabric converges: the probe is lost, which
			// is what is being measured.
			p.mu.Lock()
			p.sendErrors++
			p.mu.Unlock()
		}
	}
}

func (p *Prober) receive() {
	defer close(p.recvDone)
	buf := make([]byte, 2048)
	for {
		n, err := p.conn.Read(buf)
		now := monotonic() - p.base
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n != probeLen || binary.BigEndian.Uint64(buf[0:8]) != p.run {
			continue
		}
		seq := int64(binary.BigEndian.Uint64(buf[8:16]))
		p.mu.Lock()
		switch {
		case seq < 0 || seq >= int64(len(p.recv)):
		case p.recv[seq] != notReceived:
			p.duplicates++
		default:
			p.recv[seq] = now
			p.received++
			if p.sent[seq] > p.lastReply {
				p.lastReply = p.sent[seq]
			}
		}
		p.mu.Unlock()
	}
}

// StartAnswered starts a probe like Start and waits, up to wait within ctx,
// until one is answered: traffic flows. When none is, it stops the probe.
func StartAnswered(ctx context.Context, ns Netns, target netip.AddrPort, interval, wait time.Duration) (*Prober, error) {
	p, err := Start(ns, target, interval)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := p.WaitReply(wctx, time.Now()); err != nil {
		p.Stop(0)
		return nil, err
	}
	return p, nil
}

// WaitReply waits until a probe sent after t has been answered: traffic
// flows again.
func (p *Prober) WaitReply(ctx context.Context, t time.Time) error {
	after := t.Sub(p.start).Nanoseconds()
	tick := time.NewTicker(p.interval * 10)
	defer tick.Stop()
	for {
		p.mu.Lock()
		last := p.lastReply
		p.mu.Unlock()
		if last > after {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for probe replies to %s: %w", p.target, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// Stop stops sending, waits up to drain for the replies still in flight,
// closes the socket and returns everything recorded.
func (p *Prober) Stop(drain time.Duration) *Result {
	p.stop.Store(true)
	<-p.sendDone
	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		done := p.received == len(p.sent)
		p.mu.Unlock()
		if done {
			break
		}
		time.Sleep(p.interval)
	}
	p.conn.Close()
	<-p.recvDone
	return p.Snapshot()
}

// Snapshot returns what has been recorded so far; probes still in flight
// count as lost.
func (p *Prober) Snapshot() *Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &Result{
		Interval:   p.interval,
		Start:      p.start,
		Sent:       append([]int64(nil), p.sent...),
		Recv:       append([]int64(nil), p.recv...),
		Duplicates: p.duplicates,
		SendErrors: p.sendErrors,
	}
}
