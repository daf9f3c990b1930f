// Package guest builds the lab's guest: a Debian kernel and a busybox
// initramfs whose only service is the probe's echo server, small enough to
// boot in a few seconds under TCG and to migrate in well under a second.
//
// Everything comes from Debian packages and from this source tree, nothing
// else is downloaded:
//
//   - The kernel is the one linux-image-amd64 depends on (apt-cache), fetched
//     with `apt-get download` and read with `dpkg-deb --fsys-tarfile`; it is
//     never installed on the host. From the package the build keeps the
//     bzImage's payload, decompressed (xz) into the ELF vmlinux: QEMU boots it
//     through its PVH entry point, which skips the bzImage's self-decompression
//     (several seconds under TCG). It also keeps the virtio network modules.
//   - The initramfs holds busybox from busybox-static, the modules, an init
//     script and the agent (./agent, built here with CGO_ENABLED=0). It is
//     written by `busybox cpio -o -H newc` (Debian has no cpio binary by
//     default).
//
// The init script mounts /proc and /sys, turns IPv6 duplicate address
// detection off, loads virtio_ring, virtio, virtio_pci_modern_dev,
// virtio_pci_legacy_dev, virtio_pci, failover, net_failover and virtio_net
// in that order, configures eth0 (the MAC is QEMU's: -device
// virtio-net-pci,mac=...) with the IPv4 and IPv6 addresses and default routes
// of the Config, and execs the agent, which announces the addresses and
// serves the UDP and TCP echo.
//
// Builds are cached under os.UserCacheDir()/roamd-lab: the kernel and its
// modules per kernel package and version, the initramfs per content hash
// (an image unused for a week goes with the next build).
// Every cache entry is written to a temporary name and renamed into place,
// so concurrent builds (several test packages at once) never see half a
// file.
package guest
