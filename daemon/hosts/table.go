package hosts

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"time"
)

// TenantPolicy is what the table must know of a tenant to authorise claims.
type TenantPolicy struct {
	Name     string
	Prefixes []netip.Prefix
	Gateways []netip.Addr
}

// Policy configures a Table.
type Policy struct {
	// Self is this site's router ID, compared with other claims' origins.
	Self    netip.Addr
	Tenants []TenantPolicy
	// Hold is how long a yielded host's packets are forwarded to the winner.
	Hold time.Duration
	// StagedExpiry forgets a staged host that never showed up.
	StagedExpiry time.Duration
	// FreezeMoves moves within FreezeWindow freeze a host (0: never).
	FreezeMoves  int
	FreezeWindow time.Duration
	// Retention is how long a gone host stays listed.
	Retention time.Duration
}

// Table is the host table. It is not safe for concurrent use: one goroutine
// owns it and feeds it inputs.
type Table struct {
	policy  Policy
	tenants map[string]*TenantPolicy
	hosts   map[Key]*Host
	remote  map[Key]*remote
	ports   map[string]Port
	// bindings maps tenant → MAC → addresses, learned from frames, BGP
	// claims, hints and configuration. A RARP carries only a MAC: this is
	// how roamd knows which addresses it claims.
	bindings map[string]map[string][]netip.Addr
	// owner is the reverse of bindings: address → MAC.
	owner map[Key]string
	// byPort indexes hosts by their port (hosts with no port are absent).
	byPort map[string]map[Key]*Host
	// pinned are configured sticky hosts.
	pinned map[Key]net.HardwareAddr
	// contested holds claims waiting for the current owner to be probed.
	contested map[Key]Frame
	// unknownRARP remembers RARPs from MACs with no binding yet (tenant →
	// MAC → frame): the binding usually arrives a moment later, with the
	// old site's route, and the claim is made then.
	unknownRARP map[string]map[string]Frame
	// withNotified are the hosts with unconfirmed notifications, so the
	// clock expires them without scanning every remote host.
	withNotified map[Key]struct{}
}

// unknownRARPWindow is how long a RARP from an unknown MAC waits for its
// binding. QEMU repeats RARP for ~800 ms; FRR fabrics take ~100 ms per claim.
const unknownRARPWindow = 3 * time.Second

// remote is what other sites claim for one host.
type remote struct {
	claims []Claim // as BGP has them
	// notified are claims announced by direct notification that BGP has
	// not confirmed yet; they count until it does, or until they expire.
	notified []notifiedClaim
	// maxSeq is the highest sequence ever seen for the host, kept after the
	// paths are withdrawn so a later claim still outbids it.
	maxSeq uint32
}

type notifiedClaim struct {
	Claim
	expires time.Time
}

// New returns an empty table.
func New(p Policy) *Table {
	t := &Table{
		policy:    p,
		tenants:   map[string]*TenantPolicy{},
		hosts:     map[Key]*Host{},
		remote:    map[Key]*remote{},
		ports:     map[string]Port{},
		bindings:  map[string]map[string][]netip.Addr{},
		owner:     map[Key]string{},
		byPort:    map[string]map[Key]*Host{},
		pinned:    map[Key]net.HardwareAddr{},
		contested: map[Key]Frame{},

		unknownRARP:  map[string]map[string]Frame{},
		withNotified: map[Key]struct{}{},
	}
	if t.policy.Retention == 0 {
		t.policy.Retention = 10 * time.Minute
	}
	for i := range p.Tenants {
		t.tenants[p.Tenants[i].Name] = &p.Tenants[i]
	}
	return t
}

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

// SeenSeq records that key was claimed with seq somewhere (from the journal
// after a restart): a later claim here takes at least seq+1.
func (t *Table) SeenSeq(key Key, seq uint32) {
	r := t.remote[key]
	if r == nil {
		r = &remote{}
		t.remote[key] = r
	}
	r.maxSeq = max(r.maxSeq, seq)
}

// SetFreeze changes the duplicate-detection limits (configuration reload).
func (t *Table) SetFreeze(moves int, window time.Duration) {
	t.policy.FreezeMoves, t.policy.FreezeWindow = moves, window
}

