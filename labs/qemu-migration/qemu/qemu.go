package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/roamd/roamd/labs/qemu-migration/guest"
	"github.com/roamd/roamd/labs/qemu-migration/qmp"
)

// Binary is the QEMU system emulator the lab runs.
const Binary = "qemu-system-x86_64"

// Options configure one QEMU process.
type Options struct {
	// Name names the process's files in Dir (<name>.qmp, <name>.serial,
	// <name>.log) and the guest (-name).
	Name string
	// NetNS is the network namespace QEMU runs in (and creates its tap in).
	NetNS string
	Image *guest.Image
	// Tap is the name of the tap QEMU creates for the guest's NIC.
	Tap string
	// MemoryMiB is the guest's RAM (default 128).
	MemoryMiB int
	// NoGuestAnnounce turns the virtio guest announcement off
	// (guest_announce=off): after a migration only QEMU's own RARPs
	// announce the guest, not its gratuitous ARP and unsolicited NA. Source
	// and destination of a migration must agree.
	NoGuestAnnounce bool
	// Incoming makes this a migration destination listening on this unix
	// socket path; empty boots the guest.
	Incoming string
	// Dir holds the QMP socket, the serial log and QEMU's own output.
	Dir string
}

// Instance is a running QEMU.
type Instance struct {
	Options
	QMP *qmp.Client
	// QMPSocket, SerialLog and Log are the files of this instance.
	QMPSocket, SerialLog, Log string
	// Started is when the process was started.
	Started time.Time

	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	stopOnce sync.Once
	stopErr  error
}

// Args returns QEMU's command line (without the binary) for o.
func Args(o Options, qmpSocket, serialLog string) []string {
	mem := o.MemoryMiB
	if mem == 0 {
		mem = 128
	}
	nic := fmt.Sprintf("virtio-net-pci,netdev=n0,mac=%s,romfile=", o.Image.Config.MAC)
	if o.NoGuestAnnounce {
		nic += ",guest_announce=off"
	}
	args := []string{
		"-name", "guest=" + o.Name,
		"-accel", "tcg",
		"-machine", "pc",
		"-m", strconv.Itoa(mem),
		"-smp", "1",
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-no-reboot",
		"-kernel", o.Image.Kernel.Vmlinux,
		"-initrd", o.Image.Initrd,
		"-append", o.Image.Cmdline,
		"-netdev", "tap,id=n0,ifname=" + o.Tap + ",script=no,downscript=no",
		"-device", nic,
		"-qmp", "unix:" + qmpSocket + ",server=on,wait=off",
		"-serial", "file:" + serialLog,
	}
	if o.Incoming != "" {
		args = append(args, "-incoming", "unix:"+o.Incoming)
	}
	return args
}

// Start starts QEMU and connects to its QMP socket. A destination
// (o.Incoming) is listening for the migration stream when Start returns.
func Start(ctx context.Context, o Options) (*Instance, error) {
	switch {
	case o.Name == "" || o.NetNS == "" || o.Tap == "" || o.Dir == "" || o.Image == nil:
		return nil, errors.New("qemu: Name, NetNS, Tap, Dir and Image are required")
	case len(o.Tap) > 15:
		return nil, fmt.Errorf("qemu: tap name %q longer than 15 characters", o.Tap)
	}
	if _, err := exec.LookPath(Binary); err != nil {
		return nil, fmt.Errorf("%s not found: apt-get install qemu-system-x86", Binary)
	}
	i := &Instance{
		Options:   o,
		QMPSocket: filepath.Join(o.Dir, o.Name+".qmp"),
		SerialLog: filepath.Join(o.Dir, o.Name+".serial"),
		Log:       filepath.Join(o.Dir, o.Name+".log"),
		done:      make(chan struct{}),
	}
	for _, f := range []string{i.QMPSocket, i.SerialLog, o.Incoming} {
		if f != "" {
			_ = os.Remove(f) // left by an earlier instance of the same name
		}
	}
	logf, err := os.Create(i.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	i.cmd = exec.Command("ip", append([]string{"netns", "exec", o.NetNS, Binary}, Args(o, i.QMPSocket, i.SerialLog)...)...)
	i.cmd.Stdout, i.cmd.Stderr = logf, logf
	// ip netns exec execs QEMU in place: QEMU itself gets the signal if
	// this process dies without tearing down.
	i.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	i.Started = time.Now()
	if err := i.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting QEMU %s in %s: %w", o.Name, o.NetNS, err)
	}
	go func() {
		i.err = i.cmd.Wait()
		close(i.done)
	}()

	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-i.done:
			cancel()
		case <-dctx.Done():
		}
	}()
	if i.QMP, err = qmp.Dial(dctx, i.QMPSocket); err != nil {
		err = i.explain(err)
		_ = i.Stop(0)
		return nil, err
	}
	if o.Incoming != "" {
		if _, err := os.Stat(o.Incoming); err != nil {
			_ = i.Stop(0)
			return nil, fmt.Errorf("QEMU %s is not listening on %s: %w", o.Name, o.Incoming, err)
		}
	}
	return i, nil
}

// explain adds QEMU's exit status and output to an error when it exited.
func (i *Instance) explain(err error) error {
	select {
	case <-i.done:
		out, _ := os.ReadFile(i.Log)
		return fmt.Errorf("QEMU %s exited (%v): %s", i.Name, i.err, strings.TrimSpace(string(out)))
	default:
		return err
	}
}

// Pid is QEMU's process id.
func (i *Instance) Pid() int { return i.cmd.Process.Pid }

// Done is closed when QEMU has exited.
func (i *Instance) Done() <-chan struct{} { return i.done }

// Stop ends QEMU: `quit` over QMP, SIGKILL if it is still running after
// grace (at once for 0). It is safe to call more than once and from
// several goroutines.
func (i *Instance) Stop(grace time.Duration) error {
	i.stopOnce.Do(func() {
		if grace > 0 && i.QMP != nil {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			_ = i.QMP.Execute(ctx, "quit", nil, nil)
			select {
			case <-i.done:
			case <-ctx.Done():
			}
			cancel()
		}
		select {
		case <-i.done:
		default:
			_ = i.cmd.Process.Kill()
			<-i.done
			if grace > 0 {
				i.stopErr = fmt.Errorf("QEMU %s did not quit within %s; killed", i.Name, grace)
			}
		}
		if i.QMP != nil {
			i.QMP.Close()
		}
		_ = os.Remove(i.QMPSocket)
		if i.Incoming != "" {
			_ = os.Remove(i.Incoming)
		}
	})
	return i.stopErr
}

// WaitSerial waits until the guest has printed msg on its serial console.
func (i *Instance) WaitSerial(ctx context.Context, msg string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(i.SerialLog); err == nil && bytes.Contains(b, []byte(msg)) {
			return nil
		}
		select {
		case <-i.done:
			return fmt.Errorf("QEMU %s exited (%v) before the guest printed %q; console:\n%s", i.Name, i.err, msg, i.SerialTail(20))
		case <-ctx.Done():
			return fmt.Errorf("waiting for the guest in %s to print %q: %w; console:\n%s", i.Name, msg, context.Cause(ctx), i.SerialTail(20))
		case <-t.C:
		}
	}
}

// SerialTail returns the last n lines of the guest's console.
func (i *Instance) SerialTail(n int) string {
	b, _ := os.ReadFile(i.SerialLog)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Status returns the guest's run state (query-status): running, paused,
// inmigrate, postmigrate, ...
func (i *Instance) Status(ctx context.Context) (string, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := i.QMP.Execute(ctx, "query-status", nil, &st)
	return st.Status, err
}
