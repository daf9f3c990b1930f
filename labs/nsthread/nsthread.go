// Package nsthread runs Go code inside a network namespace: each call locks
// a goroutine to an OS thread of its own, switches that thread into the
// namespace and back, so the rest of the program stays where it was. A
// thread that cannot switch back stays locked, and the runtime discards it
// when its goroutine exits.
//
// Both the namespace runner (labs/nslab) and the tests' namespaces
// (labs/nstest) enter namespaces this way; the netns library only switches
// the calling thread.
package nsthread

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn inside namespace h (name is for errors). Sockets fn opens stay
// in the namespace after Do returns.
func Do(h netns.NsHandle, name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("getting the current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("entering %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leaving %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// NewNamed creates the named namespace (under /run/netns) and returns a
// handle to it.
func NewNamed(name string) (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			c <- result{err: fmt.Errorf("getting the current namespace: %w", err)}
			return
		}
		defer orig.Close()
		// NewNamed leaves the thread in the new namespace.
		h, err := netns.NewNamed(name)
		if err2 := netns.Set(orig); err2 != nil {
			if err == nil {
				h.Close()
			}
			c <- result{err: fmt.Errorf("returning from namespace %s: %w", name, err2)}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			c <- result{err: fmt.Errorf("creating namespace %s: %w", name, err)}
			return
		}
		c <- result{h: h}
	}()
	r := <-c
	return r.h, r.err
}
