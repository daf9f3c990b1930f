package nslab

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Output of birdc 2.0.12, with the second session still connecting.
const birdProtocols = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     01:08:06.927  
direct1    Direct     ---        up     01:08:06.927  
kernel1    Kernel     master4    up     01:08:06.927  
static1    Static     master4    up     01:08:06.927  
leaf2      BGP        ---        up     01:08:07.762  Established   
hv1        BGP        ---        start  2026-11-22 01:08:08  Connect       Socket: Connection refused
`

func TestParseBIRDProtocols(t *testing.T) {
	got, err := parseBIRDProtocols(birdProtocols)
	if err != nil {
		t.Fatal(err)
	}
	want := []BIRDProtocol{
		{Name: "device1", Proto: "Device", State: "up"},
		{Name: "direct1", Proto: "Direct", State: "up"},
		{Name: "kernel1", Proto: "Kernel", State: "up"},
		{Name: "static1", Proto: "Static", State: "up"},
		{Name: "leaf2", Proto: "BGP", State: "up", Info: "Established"},
		{Name: "hv1", Proto: "BGP", State: "start", Info: "Connect Socket: Connection refused"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	if _, err := parseBIRDProtocols("BIRD 2.0.12 ready.\nsyntax error\n"); err == nil {
		t.Error("no error for output without a header line")
	}
}

func TestBIRDConfLogPointsIntoTheRunDirectory(t *testing.T) {
	const logFile = "/run/lab/leaf1/bird.log"
	withLog := "router id 192.0.2.1;\nlog \"/var/log/bird.log\" all;\nprotocol device {}\n"
	got := string(birdConf([]byte(withLog), logFile))
	if want := "log \"" + logFile + "\" all;"; !strings.Contains(got, want) || strings.Contains(got, "/var/log/bird.log") {
		t.Errorf("log statement not redirected:\n%s", got)
	}
	got = string(birdConf([]byte("router id 192.0.2.1;\n"), logFile))
	if !strings.Contains(got, "log \""+logFile+"\" all;") {
		t.Errorf("no log statement added:\n%s", got)
	}
}
