package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotify sends a state line to systemd's notification socket ($NOTIFY_SOCKET)
// and does nothing when roamd does not run under systemd. The protocol is one
// datagram on a unix socket; it is written here rather than adding a
// dependency for ten lines.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}

// watchdog pings systemd's watchdog at half its interval, but only while
// alive() says the daemon's engine answers: a hung engine stops the pings and
// systemd restarts roamd.
func watchdog(ctx context.Context, alive func(context.Context) error) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return
	}
	every := time.Duration(usec) * time.Microsecond / 2
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			actx, cancel := context.WithTimeout(ctx, every)
			err := alive(actx)
			cancel()
			if err == nil {
				sdNotify("WATCHDOG=1")
			}
		}
	}
}
