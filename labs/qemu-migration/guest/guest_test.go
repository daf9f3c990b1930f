package guest

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The init script configures what the Config says, in an order that works:
// duplicate address detection off before the NIC exists, the modules in
// dependency order, addresses before the link comes up, routes after, and
// the agent last, as the process that keeps the guest alive.
func TestInitScript(t *testing.T) {
	script, err := DefaultConfig().InitScript()
	if err != nil {
		t.Fatal(err)
	}
	s := string(script)
	order := []string{
		"echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
		"for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do",
		"busybox ip addr add 10.10.0.10/24 dev eth0",
		"busybox ip addr add 2001:db8:10::10/64 dev eth0",
		"busybox ip link set eth0 qlen 10000",
		"busybox ip link set eth0 up",
		"busybox ip route add default via 10.10.0.1",
		"busybox ip -6 route add default via fe80::1 dev eth0",
		`echo "` + NetworkUpMessage + `"`,
		"exec /bin/agent -iface eth0 -port 7007",
	}
	at := 0
	for _, line := range order {
		i := strings.Index(s[at:], line)
		if i < 0 {
			t.Fatalf("init script lacks %q after offset %d:\n%s", line, at, s)
		}
		at += i + len(line)
	}
	if !strings.HasPrefix(s, "#!/bin/busybox sh\n") {
		t.Errorf("init script does not start with the busybox shebang:\n%s", s)
	}
	// The kernel runs it with busybox sh; any POSIX shell must parse it.
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = bytes.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v: %s", err, out)
	}
}

func TestInitScriptWithoutIPv6(t *testing.T) {
	c := DefaultConfig()
	c.Addr6, c.Gateway6 = netip.Prefix{}, netip.Addr{}
	script, err := c.InitScript()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(script), "2001:db8") || strings.Contains(string(script), "ip -6 route") {
		t.Errorf("IPv6 configured although the Config has none:\n%s", script)
	}
}

func TestValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"short MAC":      func(c *Config) { c.MAC = c.MAC[:4] },
		"IPv6 as IPv4":   func(c *Config) { c.Addr4 = netip.MustParsePrefix("2001:db8::1/64") },
		"no gateway":     func(c *Config) { c.Gateway4 = netip.Addr{} },
		"IPv4 gateway 6": func(c *Config) { c.Gateway6 = netip.MustParseAddr("10.0.0.1") },
		"port 0":         func(c *Config) { c.EchoPort = 0 },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}

func TestParseDepends(t *testing.T) {
	for _, tc := range []struct {
		record string
		want   KernelPackage
	}{
		{"Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n",
			KernelPackage{Name: "linux-image-6.1.0-56-amd64", Version: "6.1.192-2"}},
		{"Package: linux-image-amd64\nDepends: initramfs-tools, linux-image-6.1.0-56-amd64\n",
			KernelPackage{Name: "linux-image-6.1.0-56-amd64"}},
	} {
		got, ok := parseDepends([]byte(tc.record))
		if !ok {
			t.Errorf("parseDepends(%q) found nothing", tc.record)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseDepends(%q) (-want +got):\n%s", tc.record, diff)
		}
	}
	if _, ok := parseDepends([]byte("Package: linux-image-amd64\nDepends: initramfs-tools\n")); ok {
		t.Error("parseDepends found a kernel in a record without one")
	}
}

// fakeBzImage wraps payload as an x86 boot protocol 2.15 image with one
// setup sector, the payload 16 bytes into the protected-mode code, followed
// by the 4-byte decompressed size as a real bzImage has.
func fakeBzImage(payload []byte, size int) []byte {
	img := make([]byte, 2*512+16)
	img[0x1f1] = 1
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(img[0x248:], 16)
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)+4))
	img = append(img, payload...)
	return binary.LittleEndian.AppendUint32(img, uint32(size))
}

func TestDecompressBzImage(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	kernel := bytes.Repeat([]byte("\x7fELF pretend kernel "), 1000)
	cmd := exec.Command("xz", "--format=xz", "--check=crc32", "--stdout")
	cmd.Stdin = bytes.NewReader(kernel)
	payload, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decompressBzImage(context.Background(), fakeBzImage(payload, len(kernel)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, kernel) {
		t.Errorf("decompressed %d bytes, want the %d-byte kernel", len(got), len(kernel))
	}

	if _, err := decompressBzImage(context.Background(), make([]byte, 4096)); err == nil || !strings.Contains(err.Error(), "HdrS") {
		t.Errorf("an image without a boot header: %v", err)
	}
	gz := fakeBzImage([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, 0)
	if _, err := decompressBzImage(context.Background(), gz); err == nil || !strings.Contains(err.Error(), "only xz") {
		t.Errorf("a gzip payload: %v", err)
	}
}

// minimalELF returns a 64-bit ELF with one PT_NOTE segment holding a note
// of the given owner and type.
func minimalELF(owner string, typ uint32) []byte {
	name := append([]byte(owner), 0)
	for len(name)%4 != 0 {
		name = append(name, 0)
	}
	note := binary.LittleEndian.AppendUint32(nil, uint32(len(owner)+1))
	note = binary.LittleEndian.AppendUint32(note, 4)
	note = binary.LittleEndian.AppendUint32(note, typ)
	note = append(note, name...)
	note = append(note, 0, 0, 0, 0)

	le := binary.LittleEndian
	b := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b = le.AppendUint16(b, 2)  // ET_EXEC
	b = le.AppendUint16(b, 62) // EM_X86_64
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, 0)  // entry
	b = le.AppendUint64(b, 64) // program headers right after this header
	b = le.AppendUint64(b, 0)  // no sections
	b = le.AppendUint32(b, 0)
	b = le.AppendUint16(b, 64)
	b = le.AppendUint16(b, 56)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 64)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 4) // PT_NOTE
	b = le.AppendUint32(b, 4)
	b = le.AppendUint64(b, 64+56)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, uint64(len(note)))
	b = le.AppendUint64(b, uint64(len(note)))
	b = le.AppendUint64(b, 4)
	return append(b, note...)
}

func TestCheckPVH(t *testing.T) {
	if err := checkPVH(minimalELF("Xen", xenElfnotePhys32Entry)); err != nil {
		t.Errorf("kernel with a PVH note: %v", err)
	}
	for name, img := range map[string][]byte{
		"other Xen note": minimalELF("Xen", 5),
		"GNU note":       minimalELF("GNU", xenElfnotePhys32Entry),
		"not ELF":        []byte("MZ not an ELF file at all, long enough to be read"),
	} {
		if err := checkPVH(img); err == nil {
			t.Errorf("%s: accepted as a PVH kernel", name)
		}
	}
}
