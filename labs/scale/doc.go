// Package scale is the harness of roamd's scale and latency benchmarks and of
// the tests that run the roamd binary: it starts roamd in a network
// namespace and watches it from outside (API, metrics, /proc, packet
// captures), wires VM ports by the thousand with netlink, sends the frames
// VMs send, and builds a small BIRD or FRR fabric for move storms.
//
// The benchmarks themselves (scale_test.go) run only with -bench; they need
// root. README.md explains how to run them and holds the results.
package scale
