package fib

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/roamd/roamd/labs/nstest"
)

// TestTenantsStayApart runs two tenants with their own tables and the same VM
// address (192.0.2.10) on two ports of hv2. The VMs tell themselves apart by
// the TTL of their replies (red 64, blue 100). Clients of each tenant sit on
// hv2 itself (tenant uplinks) and on hv1, which forwards to hv2 through the
// tunnel, where the tun_id rules pick the tenant's table.
func TestTenantsStayApart(t *testing.T) {
	hv1, hv2 := twoSites(t)
	tenants := func(upRed, upBlue string) []TenantConfig {
		return []TenantConfig{
			{Name: "red", ID: 101, Table: 101, Gateways: []netip.Addr{vmGW4, vmLL, vmGW6}, Uplinks: []string{upRed}},
			{Name: "blue", ID: 102, Table: 102, Gateways: []netip.Addr{vmGW4, vmLL, vmGW6}, Uplinks: []string{upBlue}},
		}
	}

	// hv2: the two VMs and a local client per tenant.
	vmRed, redMAC := addVM(t, hv2, "tapred", "vmred")
	vmBlue, blueMAC := addVM(t, hv2, "tapblue", "vmblue")
	mustOK(t, "blue ttl", vmBlue.Sysctl("net.ipv4.ip_default_ttl", "100"))
	mustOK(t, "blue hop limit", vmBlue.Sysctl("net.ipv6.conf.eth0.hop_limit", "100"))
	clRed2 := addClient(t, hv2, "upred2", "clred2", "128", "97")
	clBlue2 := addClient(t, hv2, "upblue2", "clblue2", "160", "96")
	for _, r := range []string{
		// What the tenants' BGP would bring: their client networks.
		"route add 198.51.100.128/27 dev upred2 table 101",
		"-6 route add 2001:db8:97::/64 dev upred2 table 101",
		"route add 198.51.100.64/27 via 198.51.100.1 dev u2 table 101",
		"-6 route add 2001:db8:99::/64 via 2001:db8:ff::1 dev u2 table 101",
		"route add 198.51.100.160/27 dev upblue2 table 102",
		"-6 route add 2001:db8:96::/64 dev upblue2 table 102",
		"route add 198.51.100.96/27 via 198.51.100.1 dev u2 table 102",
		"-6 route add 2001:db8:98::/64 via 2001:db8:ff::1 dev u2 table 102",
	} {
		ip(t, hv2, r)
	}
	f2 := newFIB(t, hv2, testConfig(rid2, tenants("upred2", "upblue2")...))
	mustOK(t, "hv2 Setup", f2.Setup())
	mustOK(t, "PreparePort tapred", f2.PreparePort("tapred", "red"))
	mustOK(t, "PreparePort tapblue", f2.PreparePort("tapblue", "blue"))
	for _, a := range []netip.Addr{vm4, vm6} {
		mustOK(t, "InstallHost red", f2.InstallHost("red", a, "tapred", redMAC))
		mustOK(t, "InstallHost blue", f2.InstallHost("blue", a, "tapblue", blueMAC))
	}

	// hv1: a client per tenant; the VMs are at hv2.
	clRed := addClient(t, hv1, "upred", "clred", "64", "99")
	clBlue := addClient(t, hv1, "upblue", "clblue", "96", "98")
	f1 := newFIB(t, hv1, testConfig(rid1, tenants("upred", "upblue")...))
	mustOK(t, "hv1 Setup", f1.Setup())
	for _, a := range []netip.Addr{vm4, vm6} {
		mustOK(t, "ForwardHost red", f1.ForwardHost("red", a, rid2))
		mustOK(t, "ForwardHost blue", f1.ForwardHost("blue", a, rid2))
	}

	reaches := func(t *testing.T, client *nstest.NS, dst, ttl string) {
		t.Helper()
		out := waitPing(t, client, dst)
		if !strings.Contains(out, "ttl="+ttl+" ") {
			t.Errorf("%s → %s answered by the wrong VM, want ttl=%s:\n%s", client.Name, dst, ttl, out)
		}
	}
	t.Run("local clients", func(t *testing.T) {
		reaches(t, clRed2, "192.0.2.10", "63")
		reaches(t, clBlue2, "192.0.2.10", "99")
		reaches(t, clRed2, "2001:db8:10::10", "63")
		reaches(t, clBlue2, "2001:db8:10::10", "99")
	})
	t.Run("forwarded by tun_id", func(t *testing.T) {
		reaches(t, clRed, "192.0.2.10", "62")
		reaches(t, clBlue, "192.0.2.10", "98")
		reaches(t, clRed, "2001:db8:10::10", "62")
		reaches(t, clBlue, "2001:db8:10::10", "98")
	})
	t.Run("no leaks", func(t *testing.T) {
		// The other tenant's client network exists on hv2 (main and the
		// other table), but the tenant's table ends in unreachable.
		noPing(t, clRed2, "198.51.100.162")
		noPing(t, vmRed, "198.51.100.162")
		noPing(t, vmBlue, "2001:db8:97::2")
	})
}
