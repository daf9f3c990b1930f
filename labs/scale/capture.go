package scale

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roamd/roamd/labs/nstest"
)

// Capture is tcpdump recording every interface of a namespace (-i any) with
// the kernel's nanosecond timestamps: the frame entering a VM port and the
// UPDATE leaving the uplink are stamped by the same clock, outside roamd.
type Capture struct {
	cmd     *exec.Cmd
	path    string
	stderr  *os.File
	errPath string
	done    chan struct{}
}

// StartCapture starts tcpdump in ns with a BPF filter and returns once it
// listens. Cleanup stops it if the test did not.
func StartCapture(tb testing.TB, ns *nstest.NS, filter string) *Capture {
	tb.Helper()
	dir := tb.TempDir()
	c := &Capture{path: filepath.Join(dir, "capture.pcap"), errPath: filepath.Join(dir, "tcpdump.err"), done: make(chan struct{})}
	var err error
	if c.stderr, err = os.Create(c.errPath); err != nil {
		tb.Fatal(err)
	}
	// -B: a 64 MiB ring, so a burst of thousands of frames is not dropped.
	// --immediate-mode: without it libpcap reads the ring by blocks, and
	// the packets of the last, unfinished block are lost when tcpdump
	// stops. (The timestamps are the kernel's either way.)
	c.cmd = exec.Command("ip", "netns", "exec", ns.Name, "tcpdump", "-i", "any", "-n", "-s", "0", "-B", "65536",
		"--immediate-mode", "--time-stamp-precision=nano", "-w", c.path, filter)
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("starting tcpdump: %v", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	tb.Cleanup(c.end)
	err = Poll(tb.Context(), 10*time.Second, "tcpdump to listen", func() (bool, error) {
		b, _ := os.ReadFile(c.errPath)
		select {
		case <-c.done:
			return false, fmt.Errorf("tcpdump exited: %s", b)
		default:
		}
		return strings.Contains(string(b), "listening on"), nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// end stops tcpdump (SIGINT makes it flush its file) and waits for it.
func (c *Capture) end() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.stderr.Close()
}

var droppedRE = regexp.MustCompile(`(\d+) packets dropped by kernel`)

// Stop ends the capture and returns the packets and how many the kernel
// dropped (the capture is incomplete when that is not zero).
func (c *Capture) Stop() ([]Packet, int, error) {
	c.end()
	b, _ := os.ReadFile(c.errPath)
	dropped := 0
	if m := droppedRE.FindSubmatch(b); m != nil {
		dropped, _ = strconv.Atoi(string(m[1]))
	}
	f, err := os.Open(c.path)
	if err != nil {
		return nil, dropped, err
	}
	defer f.Close()
	pkts, err := ReadPcap(bufio.NewReaderSize(f, 1<<20))
	return pkts, dropped, err
}