// KeepPins drops the pins for which keep returns false (configuration
// reload); new pins come with Bind.
func (t *Table) KeepPins(keep func(tenant, addr string) bool) {
	for k := range t.pinned {
		if !keep(k.Tenant, k.Addr.String()) {
			delete(t.pinned, k)
		}
	}
}

// Apply feeds one input to the table and returns the actions to carry out,
// in order.
func (t *Table) Apply(in Input) []Action {
	switch in := in.(type) {
	case PortUp:
		return t.portUp(in)
	case PortDown:
		return t.portDown(in)
	case Frame:
		return t.frame(in)
	case RemoteClaims:
		return t.remoteClaims(in)
	case Notified:
		return t.notified(in)
	case Hint:
		return t.hint(in)
	case Tick:
		return t.tick(in)
	case Failed:
		return t.failed(in)
	case Freeze:
		return t.freeze(in)
	case OwnerProbed:
		return t.ownerProbed(in)
	case Restored:
		return t.restored(in)
	}
	return nil
}

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
		case Announced, Local:
			// Withdraw before removing the route: the fabric must stop
			// sending before the port stops receiving.
			acts = append(acts, Withdraw{Key: h.Key}, RemoveRoute{Key: h.Key})
			t.setState(h, Gone, in.Time)
		case Staged:
			t.setState(h, Gone, in.Time)
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
	if best, ok := t.bestRemote(key); ok && len(best.MAC) > 0 && !bytes.Equal(best.MAC, in.MAC) {
		return t.contest(key, in, best.MAC, "")
	}
	if h != nil && h.Frozen {
		return []Action{Refused{Key: key, Port: in.Port, MAC: in.MAC, Reason: RefuseFrozen}}
	}
	if best, ok := t.bestRemote(key); ok && best.Sticky && t.pinned[key] == nil {
		return []Action{Refused{Key: key, Port: in.Port, MAC: in.MAC, Reason: RefusePinned}}
	}
	acts := t.take(key, port.Name, in.MAC, in.Source, in.Time)
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

