package transfer

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ProgressOptions configure a Progress.
type ProgressOptions struct {
	Log      *slog.Logger
	Every    time.Duration // how often a line is logged; 0 means 5 s
	Terminal io.Writer     // when set, a live bar is redrawn there a few times a second
	Message  string        // the log line's message; "transferring" when empty
	// Files and Skipped count the files done and those found up to date.
	Files, Skipped *atomic.Int64
	// Listed, when set, counts the files planned so far: shown until the
	// total is known (Planned).
	Listed *atomic.Int64
}

// Progress reports a transfer or a copy while it runs: a log line every
// Every (files, bytes, rate, ETA) and, with a Terminal, a live bar.
type Progress struct {
	o     ProgressOptions
	Live  atomic.Int64 // bytes moved so far, unfinished files included
	skip  atomic.Int64 // bytes of the files found up to date
	total atomic.Int64 // files planned, -1 until known
	bytes atomic.Int64 // bytes planned, -1 unless known
	start time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

// NewProgress starts reporting; Stop ends it.
func NewProgress(o ProgressOptions) *Progress {
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	if o.Message == "" {
		o.Message = "transferring"
	}
	p := &Progress{o: o, start: time.Now(), done: make(chan struct{})}
	p.total.Store(-1)
	p.bytes.Store(-1)
	p.wg.Add(1)
	go p.loop()
	return p
}

func newProgress(opts *Options, files, skipped, listed *atomic.Int64) *Progress {
	return NewProgress(ProgressOptions{Log: opts.Log, Every: opts.Progress, Terminal: opts.Terminal, Files: files, Skipped: skipped, Listed: listed})
}

// Planned records the number of files planned, once known, and the bytes
// they hold when known (-1 otherwise): the ETA comes from the bytes when
// known, else from the files.
func (p *Progress) Planned(files, bytes int64) {
	p.total.Store(files)
	p.bytes.Store(bytes)
}

// Skip records the bytes of a file found up to date: done, not moved.
func (p *Progress) Skip(bytes int64) { p.skip.Add(bytes) }

// Stop ends the reporting, drawing the bar a last time.
func (p *Progress) Stop() {
	close(p.done)
	p.wg.Wait()
	if p.o.Terminal != nil {
		fmt.Fprintf(p.o.Terminal, "\r%s\n", p.line())
	}
}

func (p *Progress) loop() {
	defer p.wg.Done()
	logTick := time.NewTicker(p.o.Every)
	defer logTick.Stop()
	var barTick <-chan time.Time
	if p.o.Terminal != nil {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		barTick = t.C
	}
	for {
		select {
		case <-p.done:
			return
		case <-logTick.C:
			if p.o.Terminal != nil {
				// The log shares the terminal: the bar's line is cleared
				// first, and redrawn below the log line at the next tick.
				fmt.Fprint(p.o.Terminal, "\r\x1b[K")
			}
			p.log()
		case <-barTick:
			fmt.Fprintf(p.o.Terminal, "\r%s\x1b[K", p.line())
		}
	}
}

func (p *Progress) rate() float64 {
	el := time.Since(p.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(p.Live.Load()) / el
}

func (p *Progress) log() {
	attrs := []any{"files", p.o.Files.Load(), "skipped", p.o.Skipped.Load(), "bytes", p.Live.Load(), "rate", HumanBytes(p.rate()) + "/s"}
	if total := p.total.Load(); total >= 0 {
		attrs = append(attrs, "objects", total)
	} else if p.o.Listed != nil {
		attrs = append(attrs, "listedSoFar", p.o.Listed.Load())
	}
	if b := p.bytes.Load(); b >= 0 {
		attrs = append(attrs, "totalBytes", b)
	}
	if eta, ok := p.eta(); ok {
		attrs = append(attrs, "eta", eta.String())
	}
	p.o.Log.Info(p.o.Message, attrs...)
}

// eta estimates the time left from the share of bytes done when the total
// is known, else from the share of files done.
func (p *Progress) eta() (time.Duration, bool) {
	total, done := p.bytes.Load(), p.Live.Load()+p.skip.Load()
	if total < 0 {
		total, done = p.total.Load(), p.o.Files.Load()+p.o.Skipped.Load()
	}
	if total < 0 || done == 0 || total <= done {
		return 0, false
	}
	// In floating point: elapsed nanoseconds times bytes left overflow
	// int64 past a gigabyte or two.
	left := float64(time.Since(p.start)) * float64(total-done) / float64(done)
	return time.Duration(left).Round(time.Second), true
}

func (p *Progress) line() string {
	s := fmt.Sprintf("%s, %d up to date, %s, %s/s", Count(p.o.Files.Load(), "file"), p.o.Skipped.Load(), HumanBytes(float64(p.Live.Load())), HumanBytes(p.rate()))
	if total := p.total.Load(); total > 0 {
		// The bar follows the bytes when they are known (one large file
		// fills it as it arrives), else the files.
		done := p.o.Files.Load() + p.o.Skipped.Load()
		filled, of := done, total
		if b := p.bytes.Load(); b > 0 {
			filled, of = min(p.Live.Load()+p.skip.Load(), b), b
		}
		s = fmt.Sprintf("[%s] %d/%d files · %s", bar(filled, of, 24), done, total, s)
	} else if total := p.bytes.Load(); total > 0 {
		s = fmt.Sprintf("[%s] %s", bar(min(p.Live.Load()+p.skip.Load(), total), total, 24), s)
	} else if p.o.Listed != nil {
		s += fmt.Sprintf(" · %d listed so far", p.o.Listed.Load())
	}
	if eta, ok := p.eta(); ok {
		s += " · ETA " + eta.String()
	}
	return s
}

func bar(done, total int64, width int) string {
	n := int(done * int64(width) / total)
	b := make([]byte, width)
	for i := range b {
		if i < n {
			b[i] = '#'
		} else {
			b[i] = '.'
		}
	}
	return string(b)
}

// Count is "1 file" or "n files": n of one (a noun whose plural takes an s).
func Count[T int | int64](n T, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// HumanBytes formats a byte count with binary units (KiB, MiB, …).
func HumanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
