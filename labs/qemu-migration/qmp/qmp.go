// Package qmp is a minimal client of the QEMU Machine Protocol: JSON
// commands and asynchronous events over a unix socket.
//
// It is written by hand because the lab needs five commands and the event
// stream, and the one maintained Go library (digitalocean/go-qemu) is not a
// dependency of this module; what a migration driver needs from it is the
// plumbing below: the greeting and capabilities negotiation, commands
// matched to their answers by id, and events with QEMU's own timestamps
// delivered to subscribers as they arrive (the `pre-switchover` event must
// reach the driver within a millisecond, which polling cannot do cheaply).
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// Event is an asynchronous QMP event.
type Event struct {
	Name string
	Data json.RawMessage
	// Time is when QEMU emitted the event (its own wall clock).
	Time time.Time
}

// Error is an error answer to a command.
type Error struct {
	Command string
	Class   string
	Desc    string
}

func (e *Error) Error() string { return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc) }

// ErrClosed is returned for commands on a closed client or one whose
// connection QEMU closed.
var ErrClosed = errors.New("qmp connection closed")

// Client is a QMP connection. Its methods are safe for concurrent use.
type Client struct {
	conn net.Conn

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan response
	subs    map[chan Event]struct{}
	closed  bool
	err     error // why the reader stopped
	done    chan struct{}
}

type response struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// message is any line QEMU sends.
type message struct {
	QMP       json.RawMessage `json:"QMP"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
	ID json.RawMessage `json:"id"`
	response
}

// Dial connects to QEMU's QMP socket (-qmp unix:PATH,server=on,wait=off),
// reads the greeting and leaves capabilities negotiation mode, retrying the
// connection until ctx ends (QEMU creates the socket shortly after it
// starts).
func Dial(ctx context.Context, path string) (*Client, error) {
	var conn net.Conn
	for {
		var d net.Dialer
		var err error
		if conn, err = d.DialContext(ctx, "unix", path); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to QMP at %s: %w", path, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	c := &Client{conn: conn, pending: map[string]chan response{}, subs: map[chan Event]struct{}{}, done: make(chan struct{})}
	r := bufio.NewReaderSize(conn, 64<<10)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	var greeting message
	line, err := r.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &greeting)
	}
	if err == nil && greeting.QMP == nil {
		err = fmt.Errorf("unexpected greeting %q", line)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading the QMP greeting at %s: %w", path, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.read(r)
	if err := c.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// read dispatches answers to their callers and events to subscribers until
// the connection ends.
func (c *Client) read(r *bufio.Reader) {
	var err error
	for {
		var line []byte
		if line, err = r.ReadBytes('\n'); err != nil {
			break
		}
		var m message
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		if m.Event != "" {
			ev := Event{Name: m.Event, Data: m.Data}
			if m.Timestamp != nil {
				ev.Time = time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)
			}
			c.mu.Lock()
			for s := range c.subs {
				select {
				case s <- ev:
				default: // a subscriber that does not read loses events
				}
			}
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		ch := c.pending[string(m.ID)]
		delete(c.pending, string(m.ID))
		c.mu.Unlock()
		if ch != nil {
			ch <- m.response
		}
	}
	c.mu.Lock()
	c.closed = true
	c.err = err
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	for s := range c.subs {
		close(s)
		delete(c.subs, s)
	}
	c.mu.Unlock()
	close(c.done)
}

// Execute runs a command with args (nil for none) and decodes its return
// value into result (nil to ignore it).
func (c *Client) Execute(ctx context.Context, command string, args, result any) error {
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{Execute: command, Arguments: args}
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("qmp %s: %w", command, ErrClosed)
	}
	c.nextID++
	req.ID = strconv.FormatUint(c.nextID, 10)
	idKey, _ := json.Marshal(req.ID)
	c.pending[string(idKey)] = ch
	c.mu.Unlock()

	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	_, err = c.conn.Write(append(b, '\n'))
	c.wmu.Unlock()
	if err != nil {
		c.forget(string(idKey))
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return fmt.Errorf("qmp %s: %w", command, ErrClosed)
		}
		if resp.Error != nil {
			return &Error{Command: command, Class: resp.Error.Class, Desc: resp.Error.Desc}
		}
		if result != nil && resp.Return != nil {
			if err := json.Unmarshal(resp.Return, result); err != nil {
				return fmt.Errorf("qmp %s: decoding the answer: %w", command, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(string(idKey))
		return fmt.Errorf("qmp %s: %w", command, context.Cause(ctx))
	}
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Subscribe returns a channel that receives every event from now on, until
// Unsubscribe or the connection ends (then it is closed). It buffers 256
// events; a subscriber that falls further behind loses events.
func (c *Client) Subscribe() <-chan Event {
	ch := make(chan Event, 256)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(ch)
		return ch
	}
	c.subs[ch] = struct{}{}
	return ch
}

// Unsubscribe stops delivering events to ch.
func (c *Client) Unsubscribe(ch <-chan Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		if s == ch {
			delete(c.subs, s)
			close(s)
		}
	}
}

// Done is closed when the connection has ended (QEMU quit or Close).
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}
