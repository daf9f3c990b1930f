package tenants

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/roamd/roamd/labs/nslab/probe"
)

// The identity protocol tells VMs at the same address apart. A client
// sends one line, "who <client tenant> <nonce>", over UDP or TCP; the VM
// answers "vm <VM tenant> <nonce>". The VM also keeps what should never
// reach it: requests from another tenant's client, and anything else on its
// ports (e.g. another tenant's probes, sent to a port only that tenant's VM
// answers on).

// Identity is a VM's identity server.
type Identity struct {
	tenant string
	udp    []net.PacketConn
	tcp    []net.Listener
	wg     sync.WaitGroup

	mu        sync.Mutex
	strangers []string
}

// StartIdentity starts the identity server of tenant's VM inside ns, on
// UDP and TCP at each of ports.
func StartIdentity(ns probe.Netns, tenant string, ports ...int) (*Identity, error) {
	s := &Identity{tenant: tenant}
	err := ns.Do(func() error {
		for _, p := range ports {
			u, err := net.ListenPacket("udp", fmt.Sprintf(":%d", p))
			if err != nil {
				return err
			}
			s.udp = append(s.udp, u)
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				return err
			}
			s.tcp = append(s.tcp, l)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("starting the identity server of %s on %v: %w", tenant, ports, err)
	}
	for _, u := range s.udp {
		s.wg.Go(func() { s.serveUDP(u) })
	}
	for _, l := range s.tcp {
		s.wg.Go(func() { s.serveTCP(l) })
	}
	return s, nil
}

// answer returns the reply to one request line: every identity request is
// answered, so a client that reached the wrong VM learns whose it is.
// Requests from another tenant and anything that is no request are
// recorded.
func (s *Identity) answer(req string, from net.Addr, port string) (string, bool) {
	f := strings.Fields(req)
	ok := len(f) == 3 && f[0] == "who"
	if !ok || f[1] != s.tenant {
		s.mu.Lock()
		if len(s.strangers) < 100 {
			s.strangers = append(s.strangers, fmt.Sprintf("%q from %s to port %s", truncate(req, 40), from, port))
		}
		s.mu.Unlock()
	}
	if !ok {
		return "", false
	}
	return "vm " + s.tenant + " " + f[2] + "\n", true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (s *Identity) serveUDP(u net.PacketConn) {
	_, port, _ := net.SplitHostPort(u.LocalAddr().String())
	buf := make([]byte, 2048)
	for {
		n, from, err := u.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if reply, ok := s.answer(string(buf[:n]), from, port); ok {
			_, _ = u.WriteTo([]byte(reply), from)
		}
	}
}

func (s *Identity) serveTCP(l net.Listener) {
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		s.wg.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil && line == "" {
				return
			}
			if reply, ok := s.answer(line, c.RemoteAddr(), port); ok {
				_, _ = c.Write([]byte(reply))
			}
		})
	}
}

// Strangers returns what reached the VM that was not a request from its
// own tenant's client (at most 100 entries).
func (s *Identity) Strangers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.strangers...)
}

// Close stops the server.
func (s *Identity) Close() error {
	var errs []error
	for _, u := range s.udp {
		errs = append(errs, u.Close())
	}
	for _, l := range s.tcp {
		errs = append(errs, l.Close())
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// Ask sends an identity request as tenant's client from inside ns to
// target, over "udp" or "tcp", and returns the tenant the answering VM
// named.
func Ask(ns probe.Netns, network, tenant string, target netip.AddrPort, timeout time.Duration) (string, error) {
	nonce := fmt.Sprintf("%d", time.Now().UnixNano())
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout(network, target.String(), timeout)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("asking %s over %s: %w", target, network, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "who %s %s\n", tenant, nonce); err != nil {
		return "", fmt.Errorf("asking %s over %s: %w", target, network, err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("asking %s over %s: no answer: %w", target, network, err)
	}
	f := strings.Fields(reply)
	if len(f) != 3 || f[0] != "vm" || f[2] != nonce {
		return "", fmt.Errorf("asking %s over %s: unexpected answer %q", target, network, reply)
	}
	return f[1], nil
}
