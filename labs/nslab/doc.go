// Package nslab realises a containerlab topology without a container engine:
// one network namespace per node, a veth pair per link, real FRR processes
// for routers and roamd processes for hypervisors.
//
// Up creates everything and Close removes everything it created: it kills
// only the processes it started (watchfrr before the daemons it would
// restart), deletes its namespaces and its /etc/frr/<instance> directories.
// Every name carries a per-run prefix ("rl" and four hex digits by default),
// so several labs can share a machine; Clean removes what a crashed run left
// behind.
//
// A node's role decides what runs in it. It is the node's "roamlab.role"
// label (frr, bird, roamd, host or vm) or, without one, inferred: a bind of
// /etc/frr/frr.conf makes an FRR router, one of /etc/bird/bird.conf a BIRD
// router, a cmd starting with "roamd" a hypervisor. FRR nodes run the bound
// daemons and frr.conf as an FRR instance named like the namespace (vtysh -N
// <namespace>); BIRD nodes run bird in the foreground with the bound config
// and its control socket in the node's run directory (Birdc); roamd nodes run
// their cmd with "roamd" replaced by the roamd binary and bind targets by
// the node's copies of the bound files. Every node's bound files are copied
// into its directory of the run directory (at their target paths, as in a
// container), next to its daemon logs and roamd's API socket. Exec lines run once the links exist and before any daemon
// starts, so daemons find their addresses in place (containerlab runs them
// after the container started; FRR and roamd cope with either order). Each
// line runs under "sh -c" in the node's namespace; consecutive "ip" lines go
// through one "ip -batch".
//
// UpExtracted brings up a lab package's embedded topology and waits until
// it is ready. Besides bringing labs up, the package waits for conditions
// (BGP sessions, routes at a router, roamd host states, roamd's kernel
// routes) by polling with deadlines, asks roamd as an operator would
// (Roamctl) and as an orchestrator would (API), and moves a VM between
// hypervisors the way a live migration looks from the network (see Move).
package nslab
