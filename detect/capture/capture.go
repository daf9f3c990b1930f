package capture

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/roamd/roamd/detect/frames"
)

// deliverTimeout is how long a reader waits for room in the output channel
// before it drops an event. The kernel queues frames meanwhile.
const deliverTimeout = 100 * time.Millisecond

// downRecheck is how often a reader whose port went down checks whether the
// port was deleted (the kernel reports both as ENETDOWN, once).
const downRecheck = time.Second

// AllPorts is the key of the totals in the map Stats returns (no interface
// is named "").
const AllPorts = ""

// Event is one observation read on a port.
type Event struct {
	Port  string
	Index int
	Time  time.Time // when the frame was read
	Obs   frames.Observation
}

// Options configures a Manager.
type Options struct {
	// RatePerSecond is each port's frame budget (token bucket, burst of one
	// second's worth); excess frames are dropped and counted. 0: unlimited.
	RatePerSecond int
	// IgnoreMAC is the anycast gateway MAC: frames from it are roamd's own,
	// dropped in the kernel.
	IgnoreMAC net.HardwareAddr
	// Logger receives debug logs about malformed frames and readers; nil
	// discards.
	Logger *slog.Logger
}

// Stats counts what happened to the frames of a port.
type Stats struct {
	Frames      uint64 // frames the filter passed and the reader read
	Malformed   uint64 // frames Decode rejected as malformed
	RateLimited uint64 // frames over the port's budget, dropped before decoding
	Dropped     uint64 // events dropped because the output channel stayed full
}

func (s *Stats) add(o Stats) {
	s.Frames += o.Frames
	s.Malformed += o.Malformed
	s.RateLimited += o.RateLimited
	s.Dropped += o.Dropped
}

// Manager captures frames on a set of ports.
type Manager struct {
	out    chan<- Event
	opts   Options
	log    *slog.Logger
	filter []bpf.RawInstruction
	// discover is the filter of ports in discovery mode (SetDiscovery).
	discover []bpf.RawInstruction
	// filterErr is reported by Watch: a filter that does not assemble is a
	// programming error, but Watch returns errors rather than panicking.
	filterErr error
	// now reads the clock for event times and the rate limiter; tests
	// freeze it to make the budget exact.
	now func() time.Time

	// ops serialises Watch, Unwatch and Close, which wait for readers to
	// exit and must not interleave on one port.
	ops sync.Mutex

	mu     sync.Mutex
	ports  map[string]*port
	gone   Stats // counts of ports no longer watched, kept for the total
	closed bool
}

// NewManager returns a Manager that sends events to out.
func NewManager(out chan<- Event, opts Options) *Manager {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	filter, err := assembleFilter(opts.IgnoreMAC, false)
	discover, derr := assembleFilter(opts.IgnoreMAC, true)
	return &Manager{
		out:       out,
		opts:      opts,
		log:       log,
		filter:    filter,
		discover:  discover,
		filterErr: errors.Join(err, derr),
		now:       time.Now,
		ports:     map[string]*port{},
	}
}

// port is one watched interface and its reader.
type port struct {
	name    string
	index   int
	conn    *packet.Conn
	limiter *rate.Limiter // nil: unlimited

	frames, malformed, rateLimited, dropped atomic.Uint64

	stop chan struct{} // closed by Unwatch: stop waiting to deliver
	done chan struct{} // closed when the reader has exited
}

func (p *port) stats() Stats {
	return Stats{
		Frames:      p.frames.Load(),
		Malformed:   p.malformed.Load(),
		RateLimited: p.rateLimited.Load(),
		Dropped:     p.dropped.Load(),
	}
}

// Watch starts capturing on the interface name with the given index, in the
// network namespace of the calling thread. Watching a port already watched
// with the same index does nothing; with another index (the interface was
// recreated) the old socket is closed and a new one opened.
func (m *Manager) Watch(name string, index int) error {
	if m.filterErr != nil {
		return m.filterErr
	}
	m.ops.Lock()
	defer m.ops.Unlock()

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("capture: watching %s: manager is closed", name)
	}
	old := m.ports[name]
	m.mu.Unlock()
	if old != nil {
		if old.index == index {
			return nil
		}
		m.stop(old)
	}

	conn, err := packet.Listen(&net.Interface{Index: index, Name: name}, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: m.filter})
	if err != nil {
		return fmt.Errorf("capture: opening a packet socket on %s (index %d): %w", name, index, err)
	}
	p := &port{
		name:  name,
		index: index,
		conn:  conn,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if n := m.opts.RatePerSecond; n > 0 {
		p.limiter = rate.NewLimiter(rate.Limit(n), n)
	}
	m.mu.Lock()
	m.ports[name] = p
	m.mu.Unlock()
	go m.read(p)
	m.log.Debug("capture started", "port", name, "index", index)
	return nil
}

// SetDiscovery switches a watched port's kernel filter between the VM's
// announcements only (off) and announcements plus the headers of its
// ordinary IP packets (on), which reveal the address of a VM whose
// announcements roamd missed. The daemon turns it on for ports where it
// knows no VM.
func (m *Manager) SetDiscovery(name string, on bool) error {
	m.mu.Lock()
	p := m.ports[name]
	m.mu.Unlock()
	if p == nil {
		return fmt.Errorf("capture: discovery on %s: port is not watched", name)
	}
	filter := m.filter
	if on {
		filter = m.discover
	}
	if err := p.conn.SetBPF(filter); err != nil {
		return fmt.Errorf("capture: setting the filter on %s: %w", name, err)
	}
	return nil
}

