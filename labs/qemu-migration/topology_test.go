package qemumigration

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/labtest"
	"github.com/roamd/roamd/labs/nslab"
	twosite "github.com/roamd/roamd/labs/two-site"
)

// The QEMU variant is the two-site fabric without the VM namespace: every
// other node must be two-site's node exactly (same role, command, exec
// lines and bound files), so a change there cannot leave this lab behind
// silently.
func TestTopologyIsTwoSiteWithoutTheVM(t *testing.T) {
	dir := t.TempDir()
	path, err := extractRoamdFabric(dir)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := clab.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	theirsPath, err := twosite.Extract(filepath.Join(t.TempDir(), "two-site"))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := clab.Load(theirsPath)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range theirs.NodeNames() {
		if n != twosite.VM {
			want = append(want, n)
		}
	}
	if diff := cmp.Diff(want, ours.NodeNames()); diff != "" {
		t.Fatalf("nodes (-two-site without the VM +ours):\n%s", diff)
	}
	for _, name := range want {
		a, b := theirs.Nodes[name], ours.Nodes[name]
		ra, _ := nslab.RoleOf(a)
		rb, err := nslab.RoleOf(b)
		if err != nil || ra != rb {
			t.Errorf("%s: role %q (%v), two-site has %q", name, rb, err, ra)
		}
		if a.Cmd != b.Cmd || !slices.Equal(a.Exec, b.Exec) {
			t.Errorf("%s: cmd %q exec %q differ from two-site's cmd %q exec %q", name, b.Cmd, b.Exec, a.Cmd, a.Exec)
		}
		if len(a.Binds) != len(b.Binds) {
			t.Errorf("%s: %d binds, two-site has %d", name, len(b.Binds), len(a.Binds))
			continue
		}
		for i := range a.Binds {
			da, errA := os.ReadFile(a.Binds[i].Source)
			db, errB := os.ReadFile(b.Binds[i].Source)
			if a.Binds[i].Target != b.Binds[i].Target || errA != nil || errB != nil || string(da) != string(db) {
				t.Errorf("%s: bind %s (%v) is not two-site's %s (%v)", name, b.Binds[i].Target, errB, a.Binds[i].Target, errA)
			}
		}
	}
	var wantLinks []clab.Link
	for _, l := range theirs.Links {
		if l.A.Node != twosite.VM && l.B.Node != twosite.VM {
			wantLinks = append(wantLinks, l)
		}
	}
	if diff := cmp.Diff(wantLinks, ours.Links); diff != "" {
		t.Errorf("links (-two-site without the VM +ours):\n%s", diff)
	}
	if len(ours.Ignored) != 0 {
		t.Errorf("keys the namespace runner would ignore: %v", ours.Ignored)
	}
}

// In the source tree the topology's binds reach two-site's files, so it
// runs as it is (roamlab up, containerlab).
func TestTopologyFileInTheTree(t *testing.T) {
	labtest.CheckBinds(t, labtest.LoadTopology(t, TopologyFile))
}
