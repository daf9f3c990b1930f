package hosts

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
)

// Hosts returns a copy of every host in the table, sorted by tenant and address.
func (t *Table) Hosts() []Host {
	hs := t.sortedHosts()
	out := make([]Host, len(hs))
	for i, h := range hs {
		out[i] = h.copy()
	}
	return out
}

// Host returns a copy of one host.
func (t *Table) Host(key Key) (Host, bool) {
	h := t.hosts[key]
	if h == nil {
		return Host{}, false
	}
	return h.copy(), true
}

// copy is h without anything the table may change later.
func (h *Host) copy() Host {
	c := *h
	c.MAC = slices.Clone(h.MAC)
	c.History = slices.Clone(h.History)
	c.moves = nil
	return c
}

// RemoteClaimsEqual reports whether the BGP claims on key are claims, in
// any order, without copying them (a reconcile compares 100,000).
func (t *Table) RemoteClaimsEqual(key Key, claims []Claim) bool {
	var have []Claim
	if r := t.remote[key]; r != nil {
		have = r.claims
	}
	if len(have) != len(claims) {
		return false
	}
	for _, x := range have {
		if !slices.ContainsFunc(claims, func(y Claim) bool {
			return x.Origin == y.Origin && x.Seq == y.Seq && x.Sticky == y.Sticky && bytes.Equal(x.MAC, y.MAC)
		}) {
			return false
		}
	}
	return true
}

// RemoteClaimsOf returns the current remote claims on key.
func (t *Table) RemoteClaimsOf(key Key) []Claim {
	if r := t.remote[key]; r != nil {
		return slices.Clone(r.claims)
	}
	return nil
}

// Binding returns the addresses bound to mac in tenant.
func (t *Table) Binding(tenant string, mac net.HardwareAddr) []netip.Addr {
	return slices.Clone(t.bindings[tenant][string(mac)])
}

// Ports returns the VM ports the table knows.
func (t *Table) Ports() []Port {
	out := make([]Port, 0, len(t.ports))
	for _, p := range t.ports {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Port) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Counts returns the number of hosts in each state.
func (t *Table) Counts() map[State]int {
	out := map[State]int{}
	for _, h := range t.hosts {
		out[h.State]++
	}
	return out
}

// RemoteKeys returns the hosts of tenant that have remote claims.
func (t *Table) RemoteKeys(tenant string) []Key {
	out := make([]Key, 0, t.claimedElsewhere[tenant])
	for k, r := range t.remote {
		if k.Tenant == tenant && len(r.claims) > 0 {
			out = append(out, k)
		}
	}
	return out
}

// RemoteKeyCount returns how many hosts of tenant have claims from BGP:
// len(RemoteKeys(tenant)) without the list.
func (t *Table) RemoteKeyCount(tenant string) int { return t.claimedElsewhere[tenant] }

// RunningFamilies reports whether an IPv4 and an IPv6 host run on port
// (local or announced).
func (t *Table) RunningFamilies(port string) (v4, v6 bool) {
	for _, h := range t.byPort[port] {
		if h.State == Announced || h.State == Local {
			if h.Addr.Is4() {
				v4 = true
			} else {
				v6 = true
			}
		}
	}
	return v4, v6
}
