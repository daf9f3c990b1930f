package fib

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"net/netip"
)

// nlaTypeMask strips the nested and byte-order flags from an attribute type.
const nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

// rawConn sends the few rtnetlink requests netlink v1.3.1 cannot build or
// decode (see doc.go) on a NETLINK_ROUTE socket of its own, opened in the
// FIB's network namespace.
type rawConn struct {
	sockets map[int]*nl.SocketHandle // nil: the current namespace
}

// newRawConn opens the socket in ns (netns.None(): the current namespace).
func newRawConn(ns netns.NsHandle) (rawConn, error) {
	if !ns.IsOpen() {
		return rawConn{}, nil
	}
	sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return rawConn{}, fmt.Errorf("opening rtnetlink socket in the namespace: %w", err)
	}
	return rawConn{sockets: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}}, nil
}

// close releases the socket.
func (c rawConn) close() {
	for _, s := range c.sockets {
		s.Close()
	}
}

// request starts a request the way netlink.Handle does internally.
func (c rawConn) request(typ, flags int) *nl.NetlinkRequest {
	if c.sockets == nil {
		return nl.NewNetlinkRequest(typ, flags)
	}
	return &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{
			Len:   uint32(unix.SizeofNlMsghdr),
			Type:  uint16(typ),
			Flags: unix.NLM_F_REQUEST | uint16(flags),
		},
		Sockets: c.sockets,
	}
}

// kernelRoute is one route of a raw dump, reduced to what the FIB compares.
type kernelRoute struct {
	Dst      netip.Prefix
	Table    int
	Protocol int
	Type     int
	Scope    int
	OIF      int
	Priority int
	PrefSrc  netip.Addr
	// Encap is the decoded `encap ip`/`encap ip6`, nil when the route has
	// none; EncapType is the raw type, non-zero for any encapsulation.
	Encap     *ipEncap
	EncapType int
}

// routes dumps the IPv4 and IPv6 routes of every table. The caller filters:
// the kernel only filters dumps on sockets in strict mode, which would change
// the behaviour of the caller's handle.
func (c rawConn) routes() ([]kernelRoute, error) {
	req := c.request(unix.RTM_GETROUTE, unix.NLM_F_DUMP)
	req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_UNSPEC}})
	var out []kernelRoute
	var perr error
	err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE, func(msg []byte) bool {
		r, ok, err := parseRoute(msg)
		switch {
		case err != nil:
			perr = err
		case ok:
			out = append(out, r)
		}
		return true
	})
	if err == nil {
		err = perr
	}
	return out, err
}

// rtextFilterSkipStats asks a link dump to leave out the statistics
// (RTEXT_FILTER_SKIP_STATS, uapi rtnetlink.h; x/sys/unix lacks it). Kernels
// that predate it ignore the bit.
const rtextFilterSkipStats = 1 << 3

// linkNames dumps the interfaces' index → name. netlink.LinkList decodes
// every attribute of every link; at 4,096 VM ports that was most of a
// reconcile, which needs only the names.
func (c rawConn) linkNames() (map[int]string, error) {
	req := c.request(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextFilterSkipStats)))
	names := map[int]string{}
	var perr error
	err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWLINK, func(msg []byte) bool {
		index, name, err := parseLinkName(msg)
		if err != nil {
			perr = err
		} else if name != "" {
			names[index] = name
		}
		return true
	})
	if err == nil {
		err = perr
	}
	return names, err
}

// parseLinkName decodes the index and name of one RTM_NEWLINK payload
// (ifinfomsg + attributes).
func parseLinkName(msg []byte) (index int, name string, err error) {
	if len(msg) < unix.SizeofIfInfomsg {
		return 0, "", fmt.Errorf("link message of %d bytes, want at least %d", len(msg), unix.SizeofIfInfomsg)
	}
	index = int(int32(binary.NativeEndian.Uint32(msg[4:8])))
	attrs, err := parseAttrs(msg[unix.SizeofIfInfomsg:])
	if err != nil {
		return 0, "", fmt.Errorf("link %d: %w", index, err)
	}
	for _, a := range attrs {
		if a.Type == unix.IFLA_IFNAME {
			return index, string(bytes.TrimRight(a.Value, "\x00")), nil
		}
	}
	return index, "", nil
}

// parseRoute decodes one RTM_NEWROUTE payload (rtmsg + attributes). ok is
// false for what the FIB never owns: other families and cloned cache entries.
func parseRoute(msg []byte) (r kernelRoute, ok bool, err error) {
	if len(msg) < unix.SizeofRtMsg {
		return r, false, fmt.Errorf("route message of %d bytes", len(msg))
	}
	hdr := nl.DeserializeRtMsg(msg)
	if hdr.Family != unix.AF_INET && hdr.Family != unix.AF_INET6 || hdr.Flags&unix.RTM_F_CLONED != 0 {
		return r, false, nil
	}
	r = kernelRoute{
		Table:    int(hdr.Table),
		Protocol: int(hdr.Protocol),
		Type:     int(hdr.Type),
		Scope:    int(hdr.Scope),
	}
	dst := netip.IPv4Unspecified()
	if hdr.Family == unix.AF_INET6 {
		dst = netip.IPv6Unspecified()
	}
	attrs, err := parseAttrs(msg[unix.SizeofRtMsg:])
	if err != nil {
		return r, false, fmt.Errorf("parsing route attributes: %w", err)
	}
	var encap []byte
	for _, a := range attrs {
		v := a.Value
		switch a.Type {
		case unix.RTA_DST:
			if ip, good := netip.AddrFromSlice(v); good {
				dst = ip
			}
		case unix.RTA_PREFSRC:
			if ip, good := netip.AddrFromSlice(v); good {
				r.PrefSrc = ip
			}
		case unix.RTA_OIF:
			if len(v) == 4 {
				r.OIF = int(binary.NativeEndian.Uint32(v))
			}
		case unix.RTA_PRIORITY:
			if len(v) == 4 {
				r.Priority = int(binary.NativeEndian.Uint32(v))
			}
		case unix.RTA_TABLE:
			if len(v) == 4 {
				r.Table = int(binary.NativeEndian.Uint32(v))
			}
		case unix.RTA_ENCAP_TYPE:
			if len(v) == 2 {
				r.EncapType = int(binary.NativeEndian.Uint16(v))
			}
		case unix.RTA_ENCAP:
			encap = v
		}
	}
	r.Dst = netip.PrefixFrom(dst, int(hdr.Dst_len))
	if !r.Dst.IsValid() {
		return r, false, fmt.Errorf("route with prefix length %d for %s", hdr.Dst_len, dst)
	}
	if encap != nil && (r.EncapType == nl.LWTUNNEL_ENCAP_IP || r.EncapType == nl.LWTUNNEL_ENCAP_IP6) {
		e := &ipEncap{}
		if err := e.Decode(encap); err != nil {
			return r, false, fmt.Errorf("route %s table %d: %w", r.Dst, r.Table, err)
		}
		r.Encap = e
	}
	return r, true, nil
}

