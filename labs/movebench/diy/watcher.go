package diy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/detect/capture"
	"github.com/roamd/roamd/detect/frames"
)

// Namespace runs a function inside the hypervisor's network namespace on a
// locked OS thread; sockets it opens stay there.
type Namespace interface {
	Do(fn func() error) error
}

// Config configures a Watcher.
type Config struct {
	// Ports is the shell pattern of VM port names, e.g. "tap*".
	Ports string
	// GatewayMAC is the anycast gateway MAC every VM port gets.
	GatewayMAC net.HardwareAddr
	// Hosts is the inventory: each VM's address by its MAC.
	Hosts map[string]netip.Addr
	// Logger receives what the watcher does; nil discards.
	Logger *slog.Logger
}

// Install is one host route the watcher wrote.
type Install struct {
	Port string
	Addr netip.Addr
	// Trigger is the frame that caused it ("rarp", "garp") and FrameAt when
	// it was read; At is when the route was in the kernel.
	Trigger     string
	FrameAt, At time.Time
}

// Watcher plumbs VM ports and writes host routes in one namespace.
type Watcher struct {
	cfg  Config
	ns   Namespace
	h    *netlink.Handle
	log  *slog.Logger
	capt *capture.Manager

	links  chan netlink.LinkUpdate
	events chan capture.Event
	done   chan struct{}
	wg     sync.WaitGroup

	// ports maps each plumbed port's index to its name; routed remembers
	// which address is routed to which port index (the loop owns both).
	ports  map[int]string
	routed map[netip.Addr]int

	mu       sync.Mutex
	installs []Install
	errs     []error
}

// Start starts a watcher in ns, using h (a netlink handle in ns) for links
// and routes. Ports that already exist are plumbed at once.
func Start(ns Namespace, h *netlink.Handle, cfg Config) (*Watcher, error) {
	if _, err := filepath.Match(cfg.Ports, ""); err != nil || cfg.Ports == "" {
		return nil, fmt.Errorf("diy: bad port pattern %q", cfg.Ports)
	}
	if len(cfg.GatewayMAC) != 6 {
		return nil, fmt.Errorf("diy: gateway MAC %q is not an Ethernet address", cfg.GatewayMAC)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		cfg: cfg, ns: ns, h: h, log: log,
		links:  make(chan netlink.LinkUpdate, 64),
		events: make(chan capture.Event, 1024),
		done:   make(chan struct{}),
		ports:  map[int]string{},
		routed: map[netip.Addr]int{},
	}
	w.capt = capture.NewManager(w.events, capture.Options{IgnoreMAC: cfg.GatewayMAC, Logger: log})
	// The subscription socket is opened in ns; ListExisting replays the
	// ports already there.
	err := ns.Do(func() error {
		return netlink.LinkSubscribeWithOptions(w.links, w.done, netlink.LinkSubscribeOptions{
			ListExisting: true,
			ErrorCallback: func(err error) {
				select {
				case <-w.done: // Close ended the subscription
				default:
					w.fail(fmt.Errorf("link subscription: %w", err))
				}
			},
		})
	})
	if err != nil {
		w.capt.Close()
		return nil, fmt.Errorf("diy: subscribing to link changes: %w", err)
	}
	w.wg.Go(w.loop)
	return w, nil
}

// Close stops the watcher. Routes and port settings stay.
func (w *Watcher) Close() error {
	close(w.done)
	w.wg.Wait()
	return w.capt.Close()
}

// Installs returns the routes written so far, oldest first.
func (w *Watcher) Installs() []Install {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Install(nil), w.installs...)
}

// Err returns what went wrong so far (plumbing a port, writing a route).
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.errs...)
}

func (w *Watcher) fail(err error) {
	w.log.Warn("diy watcher", "error", err)
	w.mu.Lock()
	w.errs = append(w.errs, err)
	w.mu.Unlock()
}

func (w *Watcher) loop() {
	for {
		select {
		case <-w.done:
			return
		case u, ok := <-w.links:
			if !ok {
				return
			}
			w.link(u)
		case ev := <-w.events:
			w.frame(ev)
		}
	}
}

// link plumbs a VM port the first time it is seen under its index, and
// forgets it when it goes.
func (w *Watcher) link(u netlink.LinkUpdate) {
	attrs := u.Link.Attrs()
	if ok, _ := filepath.Match(w.cfg.Ports, attrs.Name); !ok {
		return
	}
	if u.Header.Type == unix.RTM_DELLINK {
		if _, known := w.ports[attrs.Index]; known {
			delete(w.ports, attrs.Index)
			w.capt.Unwatch(attrs.Name)
			// The kernel dropped the port's routes with it.
			for addr, idx := range w.routed {
				if idx == attrs.Index {
					delete(w.routed, addr)
				}
			}
			w.log.Debug("port gone", "port", attrs.Name)
		}
		return
	}
	if name, known := w.ports[attrs.Index]; known && name == attrs.Name {
		return
	}
	if err := w.plumb(u.Link); err != nil {
		w.fail(err)
		return
	}
	w.ports[attrs.Index] = attrs.Name
	w.log.Debug("port plumbed", "port", attrs.Name, "index", attrs.Index)
}

// plumb makes the port a routed port and starts reading its frames.
func (w *Watcher) plumb(l netlink.Link) error {
	name := l.Attrs().Name
	if err := w.h.LinkSetHardwareAddr(l, w.cfg.GatewayMAC); err != nil {
		return fmt.Errorf("setting the gateway MAC on %s: %w", name, err)
	}
	// The VM ARPs for its gateway (and any other address of its subnet):
	// proxy ARP answers with the gateway MAC, at once.
	err := w.ns.Do(func() error {
		err := os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/proxy_arp", []byte("1"), 0o644)
		if err == nil {
			err = os.WriteFile("/proc/sys/net/ipv4/neigh/"+name+"/proxy_delay", []byte("0"), 0o644)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("enabling proxy ARP on %s: %w", name, err)
	}
	if err := w.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	err = w.ns.Do(func() error { return w.capt.Watch(name, l.Attrs().Index) })
	if err != nil {
		return fmt.Errorf("capturing on %s: %w", name, err)
	}
	return nil
}

// frame routes a known VM to the port it announced itself on.
func (w *Watcher) frame(ev capture.Event) {
	o := ev.Obs
	if o.Kind != frames.KindRARP && o.Kind != frames.KindGratuitousARP {
		return
	}
	addr, ok := w.cfg.Hosts[o.MAC.String()]
	if !ok {
		return
	}
	if w.routed[addr] == ev.Index {
		return
	}
	r := &netlink.Route{
		Dst:       &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)},
		LinkIndex: ev.Index,
		Scope:     netlink.SCOPE_LINK,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := w.h.RouteReplace(r); err != nil {
		w.fail(fmt.Errorf("routing %s to %s: %w", addr, ev.Port, err))
		return
	}
	now := time.Now()
	w.routed[addr] = ev.Index
	in := Install{Port: ev.Port, Addr: addr, Trigger: o.Kind.String(), FrameAt: ev.Time, At: now}
	w.mu.Lock()
	w.installs = append(w.installs, in)
	w.mu.Unlock()
	w.log.Info("host routed", "addr", addr, "port", ev.Port, "trigger", in.Trigger, "took", now.Sub(ev.Time))
}
