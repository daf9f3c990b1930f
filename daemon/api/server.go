package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Backend answers API requests; the daemon implements it.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Hosts(ctx context.Context) ([]Host, error)
	Host(ctx context.Context, tenant, address string) (HostDetail, error)
	Peers(ctx context.Context) ([]Peer, error)
	Moves(ctx context.Context) ([]Move, error)
	Hint(ctx context.Context, h Hint) (HintResult, error)
	Freeze(ctx context.Context, r FreezeRequest) (Host, error)
}

// ErrNotFound and ErrBadRequest classify Backend errors (wrap them with %w).
var (
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
)

// Handler returns the API's HTTP handler.
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		respond(w)(b.Status(r.Context()))
	})
	mux.HandleFunc("GET /v1/hosts", func(w http.ResponseWriter, r *http.Request) {
		respond(w)(b.Hosts(r.Context()))
	})
	mux.HandleFunc("GET /v1/hosts/{tenant}/{address}", func(w http.ResponseWriter, r *http.Request) {
		respond(w)(b.Host(r.Context(), r.PathValue("tenant"), r.PathValue("address")))
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		respond(w)(b.Peers(r.Context()))
	})
	mux.HandleFunc("GET /v1/moves", func(w http.ResponseWriter, r *http.Request) {
		respond(w)(b.Moves(r.Context()))
	})
	mux.HandleFunc("POST /v1/hints", func(w http.ResponseWriter, r *http.Request) {
		var h Hint
		if err := decode(r, &h); err != nil {
			writeError(w, err)
			return
		}
		respond(w)(b.Hint(r.Context(), h))
	})
	mux.HandleFunc("POST /v1/freeze", func(w http.ResponseWriter, r *http.Request) {
		var f FreezeRequest
		if err := decode(r, &f); err != nil {
			writeError(w, err)
			return
		}
		respond(w)(b.Freeze(r.Context(), f))
	})
	return mux
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decoding request body: %v", ErrBadRequest, err)
	}
	return nil
}

// respond returns a function taking a Backend call's two results, so a
// handler is one line: respond(w)(b.Hosts(ctx)).
func respond(w http.ResponseWriter) func(any, error) {
	return func(v any, err error) {
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Error{Error: err.Error()})
}

// Listen creates the unix socket at path (mode 0600: root only). A stale
// socket left by a crash is replaced; a live one is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating API socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	// Create the socket with no group/other bits from the start, so it is
	// never reachable by others even for an instant.
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on API socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restricting API socket %s: %w", path, err)
	}
	return ln, nil
}

// Serve serves the API on ln (from Listen) until ctx is done, then removes
// the socket.
func Serve(ctx context.Context, ln net.Listener, b Backend, log *slog.Logger) error {
	path := ln.Addr().String()
	srv := &http.Server{Handler: Handler(b), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("API listening", "socket", path)
	err := srv.Serve(ln)
	_ = os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// removeStale removes a socket nobody listens on; a live one is an error
// (another roamd runs).
func removeStale(path string) error {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err == nil {
		c.Close()
		return fmt.Errorf("API socket %s is in use: is another roamd running?", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale API socket %s: %w", path, err)
	}
	return nil
}
