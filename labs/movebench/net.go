package movebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/roamd/roamd/labs/movebench/diy"
	"github.com/roamd/roamd/labs/nslab"
)

// Net is a variant's running network: the namespace lab and what runs
// beside it (the do-it-yourself watchers). The methods wait for what an
// operator would check; they work the same whether the VM is a QEMU guest
// or the tests' simulated one.
type Net struct {
	Variant
	Lab *nslab.Lab

	watchers map[string]*diy.Watcher
}

// Attach starts what the variant runs beside the lab (FabricDIY: a watcher
// per hypervisor). Close stops it; the lab itself is the caller's.
func Attach(v Variant, lab *nslab.Lab, log *slog.Logger) (*Net, error) {
	n := &Net{Variant: v, Lab: lab, watchers: map[string]*diy.Watcher{}}
	if v.Fabric != FabricDIY {
		return n, nil
	}
	for _, hv := range []string{HV1, HV2} {
		node := lab.Node(hv)
		w, err := diy.Start(node, node.Handle, diy.Config{
			Ports:      "tap*",
			GatewayMAC: GatewayMAC,
			Hosts:      map[string]netip.Addr{VMMAC.String(): VMAddr},
			Logger:     log,
		})
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("starting the do-it-yourself watcher on %s: %w", hv, err)
		}
		n.watchers[hv] = w
	}
	return n, nil
}

// Close stops the watchers (nothing else: the lab is the caller's).
func (n *Net) Close() error {
	var errs []error
	for hv, w := range n.watchers {
		if err := w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("do-it-yourself watcher on %s: %w", hv, err))
		}
	}
	n.watchers = nil
	return errors.Join(errs...)
}

// Watcher returns the do-it-yourself watcher of a hypervisor (nil unless
// the fabric is FabricDIY).
func (n *Net) Watcher(hv string) *diy.Watcher { return n.watchers[hv] }

