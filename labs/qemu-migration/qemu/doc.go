// Package qemu runs the lab guest under QEMU inside a network namespace and
// live-migrates it between two QEMU processes.
//
// Start runs qemu-system-x86_64 (TCG: the lab machines cannot use KVM) in
// the namespace with `ip netns exec`, the guest's NIC on a tap QEMU creates
// there under the given name (`-netdev tap,ifname=…,script=no`), QMP on a
// unix socket and the serial console in a file. A destination is started
// the same way with `-incoming unix:PATH`; a unix socket path is visible
// from every namespace, so the migration stream needs no network. QEMU dies
// with the process that started it (PR_SET_PDEATHSIG), and Stop ends it on
// every other path.
//
// Migrate drives one migration over QMP the way libvirt does: it turns on
// migration events, raises max-bandwidth (QEMU 7.2 defaults to 32 MiB/s),
// optionally sets pause-before-switchover on the source, issues `migrate`
// and follows the events. At `pre-switchover` (the source's vCPUs stopped,
// the last RAM and device state not yet sent) it calls the caller's
// AtPause and then `migrate-continue`; if the migration does not complete in
// time it sends `migrate_cancel`, which resumes the source, so the guest is
// never left paused. The report carries QEMU's own timestamps (STOP,
// pre-switchover, RESUME on the destination) and query-migrate's figures,
// queried again after `completed` because the first answer can report 0 ms
// downtime.
package qemu
