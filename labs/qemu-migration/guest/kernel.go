package guest

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// metaPackage is the Debian package that depends on the current kernel.
const metaPackage = "linux-image-amd64"

// KernelPackage is a Debian kernel package at one version.
type KernelPackage struct {
	Name    string // linux-image-6.1.0-56-amd64
	Version string // 6.1.192-2
}

func (p KernelPackage) String() string { return p.Name + "=" + p.Version }

// dir is the package's cache directory name.
func (p KernelPackage) dir() string {
	return strings.NewReplacer(":", "_", "/", "_").Replace(p.Name + "_" + p.Version)
}

// Kernel is a guest kernel extracted from its package.
type Kernel struct {
	Package KernelPackage
	// Release is the kernel release (uname -r), e.g. 6.1.0-56-amd64.
	Release string
	// Vmlinux is the uncompressed kernel, an ELF with a PVH entry point.
	Vmlinux string
	// ModuleDir holds Modules as <name>.ko.
	ModuleDir string
}

var (
	dependsImage = regexp.MustCompile(`(?m)^Depends:.*?\b(linux-image-[0-9][^\s,()]*)(?:\s*\(=\s*([^)\s]+)\))?`)
	versionField = regexp.MustCompile(`(?m)^Version:\s*(\S+)`)
)

// CurrentKernel asks apt-cache which kernel package linux-image-amd64
// depends on, and its version; with name set, it asks for that package's
// candidate version instead.
func CurrentKernel(ctx context.Context, name string) (KernelPackage, error) {
	if name != "" {
		out, err := aptCacheShow(ctx, name)
		if err != nil {
			return KernelPackage{}, err
		}
		m := versionField.FindSubmatch(out)
		if m == nil {
			return KernelPackage{}, fmt.Errorf("apt-cache show %s: no Version field", name)
		}
		return KernelPackage{Name: name, Version: string(m[1])}, nil
	}
	out, err := aptCacheShow(ctx, metaPackage)
	if err != nil {
		return KernelPackage{}, err
	}
	pkg, ok := parseDepends(out)
	if !ok {
		return KernelPackage{}, fmt.Errorf("apt-cache show %s: no linux-image package among its dependencies", metaPackage)
	}
	if pkg.Version == "" {
		return CurrentKernel(ctx, pkg.Name)
	}
	return pkg, nil
}

// parseDepends finds the kernel package (and its exact version, if the
// dependency pins one) in the metapackage's apt-cache record.
func parseDepends(record []byte) (KernelPackage, bool) {
	m := dependsImage.FindSubmatch(record)
	if m == nil {
		return KernelPackage{}, false
	}
	return KernelPackage{Name: string(m[1]), Version: string(m[2])}, true
}

