package main

import (
	"os"
	"testing"

	"github.com/roamd/roamd/labs/scale"
	"github.com/roamd/roamd/labs/scale/peer"
)

func TestMain(m *testing.M) {
	// The BGP peer of the privileged tests runs as this binary in the
	// leaf's namespace.
	peer.MaybeRun()
	code := m.Run()
	scale.RemoveBinaries()
	os.Exit(code)
}
