// Package probe asks whether the owner of a contested address still
// answers.
//
// When a frame claims an address that is bound to another MAC (a VM running
// on this hypervisor, or one another site announces), roamd treats it as a
// conflict, not a move, until the owner is confirmed gone. A Prober confirms
// it:
//
//   - an owner on a local port is asked the way a router asks: an ARP
//     request (IPv4) or a neighbour solicitation (IPv6) out of its port,
//     from the anycast gateway MAC and the tenant's gateway address. Only an
//     answer from the owner's own MAC, read on the owner's own port, counts:
//     a hostile VM elsewhere cannot answer for it;
//   - an owner at another site is sent an ICMP (ICMPv6) echo request, routed
//     through the fabric to wherever it runs; an echo reply from the address
//     counts. The request follows the hypervisor's own routes (the main
//     table), so an owner of a tenant with a table of its own is reachable
//     only where the main table routes its prefixes to the fabric. A guest
//     that drops echo requests (a firewall's default on some systems) looks
//     gone: only its own hypervisor can ask it the way a router does.
//
// A probe is Options.Attempts requests Options.Interval apart; it ends at
// the first answer. Probe reports false only when every request went out
// and none was answered, or when the owner's port no longer exists; a probe
// that cannot be carried out (no socket, cancelled) reports true, because
// "gone" would hand the address to the challenger.
//
// Sockets are opened per probe in the network namespace of the calling
// thread (packet and raw ICMP sockets: root or CAP_NET_RAW). Tests inject
// their own through Options.ListenLink and Options.ListenICMP.
package probe
