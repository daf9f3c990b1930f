// Package clab reads containerlab topology files (*.clab.yml).
//
// It understands the part of the format a namespace runner can realise
// without a container engine: the lab name, nodes (kind, image, binds, exec,
// cmd, labels, env, with topology defaults and per-kind settings applied) and
// point-to-point links written as endpoint lists ("node:iface"). Keys it does
// not use are not errors, since the same file must stay valid for a real
// containerlab; they are listed in Topology.Ignored so a runner can say what
// it leaves out.
package clab

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Topology is a parsed lab.
type Topology struct {
	// Name is the lab name.
	Name string
	// Dir is the directory the file was read from; relative bind sources
	// have been resolved against it.
	Dir string
	// Nodes by name, with defaults and kind settings merged in.
	Nodes map[string]*Node
	// Links in file order.
	Links []Link
	// Ignored lists the keys present in the file that this package does not
	// interpret, e.g. "topology.nodes.leaf1.startup-config".
	Ignored []string
}

// Node is one lab node.
type Node struct {
	Name  string
	Kind  string
	Image string
	// Binds are the node's file mounts, sorted by target.
	Binds []Bind
	// Exec are the commands containerlab runs in the node once it is up.
	Exec []string
	// Cmd is the container's command.
	Cmd    string
	Labels map[string]string
	Env    map[string]string
}

// Bind is a host file or directory mounted into a node.
type Bind struct {
	// Source is the host path, absolute.
	Source string
	// Target is the path inside the node.
	Target string
	// Mode is the optional mount mode ("ro", "rw", ...).
	Mode string
}

// Link is a point-to-point (veth) link between two node interfaces.
type Link struct {
	A, B Endpoint
}

// Endpoint is one end of a link.
type Endpoint struct {
	Node      string
	Interface string
}

func (e Endpoint) String() string { return e.Node + ":" + e.Interface }

// NodeNames returns the node names, sorted.
func (t *Topology) NodeNames() []string {
	return slices.Sorted(maps.Keys(t.Nodes))
}

// Bind returns the node's bind whose target is target.
func (n *Node) Bind(target string) (Bind, bool) {
	for _, b := range n.Binds {
		if b.Target == target {
			return b, true
		}
	}
	return Bind{}, false
}

