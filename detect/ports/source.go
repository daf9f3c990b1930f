package ports

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// linkSource is where the watcher gets links from: netlink in production, a
// fake in tests.
type linkSource interface {
	// subscribe starts sending link updates to ch, beginning with every
	// existing link, until done is closed; it closes ch when it stops,
	// whether because of done or an error (reported to onError first).
	subscribe(ch chan<- netlink.LinkUpdate, done <-chan struct{}, onError func(error)) error
	// list returns every link.
	list() ([]link, error)
}

var _ linkSource = netlinkSource{}

// netlinkSource reads links from the kernel, in namespace ns
// (netns.None(): the calling thread's).
type netlinkSource struct {
	ns netns.NsHandle
}

// subscribeBuffer is the netlink socket's receive buffer. Bigger than the
// default so a burst of port changes (a host booting dozens of VMs) does
// not overflow it; it is capped by net.core.rmem_max.
const subscribeBuffer = 1 << 20

func (s netlinkSource) subscribe(ch chan<- netlink.LinkUpdate, done <-chan struct{}, onError func(error)) error {
	ns := s.ns
	return netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		Namespace:         &ns,
		ErrorCallback:     onError,
		ListExisting:      true,
		ReceiveBufferSize: subscribeBuffer,
	})
}

func (s netlinkSource) list() ([]link, error) {
	h, err := netlink.NewHandleAt(s.ns)
	if err != nil {
		return nil, fmt.Errorf("ports: opening a netlink handle: %w", err)
	}
	defer h.Close()
	nls, err := retryInterrupted(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("ports: listing links: %w", err)
	}
	links := make([]link, 0, len(nls))
	for _, l := range nls {
		links = append(links, linkOf(l))
	}
	return links, nil
}

// dumpAttempts bounds retryInterrupted: a dump is interrupted when links
// change while the kernel walks them, which settles within a few tries.
const dumpAttempts = 5

// retryInterrupted calls a netlink dump until it is not interrupted by a
// concurrent change (netlink.ErrDumpInterrupted: the result may be
// inconsistent). Every dump in this package goes through it.
func retryInterrupted[T any](dump func() (T, error)) (T, error) {
	var (
		res T
		err error
	)
	for range dumpAttempts {
		res, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return res, err
		}
	}
	return res, fmt.Errorf("still interrupted after %d attempts: %w", dumpAttempts, err)
}
