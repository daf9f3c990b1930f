package hosts

import (
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
	// claimedElsewhere counts, per tenant, the hosts with BGP claims.
	claimedElsewhere map[string]int
	// timed are the hosts in a state a timer may end (all but Announced):
	// the clock looks at those, not at the thousands running here.
	timed map[Key]*Host
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

		claimedElsewhere: map[string]int{},
		timed:            map[Key]*Host{},
	}
	if t.policy.Retention == 0 {
		t.policy.Retention = 10 * time.Minute
	}
	for i := range p.Tenants {
		t.tenants[p.Tenants[i].Name] = &p.Tenants[i]
	}
	return t
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
	if s == Announced {
		delete(t.timed, h.Key)
	} else {
		t.timed[h.Key] = h
	}
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