// attr is one netlink attribute, its type without the nested/byte-order flags.
type attr struct {
	Type  uint16
	Value []byte
}

// parseAttrs splits b into netlink attributes. It stands in for
// nl.ParseRouteAttr, which panics on an attribute whose padding runs past
// the end of the buffer.
func parseAttrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) >= unix.SizeofRtAttr {
		n := int(binary.NativeEndian.Uint16(b))
		if n < unix.SizeofRtAttr || n > len(b) {
			return nil, fmt.Errorf("attribute of %d bytes in %d", n, len(b))
		}
		out = append(out, attr{Type: binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask, Value: b[unix.SizeofRtAttr:n]})
		b = b[min((n+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1), len(b)):]
	}
	return out, nil
}

// ruleSpec is one policy rule as roamd writes it: `iif <IIF> [tun_id <TunID>]
// lookup <Table> priority <Priority> proto <roamd>`.
type ruleSpec struct {
	Family   int
	Priority int
	IIF      string
	TunID    uint64
	Table    int
}

func (r ruleSpec) String() string {
	fam := "ip"
	if r.Family == unix.AF_INET6 {
		fam = "ip -6"
	}
	s := fmt.Sprintf("%s rule iif %s", fam, r.IIF)
	if r.TunID != 0 {
		s += fmt.Sprintf(" tun_id %d", r.TunID)
	}
	return s + fmt.Sprintf(" lookup %d priority %d", r.Table, r.Priority)
}

// addRule adds r; an identical rule already there is not an error.
// netlink v1.3.1's RuleAdd writes FRA_TUN_ID as 4 host-order bytes where the
// kernel wants 8 big-endian ones, so all roamd rules use this one encoder.
func (c rawConn) addRule(r ruleSpec, proto int) error {
	err := c.ruleRequest(unix.RTM_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK, r, proto)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("adding %s: %w", r, err)
	}
	return nil
}

// delRule removes r; a rule already gone is not an error.
func (c rawConn) delRule(r ruleSpec, proto int) error {
	err := c.ruleRequest(unix.RTM_DELRULE, unix.NLM_F_ACK, r, proto)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing %s: %w", r, err)
	}
	return nil
}

func (c rawConn) ruleRequest(typ, flags int, r ruleSpec, proto int) error {
	req := c.request(typ, flags)
	// struct fib_rule_hdr has the layout of struct rtmsg; its action byte
	// sits where rtmsg has the type.
	req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{
		Family: uint8(r.Family),
		Table:  unix.RT_TABLE_UNSPEC,
		Type:   unix.FR_ACT_TO_TBL,
	}})
	req.AddData(nl.NewRtAttr(unix.FRA_PRIORITY, nl.Uint32Attr(uint32(r.Priority))))
	req.AddData(nl.NewRtAttr(unix.FRA_TABLE, nl.Uint32Attr(uint32(r.Table))))
	req.AddData(nl.NewRtAttr(unix.FRA_IIFNAME, nl.ZeroTerminated(r.IIF)))
	if r.TunID != 0 {
		req.AddData(nl.NewRtAttr(unix.FRA_TUN_ID, nl.BEUint64Attr(r.TunID)))
	}
	req.AddData(nl.NewRtAttr(unix.FRA_PROTOCOL, nl.Uint8Attr(uint8(proto))))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// ruleTunID undoes netlink v1.3.1's decoding of FRA_TUN_ID, which reads the
// kernel's big-endian value in host order.
func ruleTunID(decoded uint) uint64 {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint64(b, uint64(decoded))
	return binary.BigEndian.Uint64(b)
}

// addVXLANGPE creates the forward device: VXLAN in metadata mode with the
// GPE extension and learning off (netlink.Vxlan has no GPE field).
func (c rawConn) addVXLANGPE(name string, port int) error {
	req := c.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("vxlan"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(unix.IFLA_VXLAN_COLLECT_METADATA, nl.Uint8Attr(1))
	data.AddRtAttr(unix.IFLA_VXLAN_GPE, []byte{})
	data.AddRtAttr(unix.IFLA_VXLAN_LEARNING, nl.Uint8Attr(0))
	data.AddRtAttr(unix.IFLA_VXLAN_PORT, nl.BEUint16Attr(uint16(port)))
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("creating VXLAN-GPE device %s port %d: %w", name, port, err)
	}
	return nil
}
