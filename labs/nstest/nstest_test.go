package nstest

import (
	"net"
	"strings"
	"testing"
)

func TestVethBetweenNamespaces(t *testing.T) {
	a := New(t, "a")
	b := New(t, "b")
	Veth(t, a, "x0", b, "y0")
	a.MustRun(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "x0")
	b.MustRun(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "y0")
	out := a.MustRun(t, "ping", "-c1", "-W2", "192.0.2.2")
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping across the veth failed:\n%s", out)
	}
	// Do really runs inside the namespace: only b has y0.
	err := b.Do(func() error {
		_, err := net.InterfaceByName("y0")
		return err
	})
	if err != nil {
		t.Fatalf("y0 not visible inside %s: %v", b.Name, err)
	}
	if err := a.Do(func() error { _, err := net.InterfaceByName("y0"); return err }); err == nil {
		t.Fatalf("y0 visible inside %s", a.Name)
	}
}
