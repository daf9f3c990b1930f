// Package detect holds roamd's event sources. It only watches: nothing under
// detect/ writes the kernel's routing or neighbour state.
//
//   - detect/frames decodes the frames a VM sends when it starts running
//     somewhere (RARP, gratuitous ARP, ARP, unsolicited NA, NS, DAD NS, RS)
//     into observations, and builds the frames roamd and the labs send. Pure
//     code: no sockets, no root.
//   - detect/capture reads those frames from VM ports with one packet socket
//     per port and a kernel BPF filter, and emits an event per observation,
//     rate-limited per port and never blocking the daemon.
//   - detect/ports watches netlink for VM ports (by name pattern) appearing,
//     changing and disappearing, and re-lists the links after any lost event.
package detect
