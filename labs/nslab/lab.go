package nslab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sync/errgroup"

	"github.com/roamd/roamd/labs/clab"
)

// parkName is the namespace (after the prefix) that holds a VM's port while
// it is between hypervisors.
const parkName = "park"

// Options configure Up.
type Options struct {
	// Prefix names this run's namespaces and FRR instances
	// ("<prefix>-<node>"). Default: NewPrefix().
	Prefix string
	// RunDir holds configs, sockets and daemon logs. Default: a new
	// temporary directory.
	RunDir string
	// KeepRunDir keeps RunDir after Close (it is always kept when Up fails).
	KeepRunDir bool
	// RoamdBin and RoamctlBin are the binaries to run; RoamdBin is required
	// when the topology has roamd nodes (see Build).
	RoamdBin   string
	RoamctlBin string
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// Lab is a running topology.
type Lab struct {
	Topology *clab.Topology
	Prefix   string
	RunDir   string

	log     *slog.Logger
	keepDir bool
	roamctl string
	nodes   map[string]*Node
	park    *Node // holds VM ports between hypervisors during a move
	frr     []*frrInstance
	roamds  []*daemon
	bird    []*daemon // BIRD routers
	apis    apiClients

	closeOnce sync.Once
	closeErr  error
}

// Up realises the topology: namespaces, links, exec lines, FRR and roamd. It
// returns once every daemon runs (FRR daemons up, roamd answering on its
// API socket); BGP sessions are not waited for (see WaitBGP). On error,
// everything created so far is removed again and the run directory is kept.
func Up(ctx context.Context, topo *clab.Topology, opts Options) (lab *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the namespace runner needs root (network namespaces, FRR): run it with sudo")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lab{Topology: topo, Prefix: opts.Prefix, log: log, keepDir: opts.KeepRunDir, roamctl: opts.RoamctlBin, nodes: map[string]*Node{}}
	if l.Prefix == "" {
		l.Prefix = NewPrefix()
	}
	if err := checkPrefix(l.Prefix); err != nil {
		return nil, err
	}

	roles := map[string]Role{}
	var needFRR, needRoamd bool
	for _, name := range topo.NodeNames() {
		r, err := RoleOf(topo.Nodes[name])
		if err != nil {
			return nil, err
		}
		roles[name] = r
		needFRR = needFRR || r == RoleFRR
		needRoamd = needRoamd || r == RoleRoamd
	}
	if needFRR {
		if err := checkFRR(); err != nil {
			return nil, err
		}
	}
	if needRoamd {
		if err := checkBinary("roamd", opts.RoamdBin); err != nil {
			return nil, err
		}
		if opts.RoamctlBin != "" {
			if err := checkBinary("roamctl", opts.RoamctlBin); err != nil {
				return nil, err
			}
		}
	}

	if _, reserved := topo.Nodes[parkName]; reserved {
		return nil, fmt.Errorf("node name %q is reserved for the namespace that holds VM ports during a move", parkName)
	}

	l.RunDir = opts.RunDir
	if l.RunDir == "" {
		if l.RunDir, err = os.MkdirTemp("", "roamlab-"+l.Prefix+"-"); err != nil {
			return nil, err
		}
	} else {
		l.keepDir = true
		if err := os.MkdirAll(l.RunDir, 0o755); err != nil {
			return nil, err
		}
	}
	// FRR daemons run as user frr and write their logs below it.
	err = os.Chmod(l.RunDir, 0o755)
	if err == nil {
		err = register(l.Prefix, l.RunDir)
	}
	if err != nil {
		if !l.keepDir {
			os.RemoveAll(l.RunDir)
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			lab = nil
			l.keepDir = true
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("tearing down: %w", cerr))
			}
			err = fmt.Errorf("%w (logs in %s)", err, l.RunDir)
		}
	}()

	start := time.Now()
	if l.park, err = l.newNode(parkName, RoleHost, &clab.Node{Name: parkName}); err != nil {
		return l, err
	}
	for _, name := range topo.NodeNames() {
		if _, err := l.newNode(name, roles[name], topo.Nodes[name]); err != nil {
			return l, err
		}
	}
	for _, link := range topo.Links {
		if err := l.addLink(link); err != nil {
			return l, err
		}
	}
	for _, name := range topo.NodeNames() {
		if err := l.nodes[name].runExec(ctx); err != nil {
			return l, err
		}
	}
	log.Info("namespaces and links ready", "prefix", l.Prefix, "nodes", len(l.nodes), "links", len(topo.Links), "took", time.Since(start).Round(time.Millisecond))

	g, gctx := errgroup.WithContext(ctx)
	for _, name := range topo.NodeNames() {
		n := l.nodes[name]
		if n.Role != RoleFRR {
			continue
		}
		inst, err := prepareFRR(n, l.nodeDir(n))
		if inst != nil {
			l.frr = append(l.frr, inst)
		}
		if err != nil {
			return l, err
		}
		g.Go(func() error {
			err := inst.start(gctx, func(s string) { log.Debug("frrinit", "node", n.Name, "output", strings.TrimSpace(s)) })
			if err != nil {
				err = fmt.Errorf("%w; frr log:\n%s", err, tail(filepath.Join(l.nodeDir(n), "frr.log"), 20))
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return l, err
	}
	if needFRR {
		log.Info("FRR running", "took", time.Since(start).Round(time.Millisecond))
	}
	if err := l.startBIRDNodes(ctx); err != nil {
		return l, err
	}

	for _, name := range topo.NodeNames() {
		n := l.nodes[name]
		if n.Role != RoleRoamd {
			continue
		}
		d, err := startRoamd(n, opts.RoamdBin, l.nodeDir(n))
		if err != nil {
			return l, err
		}
		l.roamds = append(l.roamds, d)
	}
	if l.roamctl != "" {
		g, gctx = errgroup.WithContext(ctx)
		for _, d := range l.roamds {
			g.Go(func() error {
				wctx, cancel := context.WithTimeout(gctx, 15*time.Second)
				defer cancel()
				return l.WaitRoamdReady(wctx, d.node.Name)
			})
		}
		if err := g.Wait(); err != nil {
			return l, err
		}
	}
	if needRoamd {
		log.Info("roamd running", "took", time.Since(start).Round(time.Millisecond))
	}
	return l, nil
}

func checkBinary(what, path string) error {
	hint := fmt.Sprintf("build it with `go build -o DIR/%s ./cmd/%s` from the repository root", what, what)
	if path == "" {
		return fmt.Errorf("%s binary not given: %s", what, hint)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s binary %s not found (not built?): %s", what, path, hint)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s binary %s is not executable", what, path)
	}
	return nil
}

// newNode creates the node's namespace with loopback up and IPv6 duplicate
// address detection off (every move would otherwise lose 1-2 s on IPv6).
func (l *Lab) newNode(name string, role Role, spec *clab.Node) (*Node, error) {
	n := &Node{Name: name, NS: l.Prefix + "-" + name, Role: role, spec: spec}
	h, err := newNamespace(n.NS)
	if err != nil {
		return nil, err
	}
	n.handle = h
	if name == parkName {
		l.park = n
	} else {
		l.nodes[name] = n
	}
	if n.Handle, err = netlink.NewHandleAt(h); err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", n.NS, err)
	}
	for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := n.Sysctl(k, "0"); err != nil {
			return nil, err
		}
	}
	lo, err := n.Handle.LinkByName("lo")
	if err == nil {
		err = n.Handle.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("bringing up lo in %s: %w", n.NS, err)
	}
	if name == parkName {
		return n, nil
	}
	if err := os.MkdirAll(l.nodeDir(n), 0o755); err != nil {
		return nil, err
	}
	if err := n.copyBinds(l.nodeDir(n)); err != nil {
		return nil, err
	}
	if role == RoleRoamd {
		n.APISocket = filepath.Join(l.nodeDir(n), "roamd.sock")
	}
	return n, nil
}

