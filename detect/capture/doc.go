// Package capture reads the frames VMs send on their ports and turns them
// into events.
//
// A Manager opens one packet socket per watched port, bound to all
// ethertypes, with a kernel BPF filter that passes only ARP, RARP and the
// NDP messages a host sends about itself (RS, NS, NA), and never the frames
// the host sends out of the port. A reader goroutine per port decodes each
// frame with detect/frames and sends an Event.
//
// The reader never blocks the daemon for long: each port has a frame budget
// (a token bucket; excess frames are dropped and counted), malformed frames
// are counted and logged at debug level, and when the output channel stays
// full for 100 ms the event is dropped and counted. Size the channel
// for bursts (a migration produces about 15 frames per VM; 1024 is ample).
//
// Sockets are created in the network namespace of the thread that calls
// Watch; tests call Watch from inside nstest.NS.Do.
package capture
