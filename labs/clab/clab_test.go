package clab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const frrLab = `
name: frr01
mgmt:
  network: custom
topology:
  defaults:
    kind: linux
    env:
      TZ: UTC
  kinds:
    linux:
      image: alpine:3
      labels:
        site: a
  nodes:
    router1:
      image: quay.io/frrouting/frr:8.4.4
      binds:
        - router1/daemons:/etc/frr/daemons
        - /abs/frr.conf:/etc/frr/frr.conf:ro
      labels:
        roamlab.role: frr
        rack: 12
      startup-config: ignored.cfg
    pc1:
      exec:
        - ip addr add 192.0.2.10/24 dev eth1
        - ip route add default via 192.0.2.1
      cmd: sleep infinity
      env:
        TZ: Europe/Paris
  links:
    - endpoints: ["router1:eth1", "pc1:eth1"]
`

func TestParseMergesDefaultsKindsAndNode(t *testing.T) {
	topo, err := Parse([]byte(frrLab), "/labs/frr01")
	if err != nil {
		t.Fatal(err)
	}
	want := &Topology{
		Name: "frr01",
		Dir:  "/labs/frr01",
		Nodes: map[string]*Node{
			"router1": {
				Name:  "router1",
				Kind:  "linux",
				Image: "quay.io/frrouting/frr:8.4.4",
				Binds: []Bind{
					{Source: "/labs/frr01/router1/daemons", Target: "/etc/frr/daemons"},
					{Source: "/abs/frr.conf", Target: "/etc/frr/frr.conf", Mode: "ro"},
				},
				Labels: map[string]string{"site": "a", "roamlab.role": "frr", "rack": "12"},
				Env:    map[string]string{"TZ": "UTC"},
			},
			"pc1": {
				Name:   "pc1",
				Kind:   "linux",
				Image:  "alpine:3",
				Exec:   []string{"ip addr add 192.0.2.10/24 dev eth1", "ip route add default via 192.0.2.1"},
				Cmd:    "sleep infinity",
				Labels: map[string]string{"site": "a"},
				Env:    map[string]string{"TZ": "Europe/Paris"},
			},
		},
		Links: []Link{{
			A: Endpoint{Node: "router1", Interface: "eth1"},
			B: Endpoint{Node: "pc1", Interface: "eth1"},
		}},
		Ignored: []string{"mgmt", "topology.nodes.router1.startup-config"},
	}
	if diff := cmp.Diff(want, topo); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if got := topo.NodeNames(); !cmp.Equal(got, []string{"pc1", "router1"}) {
		t.Errorf("NodeNames = %v, want sorted [pc1 router1]", got)
	}
	b, ok := topo.Nodes["router1"].Bind("/etc/frr/frr.conf")
	if !ok || b.Source != "/abs/frr.conf" {
		t.Errorf("Bind(/etc/frr/frr.conf) = %+v, %v; want source /abs/frr.conf", b, ok)
	}
	if _, ok := topo.Nodes["pc1"].Bind("/etc/frr/frr.conf"); ok {
		t.Error("pc1 has no binds, Bind found one")
	}
}

func TestParseNodeBindOverridesKindBindOnSameTarget(t *testing.T) {
	topo, err := Parse([]byte(`
name: x
topology:
  kinds:
    linux:
      binds: [kind.conf:/etc/app.conf, common:/common]
  nodes:
    a: {kind: linux, binds: [a.conf:/etc/app.conf]}
    b: {kind: linux}
`), "/d")
	if err != nil {
		t.Fatal(err)
	}
	wantA := []Bind{{Source: "/d/common", Target: "/common"}, {Source: "/d/a.conf", Target: "/etc/app.conf"}}
	if diff := cmp.Diff(wantA, topo.Nodes["a"].Binds); diff != "" {
		t.Errorf("a binds (-want +got):\n%s", diff)
	}
	wantB := []Bind{{Source: "/d/common", Target: "/common"}, {Source: "/d/kind.conf", Target: "/etc/app.conf"}}
	if diff := cmp.Diff(wantB, topo.Nodes["b"].Binds); diff != "" {
		t.Errorf("b binds (-want +got):\n%s", diff)
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"no name", "topology: {nodes: {a: {kind: linux}}}", "name: required"},
		{"no nodes", "name: x\ntopology: {}", "at least one node"},
		{"no kind", "name: x\ntopology: {nodes: {a: {image: i}}}", "topology.nodes.a: kind: required"},
		{"unknown node", "name: x\ntopology: {nodes: {a: {kind: linux}}, links: [{endpoints: [a:e1, b:e1]}]}",
			`topology.links[0].endpoints[1]: no node named "b"`},
		{"three endpoints", "name: x\ntopology: {nodes: {a: {kind: linux}}, links: [{endpoints: [a:e1, a:e2, a:e3]}]}",
			"want exactly 2 endpoints"},
		{"no interface", "name: x\ntopology: {nodes: {a: {kind: linux}}, links: [{endpoints: [a, a:e2]}]}",
			`endpoint "a": want node:interface`},
		{"long interface", "name: x\ntopology: {nodes: {a: {kind: linux}}, links: [{endpoints: [a:e1, a:abcdefghijklmnop]}]}",
			"not a Linux interface name"},
		{"endpoint reused", "name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}}, links: [{endpoints: [a:e1, b:e1]}, {endpoints: [a:e1, b:e2]}]}",
			"topology.links[1].endpoints[0]: a:e1 is already used by topology.links[0]"},
		{"bad bind", "name: x\ntopology: {nodes: {a: {kind: linux, binds: [nocolon]}}}", `bind "nocolon": want source:target`},
		{"relative bind target", "name: x\ntopology: {nodes: {a: {kind: linux, binds: [a:etc/x]}}}", "must be an absolute path"},
		{"not yaml", "name: [", "parsing YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "/d")
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseAcceptsNullNodeWithDefaultKind(t *testing.T) {
	topo, err := Parse([]byte("name: x\ntopology:\n  defaults: {kind: linux}\n  nodes:\n    a:\n"), "/d")
	if err != nil {
		t.Fatal(err)
	}
	if got := topo.Nodes["a"].Kind; got != "linux" {
		t.Errorf("kind = %q, want linux from defaults", got)
	}
}

func TestLoadResolvesBindsAgainstTheFileDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lab.clab.yml")
	if err := os.WriteFile(path, []byte("name: x\ntopology: {nodes: {a: {kind: linux, binds: [a/frr.conf:/etc/frr/frr.conf]}}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := topo.Nodes["a"].Binds[0].Source, filepath.Join(dir, "a", "frr.conf"); got != want {
		t.Errorf("bind source = %q, want %q", got, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.clab.yml")); err == nil || !strings.Contains(err.Error(), "reading topology") {
		t.Errorf("Load(missing) error = %v, want a reading error", err)
	}
}
