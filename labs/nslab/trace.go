package nslab

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Traceroute runs `traceroute -n` (UDP, one probe per hop) from node to dst
// and returns the address that answered at each hop, up to and including
// dst; a hop that did not answer is the zero Addr.
func (l *Lab) Traceroute(ctx context.Context, node string, dst netip.Addr) ([]netip.Addr, error) {
	n := l.nodes[node]
	if n == nil {
		return nil, fmt.Errorf("no node %q", node)
	}
	args := []string{"-n", "-q", "1", "-w", "1", "-m", "12", dst.String()}
	if dst.Is6() {
		args = append([]string{"-6"}, args...)
	}
	out, err := n.Run(ctx, "traceroute", args...)
	if err != nil {
		return nil, err
	}
	return parseTraceroute(out)
}

// parseTraceroute reads traceroute -n -q 1 output: a header line, then
// "<hop> <address> <rtt> ms" or "<hop> *" per hop.
func parseTraceroute(out string) ([]netip.Addr, error) {
	var hops []netip.Addr
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		hop, err := strconv.Atoi(f[0])
		if err != nil {
			continue // the header
		}
		if hop != len(hops)+1 {
			return nil, fmt.Errorf("traceroute output: hop %d after %d hops: %q", hop, len(hops), out)
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil {
			addr = netip.Addr{} // "*": no answer
		}
		hops = append(hops, addr)
	}
	return hops, nil
}
