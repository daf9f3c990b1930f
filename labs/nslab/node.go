package nslab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/nsthread"
)

// Role says what runs in a node.
type Role string

// Node roles.
const (
	RoleFRR   Role = "frr"   // an FRR router
	RoleRoamd Role = "roamd" // a hypervisor running roamd
	RoleHost  Role = "host"  // a plain host
	RoleVM    Role = "vm"    // a VM whose port lives on a hypervisor
	RoleBIRD  Role = "bird"  // a BIRD router
)

// RoleLabel is the node label naming its role.
const RoleLabel = "roamlab.role"

// RoleOf returns the node's role: its RoleLabel, or else inferred from an FRR
// config bind or a roamd cmd.
func RoleOf(n *clab.Node) (Role, error) {
	if r, ok := n.Labels[RoleLabel]; ok {
		switch Role(r) {
		case RoleFRR, RoleRoamd, RoleHost, RoleVM, RoleBIRD:
			return Role(r), nil
		}
		return "", fmt.Errorf("node %s: label %s: unknown role %q (want frr, bird, roamd, host or vm)", n.Name, RoleLabel, r)
	}
	if _, ok := n.Bind(frrConfTarget); ok {
		return RoleFRR, nil
	}
	if _, ok := n.Bind(birdConfTarget); ok {
		return RoleBIRD, nil
	}
	if f := strings.Fields(n.Cmd); len(f) > 0 && f[0] == "roamd" {
		return RoleRoamd, nil
	}
	return RoleHost, nil
}

// Node is a lab node realised as a network namespace.
type Node struct {
	// Name is the node's name in the topology.
	Name string
	// NS is the network namespace name, "<prefix>-<name>".
	NS   string
	Role Role
	// Handle is a netlink handle inside the namespace.
	Handle *netlink.Handle
	// APISocket is roamd's local API socket (roamd nodes only).
	APISocket string

	spec   *clab.Node
	handle netns.NsHandle
	// binds maps each bind target to the node's own copy of its source.
	binds map[string]string
}

// BindPath returns where the node's copy of the file bound at target (a path
// inside a container) lives, and whether there is such a bind.
func (n *Node) BindPath(target string) (string, bool) {
	p, ok := n.binds[target]
	return p, ok
}

// copyBinds copies every bind source below dir, at the bind's target path
// (dir/etc/frr/frr.conf for /etc/frr/frr.conf), as a container's root file
// system would hold it: the run directory then has the files each daemon
// really ran with, and the originals may change or go.
func (n *Node) copyBinds(dir string) error {
	n.binds = map[string]string{}
	for _, b := range n.spec.Binds {
		dst := filepath.Join(dir, filepath.FromSlash(b.Target))
		st, err := os.Stat(b.Source)
		if err != nil {
			return fmt.Errorf("node %s bind %s: %w", n.Name, b.Target, err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if st.IsDir() {
			err = os.CopyFS(dst, os.DirFS(b.Source))
		} else {
			var data []byte
			if data, err = os.ReadFile(b.Source); err == nil {
				err = os.WriteFile(dst, data, 0o644)
			}
		}
		if err != nil {
			return fmt.Errorf("node %s: copying bind %s: %w", n.Name, b.Source, err)
		}
		n.binds[b.Target] = dst
	}
	return nil
}

// Spec is the node as the topology describes it.
func (n *Node) Spec() *clab.Node { return n.spec }

// Fd is the namespace's file descriptor, for moving links into it.
func (n *Node) Fd() int { return int(n.handle) }

// newNamespace creates the named namespace, failing if it exists.
func newNamespace(name string) (netns.NsHandle, error) {
	if _, err := os.Stat(netnsDir + "/" + name); err == nil {
		return 0, fmt.Errorf("namespace %s already exists (left by a crashed run? roamlab clean)", name)
	}
	return nsthread.NewNamed(name)
}

// Do runs fn on a locked OS thread inside the node's namespace. Sockets fn
// opens stay in the namespace after Do returns.
func (n *Node) Do(fn func() error) error {
	return nsthread.Do(n.handle, n.NS, fn)
}

// Command returns a command that runs inside the node's namespace.
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NS, name}, args...)...)
}

// Run runs a command inside the node's namespace and returns its combined
// output.
func (n *Node) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.NS, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Sysctl writes a sysctl inside the namespace, e.g. "net.ipv4.ip_forward", "1".
func (n *Node) Sysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return n.Do(func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("setting %s=%s in %s: %w", key, value, n.NS, err)
		}
		return nil
	})
}

// Addrs returns every address configured in the namespace.
func (n *Node) Addrs() ([]netip.Addr, error) {
	as, err := n.Handle.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses in %s: %w", n.NS, err)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

func (n *Node) close() {
	if n.Handle != nil {
		n.Handle.Close()
		n.Handle = nil
	}
	if n.handle.IsOpen() {
		n.handle.Close()
	}
}
