package nslab

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// runExec runs the node's exec lines in order inside its namespace. Runs of
// plain "ip OBJECT ..." lines go through one "ip -batch" (each ip process
// costs milliseconds); anything else runs under sh -c.
func (n *Node) runExec(ctx context.Context) error {
	lines := n.spec.Exec
	for i := 0; i < len(lines); {
		if !batchable(lines[i]) {
			if _, err := n.Run(ctx, "sh", "-c", lines[i]); err != nil {
				return fmt.Errorf("node %s exec[%d] %q: %w", n.Name, i, lines[i], err)
			}
			i++
			continue
		}
		j := i
		for j < len(lines) && batchable(lines[j]) {
			j++
		}
		if err := n.ipBatch(ctx, lines[i:j], i); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// batchable reports whether an exec line is an ip command ip -batch can run
// as is: no global options and nothing a shell would interpret.
func batchable(line string) bool {
	f := strings.Fields(line)
	return len(f) >= 3 && f[0] == "ip" && !strings.HasPrefix(f[1], "-") &&
		!strings.ContainsAny(line, "|;&$`<>\"'\\*?#")
}

var batchFailed = regexp.MustCompile(`Command failed -:(\d+)`)

func (n *Node) ipBatch(ctx context.Context, lines []string, first int) error {
	var in strings.Builder
	for _, l := range lines {
		in.WriteString(strings.TrimPrefix(strings.TrimSpace(l), "ip "))
		in.WriteByte('\n')
	}
	cmd := n.Command(ctx, "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	idx := first
	if m := batchFailed.FindSubmatch(out); m != nil {
		if k, e := strconv.Atoi(string(m[1])); e == nil && k >= 1 && k <= len(lines) {
			idx = first + k - 1
		}
	}
	return fmt.Errorf("node %s exec[%d] %q: %w: %s", n.Name, idx, n.spec.Exec[idx], err, strings.TrimSpace(string(out)))
}
