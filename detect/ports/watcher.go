package ports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// EventKind says what happened to a port.
type EventKind uint8

// Event kinds.
const (
	// Added: a matching interface exists that was not reported before.
	Added EventKind = iota + 1
	// Removed: a reported interface is gone (deleted, renamed, moved to
	// another namespace, or recreated with a new index).
	Removed
	// Changed: a reported interface changed its MAC or administrative state.
	Changed
)

func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case Removed:
		return "removed"
	case Changed:
		return "changed"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is a change to one VM port.
type Event struct {
	Kind  EventKind
	Name  string
	Index int
	MAC   net.HardwareAddr
	Up    bool // administratively up
}

// Resubscription backoff after the subscription fails.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Watcher reports VM ports. Create it with NewWatcher and start it with Run.
type Watcher struct {
	match   func(string) bool
	out     chan<- Event
	log     *slog.Logger
	src     linkSource
	resyncc chan struct{}
}

// Option configures a Watcher.
type Option func(*Watcher)

// WithNetNS makes the Watcher watch the network namespace ns instead of the
// one of the thread running Run. The caller keeps ns open while Run runs.
func WithNetNS(ns netns.NsHandle) Option {
	return func(w *Watcher) { w.src = netlinkSource{ns: ns} }
}

// NewWatcher returns a Watcher that sends events for interfaces whose name
// satisfies match to out. A nil log discards.
func NewWatcher(match func(name string) bool, out chan<- Event, log *slog.Logger, opts ...Option) *Watcher {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := &Watcher{
		match:   match,
		out:     out,
		log:     log,
		src:     netlinkSource{ns: netns.None()},
		resyncc: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Resync asks Run to re-list every link and report the differences. It
// never blocks; requests made while one is pending are merged.
func (w *Watcher) Resync() {
	select {
	case w.resyncc <- struct{}{}:
	default:
	}
}

// Run watches until ctx is done and then returns nil. It returns an error
// only when it cannot subscribe to link updates at all at start; later
// failures are retried (with backoff) and followed by a full re-listing.
func (w *Watcher) Run(ctx context.Context) error {
	t := newTracker(w.match)
	first := true
	backoff := minBackoff
	for {
		updates := make(chan netlink.LinkUpdate, 256)
		done := make(chan struct{})
		if err := w.src.subscribe(updates, done, w.onError); err != nil {
			close(done)
			if first {
				return fmt.Errorf("ports: subscribing to link updates: %w", err)
			}
			w.log.Warn("resubscribing to link updates failed", "error", err, "retryIn", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		if !first {
			// Events were lost while no socket listened: the listing that
			// came with the subscription adds, only a diff can remove.
			if !w.resync(ctx, t) {
				close(done)
				drain(updates)
				return nil
			}
		}
		first = false
		stopped := w.follow(ctx, t, updates)
		close(done)
		drain(updates)
		if stopped {
			return nil
		}
		w.log.Warn("link subscription ended, resubscribing")
	}
}

// follow applies updates until ctx is done (true) or the subscription ends
// (false).
func (w *Watcher) follow(ctx context.Context, t *tracker, updates <-chan netlink.LinkUpdate) bool {
	for {
		select {
		case <-ctx.Done():
			return true
		case <-w.resyncc:
			if !w.resync(ctx, t) {
				return true
			}
		case u, ok := <-updates:
			if !ok {
				return false
			}
			if u.Link == nil || u.Link.Attrs() == nil {
				continue
			}
			deleted := u.Header.Type == unix.RTM_DELLINK
			if !w.emit(ctx, t.update(linkOf(u.Link), deleted)) {
				return true
			}
		}
	}
}

// resync lists the links and reports the differences; false if ctx ended.
func (w *Watcher) resync(ctx context.Context, t *tracker) bool {
	links, err := w.src.list()
	if err != nil {
		// The subscription keeps running; the next resync may succeed.
		w.log.Warn("listing links failed", "error", err)
		return ctx.Err() == nil
	}
	return w.emit(ctx, t.resync(links))
}

// onError is the subscription's error callback, called from the library's
// goroutine. An interrupted dump means the initial listing may be
// incomplete: re-list. Other errors end the subscription (its channel is
// closed), which Run handles.
func (w *Watcher) onError(err error) {
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		w.Resync()
		return
	}
	w.log.Debug("link subscription error", "error", err)
}

// emit sends evs in order; false if ctx ended first.
func (w *Watcher) emit(ctx context.Context, evs []Event) bool {
	for _, ev := range evs {
		w.log.Debug("port event", "kind", ev.Kind.String(), "port", ev.Name, "index", ev.Index, "mac", ev.MAC.String(), "up", ev.Up)
		select {
		case w.out <- ev:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// drain consumes a subscription's channel until the library closes it, so
// its goroutine never blocks on a send after done.
func drain(updates <-chan netlink.LinkUpdate) {
	for range updates {
	}
}

func linkOf(l netlink.Link) link {
	a := l.Attrs()
	return link{
		Name:  a.Name,
		Index: a.Index,
		MAC:   append(net.HardwareAddr(nil), a.HardwareAddr...),
		Up:    a.Flags&net.FlagUp != 0,
	}
}
