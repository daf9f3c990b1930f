// Package api is roamd's local control API: JSON over HTTP on a unix socket
// (mode 0600, so only root talks to it). roamctl is its client; an
// orchestrator may call it directly for the fastest `switch`.
//
//	GET  /v1/status              Status
//	GET  /v1/hosts               []Host
//	GET  /v1/hosts/{tenant}/{ip} HostDetail
//	GET  /v1/peers               []Peer
//	GET  /v1/moves               []Move
//	POST /v1/hints               Hint → HintResult
//	POST /v1/freeze              FreezeRequest → Host
package api

import "time"

// Status describes the running daemon.
type Status struct {
	Version  string         `json:"version"`
	RouterID string         `json:"router_id"`
	ASN      uint32         `json:"asn"`
	Started  time.Time      `json:"started"`
	Hosts    map[string]int `json:"hosts"` // by state
	Ports    []Port         `json:"ports"`
}

// Port is a VM port roamd manages.
type Port struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
}

// Host is one entry of the host table.
type Host struct {
	Tenant     string    `json:"tenant"`
	Address    string    `json:"address"`
	MAC        string    `json:"mac"`
	Port       string    `json:"port"`
	State      string    `json:"state"`
	Sequence   uint32    `json:"sequence"`
	Pinned     bool      `json:"pinned"`
	Frozen     bool      `json:"frozen"`
	Since      time.Time `json:"since"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	LastSource string    `json:"last_source,omitempty"`
	ForwardTo  string    `json:"forward_to,omitempty"`
	// PathKept: yielded, but the path stays announced until the winner's
	// path arrives through BGP (make before break).
	PathKept     bool      `json:"path_kept,omitempty"`
	ForwardUntil time.Time `json:"forward_until,omitzero"`
}

// HostDetail is a host with its move history and the claims other sites make.
type HostDetail struct {
	Host
	History      []Move  `json:"history"`
	RemoteClaims []Claim `json:"remote_claims"`
}

// Claim is another site's claim on a host.
type Claim struct {
	Origin   string `json:"origin"`
	Sequence uint32 `json:"sequence"`
	Sticky   bool   `json:"sticky"`
	MAC      string `json:"mac"`
}

// Move is a host moving to or away from this site, with its timings.
type Move struct {
	Time      time.Time `json:"time"`
	Tenant    string    `json:"tenant"`
	Address   string    `json:"address"`
	Direction string    `json:"direction"` // "arrived" or "departed"
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	Sequence  uint32    `json:"sequence"`
	Source    string    `json:"source"`
	Port      string    `json:"port,omitempty"`
	// DetectToRouteUS and DetectToAnnounceUS time an arrival, in
	// microseconds, from the frame (or hint) that triggered it to the kernel
	// route and to the BGP path handed to the speaker.
	DetectToRouteUS    int64 `json:"detect_to_route_us,omitempty"`
	DetectToAnnounceUS int64 `json:"detect_to_announce_us,omitempty"`
	// OldWithdrawnUS is how long after the announcement the old site's
	// path disappeared (seen through ADD-PATH), in microseconds.
	OldWithdrawnUS int64 `json:"old_withdrawn_us,omitempty"`
}

// Peer is one BGP session.
type Peer struct {
	Tenant     string    `json:"tenant"`
	Address    string    `json:"address"`
	ASN        uint32    `json:"asn"`
	State      string    `json:"state"`
	Since      time.Time `json:"since,omitzero"`
	Received   uint64    `json:"received"`
	Accepted   uint64    `json:"accepted"`
	Rejected   uint64    `json:"rejected"`
	Advertised uint64    `json:"advertised"`
	Families   []string  `json:"families"`
	AddPathRx  bool      `json:"addpath_rx"`
	LastError  string    `json:"last_error,omitempty"`
}

// Hint is what a migration engine tells roamd: arrive, switch or depart.
type Hint struct {
	Kind      string   `json:"kind"`
	Tenant    string   `json:"tenant,omitempty"` // default: the port's tenant, else the only tenant
	MAC       string   `json:"mac,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	Port      string   `json:"port,omitempty"`
}

// HintResult says what the hint did.
type HintResult struct {
	Hosts   []Host   `json:"hosts"`
	Refused []string `json:"refused,omitempty"`
	// OldSites are the sites a switch took hosts from, and whether each
	// confirmed it forwards in-flight packets here (within 100 ms).
	OldSites []OldSite `json:"old_sites,omitempty"`
}

// OldSite is an old site's answer to a switch.
type OldSite struct {
	Address     string `json:"address"`
	Site        string `json:"site"`
	Forwarding  bool   `json:"forwarding"`
	ConfirmedUS int64  `json:"confirmed_us,omitempty"`
}

// FreezeRequest freezes or unfreezes a host.
type FreezeRequest struct {
	Tenant  string `json:"tenant"`
	Address string `json:"address"`
	Frozen  bool   `json:"frozen"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
