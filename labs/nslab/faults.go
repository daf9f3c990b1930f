package nslab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Faults a lab can inject: a roamd crash and restart, an FRR restart, a
// VM's port deleted and the VM booted again elsewhere.

// KillRoamd kills roamd on node with SIGKILL, as a crash would (no drain,
// no BGP notification: the kernel closes its sessions), and waits until it
// is gone.
func (l *Lab) KillRoamd(node string) error {
	d := l.roamdOf(node)
	if d == nil {
		return fmt.Errorf("no roamd on node %q", node)
	}
	if d.exited() {
		return fmt.Errorf("roamd on %s is not running", node)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing roamd on %s: %w", node, err)
	}
	<-d.done
	return nil
}

// StartRoamd starts roamd on node again, after KillRoamd (or its exit),
// with the same command line and environment, appending to the same log.
// With a roamctl binary it returns once roamd answers on its API socket.
func (l *Lab) StartRoamd(ctx context.Context, node string) error {
	i := -1
	for j, d := range l.roamds {
		if d.node.Name == node {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("no roamd on node %q", node)
	}
	old := l.roamds[i]
	if !old.exited() {
		return fmt.Errorf("roamd on %s is still running", node)
	}
	d, err := rerun(old)
	if err != nil {
		return err
	}
	l.roamds[i] = d
	if l.roamctl == "" {
		return nil
	}
	return l.WaitRoamdReady(ctx, node)
}

// rerun starts a daemon's command again.
func rerun(old *daemon) (*daemon, error) {
	logf, err := os.OpenFile(old.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(old.cmd.Path, old.cmd.Args[1:]...)
	cmd.Env = old.cmd.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting roamd in %s again: %w", old.node.NS, err)
	}
	d := &daemon{node: old.node, cmd: cmd, logPath: old.logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// RestartFRR stops the FRR instance of node (watchfrr, then its daemons,
// which close their sessions) and starts it again from the same
// configuration. It returns once the daemons are up; sessions come back
// after that (WaitBGP).
func (l *Lab) RestartFRR(ctx context.Context, node string) error {
	n, err := l.nodeWithRole(node, RoleFRR)
	if err != nil {
		return err
	}
	i := -1
	for j, f := range l.frr {
		if f.node == n {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("no FRR instance on node %q", node)
	}
	if err := l.frr[i].stop(); err != nil {
		return fmt.Errorf("stopping FRR on %s: %w", node, err)
	}
	inst, err := prepareFRR(n, l.nodeDir(n))
	if inst != nil {
		l.frr[i] = inst
	}
	if err != nil {
		return err
	}
	return inst.start(ctx, func(s string) { l.log.Debug("frrinit", "node", node, "output", strings.TrimSpace(s)) })
}

// DeletePort deletes the VM's port wherever it is (on a hypervisor or
// parked), as when the VM is destroyed: the VM's own interface, the other
// end of the pair, goes with it. It returns the node that held the port
// ("" if it was parked).
func (l *Lab) DeletePort(vm string) (string, error) {
	_, port, err := l.vmLink(vm)
	if err != nil {
		return "", err
	}
	for _, n := range append(l.Nodes(), l.park) {
		link, err := n.Handle.LinkByName(port)
		if err != nil {
			continue
		}
		if err := n.Handle.LinkDel(link); err != nil {
			return "", fmt.Errorf("deleting %s in %s: %w", port, n.NS, err)
		}
		if n == l.park {
			return "", nil
		}
		return n.Name, nil
	}
	return "", fmt.Errorf("port %s of %s exists nowhere", port, vm)
}

// ReplugVM gives a VM whose port was deleted a new one on hypervisor hv
// and runs the VM's exec lines again (its MAC, addresses and routes), as
// when the VM boots again there. The caller makes the VM announce itself
// like a booting guest (Announce) if it should.
func (l *Lab) ReplugVM(ctx context.Context, vm, hv string) error {
	vmIface, port, err := l.vmLink(vm)
	if err != nil {
		return err
	}
	v := l.nodes[vm]
	if _, err := l.nodeWithRole(hv, RoleRoamd); err != nil {
		return err
	}
	if _, err := v.Handle.LinkByName(vmIface); err == nil {
		return fmt.Errorf("%s still has its interface %s", vm, vmIface)
	}
	// The pair is made in the parking namespace and the VM configured
	// there, before its port reaches the hypervisor: a guest configures
	// itself before it runs, and nothing roamd sends (a router
	// advertisement answering the guest's first solicitation) can race
	// with the exec lines.
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: port},
		PeerName:      vmIface,
		PeerNamespace: netlink.NsFd(v.Fd()),
	}
	if err := l.park.Handle.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating port %s of %s: %w", port, vm, err)
	}
	for _, end := range []struct {
		n     *Node
		iface string
	}{{l.park, port}, {v, vmIface}} {
		link, err := end.n.Handle.LinkByName(end.iface)
		if err == nil {
			err = end.n.Handle.LinkSetUp(link)
		}
		if err != nil {
			return fmt.Errorf("bringing up %s in %s: %w", end.iface, end.n.NS, err)
		}
	}
	if err := v.runExec(ctx); err != nil {
		return fmt.Errorf("configuring %s again: %w", vm, err)
	}
	if _, err := l.Plug(vm, hv); err != nil {
		return err
	}
	_, err = waitCarrier(ctx, v, vmIface)
	return err
}
