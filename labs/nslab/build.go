package nslab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// modulePath is the module whose commands Build compiles.
const modulePath = "github.com/roamd/roamd"

// Binaries are the roamd and roamctl executables a lab runs.
type Binaries struct {
	Roamd   string
	Roamctl string
}

// FindModuleRoot walks up from dir to the directory holding roamd's go.mod.
func FindModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s source tree above %s", modulePath, dir)
		}
	}
}

// GoCommand returns the go command: the one on PATH, else the toolchain
// this program was built with.
func GoCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", errors.New("the go command is not on PATH: install Go (e.g. apt-get install golang) or add its bin directory to PATH")
}

// Build compiles ./cmd/roamd and ./cmd/roamctl of the module at root into
// outDir.
func Build(ctx context.Context, root, outDir string) (Binaries, error) {
	gocmd, err := GoCommand()
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Roamd: filepath.Join(outDir, "roamd"), Roamctl: filepath.Join(outDir, "roamctl")}
	for _, c := range []struct{ out, pkg string }{{b.Roamd, "./cmd/roamd"}, {b.Roamctl, "./cmd/roamctl"}} {
		cmd := exec.CommandContext(ctx, gocmd, "build", "-o", c.out, c.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("building %s (go build -o %s %s): %w\n%s", c.pkg, c.out, c.pkg, err, strings.TrimSpace(string(out)))
		}
	}
	return b, nil
}

// BuildTemp builds roamd and roamctl of the module at root (Build) into a
// new temporary directory; remove deletes that directory.
func BuildTemp(ctx context.Context, root string) (b Binaries, remove func(), err error) {
	dir, err := os.MkdirTemp("", "roamd-bin-")
	if err != nil {
		return Binaries{}, func() {}, err
	}
	remove = func() { os.RemoveAll(dir) }
	if b, err = Build(ctx, root, dir); err != nil {
		remove()
		return Binaries{}, func() {}, err
	}
	return b, remove, nil
}
