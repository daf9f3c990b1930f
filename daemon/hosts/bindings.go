package hosts

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
)

// This file: MAC → address bindings, which let a RARP (MAC only) claim the
// VM's addresses.

// Bind records that mac owns addrs in tenant (from configuration or a hint).
// A pinned binding makes those hosts sticky here.
func (t *Table) Bind(tenant string, mac net.HardwareAddr, addrs []netip.Addr, pinned bool) {
	for _, a := range addrs {
		t.bind(tenant, mac, a)
		if pinned {
			t.pinned[Key{tenant, a}] = mac
		}
	}
}

func (t *Table) bind(tenant string, mac net.HardwareAddr, a netip.Addr) {
	a = a.Unmap()
	key := Key{tenant, a}
	if t.owner[key] == string(mac) {
		return // already bound (the common case: a refresh)
	}
	// An address belongs to one MAC: rebinding it removes the old binding.
	t.unbindAddr(key)
	m := t.bindings[tenant]
	if m == nil {
		m = map[string][]netip.Addr{}
		t.bindings[tenant] = m
	}
	m[string(mac)] = append(m[string(mac)], a)
	t.owner[key] = string(mac)
}

func (t *Table) unbindAddr(key Key) {
	mac, ok := t.owner[key]
	if !ok {
		return
	}
	delete(t.owner, key)
	addrs := slices.DeleteFunc(t.bindings[key.Tenant][mac], func(a netip.Addr) bool { return a == key.Addr })
	if len(addrs) == 0 {
		delete(t.bindings[key.Tenant], mac)
	} else {
		t.bindings[key.Tenant][mac] = addrs
	}
}

func (t *Table) macOf(key Key) net.HardwareAddr {
	if mac, ok := t.owner[key]; ok {
		return net.HardwareAddr(mac)
	}
	return nil
}

// stagedAddrs lists the addresses staged on port for mac.
func (t *Table) stagedAddrs(port string, mac net.HardwareAddr) []netip.Addr {
	var out []netip.Addr
	for _, h := range t.onPort(port, func(h *Host) bool { return h.State == Staged && bytes.Equal(h.MAC, mac) }) {
		out = append(out, h.Addr)
	}
	return out
}
