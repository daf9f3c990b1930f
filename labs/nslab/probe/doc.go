// Package probe measures what a VM move costs its traffic, the way Spirent
// measured vMotion: a client sends a numbered UDP probe every interval (1 ms
// by default) to an echo server in the VM and records each reply; the
// probes lost during a move, the longest run of consecutive losses times the
// interval (the outage), the time from the first lost probe to the first
// reply after it, and the largest delay of the replies that did come are
// the move's cost. A TCP session opened before the moves and exercised after
// each one shows whether connections survive.
//
// Sockets are opened inside network namespaces from locked OS threads (see
// Netns); the sender paces itself with absolute-time clock_nanosleep on a
// locked thread with minimal timer slack, so probes leave on schedule and
// the rate does not drift, and every timestamp is taken from
// CLOCK_MONOTONIC.
package probe
