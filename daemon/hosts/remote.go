package hosts

import (
	"net"
	"slices"
	"time"
)

// This file: other sites' claims, learned over BGP or by direct
// notification, and yielding to them.

type notifiedClaim struct {
	Claim
	expires time.Time
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
	t.setRemoteClaims(in.Key, r, slices.Clone(in.Claims))
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

// setRemoteClaims replaces r's claims, keeping the count per tenant.
func (t *Table) setRemoteClaims(key Key, r *remote, claims []Claim) {
	switch {
	case len(r.claims) == 0 && len(claims) > 0:
		t.claimedElsewhere[key.Tenant]++
	case len(r.claims) > 0 && len(claims) == 0:
		t.claimedElsewhere[key.Tenant]--
	}
	r.claims = claims
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
