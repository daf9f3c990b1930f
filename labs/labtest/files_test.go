package labtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/clab"
	"github.com/roamd/roamd/labs/nslab"
)

// recorder is a testing.TB that records what the checks report.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

const topology = `
name: check
topology:
  defaults:
    kind: linux
  nodes:
    leaf1:
      binds:
        - leaf1.conf:/etc/frr/frr.conf
    hv1:
      cmd: roamd --config /etc/roamd/roamd.yaml
      binds:
        - missing.yaml:/etc/roamd/roamd.yaml
    extra1:
      labels:
        roamlab.role: host
    extra2:
      labels:
        roamlab.role: host
`

// The topology check reports each way a topology can disagree with its
// plan: a missing node, a node in another role, more nodes than planned, a
// bound file that is not there.
func TestCheckTopologyReportsEachDisagreement(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "leaf1.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := clab.Parse([]byte(topology), dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	CheckTopology(r, topo, map[string]nslab.Role{"leaf1": nslab.RoleFRR, "hv1": nslab.RoleHost, "client": nslab.RoleHost})
	got := slices.Clone(r.errs)
	for i, e := range got {
		got[i] = strings.ReplaceAll(e, dir, "DIR")
	}
	slices.Sort(got)
	want := []string{
		`node client missing`,
		`node hv1 binds a missing file: stat DIR/missing.yaml: no such file or directory`,
		`node hv1 has role "roamd" (<nil>), want "host"`,
		`topology has 4 nodes, want 3`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
}

func TestCheckFileHasReportsMissingLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "frr.conf")
	if err := os.WriteFile(path, []byte("router bgp 65001\n neighbor 198.51.100.3 remote-as 65011\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	text := CheckFileHas(r, path, "router bgp 65001", "neighbor 198.51.100.3 addpath-tx-all-paths")
	want := []string{fmt.Sprintf("%s lacks %q", path, "neighbor 198.51.100.3 addpath-tx-all-paths")}
	if diff := cmp.Diff(want, r.errs); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(text, "router bgp 65001\n") {
		t.Errorf("returned %q, not the file's text", text)
	}
}
