// Command agent is the lab guest's only service. It runs as the guest's
// last process (the init script execs it): it announces the guest's
// addresses once the network is configured, as an operating system does when
// its interface comes up (a gratuitous ARP for each IPv4 address and an
// unsolicited neighbour advertisement for each global IPv6 address), and then
// serves the probe's UDP echo and the TCP echo session (labs/nslab/probe) on
// one port.
//
// The announcements go out a few times shortly after boot and never again:
// a migration must be detected from what QEMU and the guest kernel send, not
// from this program. It is built statically (CGO_ENABLED=0) at lab time and
// packed into the guest's initramfs.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"

	"github.com/roamd/roamd/detect/frames"
	"github.com/roamd/roamd/labs/nslab/probe"
)

// announceAt is when the boot announcements go out, after the start: the
// first at once, the repeats in case the hypervisor was still opening its
// capture on the tap (a guest OS repeats its announcements too, RFC 5227).
var announceAt = []time.Duration{0, 300 * time.Millisecond, time.Second}

func main() {
	iface := flag.String("iface", "eth0", "interface whose addresses to announce")
	port := flag.Int("port", 7007, "UDP and TCP echo port")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("agent: ")

	echo, err := probe.StartEcho(here{}, *port)
	if err != nil {
		log.Fatal(err)
	}
	defer echo.Close()
	fmt.Fprintf(os.Stderr, "agent: echo on port %d\n", *port)

	if err := announce(*iface); err != nil {
		log.Print(err) // keep serving: the lab's timeout tells what is missing
	}
	select {}
}

// here runs functions in the agent's own (the guest's only) namespace.
type here struct{}

func (here) Do(fn func() error) error { return fn() }

// announce sends the boot announcements for every address of iface.
func announce(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("announcing: %w", err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return fmt.Errorf("announcing: listing addresses of %s: %w", name, err)
	}
	var out [][]byte
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		switch {
		case ip.Is4():
			out = append(out, frames.GratuitousARP(ifi.HardwareAddr, ip))
		case ip.IsGlobalUnicast():
			out = append(out, frames.UnsolicitedNA(ifi.HardwareAddr, ip, false))
		}
	}
	if len(out) == 0 {
		return fmt.Errorf("announcing: %s has no address", name)
	}
	// Protocol 0: a send-only socket.
	conn, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		return fmt.Errorf("announcing: opening a packet socket on %s: %w", name, err)
	}
	go func() {
		defer conn.Close()
		start := time.Now()
		for _, at := range announceAt {
			time.Sleep(time.Until(start.Add(at)))
			for _, f := range out {
				if _, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
					log.Printf("announcing on %s: %v", name, err)
				}
			}
		}
	}()
	return nil
}
