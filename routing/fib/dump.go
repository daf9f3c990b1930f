package fib

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// maxDumpAttempts bounds the retries of a dump that the kernel interrupted
// because the table changed under it (NLM_F_DUMP_INTR); a table settles
// within a few attempts even while a move is programming routes.
const maxDumpAttempts = 8

// dump runs a netlink dump and repeats it while the kernel reports it
// interrupted, so no caller ever works on a half-read table. Every dump in
// this package goes through it.
func dump[T any](what string, list func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range maxDumpAttempts {
		v, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}
