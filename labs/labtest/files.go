package labtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/nslab"
)

// A lab's files must agree with each other and with the address plan its
// tests and README rely on; a typo would otherwise only show as a lab that
// never converges. These checks read the files beside the test (a test's
// working directory is its package's).

// LoadTopology loads a topology file as the namespace runner would; it
// stops tb if that fails and fails it on keys the runner would ignore.
func LoadTopology(tb testing.TB, path string) *clab.Topology {
	tb.Helper()
	topo, err := clab.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(topo.Ignored) != 0 {
		tb.Errorf("keys the namespace runner would ignore: %v", topo.Ignored)
	}
	return topo
}

// CheckTopology checks a topology as the namespace runner will realise it:
// exactly the nodes of want with their roles, and every file a node binds
// present.
func CheckTopology(tb testing.TB, topo *clab.Topology, want map[string]nslab.Role) {
	tb.Helper()
	for name, role := range want {
		n := topo.Nodes[name]
		if n == nil {
			tb.Errorf("node %s missing", name)
			continue
		}
		if got, err := nslab.RoleOf(n); err != nil || got != role {
			tb.Errorf("node %s has role %q (%v), want %q", name, got, err, role)
		}
	}
	if len(topo.Nodes) != len(want) {
		tb.Errorf("topology has %d nodes, want %d", len(topo.Nodes), len(want))
	}
	CheckBinds(tb, topo)
}

// CheckBinds checks that every file the topology's nodes bind exists.
func CheckBinds(tb testing.TB, topo *clab.Topology) {
	tb.Helper()
	for _, name := range topo.NodeNames() {
		for _, b := range topo.Nodes[name].Binds {
			if _, err := os.Stat(b.Source); err != nil {
				tb.Errorf("node %s binds a missing file: %v", name, err)
			}
		}
	}
}

// LoadRoamdConfig loads and validates the roamd config of a hypervisor
// node, <node>/roamd.yaml, as roamd would; it stops tb if that fails.
func LoadRoamdConfig(tb testing.TB, node string) *config.Config {
	tb.Helper()
	path := filepath.Join(node, "roamd.yaml")
	cfg, err := config.Load(path)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return cfg
}

// CheckFileHas checks that the file at path contains each of lines, and
// returns its text (for checks of its own); it stops tb if the file cannot
// be read.
func CheckFileHas(tb testing.TB, path string, lines ...string) string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	text := string(data)
	for _, line := range lines {
		if !strings.Contains(text, line) {
			tb.Errorf("%s lacks %q", path, line)
		}
	}
	return text
}