// Load reads and parses the topology file at path.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading topology: %w", err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", path, err)
	}
	t, err := Parse(data, abs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse parses topology text. dir is the directory relative bind sources are
// resolved against (the topology file's directory).
func Parse(data []byte, dir string) (*Topology, error) {
	var f fileSpec
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	t := &Topology{Name: f.Name, Dir: dir, Nodes: map[string]*Node{}}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if f.Name == "" {
		bad("name: required")
	}
	if len(f.Topology.Nodes) == 0 {
		bad("topology.nodes: at least one node is required")
	}
	t.Ignored = append(t.Ignored, ignored("", f.Rest)...)
	t.Ignored = append(t.Ignored, ignored("topology.", f.Topology.Rest)...)
	t.Ignored = append(t.Ignored, ignored("topology.defaults.", f.Topology.Defaults.Rest)...)
	for _, k := range slices.Sorted(maps.Keys(f.Topology.Kinds)) {
		t.Ignored = append(t.Ignored, ignored("topology.kinds."+k+".", f.Topology.Kinds[k].Rest)...)
	}

	for _, name := range slices.Sorted(maps.Keys(f.Topology.Nodes)) {
		spec := f.Topology.Nodes[name]
		if spec == nil {
			spec = &nodeSpec{}
		}
		t.Ignored = append(t.Ignored, ignored("topology.nodes."+name+".", spec.Rest)...)
		if strings.ContainsAny(name, ": /") {
			bad("topology.nodes.%s: node names may not contain ':', '/' or spaces", name)
			continue
		}
		n, err := mergeNode(name, f.Topology.Defaults, f.Topology.Kinds, *spec, dir)
		if err != nil {
			bad("topology.nodes.%s: %w", name, err)
			continue
		}
		t.Nodes[name] = n
	}

	used := map[Endpoint]int{}
	for i, ls := range f.Topology.Links {
		key := fmt.Sprintf("topology.links[%d]", i)
		t.Ignored = append(t.Ignored, ignored(key+".", ls.Rest)...)
		if len(ls.Endpoints) != 2 {
			bad("%s.endpoints: want exactly 2 endpoints (a veth), got %d", key, len(ls.Endpoints))
			continue
		}
		var ends [2]Endpoint
		ok := true
		for j, s := range ls.Endpoints {
			e, err := ParseEndpoint(s)
			if err != nil {
				bad("%s.endpoints[%d]: %w", key, j, err)
				ok = false
				continue
			}
			if _, found := f.Topology.Nodes[e.Node]; !found {
				bad("%s.endpoints[%d]: no node named %q", key, j, e.Node)
				ok = false
				continue
			}
			if prev, dup := used[e]; dup {
				bad("%s.endpoints[%d]: %s is already used by topology.links[%d]", key, j, e, prev)
				ok = false
			}
			used[e] = i
			ends[j] = e
		}
		if ok {
			t.Links = append(t.Links, Link{A: ends[0], B: ends[1]})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// ParseEndpoint parses "node:iface".
func ParseEndpoint(s string) (Endpoint, error) {
	node, iface, ok := strings.Cut(s, ":")
	if !ok || node == "" || iface == "" {
		return Endpoint{}, fmt.Errorf("endpoint %q: want node:interface", s)
	}
	if len(iface) > 15 || strings.ContainsAny(iface, "/ :") {
		return Endpoint{}, fmt.Errorf("endpoint %q: %q is not a Linux interface name (1..15 characters, no '/', ':' or spaces)", s, iface)
	}
	return Endpoint{Node: node, Interface: iface}, nil
}

// ParseBind parses "source:target[:mode]"; a relative source is resolved
// against dir.
func ParseBind(s, dir string) (Bind, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Bind{}, fmt.Errorf("bind %q: want source:target[:mode]", s)
	}
	b := Bind{Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		b.Mode = parts[2]
	}
	if !filepath.IsAbs(b.Target) {
		return Bind{}, fmt.Errorf("bind %q: target %q must be an absolute path", s, b.Target)
	}
	if !filepath.IsAbs(b.Source) {
		b.Source = filepath.Join(dir, b.Source)
	}
	return b, nil
}

// mergeNode applies containerlab's precedence: a node's own settings over
// its kind's over the topology defaults. Binds are merged by target, labels
// and env by key; exec, image and cmd are taken from the most specific level
// that sets them.
func mergeNode(name string, defaults nodeSpec, kinds map[string]nodeSpec, spec nodeSpec, dir string) (*Node, error) {
	kind := first(spec.Kind, defaults.Kind)
	if kind == "" {
		return nil, errors.New("kind: required (in the node or topology.defaults)")
	}
	kindSpec := kinds[kind]
	levels := []nodeSpec{defaults, kindSpec, spec} // least specific first

	n := &Node{
		Name:   name,
		Kind:   kind,
		Image:  first(spec.Image, kindSpec.Image, defaults.Image),
		Cmd:    first(spec.Cmd, kindSpec.Cmd, defaults.Cmd),
		Labels: map[string]string{},
		Env:    map[string]string{},
	}
	binds := map[string]Bind{}
	for _, l := range levels {
		for _, s := range l.Binds {
			b, err := ParseBind(s, dir)
			if err != nil {
				return nil, err
			}
			binds[b.Target] = b
		}
		if len(l.Exec) > 0 {
			n.Exec = slices.Clone(l.Exec)
		}
		maps.Copy(n.Labels, l.Labels)
		maps.Copy(n.Env, l.Env)
	}
	for _, target := range slices.Sorted(maps.Keys(binds)) {
		n.Binds = append(n.Binds, binds[target])
	}
	return n, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func ignored(prefix string, rest map[string]yaml.Node) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(rest)) {
		out = append(out, prefix+k)
	}
	return out
}

// fileSpec mirrors the file; Rest fields collect the keys this package does
// not interpret.
type fileSpec struct {
	Name     string `yaml:"name"`
	Topology struct {
		Defaults nodeSpec             `yaml:"defaults"`
		Kinds    map[string]nodeSpec  `yaml:"kinds"`
		Nodes    map[string]*nodeSpec `yaml:"nodes"`
		Links    []linkSpec           `yaml:"links"`
		Rest     map[string]yaml.Node `yaml:",inline"`
	} `yaml:"topology"`
	Rest map[string]yaml.Node `yaml:",inline"`
}

type nodeSpec struct {
	Kind   string               `yaml:"kind"`
	Image  string               `yaml:"image"`
	Binds  []string             `yaml:"binds"`
	Exec   []string             `yaml:"exec"`
	Cmd    string               `yaml:"cmd"`
	Labels map[string]string    `yaml:"labels"`
	Env    map[string]string    `yaml:"env"`
	Rest   map[string]yaml.Node `yaml:",inline"`
}

type linkSpec struct {
	Endpoints []string             `yaml:"endpoints"`
	Rest      map[string]yaml.Node `yaml:",inline"`
}
