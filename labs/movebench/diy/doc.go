// Package diy is the move benchmark's do-it-yourself baseline: what an
// operator without roamd scripts together to route VMs.
//
// A Watcher runs in one hypervisor's network namespace. It makes every VM
// port that appears (a tap matching a name pattern) a routed port: the
// anycast gateway MAC, proxy ARP, up. When a VM of its inventory (MAC →
// address) announces itself on a port — QEMU's RARP after a migration, the
// guest's gratuitous ARP after boot — it writes "<address>/32 dev <port>
// proto static", which FRR on the hypervisor redistributes to the fabric.
// It never removes a route: the kernel drops it with the tap when QEMU quits
// at the source, and FRR withdraws it then. Nothing tells the old site about
// the move, and no hypervisor talks to another.
//
// The watcher reads frames with roamd's own capture (detect/capture: a
// packet socket per port with a kernel filter), so the baseline loses
// nothing to a slow detector (tcpdump delivers 30-100 ms late); what it
// lacks is everything else roamd does.
package diy
