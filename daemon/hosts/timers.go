package hosts

import (
	"net/netip"
	"slices"
	"time"
)

// This file: the passing of time, failures, freezing and the move history.

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
	// One pass over the hosts that have timers finds those due; only those
	// are sorted (for a deterministic order of actions).
	var due []*Host
	for _, h := range t.timed {
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
			delete(t.timed, h.Key)
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
