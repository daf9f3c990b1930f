// Package movebench compares ways of moving a VM between two hypervisors
// without breaking its connections, side by side on the same machine: roamd
// with the lossless switchover and with RARP only, a stretched L2 segment, a
// do-it-yourself route script with FRR, and FRR's BGP EVPN with a
// distributed anycast gateway, each with FRR leaves and with BIRD leaves.
//
// Each way runs on a fabric variant of its own: a topology with two leaves,
// a hypervisor under each, a client under leaf1 and the same address plan
// (README.md), brought up with nslab from the files under fabrics/ (also
// runnable by hand: roamlab up fabrics/<fabric>-<leaves>.clab.yml). Up
// brings a variant up and waits until it routes; SimulatedMove moves the
// simulated VM (a namespace behind a veth) as a live migration looks from
// the network, for the tests; the benchmark itself migrates a real QEMU
// guest.
package movebench