// Unwatch stops capturing on the port and waits for its reader to exit: no
// event for the port is sent after Unwatch returns. Unwatching a port not
// watched does nothing.
func (m *Manager) Unwatch(name string) {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	p := m.ports[name]
	m.mu.Unlock()
	if p != nil {
		m.stop(p)
	}
}

// stop closes p's socket, waits for its reader and folds its counts into the
// totals. The caller holds m.ops.
func (m *Manager) stop(p *port) {
	m.mu.Lock()
	owned := m.ports[p.name] == p
	if owned {
		delete(m.ports, p.name)
	}
	m.mu.Unlock()
	close(p.stop)
	_ = p.conn.Close()
	<-p.done
	if owned {
		m.mu.Lock()
		m.gone.add(p.stats())
		m.mu.Unlock()
	}
	m.log.Debug("capture stopped", "port", p.name, "index", p.index)
}

// Send transmits frame out of the port, toward the VM. The frame must be a
// complete Ethernet frame (see the detect/frames builders).
func (m *Manager) Send(name string, frame []byte) error {
	if len(frame) < 14 {
		return fmt.Errorf("capture: sending on %s: frame of %d bytes is too short", name, len(frame))
	}
	m.mu.Lock()
	p := m.ports[name]
	m.mu.Unlock()
	if p == nil {
		return fmt.Errorf("capture: sending on %s: port is not watched", name)
	}
	// For a raw packet socket the kernel takes the destination from the
	// frame; the address only has to be present.
	dst := &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])}
	if _, err := p.conn.WriteTo(frame, dst); err != nil {
		return fmt.Errorf("capture: sending on %s: %w", name, err)
	}
	return nil
}

// Stats returns the counters of every watched port, and under AllPorts the
// totals since the Manager was created (ports no longer watched included).
func (m *Manager) Stats() map[string]Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Stats, len(m.ports)+1)
	total := m.gone
	for name, p := range m.ports {
		s := p.stats()
		out[name] = s
		total.add(s)
	}
	out[AllPorts] = total
	return out
}

// Close stops every reader. The Manager cannot be used afterwards.
func (m *Manager) Close() error {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	m.closed = true
	ports := make([]*port, 0, len(m.ports))
	for _, p := range m.ports {
		ports = append(ports, p)
	}
	m.mu.Unlock()
	for _, p := range ports {
		m.stop(p)
	}
	return nil
}

// read is the reader goroutine of one port.
func (m *Manager) read(p *port) {
	defer close(p.done)
	defer m.exited(p)
	buf := make([]byte, snapLen)
	down := false
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			if m.keepReading(p, err, &down) {
				continue
			}
			return
		}
		if down {
			// The port came back up: stop polling for its deletion.
			down = false
			_ = p.conn.SetReadDeadline(time.Time{})
		}
		now := m.now()
		p.frames.Add(1)
		if p.limiter != nil && !p.limiter.AllowN(now, 1) {
			p.rateLimited.Add(1)
			continue
		}
		obs, err := frames.Decode(buf[:n])
		if errors.Is(err, frames.ErrNotInteresting) {
			// In discovery mode the filter also passes ordinary packets.
			obs, err = frames.DecodeTraffic(buf[:n])
		}
		if err != nil {
			if !errors.Is(err, frames.ErrNotInteresting) {
				p.malformed.Add(1)
				m.log.Debug("malformed frame", "port", p.name, "error", err, "frame", hex.EncodeToString(buf[:min(n, 64)]))
			}
			continue
		}
		m.deliver(p, Event{Port: p.name, Index: p.index, Time: now, Obs: obs})
	}
}

// keepReading decides what a read error means. A closed socket (Unwatch)
// ends the reader. ENETDOWN comes once when the port goes down, whether it
// is only set down (the socket works again when it comes back up) or being
// deleted (the kernel unbinds the socket, which then reads nothing, ever):
// the reader polls the socket's binding until one or the other is clear.
func (m *Manager) keepReading(p *port, err error, down *bool) bool {
	switch {
	case errors.Is(err, net.ErrClosed):
		return false
	case errors.Is(err, unix.ENETDOWN), *down && isTimeout(err):
		if !m.stillBound(p) {
			m.log.Debug("port deleted, capture ends", "port", p.name, "index", p.index)
			return false
		}
		*down = true
		_ = p.conn.SetReadDeadline(time.Now().Add(downRecheck))
		return true
	default:
		m.log.Debug("capture ends on read error", "port", p.name, "index", p.index, "error", err)
		return false
	}
}

// stillBound reports whether p's socket is still bound to its interface; the
// kernel unbinds it (ifindex -1) when the interface is unregistered.
func (m *Manager) stillBound(p *port) bool {
	rc, err := p.conn.SyscallConn()
	if err != nil {
		return false
	}
	bound := false
	_ = rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if ll, ok := sa.(*unix.SockaddrLinklayer); err == nil && ok {
			bound = ll.Ifindex == p.index
		}
	})
	return bound
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exited removes a reader that ended on its own (port deleted) from the
// watched set, keeping its counts in the totals.
func (m *Manager) exited(p *port) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ports[p.name] == p {
		delete(m.ports, p.name)
		m.gone.add(p.stats())
		_ = p.conn.Close()
	}
}

// deliver sends ev, waiting at most deliverTimeout for room.
func (m *Manager) deliver(p *port, ev Event) {
	select {
	case m.out <- ev:
		return
	default:
	}
	t := time.NewTimer(deliverTimeout)
	defer t.Stop()
	select {
	case m.out <- ev:
	case <-p.stop:
	case <-t.C:
		p.dropped.Add(1)
		m.log.Debug("event dropped: output channel full", "port", p.name, "observation", ev.Obs.String())
	}
}
