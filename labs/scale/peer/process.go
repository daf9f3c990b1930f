package peer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a peer running as a child process in a network namespace.
type Process struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer

	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every event
	exited  chan struct{}
	waitErr error
}

// Start runs the peer with cfg in the named network namespace. The current
// executable must call MaybeRun first thing (in TestMain).
func Start(namespace string, cfg Config) (*Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting peer: %w", err)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	p := &Process{changed: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", namespace, self)
	p.cmd.Env = append(os.Environ(), envConfig+"="+string(raw))
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting peer in %s: %w", namespace, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e Event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue // a stray line from the test framework
			}
			p.mu.Lock()
			p.events = append(p.events, e)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		err := p.cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// Events returns every event so far.
func (p *Process) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Wait feeds every event, from the first, to cond until cond returns true,
// and returns that event. It fails when ctx ends or the peer exits first.
func (p *Process) Wait(ctx context.Context, what string, cond func(Event) bool) (Event, error) {
	next := 0
	for {
		p.mu.Lock()
		evs, changed := p.events[next:], p.changed
		next = len(p.events)
		p.mu.Unlock()
		for _, e := range evs {
			if e.Kind == "error" {
				return e, fmt.Errorf("peer: %s", e.Error)
			}
			if cond(e) {
				return e, nil
			}
		}
		select {
		case <-changed:
		case <-p.exited:
			p.mu.Lock()
			more := next < len(p.events)
			p.mu.Unlock()
			if !more {
				return Event{}, fmt.Errorf("peer exited while waiting for %s: %v: %s", what, p.waitErr, strings.TrimSpace(p.stderr.String()))
			}
		case <-ctx.Done():
			return Event{}, fmt.Errorf("waiting for the peer to see %s: %w", what, ctx.Err())
		}
	}
}

// WaitKind waits for the first event of a kind.
func (p *Process) WaitKind(ctx context.Context, kind string) (Event, error) {
	return p.Wait(ctx, kind, func(e Event) bool { return e.Kind == kind })
}

// Stop ends the peer (it withdraws its routes) and waits for it.
func (p *Process) Stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return nil
}

// Stderr is what the peer wrote to its standard error.
func (p *Process) Stderr() string { return p.stderr.String() }