// WaitReady waits until every BGP session of the variant is established and
// the client reaches both hypervisors' loopbacks (the underlay the VXLAN
// tunnels and roamd's forwarding use); EVPN tunnel endpoints must also
// flood to each other.
func (n *Net) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, leaf := range []string{Leaf1, Leaf2} {
		var err error
		if n.Leaves == LeavesBIRD {
			err = n.Lab.WaitBIRDSessions(ctx, leaf)
		} else {
			err = n.Lab.WaitBGP(ctx, leaf)
		}
		if err != nil {
			return err
		}
	}
	if n.Fabric == FabricDIY || n.Fabric == FabricEVPN {
		for _, hv := range []string{HV1, HV2} {
			if err := n.Lab.WaitBGP(ctx, hv); err != nil {
				return err
			}
		}
	}
	// Routers send their first updates a while after the sessions come up:
	// wait for reachability, not for sessions.
	for _, hv := range []string{HV1, HV2} {
		if err := n.waitPing(ctx, Loopbacks[hv]); err != nil {
			return err
		}
	}
	if n.Fabric == FabricEVPN {
		for _, hv := range []string{HV1, HV2} {
			if err := n.waitFloodEntry(ctx, hv); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitPing waits until the client gets an answer from dst.
func (n *Net) waitPing(ctx context.Context, dst netip.Addr) error {
	client := n.Lab.Node(Client)
	return nslab.Poll(ctx, "the client reaching "+dst.String(), func(ctx context.Context) (bool, string, error) {
		_, err := client.Run(ctx, "ping", "-c", "1", "-W", "1", dst.String())
		return err == nil, "", err
	})
}

// waitFloodEntry waits until hv's vxlan100 floods to the other hypervisor:
// FRR installs the all-zero MAC toward each remote VTEP it learned from an
// EVPN type-3 route.
func (n *Net) waitFloodEntry(ctx context.Context, hv string) error {
	return n.waitTunnelFDB(ctx, hv, net.HardwareAddr{0, 0, 0, 0, 0, 0}, "vxlan100", Loopbacks[Other(hv)])
}

// PreparePort readies the VM's port once it exists on hv, before the VM
// runs there (QEMU's tap at boot or on a migration's destination), as the
// fabric's own tooling would: bridged fabrics put it into their bridge, up
// (libvirt does that); roamd and the do-it-yourself watcher take ports
// themselves, and PreparePort waits until they have.
func (n *Net) PreparePort(ctx context.Context, hv string) error {
	node := n.Lab.Node(hv)
	link, err := node.Handle.LinkByName(Port)
	if err != nil {
		return fmt.Errorf("preparing %s on %s: %w", Port, hv, err)
	}
	switch n.Fabric {
	case FabricL2, FabricEVPN:
		bridge := "br0"
		if n.Fabric == FabricEVPN {
			bridge = "br100"
		}
		br, err := node.Handle.LinkByName(bridge)
		if err == nil {
			err = node.Handle.LinkSetMasterByIndex(link, br.Attrs().Index)
		}
		if err == nil {
			err = node.Handle.LinkSetUp(link)
		}
		if err != nil {
			return fmt.Errorf("putting %s into %s on %s: %w", Port, bridge, hv, err)
		}
		return nil
	case FabricDIY:
		return nslab.Poll(ctx, "the watcher on "+hv+" taking "+Port, func(context.Context) (bool, string, error) {
			l, err := node.Handle.LinkByName(Port)
			if err != nil {
				return false, "", err
			}
			ok := bytes.Equal(l.Attrs().HardwareAddr, GatewayMAC) && l.Attrs().Flags&net.FlagUp != 0
			return ok, fmt.Sprintf("MAC %s flags %s", l.Attrs().HardwareAddr, l.Attrs().Flags), n.watchers[hv].Err()
		})
	case FabricRoamd:
		return n.Lab.WaitRoamdPort(ctx, hv, Port)
	}
	return nil
}

// WaitPlaced waits until the network delivers to the VM that has just come
// up on hv and announced itself: the client reaches it, and (FabricRoamd)
// the other hypervisor's roamd has heard of it with its MAC, so that it can
// claim it on a RARP, which carries no address.
func (n *Net) WaitPlaced(ctx context.Context, hv string) error {
	if err := n.waitPing(ctx, VMAddr); err != nil {
		return err
	}
	if err := n.WaitDelivers(ctx, hv); err != nil {
		return err
	}
	if n.Fabric != FabricRoamd {
		return nil
	}
	other := Other(hv)
	c, err := n.Lab.API(other)
	if err != nil {
		return err
	}
	return nslab.Poll(ctx, "roamd on "+other+" knowing the VM's MAC from "+hv, func(ctx context.Context) (bool, string, error) {
		h, err := c.Host(ctx, "", VMAddr.String())
		if err != nil {
			return false, "", err
		}
		var macs []string
		for _, rc := range h.RemoteClaims {
			if strings.EqualFold(rc.MAC, VMMAC.String()) {
				return true, "", nil
			}
			macs = append(macs, rc.MAC)
		}
		return false, fmt.Sprintf("remote claims with MACs %v", macs), nil
	})
}

// WaitDelivers waits until the fabric delivers the client's traffic for the
// VM to hv, as an operator would check it: routed fabrics route the /32 at
// both leaves toward hv, and only toward hv; bridged fabrics have hv1, the
// client's way in, forward the VM's MAC to its port or into the tunnel
// toward hv2.
func (n *Net) WaitDelivers(ctx context.Context, hv string) error {
	host := netip.PrefixFrom(VMAddr, 32)
	switch n.Fabric {
	case FabricRoamd, FabricDIY:
		leaf, other := LeafOf[hv], LeafOf[Other(hv)]
		if err := n.waitKernelRoute(ctx, leaf, host, Uplink[hv]); err != nil {
			return err
		}
		return n.waitKernelRoute(ctx, other, host, InterLeaf[leaf])
	case FabricL2:
		if hv == HV1 {
			return n.waitFDB(ctx, HV1, VMMAC, Port)
		}
		return n.waitFDB(ctx, HV1, VMMAC, "vxlan0")
	case FabricEVPN:
		if hv == HV1 {
			return n.waitFDB(ctx, HV1, VMMAC, Port)
		}
		// The bridge sends the MAC into vxlan100, and vxlan100 has it
		// toward hv2 (FRR installs both from hv2's type-2 route).
		if err := n.waitFDB(ctx, HV1, VMMAC, "vxlan100"); err != nil {
			return err
		}
		return n.waitTunnelFDB(ctx, HV1, VMMAC, "vxlan100", Loopbacks[HV2])
	}
	return fmt.Errorf("unknown fabric %q", n.Fabric)
}

// waitKernelRoute waits until node's main table routes exactly prefix via
// gateway, and only via gateway.
func (n *Net) waitKernelRoute(ctx context.Context, node string, prefix netip.Prefix, gateway netip.Addr) error {
	h := n.Lab.Node(node).Handle
	what := fmt.Sprintf("%s routing %s via %s", node, prefix, gateway)
	return nslab.Poll(ctx, what, func(context.Context) (bool, string, error) {
		filter := &netlink.Route{Dst: &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 32)}, Table: unix.RT_TABLE_MAIN}
		rs, err := h.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
		if err != nil {
			return false, "", err
		}
		var seen []string
		for _, r := range rs {
			seen = append(seen, r.String())
		}
		ok := len(rs) == 1 && rs[0].Gw.Equal(gateway.AsSlice()) && len(rs[0].MultiPath) == 0
		return ok, strings.Join(seen, "; "), nil
	})
}

