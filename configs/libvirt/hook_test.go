package libvirt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeRoamctl is a roamctl that records its arguments, one call per line,
// and fails when told to (as roamctl does when roamd refuses a hint).
const fakeRoamctl = `#!/bin/sh
echo "$*" >> "$FAKE_ROAMCTL_LOG"
echo "roamctl output must not reach libvirt"
if [ -n "${FAKE_ROAMCTL_FAIL:-}" ]; then
	echo "roamd is not running: no API socket" >&2
	exit 1
fi
`

// runHook runs the hook with args and the sample domain XML on stdin, with
// the fake roamctl first on PATH, and returns its standard output and the
// roamctl calls it made.
func runHook(t *testing.T, fail bool, args ...string) (stdout string, calls []string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "roamctl"), []byte(fakeRoamctl), 0o755); err != nil {
		t.Fatal(err)
	}
	xml, err := os.ReadFile(filepath.Join("testdata", "domain.xml"))
	if err != nil {
		t.Fatal(err)
	}
	callLog := filepath.Join(dir, "calls")
	cmd := exec.Command("./qemu", args...)
	cmd.Stdin = bytes.NewReader(xml)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "FAKE_ROAMCTL_LOG="+callLog)
	if fail {
		cmd.Env = append(cmd.Env, "FAKE_ROAMCTL_FAIL=1")
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("qemu %s: %v (stderr %q): the hook must always exit 0", strings.Join(args, " "), err, errOut.String())
	}
	if b, err := os.ReadFile(callLog); err == nil {
		calls = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	return out.String(), calls
}

func TestHookHints(t *testing.T) {
	// The sample names two taps (an explicit one and a generated vnet7) and
	// has one interface without a target device (no tap to stage yet).
	arrive := []string{
		"hint arrive --mac 52:54:00:10:00:10 --port tapweb1",
		"hint arrive --mac 52:54:00:10:00:11 --port vnet7",
	}
	depart := []string{
		"hint depart --mac 52:54:00:10:00:10",
		"hint depart --mac 52:54:00:10:00:11",
		"hint depart --mac 52:54:00:10:00:12",
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"web1", "migrate", "begin", "-"}, arrive},
		{[]string{"web1", "prepare", "begin", "-"}, arrive},
		{[]string{"web1", "start", "begin", "-"}, arrive},
		{[]string{"web1", "release", "end", "migrated"}, depart},
		{[]string{"web1", "release", "end", "-"}, depart}, // libvirt before 10.5.0
		{[]string{"web1", "started", "begin", "-"}, nil},
		{[]string{"web1", "stopped", "end", "-"}, nil},
		{[]string{"web1", "reconnect", "begin", "-"}, nil},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			stdout, calls := runHook(t, false, tc.args...)
			if diff := cmp.Diff(tc.want, calls); diff != "" {
				t.Errorf("roamctl calls (-want +got):\n%s", diff)
			}
			// At migrate begin libvirt takes standard output as the new
			// domain XML: anything there would break the migration.
			if stdout != "" {
				t.Errorf("the hook wrote %q to standard output", stdout)
			}
		})
	}
}

// roamd down or refusing: the migration must go on.
func TestHookSucceedsWhenRoamctlFails(t *testing.T) {
	stdout, calls := runHook(t, true, "web1", "migrate", "begin", "-")
	if len(calls) != 2 {
		t.Errorf("roamctl called %d times, want once per named tap: %q", len(calls), calls)
	}
	if stdout != "" {
		t.Errorf("the hook wrote %q to standard output", stdout)
	}
}
