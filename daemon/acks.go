package daemon

import (
	"net/netip"
	"sync"
)

// ackKey names one acknowledgement: the old site from acknowledges that it
// forwards addr (claimed here with seq) to this site.
type ackKey struct {
	tenant string
	addr   netip.Addr
	seq    uint32
	from   netip.Addr
}

// ackWaiters lets a `switch` wait until the old site confirms it forwards:
// when the call returns, packets reaching the old site are no longer lost.
type ackWaiters struct {
	mu      sync.Mutex
	waiting map[ackKey]chan struct{}
}

// expect registers interest in an acknowledgement before the notification
// goes out, so a fast answer is never missed.
func (w *ackWaiters) expect(k ackKey) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting == nil {
		w.waiting = map[ackKey]chan struct{}{}
	}
	ch, ok := w.waiting[k]
	if !ok {
		ch = make(chan struct{})
		w.waiting[k] = ch
	}
	return ch
}

func (w *ackWaiters) deliver(k ackKey) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.waiting[k]; ok {
		close(ch)
		delete(w.waiting, k)
	}
}

func (w *ackWaiters) forget(k ackKey) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.waiting, k)
}
