package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// Conn sends and receives notifications on one UDP socket bound to this
// site's underlay address.
type Conn struct {
	conn     *net.UDPConn
	key      []byte
	self     netip.Addr
	port     int
	log      *slog.Logger
	Received atomic.Uint64
	Dropped  atomic.Uint64
}

// Listen opens the notification socket on self:port.
func Listen(self netip.Addr, port int, key []byte, log *slog.Logger) (*Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(self, uint16(port))))
	if err != nil {
		// The underlay address may not be local (e.g. a router ID that is
		// only routed): listen on all addresses instead.
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		if err != nil {
			return nil, fmt.Errorf("listening for move notifications on port %d: %w", port, err)
		}
	}
	return &Conn{conn: c, key: key, self: self, port: port, log: log}, nil
}

// Send tells the site at to about m.
func (c *Conn) Send(to netip.Addr, m Message) error {
	m.Origin = c.self
	m.Sent = time.Now()
	b, err := Marshal(m, c.key)
	if err != nil {
		return err
	}
	_, err = c.conn.WriteToUDPAddrPort(b, netip.AddrPortFrom(to, uint16(c.port)))
	return err
}

// Run delivers verified notifications to fn until ctx is done. A datagram
// must come from the origin it names: a roamd speaks only for itself.
func (c *Conn) Run(ctx context.Context, fn func(Message)) error {
	go func() {
		<-ctx.Done()
		c.conn.Close()
	}()
	buf := make([]byte, 512)
	for {
		n, from, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("reading move notifications: %w", err)
		}
		m, err := Unmarshal(buf[:n], c.key, time.Now())
		if err == nil && m.Origin != from.Addr().Unmap() {
			err = fmt.Errorf("notify: origin %s but sent from %s", m.Origin, from.Addr())
		}
		if err != nil {
			c.Dropped.Add(1)
			c.log.Warn("move notification dropped", "from", from, "err", err)
			continue
		}
		c.Received.Add(1)
		fn(m)
	}
}

// Close closes the socket.
func (c *Conn) Close() error { return c.conn.Close() }
