// Package bgp is roamd's embedded BGP speaker: it announces the host
// routes of the VMs running here and reports every other site's claim on
// them. It is the only package that imports GoBGP (v4, used as a library).
//
// One Speaker serves one tenant (VRF-lite: each tenant has its own
// sessions); several run in one process, each an independent GoBGP
// server that listens only when given a port.
//
// # Wire encoding
//
// Every route is a /32 (IPv4 unicast) or /128 (IPv6 unicast, MP_REACH)
// with next hop self: the session's local address, except /128 routes on
// IPv4 sessions, which carry Config.IPv6NextHop. Its extended communities:
//
//   - MAC Mobility (RFC 7432 section 7.7): type 0x06, sub-type 0x00, flags
//     (0x01 = sticky), a reserved byte, the 4-byte sequence number;
//   - the host's MAC: transitive opaque, type 0x03, sub-type MACSubType
//     (0xE0), the 6 MAC bytes;
//   - Route Origin: IPv4-address-specific, type 0x01, sub-type 0x03, global
//     administrator the RouterID (this hypervisor's underlay address, which
//     eBGP next-hop rewriting hides), local administrator the TenantID;
//
// plus Config.Community as a standard community when non-zero. Received
// extended communities are recognised by type, never by position: routers
// re-sort them.
//
// # Policy
//
// Import accepts only /32 and /128 inside Config.Prefixes; everything else
// is rejected and counted (RejectedRoutes, PeerStatus.Rejected). GoBGP
// still keeps every received path in its Adj-RIB-In (soft
// reconfiguration), so PeerConfig.MaxPrefixes is what bounds the memory a
// misbehaving peer can use. Export accepts only our own paths: roamd never
// carries a route from one leaf to another.
//
// # Claims
//
// Every session negotiates ADD-PATH receive, so a leaf configured to send
// all paths (FRR: neighbor HV addpath-tx-all-paths) shows roamd every
// competing claim, not just its best path. The speaker keeps, per prefix,
// each (peer, path id) path GoBGP accepted and reports the complete set
// whenever it changes; paths whose Route Origin is our own RouterID are
// our routes echoed back and are left out. Claims() coalesces per prefix:
// a slow reader gets the latest set of every changed prefix, and GoBGP's
// watcher never waits for it.
//
// # Graceful restart
//
// With Config.GracefulRestart set, sessions advertise the graceful restart
// capability (RFC 4724) for every family and help peers that restart.
// Stop withdraws and closes with a notification, so peers drop our routes
// at once; Detach closes without one, like a crash, so peers keep them as
// stale. The next speaker is started with Config.Restarting: it opens its
// sessions only in Ready, after the routes were re-announced, with the
// Restart State bit and, per family, the Forwarding State bit set (GoBGP
// sets both only on a restarting speaker, which is also the only time RFC
// 4724 says the F bit matters). GoBGP then waits for the peers' End-of-RIB
// (at most a second for peers that do not come up) and sends our routes
// followed by End-of-RIB, on which the peers drop the stale routes that
// were not re-announced.
//
// Holding the sessions is deliberate: GoBGP's own restart mode releases
// our End-of-RIB as soon as every peer sent theirs, whether or not roamd
// has re-announced, and its API has no call to end that deferral, so an
// open session could not be kept from signalling End-of-RIB too early.
// The price is that no claims arrive before Ready. Ready may come before
// or after Connect.
//
// # Sessions
//
// Zero timers mean a 9 s hold time, 3 s keepalive and 5 s connect retry
// (GoBGP connects at most every 2 s and waits 5 s after a session drops
// before it tries again). A session whose peer sends more than
// PeerConfig.MaxPrefixes paths in a family is closed and tried again after
// a minute. Several speakers may run in one process, but create them all
// before connecting any: GoBGP's StartBgp writes package-level route
// selection options that running servers read (the values are the same,
// so only the race detector notices).
//
// # BFD
//
// PeerConfig.BFD uses GoBGP's native BFD (single hop, UDP 3784, 1 s
// intervals, multiplier 3): when the BFD session fails GoBGP resets the
// BGP session. GoBGP runs one BFD listener per server on UDP 3784, so only
// one Speaker per process may use BFD; New and SetPeers refuse a second.
package bgp
