package probe

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Netns runs a function inside a network namespace on a locked OS thread;
// sockets opened by the function stay in that namespace.
type Netns interface {
	Do(fn func() error) error
}

// Echo is a UDP and TCP echo server: every datagram goes back to its sender
// and every TCP byte back on its connection.
type Echo struct {
	udp net.PacketConn
	tcp net.Listener

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// StartEcho starts an echo server on port (UDP and TCP, all addresses)
// inside ns.
func StartEcho(ns Netns, port int) (*Echo, error) {
	e := &Echo{conns: map[net.Conn]struct{}{}}
	err := ns.Do(func() error {
		var err error
		if e.udp, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port)); err != nil {
			return err
		}
		if e.tcp, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); err != nil {
			e.udp.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("starting the echo server on port %d: %w", port, err)
	}
	e.wg.Go(e.serveUDP)
	e.wg.Go(e.serveTCP)
	return e, nil
}

func (e *Echo) serveUDP() {
	buf := make([]byte, 2048)
	for {
		n, from, err := e.udp.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		_, _ = e.udp.WriteTo(buf[:n], from)
	}
}

func (e *Echo) serveTCP() {
	for {
		c, err := e.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		e.mu.Lock()
		e.conns[c] = struct{}{}
		e.mu.Unlock()
		e.wg.Go(func() {
			_, _ = io.Copy(c, c)
			c.Close()
			e.mu.Lock()
			delete(e.conns, c)
			e.mu.Unlock()
		})
	}
}

// Close stops the server and closes its connections.
func (e *Echo) Close() error {
	err := errors.Join(e.udp.Close(), e.tcp.Close())
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
	return err
}
