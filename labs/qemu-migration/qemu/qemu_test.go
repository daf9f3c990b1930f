package qemu

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/roamd/roamd/labs/qemu-migration/guest"
)

func testImage() *guest.Image {
	return &guest.Image{
		Config:  guest.DefaultConfig(),
		Kernel:  &guest.Kernel{Vmlinux: "/cache/vmlinux"},
		Initrd:  "/cache/initrd.cpio",
		Cmdline: guest.Cmdline,
	}
}

// The destination of a migration with the guest announcement off: the
// command line a reader of LAB.md expects (TCG, no default devices, the tap
// QEMU creates, the fixed MAC, no option ROM, QMP and the console in files,
// -incoming on a unix socket).
func TestArgsDestination(t *testing.T) {
	o := Options{Name: "vm1-hv2", Image: testImage(), Tap: "tapvm1", NoGuestAnnounce: true, Incoming: "/run/x/migrate-1.sock"}
	want := []string{
		"-name", "guest=vm1-hv2",
		"-accel", "tcg",
		"-machine", "pc",
		"-m", "128",
		"-smp", "1",
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-no-reboot",
		"-kernel", "/cache/vmlinux",
		"-initrd", "/cache/initrd.cpio",
		"-append", guest.Cmdline,
		"-netdev", "tap,id=n0,ifname=tapvm1,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:10:00:10,romfile=,guest_announce=off",
		"-qmp", "unix:/run/x/vm1-hv2.qmp,server=on,wait=off",
		"-serial", "file:/run/x/vm1-hv2.serial",
		"-incoming", "unix:/run/x/migrate-1.sock",
	}
	if diff := cmp.Diff(want, Args(o, "/run/x/vm1-hv2.qmp", "/run/x/vm1-hv2.serial")); diff != "" {
		t.Errorf("Args (-want +got):\n%s", diff)
	}
}

// A guest that boots: no -incoming, the announcement left on, the memory
// given.
func TestArgsBoot(t *testing.T) {
	args := strings.Join(Args(Options{Name: "vm0-hv1", Image: testImage(), Tap: "tapvm1", MemoryMiB: 256}, "q", "s"), " ")
	for _, bad := range []string{"-incoming", "guest_announce"} {
		if strings.Contains(args, bad) {
			t.Errorf("boot command line has %s: %s", bad, args)
		}
	}
	if !strings.Contains(args, "-m 256 ") {
		t.Errorf("boot command line lacks -m 256: %s", args)
	}
}
