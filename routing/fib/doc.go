// Package fib programs the hypervisor kernel for roamd: routed VM ports, the
// VMs' host routes, and the tunnel that carries in-flight packets to a VM's new
// site after it moved.
//
// Everything is written over rtnetlink (vishvananda/netlink), never by running
// ip(8): a move is timed in milliseconds and each ip(8) costs ~3.5 ms.
//
// # What the kernel ends up with
//
// A routed VM port (tap or veth) has the anycast gateway MAC, txqueuelen
// raised, proxy ARP on with proxy_delay 0, accept_ra 0, rp_filter 0, and the
// tenant's gateway addresses: IPv4 as /32 (no prefix route), IPv6 link-local
// as /64 nodad, global IPv6 as /128 nodad noprefixroute. A VM therefore ARPs
// for its gateway or any other address of its subnet and gets the anycast MAC:
// every packet is routed. A port of a tenant with its own table gets the policy
// rules `iif <port> lookup <table>` (IPv4 and IPv6).
//
// A VM's host route is `<addr>/32 dev <port> proto <roamd> table <tenant>
// scope link` (/128 for IPv6), with the router ID as preferred source when the
// router ID is local (ICMP errors then come from this hypervisor, not from the
// gateway address that is the same everywhere), plus a permanent neighbour
// entry for the VM's MAC so packets never wait in the ARP queue.
//
// # Forwarding after a move
//
// When a host yields, its route is replaced in one RouteReplace by
// `<addr> encap ip id <tenant id> dst <new site> dev <forward device>`. The
// forward device is a VXLAN device in metadata mode (external, nolearning)
// with the GPE extension: it carries the IP packet itself, without an inner
// Ethernet header. GPE is deliberate. With plain (Ethernet) VXLAN and a NOARP
// device whose MAC is the anycast MAC on every hypervisor, the inner frame's
// source MAC equals the receiving device's MAC and the kernel drops it as a
// loop (vxlan_set_mac); giving each site its own MAC instead would need a
// neighbour entry per forwarded address on the one device, which breaks for
// overlapping tenant addresses. A GPE device has no MAC and no ARP, and
// delivers every decapsulated packet to the stack as PACKET_HOST. The
// receiving side separates tenants with `iif <forward device> tun_id <tenant
// id> lookup <table>`. Every roamd must run the same kind of device on the same
// UDP port. The encapsulation asks for outer UDP checksums: without them a
// metadata-mode VXLAN sends zero checksums, which IPv6 underlays drop.
//
// # Ownership
//
// Routes carry roamd's protocol number and live in the tenants' tables; Routes
// and Sync see and touch only those, never a route of another protocol or in
// another table. Sync adds a missing route with NLM_F_EXCL, so it reports a
// foreign route in the way instead of overwriting it (InstallHost, on the hot
// path, replaces unconditionally). Rules carry roamd's protocol number too
// (FRA_PROTOCOL). Tenant tables other than main get `unreachable default`
// (IPv4 and IPv6) at the highest metric, as with Linux VRFs: a lookup that
// finds nothing in the tenant's table stops there instead of falling through
// to main and leaking between tenants.
//
// # Limits
//
// Without VRF devices, traffic the hypervisor itself originates toward a VM of
// a tenant with its own table (replies to pings of the gateway address, ICMP
// errors) is routed by the main table, so it does not reach that VM; forwarded
// traffic is isolated and works. Policy rules of ports that were deleted stay
// until PreparePort runs for a port of that name again. rp_filter is set to 0
// on ports and on the forward device; the effective value is the maximum of
// that and net.ipv4.conf.all.rp_filter, which must not be 1 (strict) when
// tenants have their own tables. Setup turns IPv6 forwarding on for all
// interfaces, after which the kernel ignores router advertisements unless
// accept_ra is 2: a hypervisor that learns its own IPv6 default route by SLAAC
// needs accept_ra=2 on its uplinks. Proxy NDP for the VMs' other subnet
// addresses is not done here (the kernel needs a proxy entry per address).
//
// # Where the library falls short
//
// netlink v1.3.1 cannot decode LWTUNNEL_ENCAP_IP routes, writes FRA_TUN_ID
// with the wrong size and byte order, cannot create a VXLAN-GPE device, and
// its attribute parser panics on truncated input. Those requests and the
// route dump are built and parsed by hand (rawnl.go, encap.go) and sent on an
// rtnetlink socket the FIB opens in its own namespace, beside its netlink
// handle.
package fib
