package probe

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// TCPSession is a TCP connection to an echo server, opened before the moves
// and exercised after each one.
type TCPSession struct {
	conn net.Conn
	n    int
}

// DialTCP connects from inside ns to the echo server at target.
func DialTCP(ns Netns, target netip.AddrPort, timeout time.Duration) (*TCPSession, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", target.String(), timeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", target, err)
	}
	return &TCPSession{conn: c}, nil
}

// DialChecked connects like DialTCP and checks the session once (Check),
// each step within timeout: the session works before anything moves.
func DialChecked(ns Netns, target netip.AddrPort, timeout time.Duration) (*TCPSession, error) {
	s, err := DialTCP(ns, target, timeout)
	if err != nil {
		return nil, err
	}
	if _, err := s.Check(timeout); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Check sends a numbered line and waits up to timeout for it to come back
// unchanged: the session survived. It returns the round trip, which
// includes any retransmissions.
func (s *TCPSession) Check(timeout time.Duration) (time.Duration, error) {
	s.n++
	msg := fmt.Appendf(nil, "roamlab check %d\n", s.n)
	start := time.Now()
	if err := s.conn.SetDeadline(start.Add(timeout)); err != nil {
		return 0, err
	}
	if _, err := s.conn.Write(msg); err != nil {
		return 0, fmt.Errorf("TCP check %d: writing: %w", s.n, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s.conn, got); err != nil {
		return 0, fmt.Errorf("TCP check %d: reading the echo: %w", s.n, err)
	}
	if !bytes.Equal(got, msg) {
		return 0, fmt.Errorf("TCP check %d: echo %q, want %q", s.n, got, msg)
	}
	return time.Since(start), nil
}

// Close closes the connection.
func (s *TCPSession) Close() error { return s.conn.Close() }
