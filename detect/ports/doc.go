// Package ports watches netlink for VM ports: interfaces whose name matches
// a pattern appearing, changing and disappearing.
//
// A Watcher subscribes to link updates (listing the existing links first)
// and reports Added, Changed and Removed events for matching interfaces. A
// rename is Removed(old) then Added(new); an interface deleted and recreated
// with the same name is Removed then Added with its new index. Kernel events
// can be lost (the netlink socket overflows with ENOBUFS, or a dump is
// interrupted): the Watcher then subscribes again and re-lists every link,
// diffing the listing against what it has reported, so its consumer always
// converges on the kernel's state. Resync forces the same re-listing, for the
// daemon's periodic reconcile.
//
// The Watcher works in the network namespace of the thread that runs Run,
// or in the one given by WithNetNS.
package ports
