package movebench

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/roamd/roamd/labs/nslab/probe"
)

// Record is one migration and what it cost, as saved in the run directory.
type Record struct {
	Leaves   Leaves `json:"leaves"`
	Strategy string `json:"strategy"`
	// Round counts from 1; Seq is the migration's number in its lab.
	Round int       `json:"round"`
	Seq   int       `json:"seq"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	Start time.Time `json:"start"`
	Sent  int       `json:"sent"`
	Lost  int       `json:"lost"`
	// LongestLossRun is the longest run of consecutive lost probes; GapMS
	// from the first lost probe's sending to the first later reply.
	LongestLossRun int     `json:"longest_loss_run"`
	GapMS          float64 `json:"gap_ms"`
	// MaxDelayMS is the slowest reply that came back (delayed, not lost),
	// MaxDelayAtMS when that probe was sent (ms after Start). The copy
	// phase of a migration competes with the guest for the host's CPUs
	// (TCG), which delays replies before the pause too: MaxDelayPausedMS
	// is the slowest reply among probes sent once the source had stopped,
	// the delay the switch itself causes (probes held in the
	// destination's tap until the guest resumes).
	MaxDelayMS       float64 `json:"max_delay_ms"`
	MaxDelayAtMS     float64 `json:"max_delay_at_ms"`
	MaxDelayPausedMS float64 `json:"max_delay_paused_ms"`
	// DowntimeMS and TotalMS are QEMU's figures (query-migrate). PauseMS
	// is from the source's STOP event to the destination's RESUME event:
	// how long the guest really did not run (QEMU's downtime figure leaves
	// part of it out).
	DowntimeMS float64 `json:"downtime_ms"`
	TotalMS    float64 `json:"total_ms"`
	PauseMS    float64 `json:"pause_ms"`
	// LostAfterSwitch counts probes lost among those sent after the
	// switch; -1 without a switch.
	LostAfterSwitch int `json:"lost_after_switch"`
	// ClaimAfterResumeMS is from the guest resuming on the destination to
	// the destination taking it over (roamd's claim, the watcher's route);
	// negative when the claim came first (the switch hint); absent when
	// the fabric does not say.
	ClaimAfterResumeMS *float64 `json:"claim_after_resume_ms,omitempty"`
	TCPSurvived        bool     `json:"tcp_survived"`
	TCPRTTMS           float64  `json:"tcp_rtt_ms"`
	// Events are when the migration's steps happened, in ms after Start:
	// stop (the source's vCPUs stopped), switch (the switch hook
	// returned), resume (the guest ran on the destination), complete,
	// source_gone (the source QEMU quit), claim, claim_route.
	Events map[string]float64 `json:"events,omitempty"`
	// LossRuns are the runs of consecutive lost probes, by send time.
	LossRuns []LossRun `json:"loss_runs,omitempty"`
	// Load is the machine's busy share (0..1, all CPUs) over the second
	// before the migration: other work on the machine slows the guest.
	Load  float64  `json:"load"`
	Notes []string `json:"notes,omitempty"`
	Error string   `json:"error,omitempty"`
}

// LossRun is a run of consecutive lost probes: the first and last one's
// send times in ms after the migration's start, and how many.
type LossRun struct {
	FromMS float64 `json:"from_ms"`
	ToMS   float64 `json:"to_ms"`
	Count  int     `json:"count"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// lossRuns returns the runs of lost probes sent after start.
func lossRuns(res *probe.Result, start time.Time) []LossRun {
	var runs []LossRun
	off := start.Sub(res.Start).Nanoseconds()
	at := func(i int) float64 { return float64(res.Sent[i]-off) / 1e6 }
	for i := range res.Sent {
		if res.Sent[i] < off || res.Recv[i] >= 0 {
			continue
		}
		if n := len(runs); n > 0 && i > 0 && res.Recv[i-1] < 0 && res.Sent[i-1] >= off {
			runs[n-1].ToMS = at(i)
			runs[n-1].Count++
			continue
		}
		runs = append(runs, LossRun{FromMS: at(i), ToMS: at(i), Count: 1})
	}
	return runs
}

// slowestAt returns when the slowest reply's probe was sent, in ms after
// start (probes sent after start only).
func slowestAt(res *probe.Result, start time.Time) float64 {
	off := start.Sub(res.Start).Nanoseconds()
	var worst int64
	at := 0.0
	for i := range res.Sent {
		if res.Sent[i] >= off && res.Recv[i] >= 0 && res.Recv[i]-res.Sent[i] > worst {
			worst = res.Recv[i] - res.Sent[i]
			at = float64(res.Sent[i]-off) / 1e6
		}
	}
	return at
}

// Files in the run directory.
const (
	RecordsCSV  = "records.csv"
	RecordsJSON = "records.json"
)

// sink writes records as they come (CSV, flushed per record, so a run cut
// short keeps what it measured) and all of them as JSON at the end.
type sink struct {
	dir string
	f   *os.File
	w   *csv.Writer
}

var csvHeader = []string{"leaves", "strategy", "round", "seq", "from", "to", "start", "sent", "lost", "longest_loss_run",
	"gap_ms", "max_delay_ms", "max_delay_at_ms", "max_delay_paused_ms", "downtime_ms", "total_ms", "pause_ms", "lost_after_switch", "claim_after_resume_ms", "tcp_survived", "tcp_rtt_ms", "load", "notes", "error"}

func newSink(dir string) (*sink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, RecordsCSV))
	if err != nil {
		return nil, err
	}
	s := &sink{dir: dir, f: f, w: csv.NewWriter(f)}
	if err := s.write(csvHeader); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *sink) write(row []string) error {
	if err := s.w.Write(row); err != nil {
		return err
	}
	s.w.Flush()
	if err := s.w.Error(); err != nil {
		return fmt.Errorf("writing %s: %w", RecordsCSV, err)
	}
	return nil
}

func (s *sink) add(r Record) error {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
	claim := ""
	if r.ClaimAfterResumeMS != nil {
		claim = f(*r.ClaimAfterResumeMS)
	}
	return s.write([]string{string(r.Leaves), r.Strategy, strconv.Itoa(r.Round), strconv.Itoa(r.Seq), r.From, r.To,
		r.Start.Format(time.RFC3339Nano), strconv.Itoa(r.Sent), strconv.Itoa(r.Lost), strconv.Itoa(r.LongestLossRun),
		f(r.GapMS), f(r.MaxDelayMS), f(r.MaxDelayAtMS), f(r.MaxDelayPausedMS), f(r.DowntimeMS), f(r.TotalMS), f(r.PauseMS), strconv.Itoa(r.LostAfterSwitch), claim,
		strconv.FormatBool(r.TCPSurvived), f(r.TCPRTTMS), f(r.Load), strings.Join(r.Notes, "; "), r.Error})
}

func (s *sink) writeJSON(recs []Record) error {
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, RecordsJSON), append(data, '\n'), 0o644)
}

func (s *sink) close() error {
	s.w.Flush()
	return errors.Join(s.w.Error(), s.f.Close())
}
