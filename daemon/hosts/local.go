package hosts

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"time"
)

// This file: what happens on this site — VM ports coming and going, frames
// from VMs claiming their addresses, conflicts and the authorisation rules.

// restored re-announces a host whose route survived a restart in the kernel.
// Its sequence comes from the journal; a remote claim that beats it makes
// it yield as usual once BGP brings that claim.
func (t *Table) restored(in Restored) []Action {
	h := t.host(in.Key, in.Time)
	h.Seq = max(h.Seq, in.Seq)
	h.Pinned = t.pinned[in.Key] != nil
	if len(in.MAC) == 6 {
		h.MAC = slices.Clone(in.MAC)
		t.bind(in.Key.Tenant, in.MAC, in.Key.Addr)
	}
	h.LastSource = SourceRestore
	if in.ForwardTo.IsValid() {
		h.ForwardTo = in.ForwardTo
		h.ForwardUntil = in.Time.Add(t.policy.Hold)
		t.setState(h, Yielded, in.Time)
		return nil
	}
	t.setPort(h, in.Port)
	t.setState(h, Announced, in.Time)
	return []Action{Announce{Key: in.Key, Seq: h.Seq, Sticky: h.Pinned, MAC: h.MAC}}
}

func (t *Table) portUp(in PortUp) []Action {
	t.ports[in.Port] = Port{Name: in.Port, Tenant: in.Tenant}
	acts := []Action{PreparePort{Port: in.Port, Tenant: in.Tenant}}
	// A host staged before its port existed gets its port readied now.
	staged := t.onPort(in.Port, func(h *Host) bool { return h.State == Staged && h.Tenant == in.Tenant })
	if len(staged) > 0 {
		acts = append(acts, StagePort{Port: in.Port, MAC: staged[0].MAC, Addrs: t.stagedAddrs(in.Port, staged[0].MAC)})
	}
	return acts
}

func (t *Table) portDown(in PortDown) []Action {
	delete(t.ports, in.Port)
	var acts []Action
	for _, h := range t.onPort(in.Port, func(*Host) bool { return true }) {
		switch h.State {
		case Announced, Local, Staged:
			acts = append(acts, t.leave(h, in.Time)...)
		case Yielded:
			// Forwarding does not need the port; the hold timer ends it.
			if h.ForwardTo.IsValid() {
				continue
			}
			t.setState(h, Gone, in.Time)
		}
	}
	return acts
}

// leave ends a host that runs or is staged here. A running host is
// withdrawn before its route is removed: the fabric must stop sending
// before the port stops receiving.
func (t *Table) leave(h *Host, now time.Time) []Action {
	switch h.State {
	case Announced, Local:
		t.setState(h, Gone, now)
		return []Action{Withdraw{Key: h.Key}, RemoveRoute{Key: h.Key}}
	case Staged:
		t.setState(h, Gone, now)
	}
	return nil
}

// frame handles a frame from a VM: the frame claims its address here.
func (t *Table) frame(in Frame) []Action {
	port, ok := t.ports[in.Port]
	if !ok {
		return []Action{Refused{Port: in.Port, MAC: in.MAC, Reason: RefuseUnknownPort}}
	}
	if len(in.EthSrc) > 0 && !bytes.Equal(in.EthSrc, in.MAC) {
		return []Action{Refused{Key: Key{Tenant: port.Tenant, Addr: in.Addr}, Port: in.Port, MAC: in.EthSrc, Reason: RefuseSpoofedMAC}}
	}
	if !in.Addr.IsValid() {
		// RARP: the MAC is all there is; claim every address bound to it.
		addrs := t.bindings[port.Tenant][string(in.MAC)]
		if len(addrs) == 0 {
			m := t.unknownRARP[port.Tenant]
			if m == nil {
				m = map[string]Frame{}
				t.unknownRARP[port.Tenant] = m
			}
			m[string(in.MAC)] = in
			return []Action{Refused{Key: Key{Tenant: port.Tenant}, Port: in.Port, MAC: in.MAC, Reason: RefuseUnknownMAC}}
		}
		delete(t.unknownRARP[port.Tenant], string(in.MAC))
		var acts []Action
		for _, a := range slices.Clone(addrs) {
			f := in
			f.Addr = a
			acts = append(acts, t.claim(port, f)...)
		}
		return acts
	}
	return t.claim(port, in)
}

// claim makes this site the owner of the frame's address, if allowed.
func (t *Table) claim(port Port, in Frame) []Action {
	key := Key{Tenant: port.Tenant, Addr: in.Addr.Unmap()}
	if reason := t.authorise(key, in.MAC); reason != "" {
		return []Action{Refused{Key: key, Port: in.Port, MAC: in.MAC, Reason: reason}}
	}
	h := t.hosts[key]
	if h != nil && (h.State == Announced || h.State == Local) {
		if bytes.Equal(h.MAC, in.MAC) {
			return t.refresh(h, in)
		}
		// Another MAC claims an address that is running here.
		return t.contest(key, in, h.MAC, h.Port)
	}
	best, hasRemote := t.bestRemote(key)
	if hasRemote && len(best.MAC) > 0 && !bytes.Equal(best.MAC, in.MAC) {
		return t.contest(key, in, best.MAC, "")
	}
	if h != nil && h.Frozen {
		return []Action{Refused{Key: key, Port: in.Port, MAC: in.MAC, Reason: RefuseFrozen}}
	}
	if hasRemote && best.Sticky && t.pinned[key] == nil {
		return []Action{Refused{Key: key, Port: in.Port, MAC: in.MAC, Reason: RefusePinned}}
	}
	acts := t.take(key, port.Name, in.MAC, in.Source, in.Time, best, hasRemote)
	// A MAC is one NIC: the VM's other addresses (the other family of a
	// dual-stack VM, say) arrived with it. Claim those not running here
	// yet, as a RARP would.
	for _, other := range slices.Clone(t.bindings[key.Tenant][string(in.MAC)]) {
		if h := t.hosts[Key{key.Tenant, other}]; other == key.Addr || (h != nil && (h.State == Announced || h.State == Local)) {
			continue
		}
		f := in
		f.Addr = other
		acts = append(acts, t.claim(port, f)...)
	}
	return acts
}

