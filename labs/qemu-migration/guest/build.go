package guest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/roamd/roamd/labs/nslab"
)

// Options configure Build.
type Options struct {
	// CacheDir holds kernels and initramfs images between runs. Default:
	// os.UserCacheDir()/roamd-lab.
	CacheDir string
	// SourceDir is the roamd source tree the agent is built from. Default:
	// the tree above the working directory.
	SourceDir string
	// KernelPackage is the Debian kernel package to use, e.g.
	// linux-image-6.1.0-56-amd64. Default: the one linux-image-amd64
	// depends on.
	KernelPackage string
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// Image is a bootable guest.
type Image struct {
	Config Config
	Kernel *Kernel
	// Initrd is the initramfs (an uncompressed newc archive).
	Initrd string
	// Cmdline is the kernel command line.
	Cmdline string
}

// DefaultCacheDir is where Build caches by default.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(d, "roamd-lab"), nil
}

// Build returns the guest image for cfg, building what the cache lacks: the
// kernel (downloaded once per package version), the agent (go build, which
// has its own cache) and the initramfs (once per content). Without package
// lists (apt-cache fails) it uses the most recent cached kernel.
func Build(ctx context.Context, cfg Config, o Options) (*Image, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var err error
	if o.CacheDir == "" {
		if o.CacheDir, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	if o.SourceDir == "" {
		if o.SourceDir, err = nslab.FindModuleRoot("."); err != nil {
			return nil, fmt.Errorf("finding the source tree to build the guest agent from: %w", err)
		}
	}

	var k *Kernel
	pkg, err := CurrentKernel(ctx, o.KernelPackage)
	if err != nil {
		cached := cachedKernels(o.CacheDir)
		if len(cached) == 0 || o.KernelPackage != "" {
			return nil, fmt.Errorf("choosing the guest kernel: %w", err)
		}
		k = cached[0]
		log.Warn("apt-cache failed; using the cached guest kernel", "package", k.Package.String(), "err", err)
	} else if k, err = fetchKernel(ctx, o.CacheDir, pkg, log); err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp("", "roamd-guest-agent-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	agent := filepath.Join(tmp, "agent")
	if err := buildAgent(ctx, o.SourceDir, agent); err != nil {
		return nil, err
	}
	initrd, err := buildInitramfs(ctx, o.CacheDir, k, cfg, agent)
	if err != nil {
		return nil, fmt.Errorf("building the guest initramfs: %w", err)
	}
	log.Debug("guest image ready", "kernel", k.Release, "initrd", initrd)
	return &Image{Config: cfg, Kernel: k, Initrd: initrd, Cmdline: Cmdline}, nil
}
