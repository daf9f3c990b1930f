package bgp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// MACSubType is the sub-type of the transitive opaque extended community
// (type 0x03) that carries a host's MAC address: the six value bytes are
// the MAC. 0xE0 is unassigned by IANA and outside the ranges other opaque
// sub-types use; every roamd in a fabric must agree on it.
const MACSubType = 0xE0

// Extended community types and sub-types roamd reads and writes (RFC 4360,
// RFC 7432 section 7.7, RFC 4360 section 5).
const (
	ecTypeIPv4Specific = 0x01 // transitive IPv4-address-specific
	ecSubRouteOrigin   = 0x03
	ecTypeOpaque       = 0x03 // transitive opaque
	ecTypeEVPN         = 0x06
	ecSubMACMobility   = 0x00
	macMobilitySticky  = 0x01 // flags bit of the MAC Mobility community
)

// Route is a host route this speaker announces.
type Route struct {
	Prefix netip.Prefix // /32 or /128
	Seq    uint32       // MAC Mobility sequence number
	Sticky bool
	MAC    net.HardwareAddr // optional
}

func (r Route) equal(o Route) bool {
	return r.Prefix == o.Prefix && r.Seq == o.Seq && r.Sticky == o.Sticky && bytes.Equal(r.MAC, o.MAC)
}

// Claim is one path for a host prefix learned from a peer.
type Claim struct {
	Prefix   netip.Prefix
	Origin   netip.Addr // from the Route Origin community; invalid when absent (foreign route)
	TenantID uint16
	Seq      uint32 // 0 without a MAC Mobility community
	Sticky   bool
	MAC      net.HardwareAddr // nil when absent
	Peer     netip.Addr       // the session it came from
	PathID   uint32           // ADD-PATH path identifier of the peer
}

// ClaimSet is the complete current set of claims on one prefix: every
// peer and path id, this speaker's own paths excluded. Claims is empty
// once the last one is withdrawn.
type ClaimSet struct {
	Prefix netip.Prefix
	Claims []Claim
}

// isHostRoute reports whether p is a /32 or /128 with no host bits set.
func isHostRoute(p netip.Prefix) bool {
	return p.IsValid() && !p.Addr().Is4In6() && p.Bits() == p.Addr().BitLen()
}

// within reports whether host route p lies inside one of the prefixes.
func within(prefixes []netip.Prefix, p netip.Prefix) bool {
	for _, q := range prefixes {
		if q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// gobgpFamily maps a Family to GoBGP's route family.
func gobgpFamily(f Family) gobgp.Family {
	if f == IPv6Unicast {
		return gobgp.RF_IPv6_UC
	}
	return gobgp.RF_IPv4_UC
}

// encoded is a route as GoBGP takes it.
type encoded struct {
	family gobgp.Family
	nlri   gobgp.NLRI
	attrs  []gobgp.PathAttributeInterface
}

// encodeRoute builds the path attributes of r: next hop self (unspecified
// next hop, which GoBGP replaces by the session's local address), the MAC
// Mobility community, the MAC community, Route Origin (routerID:tenant)
// and the standard community when non-zero.
func encodeRoute(r Route, routerID netip.Addr, tenant uint16, community uint32) (encoded, error) {
	nlri, err := gobgp.NewIPAddrPrefix(r.Prefix)
	if err != nil {
		return encoded{}, fmt.Errorf("encoding %v: %w", r.Prefix, err)
	}
	origin, err := gobgp.NewIPv4AddressSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_ORIGIN, routerID, tenant, true)
	if err != nil {
		return encoded{}, fmt.Errorf("encoding route origin %v: %w", routerID, err)
	}
	ecs := []gobgp.ExtendedCommunityInterface{gobgp.NewMacMobilityExtended(r.Seq, r.Sticky), origin}
	if r.MAC != nil {
		if len(r.MAC) != 6 {
			return encoded{}, fmt.Errorf("encoding %v: MAC %v is not 6 bytes", r.Prefix, r.MAC)
		}
		ecs = append(ecs, gobgp.NewOpaqueExtended(true, append([]byte{MACSubType}, r.MAC...)))
	}
	attrs := []gobgp.PathAttributeInterface{
		gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		gobgp.NewPathAttributeAsPath(nil),
	}
	e := encoded{family: gobgp.RF_IPv4_UC, nlri: nlri}
	if r.Prefix.Addr().Is4() {
		nh, err := gobgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return encoded{}, err
		}
		attrs = append(attrs, nh)
	} else {
		e.family = gobgp.RF_IPv6_UC
		mp, err := gobgp.NewPathAttributeMpReachNLRI(e.family, []gobgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return encoded{}, fmt.Errorf("encoding %v: %w", r.Prefix, err)
		}
		attrs = append(attrs, mp)
	}
	if community != 0 {
		attrs = append(attrs, gobgp.NewPathAttributeCommunities([]uint32{community}))
	}
	e.attrs = append(attrs, gobgp.NewPathAttributeExtendedCommunities(ecs))
	return e, nil
}

// mobility is what roamd's communities say about a path.
type mobility struct {
	origin   netip.Addr
	tenant   uint16
	seq      uint32
	sticky   bool
	hasMAC   bool
	mac      [6]byte
	hasOrig  bool
	hasMobil bool
}

// decodeMobility reads roamd's extended communities from a path's
// attributes. Routers re-sort extended communities, so each is recognised
// by its type and sub-type, never by position. With several MAC Mobility
// communities the highest sequence counts (RFC 7432 section 7.7); with
// several Route Origins the one for tenant wins, else the first.
//
// GoBGP decodes the MAC Mobility flags byte to a boolean, so any non-zero
// flags byte reads as sticky.
func decodeMobility(attrs []gobgp.PathAttributeInterface, tenant uint16) mobility {
	var m mobility
	for _, a := range attrs {
		ext, ok := a.(*gobgp.PathAttributeExtendedCommunities)
		if !ok {
			continue
		}
		for _, ec := range ext.Value {
			b, err := ec.Serialize()
			if err != nil || len(b) != 8 {
				continue
			}
			switch {
			case b[0] == ecTypeEVPN && b[1] == ecSubMACMobility:
				seq := binary.BigEndian.Uint32(b[4:8])
				if !m.hasMobil || seq > m.seq {
					m.seq = seq
				}
				m.sticky = m.sticky || b[2]&macMobilitySticky != 0
				m.hasMobil = true
			case b[0] == ecTypeOpaque && b[1] == MACSubType:
				if !m.hasMAC {
					copy(m.mac[:], b[2:8])
					m.hasMAC = true
				}
			case b[0] == ecTypeIPv4Specific && b[1] == ecSubRouteOrigin:
				t := binary.BigEndian.Uint16(b[6:8])
				if !m.hasOrig || (m.tenant != tenant && t == tenant) {
					m.origin = netip.AddrFrom4([4]byte(b[2:6]))
					m.tenant = t
					m.hasOrig = true
				}
			}
		}
	}
	return m
}

// macAddr returns the decoded MAC, nil when the path had none.
func (m mobility) macAddr() net.HardwareAddr {
	if !m.hasMAC {
		return nil
	}
	return net.HardwareAddr(bytes.Clone(m.mac[:]))
}

// prefixOf returns the host prefix of a unicast NLRI.
func prefixOf(n gobgp.NLRI) (netip.Prefix, bool) {
	p, ok := n.(*gobgp.IPAddrPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	return p.Prefix, true
}
