package nslab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RoamdProtocol is the protocol number the labs' roamds write their kernel
// routes and policy rules with (roamd's default route_protocol).
const RoamdProtocol = 77

// RoamdRoutes returns the kernel routes roamd wrote in the node's namespace
// (protocol RoamdProtocol), from every table.
func (n *Node) RoamdRoutes() ([]netlink.Route, error) {
	filter := &netlink.Route{Protocol: RoamdProtocol, Table: unix.RT_TABLE_UNSPEC}
	rs, err := n.Handle.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing roamd's routes in %s: %w", n.NS, err)
	}
	return rs, nil
}

// WaitNoRoamdRoute waits until roamd on node has no kernel route left whose
// destination covers addr, in any table: it removed its host route and its
// forwarding route (it may forward for a hold time first). With types
// given (unix.RTN_UNICAST, ...), only routes of those types count.
func (l *Lab) WaitNoRoamdRoute(ctx context.Context, node string, addr netip.Addr, types ...int) error {
	n := l.nodes[node]
	if n == nil {
		return fmt.Errorf("no node %q in lab %s", node, l.Topology.Name)
	}
	return Poll(ctx, fmt.Sprintf("%s without a roamd route for %s", node, addr), func(context.Context) (bool, string, error) {
		rs, err := n.RoamdRoutes()
		if err != nil {
			return false, "", err
		}
		var left []string
		for _, r := range rs {
			if r.Dst != nil && r.Dst.Contains(addr.AsSlice()) && (len(types) == 0 || slices.Contains(types, r.Type)) {
				left = append(left, r.String())
			}
		}
		return len(left) == 0, strings.Join(left, "; "), nil
	})
}

// RoutePrefix returns a netlink route's destination (nil: none) as a
// prefix, IPv4 unmapped.
func RoutePrefix(dst *net.IPNet) (netip.Prefix, bool) {
	if dst == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := dst.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), bits), true
}
