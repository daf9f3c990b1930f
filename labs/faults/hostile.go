package faults

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"

	"github.com/roamd/roamd/detect/frames"
)

// vmIface is every VM's interface (the other end of its port).
const vmIface = "eth1"

// ClaimFrame returns the frame with which mac claims addr: a gratuitous
// ARP for IPv4, an unsolicited neighbour advertisement (override) for IPv6.
func ClaimFrame(mac net.HardwareAddr, addr netip.Addr) []byte {
	if addr.Is4() {
		return frames.GratuitousARP(mac, addr)
	}
	return frames.UnsolicitedNA(mac, addr, false)
}

// SendClaims makes the VM claim each address with its own MAC, whether it
// owns the address or not.
func (l *Lab) SendClaims(vm string, addrs ...netip.Addr) error {
	v, ok := VMs[vm]
	if !ok {
		return fmt.Errorf("no VM %q", vm)
	}
	fs := make([][]byte, len(addrs))
	for i, a := range addrs {
		fs[i] = ClaimFrame(v.MAC, a)
	}
	return l.SendFrames(vm, fs...)
}

// SendFrames sends raw frames out of the VM's interface.
func (l *Lab) SendFrames(vm string, fs ...[]byte) error {
	conn, err := l.vmSocket(vm)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, f := range fs {
		if _, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return fmt.Errorf("sending from %s: %w", vm, err)
		}
	}
	return nil
}

// Flood sends frames from the VM round-robin, as fast as the socket takes
// them, for d; it returns how many it sent.
func (l *Lab) Flood(ctx context.Context, vm string, d time.Duration, fs ...[]byte) (int, error) {
	conn, err := l.vmSocket(vm)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	to := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	end := time.Now().Add(d)
	sent := 0
	for time.Now().Before(end) && ctx.Err() == nil {
		for range 64 {
			if _, err := conn.WriteTo(fs[sent%len(fs)], to); err != nil {
				return sent, fmt.Errorf("flooding from %s: %w", vm, err)
			}
			sent++
		}
	}
	return sent, ctx.Err()
}

// vmSocket opens a send-only packet socket on the VM's interface.
func (l *Lab) vmSocket(vm string) (*packet.Conn, error) {
	n := l.Node(vm)
	if n == nil {
		return nil, fmt.Errorf("no node %q", vm)
	}
	return n.OpenSender(vmIface)
}