// take claims key here with max(seen)+1: route first, then the path.
func (t *Table) take(key Key, port string, mac net.HardwareAddr, src Source, now time.Time) []Action {
	h := t.host(key, now)
	seq := h.Seq
	if r := t.remote[key]; r != nil && r.maxSeq > seq {
		seq = r.maxSeq
	}
	seq++
	best, hadRemote := t.bestRemote(key)
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
	if h.Port == in.Port {
		if h.State == Local {
			t.setState(h, Announced, in.Time)
			return []Action{
				InstallRoute{Key: h.Key, Port: h.Port, MAC: h.MAC},
				Announce{Key: h.Key, Seq: h.Seq, Sticky: h.Pinned, MAC: h.MAC},
			}
		}
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
		acts = append(acts, Withdraw{Key: h.Key}, RemoveRoute{Key: h.Key})
		t.setState(h, Gone, in.Time)
	}
	t.unbindAddr(in.Key)
	if r := t.remote[in.Key]; r != nil {
		r.claims, r.notified = nil, nil
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

func (t *Table) remoteClaims(in RemoteClaims) []Action {
	r := t.remote[in.Key]
	if r == nil {
		if len(in.Claims) == 0 {
			return nil
		}
		r = &remote{}
		t.remote[in.Key] = r
	}
	r.claims = slices.Clone(in.Claims)
	// A notification BGP now confirms (same origin, same or newer
	// sequence) is no longer needed.
	r.notified = slices.DeleteFunc(r.notified, func(n notifiedClaim) bool {
		return slices.ContainsFunc(in.Claims, func(c Claim) bool { return c.Origin == n.Origin && c.Seq >= n.Seq })
	})
	for _, c := range in.Claims {
		r.maxSeq = max(r.maxSeq, c.Seq)
		if len(c.MAC) == 6 {
			t.bind(in.Key.Tenant, c.MAC, in.Key.Addr)
		}
	}
	var acts []Action
	for _, c := range in.Claims {
		if len(c.MAC) == 6 {
			acts = append(acts, t.claimWaitingRARP(in.Key, c.MAC, in.Time)...)
		}
	}
	if h := t.hosts[in.Key]; h != nil && h.State == Yielded && h.PathKept &&
		slices.ContainsFunc(in.Claims, func(c Claim) bool { return c.Origin == h.ForwardTo }) {
		// The winner's path reached this site's leaf: let go of ours.
		h.PathKept = false
		acts = append(acts, Withdraw{Key: in.Key})
	}
	return append(acts, t.evaluate(in.Key, SourceBGP, in.Time)...)
}

// claimWaitingRARP claims key now if a RARP from mac arrived here shortly
// before its binding was known.
func (t *Table) claimWaitingRARP(key Key, mac net.HardwareAddr, now time.Time) []Action {
	// The RARP stays for its whole window: a dual-stack VM's addresses
	// arrive in separate BGP updates, each claimed as it comes.
	f, ok := t.unknownRARP[key.Tenant][string(mac)]
	if !ok {
		return nil
	}
	port, up := t.ports[f.Port]
	if !up || now.Sub(f.Time) > unknownRARPWindow {
		return nil
	}
	f.Addr = key.Addr
	return t.claim(port, f)
}

// notified treats a direct notification as a claim until BGP brings the
// path (or the hold time passes).
func (t *Table) notified(in Notified) []Action {
	r := t.remote[in.Key]
	if r == nil {
		r = &remote{}
		t.remote[in.Key] = r
	}
	for _, c := range r.claims {
		if c.Origin == in.Claim.Origin && c.Seq >= in.Claim.Seq {
			return nil // BGP already has it, or something newer
		}
	}
	r.notified = slices.DeleteFunc(r.notified, func(n notifiedClaim) bool { return n.Origin == in.Claim.Origin })
	r.notified = append(r.notified, notifiedClaim{Claim: in.Claim, expires: in.Time.Add(max(t.policy.Hold, time.Second))})
	t.withNotified[in.Key] = struct{}{}
	r.maxSeq = max(r.maxSeq, in.Claim.Seq)
	var acts []Action
	if len(in.Claim.MAC) == 6 {
		t.bind(in.Key.Tenant, in.Claim.MAC, in.Key.Addr)
		acts = t.claimWaitingRARP(in.Key, in.Claim.MAC, in.Time)
	}
	return append(acts, t.evaluate(in.Key, SourceNotify, in.Time)...)
}

// evaluate yields a host running here when a remote claim beats it, and
// follows the winner when a yielded host moves on again.
func (t *Table) evaluate(key Key, src Source, now time.Time) []Action {
	h := t.hosts[key]
	if h == nil || h.Frozen {
		return nil
	}
	best, ok := t.bestRemote(key)
	switch h.State {
	case Announced, Local:
		mine := Claim{Origin: t.policy.Self, Seq: h.Seq, Sticky: h.Pinned, MAC: h.MAC}
		if !ok || !best.Beats(mine) {
			return nil
		}
		var acts []Action
		if t.policy.Hold > 0 && best.Origin.IsValid() {
			h.ForwardTo = best.Origin
			h.ForwardUntil = now.Add(t.policy.Hold)
			// Make before break: learned from the new site's notification,
			// the move has not reached this site's leaf yet. Withdrawing now
			// would leave the leaf without any route until the new path
			// comes round (~50 ms per FRR hop), dropping what it still
			// sends here. Keep the path while forwarding; withdraw once the
			// winner's path arrives through BGP (then the leaf has it too).
			if src == SourceNotify {
				h.PathKept = true
			} else {
				acts = append(acts, Withdraw{Key: key})
			}
			acts = append(acts, ForwardRoute{Key: key, To: best.Origin})
		} else {
			acts = append(acts, Withdraw{Key: key}, RemoveRoute{Key: key})
		}
		if _, up := t.ports[h.Port]; up {
			acts = append(acts, RepairNeighbours{Key: key, Port: h.Port})
		}
		t.setState(h, Yielded, now)
		mv := Move{Time: now, From: t.policy.Self, To: best.Origin, Seq: best.Seq, Source: src, Port: h.Port}
		return append(acts, t.recordMove(h, mv, true, true)...)
	case Yielded:
		if ok && h.ForwardTo.IsValid() && best.Origin != h.ForwardTo {
			h.ForwardTo = best.Origin
			return []Action{ForwardRoute{Key: key, To: best.Origin}}
		}
	}
	return nil
}

func (t *Table) hint(in Hint) []Action {
	if t.tenants[in.Tenant] == nil {
		return []Action{Refused{Key: Key{Tenant: in.Tenant}, Port: in.Port, MAC: in.MAC, Reason: RefuseUnknownPort}}
	}
	addrs := in.Addrs
	if len(addrs) == 0 && len(in.MAC) == 6 {
		addrs = slices.Clone(t.bindings[in.Tenant][string(in.MAC)])
	}
	if len(addrs) == 0 {
		return []Action{Refused{Key: Key{Tenant: in.Tenant}, Port: in.Port, MAC: in.MAC, Reason: RefuseUnknownMAC}}
	}
	var acts []Action
	switch in.Kind {
	case HintArrive:
		for _, a := range addrs {
			key := Key{Tenant: in.Tenant, Addr: a.Unmap()}
			if reason := t.authorise(key, in.MAC); reason != "" {
				acts = append(acts, Refused{Key: key, Port: in.Port, MAC: in.MAC, Reason: reason})
				continue
			}
			t.bind(in.Tenant, in.MAC, key.Addr)
			h := t.host(key, in.Time)
			if h.State == Announced || h.State == Local {
				continue // already here
			}
			h.MAC = slices.Clone(in.MAC)
			t.setPort(h, in.Port)
			t.setState(h, Staged, in.Time)
		}
		if _, up := t.ports[in.Port]; up && in.Port != "" {
			acts = append(acts, StagePort{Port: in.Port, MAC: slices.Clone(in.MAC), Addrs: t.stagedAddrs(in.Port, in.MAC)})
		}
	case HintSwitch:
		for _, a := range addrs {
			key := Key{Tenant: in.Tenant, Addr: a.Unmap()}
			port := in.Port
			if h := t.hosts[key]; port == "" && h != nil {
				port = h.Port
			}
			p, ok := t.ports[port]
			if !ok || p.Tenant != in.Tenant {
				acts = append(acts, Refused{Key: key, Port: port, MAC: in.MAC, Reason: RefuseUnknownPort})
				continue
			}
			mac := in.MAC
			if len(mac) == 0 {
				mac = t.macOf(key)
			}
			acts = append(acts, t.claim(p, Frame{Time: in.Time, Port: port, Source: SourceHint, MAC: mac, Addr: key.Addr})...)
		}
	case HintDepart:
		for _, a := range addrs {
			h := t.hosts[Key{Tenant: in.Tenant, Addr: a.Unmap()}]
			if h == nil {
				continue
			}
			switch h.State {
			case Announced, Local:
				acts = append(acts, Withdraw{Key: h.Key}, RemoveRoute{Key: h.Key})
				t.setState(h, Gone, in.Time)
			case Staged:
				t.setState(h, Gone, in.Time)
			}
		}
	}
	return acts
}

func (t *Table) tick(in Tick) []Action {
	for k := range t.withNotified {
		r := t.remote[k]
		r.notified = slices.DeleteFunc(r.notified, func(n notifiedClaim) bool { return !in.Time.Before(n.expires) })
		if len(r.notified) == 0 {
			delete(t.withNotified, k)
		}
	}
	for _, m := range t.unknownRARP {
		for mac, f := range m {
			if in.Time.Sub(f.Time) > unknownRARPWindow {
				delete(m, mac)
			}
		}
	}
	// One pass over the table finds the few hosts with a timer due; only
	// those are sorted (for a deterministic order of actions).
	var due []*Host
	for _, h := range t.hosts {
		switch {
		case h.State == Yielded && h.ForwardTo.IsValid() && !in.Time.Before(h.ForwardUntil),
			h.State == Staged && in.Time.Sub(h.Since) >= t.policy.StagedExpiry,
			h.State == Local && in.Time.Sub(h.Since) >= localRetry,
			h.State == Gone && in.Time.Sub(h.Since) >= t.policy.Retention:
			due = append(due, h)
		}
	}
	sortHosts(due)
	var acts []Action
	for _, h := range due {
		switch h.State {
		case Yielded:
			if h.PathKept {
				h.PathKept = false
				acts = append(acts, Withdraw{Key: h.Key})
			}
			acts = append(acts, RemoveRoute{Key: h.Key})
			h.ForwardTo = netip.Addr{}
			h.ForwardUntil = time.Time{}
			if _, up := t.ports[h.Port]; !up {
				t.setState(h, Gone, in.Time)
			}
		case Staged:
			t.setState(h, Gone, in.Time)
		case Local:
			// A route or path that failed is retried.
			t.setState(h, Announced, in.Time)
			acts = append(acts,
				InstallRoute{Key: h.Key, Port: h.Port, MAC: h.MAC},
				Announce{Key: h.Key, Seq: h.Seq, Sticky: h.Pinned, MAC: h.MAC})
		case Gone:
			t.setPort(h, "")
			delete(t.hosts, h.Key)
		}
	}
	return acts
}

// localRetry is how long a host whose route or path failed waits before
// the next attempt.
const localRetry = time.Second

func (t *Table) failed(in Failed) []Action {
	var key Key
	switch a := in.Action.(type) {
	case InstallRoute:
		key = a.Key
	case Announce:
		key = a.Key
	default:
		return nil
	}
	if h := t.hosts[key]; h != nil && h.State == Announced {
		t.setState(h, Local, in.Time)
	}
	return nil
}

func (t *Table) freeze(in Freeze) []Action {
	h := t.hosts[in.Key]
	if h == nil {
		return nil
	}
	h.Frozen = in.Frozen
	if in.Frozen {
		return nil
	}
	h.moves = nil
	return t.evaluate(in.Key, SourceHint, in.Time)
}

// recordMove appends a move to the host's history and freezes a host that
// moves too often (RFC 7432 section 15).
func (t *Table) recordMove(h *Host, mv Move, away, counts bool) []Action {
	h.History = append(h.History, mv)
	if len(h.History) > 32 {
		h.History = h.History[len(h.History)-32:]
	}
	acts := []Action{Moved{Key: h.Key, Move: mv, Away: away}}
	if t.policy.FreezeMoves <= 0 || !counts {
		return acts
	}
	h.moves = append(h.moves, mv.Time)
	cut := 0
	for cut < len(h.moves) && mv.Time.Sub(h.moves[cut]) > t.policy.FreezeWindow {
		cut++
	}
	h.moves = h.moves[cut:]
	if len(h.moves) > t.policy.FreezeMoves && !h.Frozen {
		h.Frozen = true
		acts = append(acts, FrozenHost{Key: h.Key, Moves: len(h.moves)})
	}
	return acts
}

// bestRemote returns the winning remote claim on key.
func (t *Table) bestRemote(key Key) (Claim, bool) {
	r := t.remote[key]
	if r == nil {
		return Claim{}, false
	}
	var best Claim
	found := false
	consider := func(c Claim) {
		if !found || c.Beats(best) {
			best, found = c, true
		}
	}
	for _, c := range r.claims {
		consider(c)
	}
	for _, n := range r.notified {
		consider(n.Claim)
	}
	return best, found
}

func (t *Table) host(key Key, now time.Time) *Host {
	h := t.hosts[key]
	if h == nil {
		h = &Host{Key: key, Since: now}
		t.hosts[key] = h
	}
	return h
}

func (t *Table) setState(h *Host, s State, now time.Time) {
	if h.State != s {
		h.State = s
		h.Since = now
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

func (t *Table) sortedHosts() []*Host {
	out := make([]*Host, 0, len(t.hosts))
	for _, h := range t.hosts {
		out = append(out, h)
	}
	sortHosts(out)
	return out
}

// onPort returns the hosts on port for which keep is true, sorted.
func (t *Table) onPort(port string, keep func(*Host) bool) []*Host {
	var out []*Host
	for _, h := range t.byPort[port] {
		if keep(h) {
			out = append(out, h)
		}
	}
	sortHosts(out)
	return out
}

// setPort moves h to port, keeping the per-port index.
func (t *Table) setPort(h *Host, port string) {
	if h.Port == port {
		return
	}
	if m := t.byPort[h.Port]; m != nil {
		delete(m, h.Key)
		if len(m) == 0 {
			delete(t.byPort, h.Port)
		}
	}
	h.Port = port
	if port == "" {
		return
	}
	m := t.byPort[port]
	if m == nil {
		m = map[Key]*Host{}
		t.byPort[port] = m
	}
	m[h.Key] = h
}

// sortHosts orders hosts by tenant, then address.
func sortHosts(hs []*Host) {
	slices.SortFunc(hs, func(a, b *Host) int {
		if a.Tenant != b.Tenant {
			if a.Tenant < b.Tenant {
				return -1
			}
			return 1
		}
		return a.Addr.Compare(b.Addr)
	})
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