// take claims key here with max(seen)+1: route first, then the path. best
// is the winning claim elsewhere, if hadRemote.
func (t *Table) take(key Key, port string, mac net.HardwareAddr, src Source, now time.Time, best Claim, hadRemote bool) []Action {
	h := t.host(key, now)
	seq := h.Seq
	if r := t.remote[key]; r != nil && r.maxSeq > seq {
		seq = r.maxSeq
	}
	seq++
	wasYielded := h.State == Yielded
	h.MAC = slices.Clone(mac)
	t.setPort(h, port)
	h.Seq = seq
	h.Pinned = t.pinned[key] != nil
	h.LastSeen = now
	h.LastSource = src
	h.ForwardTo = netip.Addr{}
	h.ForwardUntil = time.Time{}
	h.PathKept = false
	t.setState(h, Announced, now)
	t.bind(key.Tenant, mac, key.Addr)
	delete(t.contested, key)

	// The route first: packets the old site forwards, or the fabric sends,
	// must find it. Then the old site is told directly (BGP takes ~50 ms
	// per FRR hop) so it starts forwarding at once, then the path is
	// announced.
	acts := []Action{InstallRoute{Key: key, Port: port, MAC: h.MAC}}
	from := netip.Addr{}
	if hadRemote {
		from = best.Origin
		acts = append(acts, NotifyOld{Key: key, To: best.Origin, Seq: seq, MAC: h.MAC})
	}
	acts = append(acts, Announce{Key: key, Seq: seq, Sticky: h.Pinned, MAC: h.MAC})
	// Every claim is logged as an arrival; only one that takes the host
	// from somewhere else counts towards duplicate detection.
	mv := Move{Time: now, From: from, To: t.policy.Self, Seq: seq, Source: src, Port: port}
	return append(acts, t.recordMove(h, mv, false, hadRemote || wasYielded)...)
}

// refresh notes a frame from a host already running here; a frame on another
// port of this site moves its route there.
func (t *Table) refresh(h *Host, in Frame) []Action {
	h.LastSeen = in.Time
	h.LastSource = in.Source
	if h.Port == in.Port && h.State != Local {
		return nil
	}
	t.setPort(h, in.Port)
	t.setState(h, Announced, in.Time)
	return []Action{
		InstallRoute{Key: h.Key, Port: h.Port, MAC: h.MAC},
		Announce{Key: h.Key, Seq: h.Seq, Sticky: h.Pinned, MAC: h.MAC},
	}
}

// contest parks a claim for an address another MAC owns and asks for the
// owner to be probed: a conflict is not a move until the owner is gone.
func (t *Table) contest(key Key, in Frame, ownerMAC net.HardwareAddr, ownerPort string) []Action {
	_, already := t.contested[key]
	t.contested[key] = in
	acts := []Action{Refused{Key: key, Port: in.Port, MAC: in.MAC, Reason: RefuseConflict}}
	if !already {
		acts = append(acts, ProbeOwner{Key: key, MAC: slices.Clone(ownerMAC), Port: ownerPort})
	}
	return acts
}

func (t *Table) ownerProbed(in OwnerProbed) []Action {
	f, ok := t.contested[in.Key]
	if !ok {
		return nil
	}
	delete(t.contested, in.Key)
	if in.Alive {
		return nil
	}
	port, ok := t.ports[f.Port]
	if !ok {
		return nil
	}
	// The old owner is gone: forget it and let the waiting claim through.
	var acts []Action
	if h := t.hosts[in.Key]; h != nil && (h.State == Announced || h.State == Local) {
		acts = t.leave(h, in.Time)
	}
	t.unbindAddr(in.Key)
	if r := t.remote[in.Key]; r != nil {
		t.setRemoteClaims(in.Key, r, nil)
		r.notified = nil
	}
	f.Time = in.Time
	return append(acts, t.claim(port, f)...)
}

// authorise returns why key may not be claimed by mac, or "".
func (t *Table) authorise(key Key, mac net.HardwareAddr) RefuseReason {
	tp := t.tenants[key.Tenant]
	a := key.Addr
	switch {
	case tp == nil:
		return RefuseUnknownPort
	case !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		(a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})):
		return RefuseSpecial
	case len(mac) != 6 || mac[0]&1 == 1:
		return RefuseSpecial
	case slices.Contains(tp.Gateways, a):
		return RefuseGateway
	}
	inside, family := false, false
	for _, p := range tp.Prefixes {
		family = family || p.Addr().Is4() == a.Is4()
		if p.Contains(a) {
			// The subnet's network and broadcast addresses are nobody's.
			if a.Is4() && p.Bits() < 31 && (a == p.Addr() || a == lastAddr(p)) {
				return RefuseSpecial
			}
			inside = true
			break
		}
	}
	if !inside {
		if !family {
			return RefuseFamilyNotRouted
		}
		return RefuseOutsidePrefixes
	}
	if pm := t.pinned[key]; pm != nil && !bytes.Equal(pm, mac) {
		return RefuseConflict
	}
	return ""
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