func aptCacheShow(ctx context.Context, pkg string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return nil, fmt.Errorf("apt-cache show %s: %v %s (package lists missing? run apt-get update)", pkg, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// fetchKernel returns the cached kernel of pkg, downloading and extracting
// the package first if it is not cached. A lock file keeps concurrent
// builds from downloading it twice.
func fetchKernel(ctx context.Context, cacheDir string, pkg KernelPackage, log *slog.Logger) (*Kernel, error) {
	base := filepath.Join(cacheDir, "kernel")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	final := filepath.Join(base, pkg.dir())
	if k, err := loadKernel(final, pkg); err == nil {
		return k, nil
	}
	unlock, err := lockFile(filepath.Join(base, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if k, err := loadKernel(final, pkg); err == nil {
		return k, nil // another build extracted it meanwhile
	}

	tmp, err := os.MkdirTemp(base, ".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	log.Info("downloading the guest kernel", "package", pkg.String())
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg.String())
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w: %s", pkg, err, strings.TrimSpace(string(out)))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return nil, fmt.Errorf("apt-get download %s left %d .deb files", pkg, len(debs))
	}
	out := filepath.Join(tmp, "kernel")
	if err := extractKernel(ctx, debs[0], out); err != nil {
		return nil, fmt.Errorf("extracting %s: %w", pkg, err)
	}
	if err := os.Rename(out, final); err != nil {
		return nil, fmt.Errorf("caching the guest kernel: %w", err)
	}
	return loadKernel(final, pkg)
}

// loadKernel checks a cached kernel directory.
func loadKernel(dir string, pkg KernelPackage) (*Kernel, error) {
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return nil, err
	}
	k := &Kernel{Package: pkg, Release: strings.TrimSpace(string(rel)), Vmlinux: filepath.Join(dir, "vmlinux"), ModuleDir: filepath.Join(dir, "modules")}
	for _, f := range append([]string{k.Vmlinux}, moduleFiles(k.ModuleDir)...) {
		if _, err := os.Stat(f); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func moduleFiles(dir string) []string {
	var fs []string
	for _, m := range Modules {
		fs = append(fs, filepath.Join(dir, m+".ko"))
	}
	return fs
}

// cachedKernels returns the kernels in the cache, most recently extracted
// first, for a run without package lists.
func cachedKernels(cacheDir string) []*Kernel {
	dirs, _ := filepath.Glob(filepath.Join(cacheDir, "kernel", "linux-image-*"))
	type entry struct {
		k     *Kernel
		mtime time.Time
	}
	var es []entry
	for _, d := range dirs {
		name, version, _ := strings.Cut(filepath.Base(d), "_")
		k, err := loadKernel(d, KernelPackage{Name: name, Version: version})
		if err != nil {
			continue
		}
		if st, err := os.Stat(filepath.Join(d, "release")); err == nil {
			es = append(es, entry{k, st.ModTime()})
		}
	}
	slices.SortFunc(es, func(a, b entry) int { return b.mtime.Compare(a.mtime) })
	out := make([]*Kernel, len(es))
	for i, e := range es {
		out[i] = e.k
	}
	return out
}

// extractKernel reads the package's file system tarball (dpkg-deb
// --fsys-tarfile) and writes dir/vmlinux, dir/modules/<m>.ko and
// dir/release.
func extractKernel(ctx context.Context, deb, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	want := map[string]bool{}
	for _, m := range Modules {
		want[m+".ko"], want[m+".ko.xz"] = true, true
	}
	var release string
	var bzImage []byte
	found := map[string]bool{}
	tr := tar.NewReader(pipe)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			cancel()
			_ = cmd.Wait()
			return fmt.Errorf("reading the package: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		base := path.Base(name)
		switch {
		case h.Typeflag != tar.TypeReg:
		case path.Dir(name) == "boot" && strings.HasPrefix(base, "vmlinuz-"):
			release = strings.TrimPrefix(base, "vmlinuz-")
			if bzImage, err = io.ReadAll(tr); err != nil {
				return err
			}
		case strings.HasPrefix(name, "lib/modules/") && want[base]:
			data, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			mod := strings.TrimSuffix(base, ".xz")
			if strings.HasSuffix(base, ".xz") {
				if data, err = unxz(ctx, data); err != nil {
					return fmt.Errorf("decompressing %s: %w", name, err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "modules", mod), data, 0o644); err != nil {
				return err
			}
			found[strings.TrimSuffix(mod, ".ko")] = true
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, err, strings.TrimSpace(stderr.String()))
	}
	if bzImage == nil {
		return errors.New("no /boot/vmlinuz-* in the package")
	}
	for _, m := range Modules {
		if !found[m] {
			return fmt.Errorf("module %s not in the package (built in? the guest's init loads it)", m)
		}
	}
	vmlinux, err := decompressBzImage(ctx, bzImage)
	if err != nil {
		return err
	}
	if err := checkPVH(vmlinux); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "vmlinux"), vmlinux, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "release"), []byte(release+"\n"), 0o644)
}

// decompressBzImage returns the ELF kernel inside an x86 bzImage: the
// payload the boot protocol's header locates (payload_offset, payload_length,
// protocol 2.08+), decompressed.
func decompressBzImage(ctx context.Context, img []byte) ([]byte, error) {
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, errors.New("vmlinuz is not an x86 bzImage (no HdrS header)")
	}
	if v := binary.LittleEndian.Uint16(img[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("bzImage boot protocol %#x has no payload fields (want 2.08+)", v)
	}
	setupSects := int(img[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
	n := int(binary.LittleEndian.Uint32(img[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(img) {
		return nil, fmt.Errorf("bzImage payload [%d, +%d) outside the file (%d bytes)", off, n, len(img))
	}
	payload := img[off : off+n]
	if !bytes.HasPrefix(payload, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		return nil, fmt.Errorf("bzImage payload starts with % x: only xz is supported (Debian's format)", payload[:min(6, len(payload))])
	}
	return unxz(ctx, payload)
}

// unxz decompresses the first xz stream in data with the xz tool (the Go
// standard library has no xz; the bzImage payload ends with its size after
// the stream, hence --single-stream).
func unxz(ctx context.Context, data []byte) ([]byte, error) {
	if _, err := exec.LookPath("xz"); err != nil {
		return nil, errors.New("xz not found: apt-get install xz-utils")
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "xz", "--decompress", "--stdout", "--single-stream")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(data), &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("xz: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// xenElfnotePhys32Entry is the ELF note (owner "Xen") that marks a PVH entry
// point, which QEMU's -kernel needs to boot an ELF kernel directly.
const xenElfnotePhys32Entry = 18

// checkPVH reports whether the ELF kernel has a PVH entry point.
func checkPVH(vmlinux []byte) error {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return fmt.Errorf("the decompressed kernel is not an ELF file: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return err
		}
		for len(data) >= 12 {
			namesz := int(binary.LittleEndian.Uint32(data[0:]))
			descsz := int(binary.LittleEndian.Uint32(data[4:]))
			typ := binary.LittleEndian.Uint32(data[8:])
			nameEnd := 12 + align4(namesz)
			end := nameEnd + align4(descsz)
			if end > len(data) || namesz > len(data)-12 {
				break
			}
			if typ == xenElfnotePhys32Entry && string(bytes.TrimRight(data[12:12+namesz], "\x00")) == "Xen" {
				return nil
			}
			data = data[end:]
		}
	}
	return errors.New("the guest kernel has no PVH entry point (CONFIG_PVH): QEMU cannot boot its vmlinux")
}

func align4(n int) int { return (n + 3) &^ 3 }

// lockFile takes an exclusive lock on path (created if missing) and returns
// its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
