package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/roamd/roamd/labs/nslab"
)

// agentPackage is the guest agent's package path in the source tree.
const agentPackage = "./labs/qemu-migration/guest/agent"

// buildAgent compiles the guest agent, statically, into out.
func buildAgent(ctx context.Context, sourceDir, out string) error {
	gocmd, err := nslab.GoCommand()
	if err != nil {
		return fmt.Errorf("building the guest agent: %w", err)
	}
	cmd := exec.CommandContext(ctx, gocmd, "build", "-trimpath", "-ldflags=-s -w", "-o", out, agentPackage)
	cmd.Dir = sourceDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the guest agent (go build %s in %s): %w\n%s", agentPackage, sourceDir, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// staticBusybox returns the path of a statically linked busybox (the
// busybox-static package): the guest has no libc to load a dynamic one.
func staticBusybox() (string, error) {
	p, err := exec.LookPath("busybox")
	if err != nil {
		return "", errors.New("busybox not found: apt-get install busybox-static")
	}
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: apt-get install busybox-static", p)
		}
	}
	return p, nil
}

// file is one entry of the initramfs.
type file struct {
	name string // path inside the guest, without a leading slash
	data []byte // nil for a directory
	mode os.FileMode
}

// buildInitramfs writes the guest's initramfs into the cache (named by the
// hash of its contents) unless it is there already, and returns its path.
func buildInitramfs(ctx context.Context, cacheDir string, k *Kernel, cfg Config, agent string) (string, error) {
	busybox, err := staticBusybox()
	if err != nil {
		return "", err
	}
	initScript, err := cfg.InitScript()
	if err != nil {
		return "", err
	}
	files := []file{
		{name: "bin", mode: 0o755},
		{name: "dev", mode: 0o755},
		{name: "lib", mode: 0o755},
		{name: "lib/modules", mode: 0o755},
		{name: "proc", mode: 0o755},
		{name: "sys", mode: 0o755},
		{name: "init", data: initScript, mode: 0o755},
	}
	for _, src := range []struct{ name, path string }{{"bin/busybox", busybox}, {"bin/agent", agent}} {
		data, err := os.ReadFile(src.path)
		if err != nil {
			return "", err
		}
		files = append(files, file{name: src.name, data: data, mode: 0o755})
	}
	for _, m := range Modules {
		data, err := os.ReadFile(filepath.Join(k.ModuleDir, m+".ko"))
		if err != nil {
			return "", err
		}
		files = append(files, file{name: "lib/modules/" + m + ".ko", data: data, mode: 0o644})
	}

	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s %o %d\n", f.name, f.mode, len(f.data))
		h.Write(f.data)
	}
	dir := filepath.Join(cacheDir, "initramfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "initrd-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio")
	defer pruneInitramfs(dir, out)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}

	stage, err := os.MkdirTemp(dir, ".stage-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	var list bytes.Buffer
	for _, f := range files {
		p := filepath.Join(stage, filepath.FromSlash(f.name))
		if f.data == nil {
			err = os.Mkdir(p, f.mode)
		} else {
			err = os.WriteFile(p, f.data, f.mode)
		}
		if err != nil {
			return "", err
		}
		list.WriteString(f.name + "\n")
	}
	tmp, err := os.CreateTemp(dir, ".initrd-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, busybox, "cpio", "-o", "-H", "newc")
	cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = stage, &list, tmp, &stderr
	err = cmd.Run()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("busybox cpio -o -H newc: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// initramfsMaxAge is how long an initramfs nobody used stays in the cache:
// every change of the init script or the agent makes a new one, and
// several configurations may be in use at once (a benchmark's guest
// differs from the tests').
const initramfsMaxAge = 7 * 24 * time.Hour

// pruneInitramfs marks the image in use (its modification time) and
// removes images unused for initramfsMaxAge.
func pruneInitramfs(dir, inUse string) {
	now := time.Now()
	_ = os.Chtimes(inUse, now, now)
	old, _ := filepath.Glob(filepath.Join(dir, "initrd-*.cpio"))
	for _, p := range old {
		if st, err := os.Stat(p); err == nil && p != inUse && now.Sub(st.ModTime()) > initramfsMaxAge {
			_ = os.Remove(p)
		}
	}
}
