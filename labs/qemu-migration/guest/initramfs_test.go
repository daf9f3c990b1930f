package guest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// readNewc lists a newc (SVR4, "070701") archive: file name → contents
// (directories map to nil).
func readNewc(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	pad := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if off+110 > len(data) || string(data[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(data[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("bad newc header at %d: %v", off, err)
			}
			return int(v)
		}
		mode, size, nameSize := field(1), field(6), field(11)
		name := string(data[off+110 : off+110+nameSize-1])
		off = pad(off + 110 + nameSize)
		if name == "TRAILER!!!" {
			return files
		}
		if mode&0o170000 == 0o040000 {
			files[name] = nil
		} else {
			files[name] = data[off : off+size]
		}
		off = pad(off + size)
	}
}

// The initramfs holds what the kernel and the init script need, is written
// once per content, and a changed input makes a new one.
func TestBuildInitramfs(t *testing.T) {
	if _, err := staticBusybox(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	k := &Kernel{ModuleDir: filepath.Join(dir, "modules")}
	if err := os.Mkdir(k.ModuleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, m := range Modules {
		if err := os.WriteFile(filepath.Join(k.ModuleDir, m+".ko"), []byte("module "+m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	agent := filepath.Join(dir, "agent")
	if err := os.WriteFile(agent, []byte("agent binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	ctx := context.Background()
	path, err := buildInitramfs(ctx, cache, k, DefaultConfig(), agent)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	files := readNewc(t, data)
	script, _ := DefaultConfig().InitScript()
	if string(files["init"]) != string(script) {
		t.Errorf("init = %q, want the Config's init script", files["init"])
	}
	if string(files["bin/agent"]) != "agent binary" {
		t.Errorf("bin/agent = %q", files["bin/agent"])
	}
	if len(files["bin/busybox"]) < 100000 {
		t.Errorf("bin/busybox has %d bytes: not the busybox binary", len(files["bin/busybox"]))
	}
	for _, m := range Modules {
		if string(files["lib/modules/"+m+".ko"]) != "module "+m {
			t.Errorf("lib/modules/%s.ko = %q", m, files["lib/modules/"+m+".ko"])
		}
	}
	for _, d := range []string{"proc", "sys", "dev"} {
		if c, ok := files[d]; !ok || c != nil {
			t.Errorf("no directory %s in the initramfs", d)
		}
	}

	again, err := buildInitramfs(ctx, cache, k, DefaultConfig(), agent)
	if err != nil || again != path {
		t.Errorf("second build: %s, %v; want the cached %s", again, err, path)
	}
	c := DefaultConfig()
	c.EchoPort = 7008
	other, err := buildInitramfs(ctx, cache, k, c, agent)
	if err != nil || other == path {
		t.Errorf("build for another echo port: %s, %v; want a new image", other, err)
	}

	// An image unused for longer than the cache keeps them goes with the
	// next build; one in use stays.
	stale := time.Now().Add(-initramfsMaxAge - time.Hour)
	if err := os.Chtimes(path, stale, stale); err != nil {
		t.Fatal(err)
	}
	if _, err := buildInitramfs(ctx, cache, k, c, agent); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("stale image %s still cached", path)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("image in use removed: %v", err)
	}
}
