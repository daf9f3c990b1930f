package fib

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// FIB programs roamd's ports, host routes and forwarding into one network
// namespace (the one of its netlink handle). It is safe for concurrent use;
// every method is idempotent.
type FIB struct {
	cfg     Config
	ns      netns.NsHandle
	h       *netlink.Handle
	raw     rawConn
	sysctl  Sysctl
	log     *slog.Logger
	tenants map[string]*TenantConfig

	mu sync.Mutex
	// ifindex caches interface indexes by name so the hot path (InstallHost,
	// ForwardHost) needs no lookup; an ENODEV drops the entry.
	ifindex map[string]int
	// useSrc says the router ID is a local address, so IPv4 host routes
	// carry it as preferred source.
	useSrc bool
}

// New checks cfg and returns a FIB writing the kernel of network namespace ns
// (netns.None(): the current one). It touches nothing in the kernel; Setup
// does. A nil sysctl writes /proc/sys of the current
// process (ProcSysctl); a nil logger discards.
func New(cfg Config, ns netns.NsHandle, sysctl Sysctl, log *slog.Logger) (*FIB, error) {
	cfg.GatewayMAC = slices.Clone(cfg.GatewayMAC)
	cfg.Tenants = slices.Clone(cfg.Tenants)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("fib config: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("fib: opening netlink: %w", err)
	}
	raw, err := newRawConn(ns)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("fib: %w", err)
	}
	if sysctl == nil {
		sysctl = ProcSysctl
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f := &FIB{
		cfg:     cfg,
		ns:      ns,
		h:       h,
		raw:     raw,
		sysctl:  sysctl,
		log:     log,
		tenants: make(map[string]*TenantConfig, len(cfg.Tenants)),
		ifindex: map[string]int{},
	}
	for i := range f.cfg.Tenants {
		t := &f.cfg.Tenants[i]
		f.tenants[t.Name] = t
	}
	return f, nil
}

func (f *FIB) tenant(name string) (*TenantConfig, error) {
	t, ok := f.tenants[name]
	if !ok {
		return nil, fmt.Errorf("unknown tenant %q", name)
	}
	return t, nil
}

// linkIndex returns the cached index of the named interface, looking it up
// when it is not cached.
func (f *FIB) linkIndex(name string) (int, error) {
	f.mu.Lock()
	idx, ok := f.ifindex[name]
	f.mu.Unlock()
	if ok {
		return idx, nil
	}
	l, err := f.lookupLink(name)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// lookupLink asks the kernel for the named interface and refreshes the cache.
func (f *FIB) lookupLink(name string) (netlink.Link, error) {
	l, err := f.h.LinkByName(name)
	if err != nil {
		f.forget(name)
		return nil, fmt.Errorf("looking up interface %s: %w", name, err)
	}
	f.mu.Lock()
	f.ifindex[name] = l.Attrs().Index
	f.mu.Unlock()
	return l, nil
}

// forget drops a cached index, e.g. after the port was deleted.
func (f *FIB) forget(name string) {
	f.mu.Lock()
	delete(f.ifindex, name)
	f.mu.Unlock()
}

// withLink runs op with the index of the named interface; when the kernel
// says the device is gone (the port was deleted and recreated under the same
// name), it looks the name up again and retries once.
func (f *FIB) withLink(name string, op func(idx int) error) error {
	idx, err := f.linkIndex(name)
	if err != nil {
		return err
	}
	err = op(idx)
	if !errors.Is(err, unix.ENODEV) {
		return err
	}
	f.forget(name)
	if idx, err = f.linkIndex(name); err != nil {
		return err
	}
	return op(idx)
}

// IsLocalAddress reports whether a is configured on an interface of the
// FIB's namespace.
func (f *FIB) IsLocalAddress(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	family := netlink.FAMILY_V4
	if a.Is6() && !a.Is4In6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := dump("listing addresses", func() ([]netlink.Addr, error) { return f.h.AddrList(nil, family) })
	if err != nil {
		f.log.Warn("cannot list local addresses", "err", err)
		return false
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// refreshSource decides whether IPv4 host routes carry the router ID as
// preferred source.
func (f *FIB) refreshSource() {
	use := f.cfg.RouterID.IsValid() && f.IsLocalAddress(f.cfg.RouterID)
	f.mu.Lock()
	changed := use != f.useSrc
	f.useSrc = use
	f.mu.Unlock()
	if changed {
		f.log.Info("preferred source of host routes", "routerID", f.cfg.RouterID, "local", use)
	}
}

func (f *FIB) source() (netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg.RouterID, f.useSrc
}

// hostPrefix is the /32 or /128 of a.
func hostPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func familyOf(a netip.Addr) int {
	if a.Unmap().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// isNotFound reports whether err says the object to delete does not exist.
func isNotFound(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EADDRNOTAVAIL)
}
