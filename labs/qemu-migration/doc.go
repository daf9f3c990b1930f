// Package qemumigration runs real QEMU live migrations of a real guest
// between the two hypervisors of a fabric and measures what the network
// adds to them.
//
// # The lab
//
// Up builds the guest (package guest: a Debian kernel and a busybox
// initramfs whose agent answers the probe, cached between runs), brings a
// Fabric up with the namespace runner (labs/nslab), boots the guest under
// QEMU (package qemu) in the fabric's first hypervisor namespace on a tap
// named Tap, and waits until the network delivers to it. RoamdFabric, the
// default, is the two-site fabric (labs/two-site: FRR leaves, roamd on both
// hypervisors, the client under leaf1) with the guest in place of the VM
// namespace: the topology qemu-migration.clab.yml binds two-site's own node
// files.
//
// # Migrating
//
// Lab.Migrate moves the guest to the other hypervisor: it starts the
// destination QEMU (-incoming on a unix socket), waits for its tap and the
// fabric's PortUp hook, runs the Strategy's Prepare, migrates over QMP
// (qemu.Migrate: max-bandwidth raised, pause-before-switchover if the
// strategy wants it, the Strategy's Switch at `pre-switchover`, then
// migrate-continue; migrate_cancel on a timeout), waits for the fabric's
// Settled hook, runs the Strategy's Settle, quits the source QEMU (after
// the network settled, see Options.QuitSourceEarly), and checks that probe
// replies flow and the TCP session answers. Lab.Run alternates strategies
// under probe traffic (labs/nslab/probe: 1 kHz UDP and one TCP session
// from the fabric's client), N migrations each; Summarise cuts the probe
// record into one window per migration (from its start to the next one's)
// and PrintTable and PrintMigrations report them.
//
// Every migration records QEMU's side (query-migrate's downtime and total
// time, queried again after `completed`; the STOP, pre-switchover and
// RESUME events with QEMU's timestamps), when the network was switched
// (Switched: the Switch hook returned), when the destination claimed the
// guest (roamd's own account), probes lost in its window and among those
// sent after the switch, the runs of lost probes, the largest delay of the
// replies that came, and whether the TCP session survived.
//
// # Strategies
//
// A Strategy is how the network follows the guest: Prepare (destination
// listening, its tap up), Switch (source paused at pre-switchover, only if
// PauseBeforeSwitchover), Settle (guest running on the destination, source
// QEMU gone: wait until the network has settled and note what is known);
// a Cleaner also undoes its changes after each migration. Three come with
// the package, all on RoamdFabric:
//
//   - Switchover: roamd's lossless switchover. `arrive` hint to the
//     destination's roamd in Prepare (it stages the tap), `switch` hint at
//     pre-switchover, both over one persistent API connection (Net.API).
//   - RARPOnly: nothing tells roamd; the destination's roamd claims the
//     guest on QEMU's RARP (run the lab with Options.NoGuestAnnounce to
//     take the guest's own gratuitous ARP away), as with vMotion.
//   - ByHand: the reference. The ideal route switch, made by hand with
//     policy routing on every router of the path at pre-switchover, with no
//     routing protocol involved; what it loses is the floor of any
//     switchover (what reaches the paused source before the switch).
//
// Their Settle step records roamd's own account of the arrival
// (RecordRoamdArrival), after RoamdFabric's Settled hook waited until both
// leaves route to the new hypervisor, neither holds a path from the old
// one, roamd announces the guest at the new site and the old site has no
// roamd route left (its forwarding hold is over), so every migration
// starts from a settled fabric.
//
// # Other fabrics
//
// A benchmark compares roamd with other ways to move the guest (a
// stretched L2 segment, do-it-yourself host routes, EVPN, BIRD instead of
// FRR) by giving Up another Fabric: its topology files (Extract), its
// client and two hypervisor nodes, and the hooks Ready, PortUp (e.g. attach
// the tap to a bridge), Placed and Settled (how that fabric shows it routes
// to the guest's new place). roamd's strategies run unchanged on any fabric
// with roamd on the hypervisors; a baseline brings Strategies of its own
// (e.g. Prepare adds the /32 by hand). The driver, the traffic, the probe
// windows and the report are the same for all of them; several Labs (one
// per fabric) can feed one table, since PrintTable groups migrations by
// strategy name. Migrations of one Lab run one at a time.
//
// # Tests
//
// TestLiveMigration (root, about a minute) migrates the guest three times
// in one lab: RARP-only hv1→hv2 with guest_announce=off, then the
// switchover hv2→hv1 and hv1→hv2, and checks after each that the fabric
// routes to the new hypervisor and not the old one, that roamd found the
// guest the expected way, that its route leaves through the tap, that the
// TCP session survived, and that no probe sent after a switch was lost.
// The benchmark is the qemu-migrate command (cmd/qemu-migrate), outside CI.
package qemumigration
