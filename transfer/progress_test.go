package transfer

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordLog keeps the attributes of the records logged through it.
type recordLog struct {
	mu   sync.Mutex
	recs []map[string]string
}

func (r *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (r *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recordLog) WithGroup(string) slog.Handler            { return r }
func (r *recordLog) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	r.mu.Lock()
	r.recs = append(r.recs, m)
	r.mu.Unlock()
	return nil
}

func TestProgress(t *testing.T) {
	var files, skipped atomic.Int64
	rl := &recordLog{}
	// No terminal and an hour between lines: the loop reads nothing while
	// the test sets the start back.
	p := NewProgress(ProgressOptions{Log: slog.New(rl), Every: time.Hour, Message: "copying", Files: &files, Skipped: &skipped})
	p.start = time.Now().Add(-10 * time.Second)

	// Files planned: the ETA comes from the share of files done.
	p.Planned(10, -1)
	files.Store(4)
	skipped.Store(1)
	p.Live.Store(5 << 20)
	p.log()
	r := rl.recs[0]
	if r["msg"] != "copying" || r["files"] != "4" || r["skipped"] != "1" || r["objects"] != "10" || r["eta"] != "10s" || r["totalBytes"] != "" {
		t.Errorf("files planned: %v", r)
	}
	if line := p.line(); !strings.Contains(line, "5/10 files") || !strings.Contains(line, "ETA 10s") || !strings.Contains(line, "5.0 MiB") {
		t.Errorf("bar: %q", line)
	}

	// Bytes planned: the ETA comes from the share of bytes done.
	p.Planned(-1, 20<<20)
	p.log()
	r = rl.recs[1]
	if r["totalBytes"] != "20971520" || r["eta"] != "30s" || r["objects"] != "" {
		t.Errorf("bytes planned: %v", r)
	}
	// Nothing done yet, or all of it: no ETA.
	p.Live.Store(0)
	if _, ok := p.eta(); ok {
		t.Error("ETA with nothing done")
	}
	p.Live.Store(20 << 20)
	if _, ok := p.eta(); ok {
		t.Error("ETA with everything done")
	}

	p.Stop()

	// While the listing runs, the files listed so far.
	var listed atomic.Int64
	listed.Store(42)
	p = NewProgress(ProgressOptions{Log: slog.New(rl), Every: time.Hour, Files: &files, Skipped: &skipped, Listed: &listed})
	p.log()
	if r := rl.recs[len(rl.recs)-1]; r["listedSoFar"] != "42" || r["objects"] != "" {
		t.Errorf("listing: %v", r)
	}
	if line := p.line(); !strings.Contains(line, "42 listed so far") {
		t.Errorf("listing bar: %q", line)
	}
	p.Planned(50, -1)
	p.log()
	if r := rl.recs[len(rl.recs)-1]; r["listedSoFar"] != "" || r["objects"] != "50" {
		t.Errorf("listed: %v", r)
	}
	p.Stop()

	// On a terminal, the bar is drawn a last time when the progress stops.
	term := &bytes.Buffer{}
	p = NewProgress(ProgressOptions{Log: slog.New(rl), Terminal: term, Files: &files, Skipped: &skipped})
	p.Planned(5, -1)
	p.Stop()
	if out := term.String(); !strings.HasSuffix(out, "\n") || !strings.Contains(out, "[########################] 5/5 files") {
		t.Errorf("final bar: %q", out)
	}
}

// With files and bytes planned (a download), one large file fills the bar
// as its bytes arrive, and files found up to date count as done bytes.
func TestProgressBarFollowsBytes(t *testing.T) {
	var files, skipped atomic.Int64
	rl := &recordLog{}
	p := NewProgress(ProgressOptions{Log: slog.New(rl), Every: time.Hour, Files: &files, Skipped: &skipped})
	defer p.Stop()
	p.start = time.Now().Add(-10 * time.Second)
	p.Planned(1, 100<<20)
	p.Live.Store(50 << 20)
	if line := p.line(); !strings.Contains(line, "[############............] 0/1 files") || !strings.Contains(line, "ETA 10s") {
		t.Errorf("one large file half done: %q", line)
	}
	p.log()
	if r := rl.recs[0]; r["eta"] != "10s" || r["totalBytes"] != "104857600" {
		t.Errorf("log: %v", r)
	}
	// Half the bytes were found up to date: 75% done.
	p.Planned(2, 200<<20)
	p.Skip(100 << 20)
	skipped.Store(1)
	if line := p.line(); !strings.Contains(line, "[##################......] 1/2 files") {
		t.Errorf("with a file up to date: %q", line)
	}
}

// The ETA of a large download does not overflow: 3 GB planned, 420 MB
// done in 5 s leaves about 31 s.
func TestProgressETALargeDownload(t *testing.T) {
	var files, skipped atomic.Int64
	p := NewProgress(ProgressOptions{Log: slog.New(&recordLog{}), Every: time.Hour, Files: &files, Skipped: &skipped})
	defer p.Stop()
	p.start = time.Now().Add(-5 * time.Second)
	p.Planned(1, 3_000_000_000)
	p.Live.Store(420_000_000)
	eta, ok := p.eta()
	if !ok || eta < 29*time.Second || eta > 32*time.Second {
		t.Errorf("ETA %v, %v; want about 31s", eta, ok)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0 files", 1: "1 file", 2: "2 files"} {
		if got := Count(n, "file"); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
