// Package libvirt holds roamd's libvirt hook script (qemu) and its tests; it
// has no Go code of its own.
package libvirt
