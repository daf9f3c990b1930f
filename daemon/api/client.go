package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// Client talks to a running roamd over its API socket. It keeps the
// connection open between calls, so repeated calls (an orchestrator's
// `switch`) cost a round trip, not a connection.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the API socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: time.Minute,
	}
	return &Client{socket: path, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, "GET", "/v1/status", nil, &s)
}

// Hosts returns the host table.
func (c *Client) Hosts(ctx context.Context) ([]Host, error) {
	var hs []Host
	return hs, c.do(ctx, "GET", "/v1/hosts", nil, &hs)
}

// Host returns one host with its history.
func (c *Client) Host(ctx context.Context, tenant, address string) (HostDetail, error) {
	var h HostDetail
	if tenant == "" {
		tenant = "-" // the daemon's first tenant
	}
	return h, c.do(ctx, "GET", "/v1/hosts/"+url.PathEscape(tenant)+"/"+url.PathEscape(address), nil, &h)
}

// Peers returns the BGP sessions.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, c.do(ctx, "GET", "/v1/peers", nil, &ps)
}

// Moves returns recent moves.
func (c *Client) Moves(ctx context.Context) ([]Move, error) {
	var ms []Move
	return ms, c.do(ctx, "GET", "/v1/moves", nil, &ms)
}

// Hint sends a migration hint.
func (c *Client) Hint(ctx context.Context, h Hint) (HintResult, error) {
	var r HintResult
	return r, c.do(ctx, "POST", "/v1/hints", h, &r)
}

// Freeze freezes or unfreezes a host.
func (c *Client) Freeze(ctx context.Context, f FreezeRequest) (Host, error) {
	var h Host
	return h, c.do(ctx, "POST", "/v1/freeze", f, &h)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://roamd"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("roamd answered %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding roamd's answer: %w", err)
	}
	return nil
}

// explain turns a dial failure into what the operator needs to know.
func (c *Client) explain(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("roamd is not running: no API socket at %s", c.socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("roamd is not running: nothing listens on %s", c.socket)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("no permission to use %s (the API is root only)", c.socket)
	}
	return fmt.Errorf("talking to roamd at %s: %w", c.socket, err)
}
