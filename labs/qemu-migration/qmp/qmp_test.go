package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeQEMU serves one QMP connection on a unix socket: the greeting, then
// answers from handle, which may also send events, and closes the
// connection when handle says so (QEMU quitting).
func fakeQEMU(t *testing.T, handle func(cmd map[string]any, send func(string)) (hangUp bool)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		send := func(s string) { _, _ = c.Write([]byte(s + "\n")) }
		send(`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`)
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var cmd map[string]any
			if json.Unmarshal(sc.Bytes(), &cmd) != nil {
				return
			}
			if cmd["execute"] == "qmp_capabilities" {
				send(`{"return": {}, "id": ` + quote(cmd["id"]) + `}`)
				continue
			}
			if handle(cmd, send) {
				return
			}
		}
	}()
	return path
}

func quote(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExecuteMatchesAnswersAndDeliversEvents(t *testing.T) {
	path := fakeQEMU(t, func(cmd map[string]any, send func(string)) bool {
		id := quote(cmd["id"])
		switch cmd["execute"] {
		case "query-migrate":
			// An event arrives between the command and its answer.
			send(`{"timestamp": {"seconds": 1700000000, "microseconds": 250}, "event": "MIGRATION", "data": {"status": "pre-switchover"}}`)
			send(`{"return": {"status": "completed", "downtime": 12, "total-time": 345, "setup-time": 2}, "id": ` + id + `}`)
		case "migrate-continue":
			args, _ := cmd["arguments"].(map[string]any)
			if args["state"] != "pre-switchover" {
				send(`{"error": {"class": "GenericError", "desc": "bad state"}, "id": ` + id + `}`)
				return false
			}
			send(`{"return": {}, "id": ` + id + `}`)
		default:
			send(`{"error": {"class": "CommandNotFound", "desc": "The command ` + cmd["execute"].(string) + ` has not been found"}, "id": ` + id + `}`)
		}
		return false
	})
	c := dial(t, path)
	events := c.Subscribe()
	ctx := context.Background()

	var info struct {
		Status   string `json:"status"`
		Downtime int    `json:"downtime"`
	}
	if err := c.Execute(ctx, "query-migrate", nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Status != "completed" || info.Downtime != 12 {
		t.Errorf("query-migrate = %+v, want completed with 12 ms downtime", info)
	}
	select {
	case ev := <-events:
		want := time.Unix(1700000000, 250_000)
		if ev.Name != "MIGRATION" || !ev.Time.Equal(want) || string(ev.Data) != `{"status": "pre-switchover"}` {
			t.Errorf("event = %s at %s data %s, want MIGRATION at %s", ev.Name, ev.Time, ev.Data, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event delivered")
	}

	if err := c.Execute(ctx, "migrate-continue", map[string]any{"state": "pre-switchover"}, nil); err != nil {
		t.Errorf("migrate-continue: %v", err)
	}
	err := c.Execute(ctx, "migrate-continue", map[string]any{"state": "active"}, nil)
	var qerr *Error
	if !errors.As(err, &qerr) || qerr.Class != "GenericError" || qerr.Command != "migrate-continue" {
		t.Errorf("error answer = %v, want a GenericError from migrate-continue", err)
	}
	if err := c.Execute(ctx, "no-such-command", nil, nil); !errors.As(err, &qerr) || qerr.Class != "CommandNotFound" {
		t.Errorf("unknown command: %v, want CommandNotFound", err)
	}
}

// QEMU quits: it answers `quit`, sends SHUTDOWN and closes the socket.
// Subscribers see the event, then their channel closes; Done closes; later
// commands fail with ErrClosed.
func TestQEMUQuits(t *testing.T) {
	path := fakeQEMU(t, func(cmd map[string]any, send func(string)) bool {
		send(`{"return": {}, "id": ` + quote(cmd["id"]) + `}`)
		send(`{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}`)
		return true
	})
	c := dial(t, path)
	events := c.Subscribe()
	if err := c.Execute(context.Background(), "quit", nil, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	timeout := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case ev, ok := <-events:
			if ok {
				names = append(names, ev.Name)
			}
			open = ok
		case <-timeout:
			t.Fatalf("the event channel stayed open after QEMU hung up (events %v)", names)
		}
	}
	if len(names) != 1 || names[0] != "SHUTDOWN" {
		t.Errorf("events %v, want [SHUTDOWN]", names)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after QEMU hung up")
	}
	if err := c.Execute(context.Background(), "query-status", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("command after hang-up: %v, want ErrClosed", err)
	}
}

func TestDialGivesUpWithoutQEMU(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "absent.sock")); err == nil {
		t.Fatal("Dial succeeded without a QMP socket")
	}
}
