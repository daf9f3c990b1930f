package daemon

import (
	"net"
	"slices"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/roamd/roamd/daemon/config"
	"github.com/roamd/roamd/daemon/hosts"
	"github.com/roamd/roamd/detect/frames"
)

// moveLog is a ring of recent moves for `roamctl show moves`.
type moveLog struct {
	moves []api.Move
	next  int // total appended
}

func newMoveLog(n int) *moveLog { return &moveLog{moves: make([]api.Move, 0, n)} }

// add appends a move and returns its sequence number in the log.
func (l *moveLog) add(m api.Move) int {
	if len(l.moves) < cap(l.moves) {
		l.moves = append(l.moves, m)
	} else {
		l.moves[l.next%cap(l.moves)] = m
	}
	l.next++
	return l.next - 1
}

// update changes the move with log number n, if it is still in the ring.
func (l *moveLog) update(n int, fn func(*api.Move)) {
	if n < l.next-len(l.moves) || n >= l.next {
		return
	}
	fn(&l.moves[n%cap(l.moves)])
}

// list returns the moves, oldest first.
func (l *moveLog) list() []api.Move {
	if len(l.moves) < cap(l.moves) {
		return slices.Clone(l.moves)
	}
	i := l.next % cap(l.moves)
	return append(slices.Clone(l.moves[i:]), l.moves[:i]...)
}

// moved logs one line per move with its timings, counts it and keeps it
// for the API.
func (d *Daemon) moved(a hosts.Moved, detected, routeAt, announceAt time.Time) {
	m := api.Move{
		Time:     a.Move.Time,
		Tenant:   a.Key.Tenant,
		Address:  a.Key.Addr.String(),
		Sequence: a.Move.Seq,
		Source:   a.Move.Source.String(),
		Port:     a.Move.Port,
	}
	if a.Move.From.IsValid() {
		m.From = a.Move.From.String()
	}
	if a.Move.To.IsValid() {
		m.To = a.Move.To.String()
	}
	if a.Away {
		m.Direction = "departed"
		d.moves.add(m)
		d.metrics.moves.WithLabelValues("departed").Inc()
		d.log.Info("host moved away", "tenant", m.Tenant, "address", m.Address, "to", m.To,
			"seq", m.Sequence, "learnedFrom", m.Source, "forwardFor", d.cfg.Forwarding.Hold)
		return
	}
	m.Direction = "arrived"
	if !routeAt.IsZero() {
		m.DetectToRouteUS = routeAt.Sub(detected).Microseconds()
	}
	if !announceAt.IsZero() {
		m.DetectToAnnounceUS = announceAt.Sub(detected).Microseconds()
		d.metrics.detectToAnnounce.Observe(announceAt.Sub(detected).Seconds())
	}
	n := d.moves.add(m)
	d.metrics.moves.WithLabelValues("arrived").Inc()
	if a.Move.From.IsValid() && !announceAt.IsZero() {
		d.pending[a.Key] = pendingOld{origin: a.Move.From, announced: announceAt, move: n}
	}
	d.log.Info("host moved here", "tenant", m.Tenant, "address", m.Address, "from", m.From,
		"seq", m.Sequence, "source", m.Source, "port", m.Port,
		"detectToRouteUs", m.DetectToRouteUS, "detectToAnnounceUs", m.DetectToAnnounceUS)
}

// checkOldWithdrawn times how long the old site took to withdraw after an
// arrival here, as seen through ADD-PATH.
func (d *Daemon) checkOldWithdrawn(key hosts.Key, claims []hosts.Claim, now time.Time) {
	p, ok := d.pending[key]
	if !ok {
		return
	}
	for _, c := range claims {
		if c.Origin == p.origin {
			return
		}
	}
	delete(d.pending, key)
	took := now.Sub(p.announced)
	d.metrics.oldWithdrawn.Observe(took.Seconds())
	d.moves.update(p.move, func(m *api.Move) { m.OldWithdrawnUS = took.Microseconds() })
	d.log.Info("old site withdrew", "tenant", key.Tenant, "address", key.Addr.String(),
		"oldSite", p.origin, "afterAnnounceUs", took.Microseconds())
}

// throwawayFrame is a gratuitous ARP for the gateway, sent into a freshly
// staged tap: QEMU drops the first frame written to a tap before the VM
// runs, and this one is harmless to the guest.
func throwawayFrame(cfg *config.Config, port string) []byte {
	t := cfg.TenantForPort(port)
	if t == nil {
		return nil
	}
	gw := gateway4(t)
	if !gw.IsValid() {
		return nil
	}
	return frames.GratuitousARP(net.HardwareAddr(cfg.GatewayMAC), gw)
}
