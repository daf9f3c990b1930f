// Package nstest gives privileged tests fresh network namespaces of their own.
//
// Every namespace is named with a per-process prefix (so parallel runs never
// collide), is removed by t.Cleanup even when the test fails, and is entered
// only from a locked OS thread, so the rest of the test binary stays where it
// was. Tests that use it need root; RequireRoot skips them otherwise.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/labs/nsthread"
)

var (
	prefixOnce sync.Once
	prefix     string
)

// Prefix is this process's namespace name prefix, e.g. "rt3fa2".
func Prefix() string {
	prefixOnce.Do(func() {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		prefix = "rt" + hex.EncodeToString(b)
	})
	return prefix
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// NS is a named network namespace created for one test.
type NS struct {
	Name   string
	Handle *netlink.Handle
	handle netns.NsHandle
}

var seq struct {
	sync.Mutex
	n int
}

// New creates the namespace "<prefix><n>-<name>" and removes it when the test
// ends. Loopback is brought up.
func New(t testing.TB, name string) *NS {
	t.Helper()
	RequireRoot(t)
	seq.Lock()
	seq.n++
	full := fmt.Sprintf("%s%d-%s", Prefix(), seq.n, name)
	seq.Unlock()
	if len(full) > 40 {
		full = full[:40]
	}

	h, err := nsthread.NewNamed(full)
	if err != nil {
		t.Fatal(err)
	}
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		_ = netns.DeleteNamed(full)
		t.Fatalf("netlink handle in %s: %v", full, err)
	}
	ns := &NS{Name: full, Handle: nh, handle: h}
	t.Cleanup(func() {
		nh.Close()
		h.Close()
		if err := netns.DeleteNamed(full); err != nil {
			t.Errorf("deleting netns %s: %v", full, err)
		}
	})
	if lo, err := nh.LinkByName("lo"); err == nil {
		_ = nh.LinkSetUp(lo)
	}
	return ns
}

// Fd returns the namespace's file descriptor (for moving links into it).
func (n *NS) Fd() int { return int(n.handle) }

// Do runs fn on a locked OS thread inside the namespace. Sockets fn opens
// stay in the namespace after Do returns.
func (n *NS) Do(fn func() error) error {
	return nsthread.Do(n.handle, n.Name, fn)
}

// Run runs a command inside the namespace and returns its combined output.
func (n *NS) Run(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Sysctl writes a sysctl inside the namespace, e.g. "net.ipv4.ip_forward", "1".
func (n *NS) Sysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return n.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
}

// Veth creates a veth pair with one end (aName) in a and the other (bName)
// in b, both up. It returns the two links.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) (netlink.Link, netlink.Link) {
	t.Helper()
	la := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(b.Fd()),
	}
	if err := a.Handle.LinkAdd(la); err != nil {
		t.Fatalf("adding veth %s(%s)-%s(%s): %v", aName, a.Name, bName, b.Name, err)
	}
	l1, err := a.Handle.LinkByName(aName)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := b.Handle.LinkByName(bName)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Handle.LinkSetUp(l1); err != nil {
		t.Fatal(err)
	}
	if err := b.Handle.LinkSetUp(l2); err != nil {
		t.Fatal(err)
	}
	return l1, l2
}

// SendFrame transmits one raw Ethernet frame out of ifname inside the
// namespace, as a VM would.
func (n *NS) SendFrame(ifname string, frame []byte) error {
	return n.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		if err != nil {
			return fmt.Errorf("opening packet socket on %s: %w", ifname, err)
		}
		defer c.Close()
		_, err = c.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])})
		return err
	})
}
