package ports

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeSource stands in for netlink: the test sets the links the kernel
// "has", and drives each subscription.
type fakeSource struct {
	mu        sync.Mutex
	links     []link
	failSubs  int // the next failSubs subscribe calls fail
	listCalls int
	subs      chan *fakeSub
}

func newFakeSource(links ...link) *fakeSource {
	return &fakeSource{links: links, subs: make(chan *fakeSub, 8)}
}

func (f *fakeSource) setLinks(links ...link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = links
}

func (f *fakeSource) list() ([]link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listCalls++
	return append([]link(nil), f.links...), nil
}

func (f *fakeSource) subscribe(ch chan<- netlink.LinkUpdate, done <-chan struct{}, onError func(error)) error {
	f.mu.Lock()
	if f.failSubs > 0 {
		f.failSubs--
		f.mu.Unlock()
		return errors.New("fake: subscribe failed")
	}
	existing := append([]link(nil), f.links...)
	f.mu.Unlock()
	s := &fakeSub{ch: ch, onError: onError}
	// Like ListExisting: the current links come first.
	for _, l := range existing {
		s.send(l, false)
	}
	go func() {
		<-done
		s.close()
	}()
	f.subs <- s
	return nil
}

type fakeSub struct {
	mu      sync.Mutex
	ch      chan<- netlink.LinkUpdate
	closed  bool
	onError func(error)
}

func (s *fakeSub) send(l link, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	typ := uint16(unix.RTM_NEWLINK)
	if deleted {
		typ = unix.RTM_DELLINK
	}
	s.ch <- netlink.LinkUpdate{
		Header: unix.NlMsghdr{Type: typ},
		Link:   &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: l.Name, Index: l.Index, HardwareAddr: l.MAC, Flags: upFlag(l.Up)}},
	}
}

// close ends the subscription, as the library does after a receive error
// such as ENOBUFS.
func (s *fakeSub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

func (f *fakeSource) nextSub(t *testing.T) *fakeSub {
	t.Helper()
	select {
	case s := <-f.subs:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no subscription within 5s")
		return nil
	}
}

// startFake runs a Watcher on src and returns its events and a stop
// function that cancels Run and returns its error.
func startFake(t *testing.T, src *fakeSource) (<-chan Event, *Watcher, func() error) {
	t.Helper()
	out := make(chan Event, 64)
	w := NewWatcher(tapGlob, out, nil)
	w.src = src
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				err = errors.New("Run did not return within 5s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return out, w, stop
}

func expect(t *testing.T, out <-chan Event, want ...Event) {
	t.Helper()
	var got []Event
	for range want {
		select {
		case ev := <-out:
			got = append(got, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %v, then nothing within 5s; want %v", got, want)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}

func TestRunReportsExistingLinksAndUpdates(t *testing.T) {
	src := newFakeSource(link{"eth0", 2, mac1, true}, link{"tap0", 10, mac1, true})
	out, _, stop := startFake(t, src)
	sub := src.nextSub(t)
	expect(t, out, Event{Added, "tap0", 10, mac1, true})

	sub.send(link{"tap1", 11, mac2, false}, false)
	sub.send(link{"tap0", 10, mac1, true}, true)
	expect(t, out, Event{Added, "tap1", 11, mac2, false}, Event{Removed, "tap0", 10, mac1, true})

	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	if len(out) != 0 {
		t.Errorf("extra events: %d", len(out))
	}
}

func TestRunResubscribesAndResyncsAfterOverflow(t *testing.T) {
	src := newFakeSource(link{"tap0", 10, mac1, true})
	out, _, stop := startFake(t, src)
	first := src.nextSub(t)
	expect(t, out, Event{Added, "tap0", 10, mac1, true})

	// While the socket overflows, tap0 is deleted and tap1 created; the
	// events are lost.
	src.setLinks(link{"tap1", 11, mac2, true})
	first.close()

	src.nextSub(t)
	// The new subscription lists tap1; only the re-listing can tell that
	// tap0 is gone.
	expect(t, out, Event{Removed, "tap0", 10, mac1, true}, Event{Added, "tap1", 11, mac2, true})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Errorf("extra events: %d", len(out))
	}
}

func TestRunRetriesFailedResubscription(t *testing.T) {
	src := newFakeSource(link{"tap0", 10, mac1, true})
	out, _, stop := startFake(t, src)
	first := src.nextSub(t)
	expect(t, out, Event{Added, "tap0", 10, mac1, true})

	src.mu.Lock()
	src.failSubs = 2
	src.mu.Unlock()
	src.setLinks()
	first.close()
	src.nextSub(t) // the third attempt succeeds
	expect(t, out, Event{Removed, "tap0", 10, mac1, true})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunResync(t *testing.T) {
	src := newFakeSource(link{"tap0", 10, mac1, false})
	out, w, stop := startFake(t, src)
	src.nextSub(t)
	expect(t, out, Event{Added, "tap0", 10, mac1, false})

	// A change whose event was lost shows up at the next Resync.
	src.setLinks(link{"tap0", 10, mac1, true})
	w.Resync()
	expect(t, out, Event{Changed, "tap0", 10, mac1, true})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunResyncsAfterInterruptedDump(t *testing.T) {
	src := newFakeSource()
	out, _, stop := startFake(t, src)
	sub := src.nextSub(t)

	// The initial dump missed tap3 and the library says so.
	src.setLinks(link{"tap3", 13, mac1, true})
	sub.onError(netlink.ErrDumpInterrupted)
	expect(t, out, Event{Added, "tap3", 13, mac1, true})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunFailsWhenItCannotSubscribe(t *testing.T) {
	src := newFakeSource()
	src.failSubs = 1
	w := NewWatcher(tapGlob, make(chan Event), nil)
	w.src = src
	err := w.Run(context.Background())
	if err == nil || err.Error() != "ports: subscribing to link updates: fake: subscribe failed" {
		t.Fatalf("Run error %v, want the subscription error", err)
	}
}

func TestRunStopsWhileBlockedOnOutput(t *testing.T) {
	src := newFakeSource(link{"tap0", 10, mac1, true}, link{"tap1", 11, mac1, true})
	out := make(chan Event) // nobody reads
	w := NewWatcher(tapGlob, out, nil)
	w.src = src
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	src.nextSub(t)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run blocked on a full output channel after cancel")
	}
}

func TestRetryInterrupted(t *testing.T) {
	calls := 0
	got, err := retryInterrupted(func() (int, error) {
		calls++
		if calls < 3 {
			return 0, netlink.ErrDumpInterrupted
		}
		return 42, nil
	})
	if got != 42 || err != nil || calls != 3 {
		t.Errorf("retryInterrupted = %d, %v after %d calls; want 42, nil after 3", got, err, calls)
	}

	calls = 0
	_, err = retryInterrupted(func() (int, error) { calls++; return 0, netlink.ErrDumpInterrupted })
	if !errors.Is(err, netlink.ErrDumpInterrupted) || calls != dumpAttempts {
		t.Errorf("always interrupted: err %v after %d calls; want ErrDumpInterrupted after %d", err, calls, dumpAttempts)
	}

	calls = 0
	other := errors.New("other")
	_, err = retryInterrupted(func() (int, error) { calls++; return 0, other })
	if err != other || calls != 1 {
		t.Errorf("other error: %v after %d calls; want it at once", err, calls)
	}
}

func upFlag(up bool) net.Flags {
	if up {
		return net.FlagUp
	}
	return 0
}