func (l *Lab) nodeDir(n *Node) string { return filepath.Join(l.RunDir, n.Name) }

// addLink creates the link's veth pair, one end in each node, both up.
func (l *Lab) addLink(link clab.Link) error {
	a, b := l.nodes[link.A.Node], l.nodes[link.B.Node]
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: link.A.Interface},
		PeerName:      link.B.Interface,
		PeerNamespace: netlink.NsFd(b.Fd()),
	}
	if err := a.Handle.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating link %s <-> %s: %w", link.A, link.B, err)
	}
	for _, end := range []struct {
		n     *Node
		iface string
	}{{a, link.A.Interface}, {b, link.B.Interface}} {
		ln, err := end.n.Handle.LinkByName(end.iface)
		if err == nil {
			err = end.n.Handle.LinkSetUp(ln)
		}
		if err != nil {
			return fmt.Errorf("bringing up %s in %s: %w", end.iface, end.n.NS, err)
		}
	}
	return nil
}

// Node returns the named node, or nil.
func (l *Lab) Node(name string) *Node { return l.nodes[name] }

// Nodes returns the lab's nodes sorted by name.
func (l *Lab) Nodes() []*Node {
	out := make([]*Node, 0, len(l.nodes))
	for _, name := range l.Topology.NodeNames() {
		if n := l.nodes[name]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

func (l *Lab) nodeWithRole(name string, role Role) (*Node, error) {
	n := l.nodes[name]
	if n == nil {
		return nil, fmt.Errorf("no node %q in lab %s", name, l.Topology.Name)
	}
	if n.Role != role {
		return nil, fmt.Errorf("node %s is a %s node, not %s", name, n.Role, role)
	}
	return n, nil
}

func (l *Lab) roamdOf(node string) *daemon {
	for _, d := range l.roamds {
		if d.node.Name == node {
			return d
		}
	}
	return nil
}

// NodesOwning returns the nodes that have addr configured (an anycast
// address is on several).
func (l *Lab) NodesOwning(addr netip.Addr) ([]string, error) {
	var out []string
	for _, n := range l.Nodes() {
		as, err := n.Addrs()
		if err != nil {
			return nil, err
		}
		if slices.Contains(as, addr) {
			out = append(out, n.Name)
		}
	}
	return out, nil
}

// LogFiles returns the daemon logs of the run, by node.
func (l *Lab) LogFiles() map[string][]string {
	out := map[string][]string{}
	for _, n := range l.Nodes() {
		for _, f := range []string{"frr.log", "bird.log", "roamd.log"} {
			p := filepath.Join(l.nodeDir(n), f)
			if st, err := os.Stat(p); err == nil && st.Size() > 0 {
				out[n.Name] = append(out[n.Name], p)
			}
		}
	}
	return out
}

// DumpLogs writes the last lines of every daemon log to w (for a failed
// test or demo).
func (l *Lab) DumpLogs(w io.Writer, lines int) {
	logs := l.LogFiles()
	for _, n := range l.Topology.NodeNames() {
		for _, p := range logs[n] {
			fmt.Fprintf(w, "==> %s (last %d lines) <==\n%s\n", p, lines, tail(p, lines))
		}
	}
}

// Close stops every daemon the lab started (roamd first, so it withdraws
// while the fabric is still up; then FRR, watchfrr before the daemons it
// would restart), deletes the namespaces and the FRR instance directories
// and, unless kept, the run directory. It is safe to call more than once.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	var mu sync.Mutex
	var errs []error
	add := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for _, d := range l.roamds {
		wg.Go(func() { add(d.stop(8 * time.Second)) })
	}
	wg.Wait()
	for _, f := range l.frr {
		wg.Go(func() { add(f.stop()) })
	}
	for _, b := range l.bird {
		wg.Go(func() { add(b.stop(5 * time.Second)) })
	}
	wg.Wait()

	all := append(l.Nodes(), l.park)
	for _, n := range all {
		if n == nil {
			continue
		}
		n.close()
		// Processes that outlive their daemon (a vtysh, a ping) would keep
		// the namespace alive without its name; nothing of ours is left.
		if err := netns.DeleteNamed(n.NS); err != nil && !errors.Is(err, os.ErrNotExist) {
			add(fmt.Errorf("deleting namespace %s: %w", n.NS, err))
		}
	}
	add(unregister(l.Prefix))
	if !l.keepDir && l.RunDir != "" {
		add(os.RemoveAll(l.RunDir))
	}
	l.log.Info("lab removed", "prefix", l.Prefix)
	return errors.Join(errs...)
}