// waitFDB waits until hv's bridge forwards mac to its port dev. Only the
// bridge's own entries count, not a VXLAN device's (NTF_SELF): a VXLAN
// device keeps remote entries of its own, which may be stale while the
// bridge sends the MAC to another port.
func (n *Net) waitFDB(ctx context.Context, hv string, mac net.HardwareAddr, dev string) error {
	return n.pollFDB(ctx, hv, fmt.Sprintf("%s's bridge forwarding %s to %s", hv, mac, dev), func(e netlink.Neigh, port string) bool {
		return e.Flags&netlink.NTF_SELF == 0 && bytes.Equal(e.HardwareAddr, mac) && port == dev
	})
}

// waitTunnelFDB waits until VXLAN device dev on hv sends mac to remote.
func (n *Net) waitTunnelFDB(ctx context.Context, hv string, mac net.HardwareAddr, dev string, remote netip.Addr) error {
	return n.pollFDB(ctx, hv, fmt.Sprintf("%s's %s sending %s to %s", hv, dev, mac, remote), func(e netlink.Neigh, port string) bool {
		return e.Flags&netlink.NTF_SELF != 0 && bytes.Equal(e.HardwareAddr, mac) && port == dev && e.IP.Equal(remote.AsSlice())
	})
}

// pollFDB waits until one of hv's forwarding entries satisfies ok.
func (n *Net) pollFDB(ctx context.Context, hv, what string, ok func(e netlink.Neigh, port string) bool) error {
	h := n.Lab.Node(hv).Handle
	return nslab.Poll(ctx, what, func(context.Context) (bool, string, error) {
		fdb, err := h.NeighList(0, unix.AF_BRIDGE)
		if err != nil {
			return false, "", err
		}
		var seen []string
		for _, e := range fdb {
			l, err := h.LinkByIndex(e.LinkIndex)
			if err != nil {
				return false, "", err
			}
			port := l.Attrs().Name
			if ok(e, port) {
				return true, "", nil
			}
			if len(e.HardwareAddr) == 6 && e.HardwareAddr[0]&1 == 0 {
				seen = append(seen, fmt.Sprintf("%s on %s dst %s flags %#x", e.HardwareAddr, port, e.IP, e.Flags))
			}
		}
		return false, strings.Join(seen, ", "), nil
	})
}
