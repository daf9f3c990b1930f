package config

import (
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
version: 1
router_id: 192.0.2.11
asn: 65011
gateway_mac: "02:00:5e:10:00:01"
tenants:
  - name: default
    id: 1
    ports: ["tap*"]
    gateways: [10.10.0.1]
    prefixes: [10.10.0.0/24]
    peers:
      - address: 192.0.2.1
        asn: 65001
`

func TestMinimalConfigGetsDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kernel.RouteProtocol != 77 || c.Tenants[0].Table != 254 || c.API.Socket != "/run/roamd/roamd.sock" {
		t.Fatalf("defaults not applied: protocol %d table %d socket %q", c.Kernel.RouteProtocol, c.Tenants[0].Table, c.API.Socket)
	}
	p := c.Tenants[0].Peers[0]
	if p.HoldTime != 9*time.Second || p.Keepalive != 3*time.Second || p.Port != 179 || p.Families[0] != FamilyIPv4 {
		t.Fatalf("peer defaults not applied: %+v", p)
	}
	if c.TenantForPort("tap7") == nil || c.TenantForPort("eth0") != nil {
		t.Fatal("port patterns do not match as globs")
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := map[string]string{"ROAMD_ROUTER_ID": "198.51.100.7", "ROAMD_API_SOCKET": "/tmp/x.sock", "ROAMD_LOG_LEVEL": "debug"}
	c, err := Parse([]byte(minimal), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.RouterID != netip.MustParseAddr("198.51.100.7") || c.API.Socket != "/tmp/x.sock" || c.Log.Level != "debug" {
		t.Fatalf("overrides not applied: %v %q %q", c.RouterID, c.API.Socket, c.Log.Level)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, edit, want string
	}{
		{"unknown top-level key", "bogus: 1\n", "bogus: unknown key"},
		{"unknown nested key", "", "tenants[0].peers[0].holdtime: unknown key"},
		{"bad address", "", "tenants[0].peers[0].address"},
		{"missing version", "", "version: must be 1"},
		{"bad prefix host bits", "", "tenants[0].prefixes[0]: 10.10.0.1/24 has host bits set"},
		{"gateway outside prefixes", "", "tenants[0].gateways[0]: 10.20.0.1 is outside"},
		{"route protocol reserved", "kernel:\n  route_protocol: 2\n", "kernel.route_protocol"},
		{"bad duration", "timers:\n  reconcile: soon\n", "timers.reconcile"},
		{"multicast gateway MAC", "", "gateway_mac: 01:00:5e:00:00:01 is a multicast MAC"},
		{"bad family", "", "tenants[0].peers[0].families[0]: unknown family"},
		{"short notify key", "forwarding:\n  notify_port: 4790\n  notify_key: short\n", "forwarding.notify_key"},
		{"duplicate tables", "", "tenants[1].table: table 254 is already tenant"},
	}
	edits := map[string]func(string) string{
		"unknown nested key": func(s string) string { return strings.Replace(s, "asn: 65001", "asn: 65001\n        holdtime: 3s", 1) },
		"bad address":        func(s string) string { return strings.Replace(s, "192.0.2.1\n", "192.0.2.300\n", 1) },
		"missing version":    func(s string) string { return strings.Replace(s, "version: 1\n", "", 1) },
		"bad prefix host bits": func(s string) string {
			return strings.Replace(s, "prefixes: [10.10.0.0/24]", "prefixes: [10.10.0.1/24]", 1)
		},
		"gateway outside prefixes": func(s string) string { return strings.Replace(s, "gateways: [10.10.0.1]", "gateways: [10.20.0.1]", 1) },
		"multicast gateway MAC":    func(s string) string { return strings.Replace(s, "02:00:5e:10:00:01", "01:00:5e:00:00:01", 1) },
		"bad family": func(s string) string {
			return strings.Replace(s, "asn: 65001", "asn: 65001\n        families: [ipv4-multicast]", 1)
		},
		"duplicate tables": func(s string) string {
			return s + "  - name: blue\n    id: 2\n    ports: [\"blue*\"]\n    prefixes: [10.10.0.0/24]\n"
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := minimal
			if e := edits[c.name]; e != nil {
				text = e(text)
			}
			text += c.edit
			_, err := Parse([]byte(text), nil)
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// TestShippedConfigsLoad parses every roamd configuration in the repository:
// the reference, the examples and the labs' hypervisor configs.
func TestShippedConfigsLoad(t *testing.T) {
	root := filepath.Join("..", "..")
	var files []string
	for _, dir := range []string{"configs", "labs"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// roamd configurations are roamd*.yaml; topologies are *.clab.yml.
			if !d.IsDir() && strings.HasSuffix(path, ".yaml") && strings.HasPrefix(d.Name(), "roamd") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if len(files) == 0 {
		t.Fatal("no roamd configs found")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}
