package clab

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// compileClabSchema compiles containerlab's own topology schema, vendored in
// testdata (see testdata/README.md for its origin).
func compileClabSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "clab.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("parsing the schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	const id = "https://containerlab.dev/clab.schema.json"
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(id)
	if err != nil {
		t.Fatalf("compiling the schema: %v", err)
	}
	return s
}

// yamlToJSONValue turns a YAML document into the generic value the schema
// validator expects (as containerlab does: YAML → JSON → validate).
func yamlToJSONValue(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("parsing YAML: %v", err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("converting to JSON: %v", err)
	}
	out, err := jsonschema.UnmarshalJSON(strings.NewReader(string(j)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryLabTopologyValidatesAgainstContainerlabSchema(t *testing.T) {
	schema := compileClabSchema(t)
	var files []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".clab.yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.clab.yml found under labs/")
	}
	for _, path := range files {
		t.Run(filepath.ToSlash(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(yamlToJSONValue(t, data)); err != nil {
				t.Errorf("%s does not validate against containerlab's schema:\n%v", path, err)
			}
			if _, err := Load(path); err != nil {
				t.Errorf("the runner cannot parse %s: %v", path, err)
			}
		})
	}
}

// The schema test is only worth something if the schema rejects what
// containerlab rejects.
func TestSchemaRejectsInvalidTopologies(t *testing.T) {
	schema := compileClabSchema(t)
	for name, doc := range map[string]string{
		"missing name":       "topology: {nodes: {a: {kind: linux}}}",
		"unknown node key":   "name: x\ntopology: {nodes: {a: {kind: linux, imagee: x}}}",
		"endpoint not a:b":   "name: x\ntopology: {nodes: {a: {kind: linux}}, links: [{endpoints: [a, b]}]}",
		"exec not a list":    "name: x\ntopology: {nodes: {a: {kind: linux, exec: ls}}}",
		"label not a scalar": "name: x\ntopology: {nodes: {a: {kind: linux, labels: {k: [1]}}}}",
	} {
		t.Run(name, func(t *testing.T) {
			if err := schema.Validate(yamlToJSONValue(t, []byte(doc))); err == nil {
				t.Errorf("schema accepted an invalid topology:\n%s", doc)
			}
		})
	}
}
