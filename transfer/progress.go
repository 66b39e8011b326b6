package transfer

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// progress logs a line every Options.Progress (files, bytes, rate, ETA) and,
// with Options.Terminal, redraws a live bar a few times a second.
type progress struct {
	opts                  *Options
	files, bytes, skipped *atomic.Int64
	live                  atomic.Int64 // bytes received, including unfinished files
	total                 atomic.Int64 // objects planned, known once listing ends
	start                 time.Time
	done                  chan struct{}
	wg                    sync.WaitGroup
}

func newProgress(opts *Options, files, bytes, skipped *atomic.Int64) *progress {
	p := &progress{opts: opts, files: files, bytes: bytes, skipped: skipped, start: time.Now(), done: make(chan struct{})}
	p.total.Store(-1)
	p.wg.Add(1)
	go p.loop()
	return p
}

// listed records that listing has finished with n objects.
func (p *progress) listed(n int64) { p.total.Store(n) }

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
	if p.opts.Terminal != nil {
		fmt.Fprintf(p.opts.Terminal, "\r%s\n", p.line())
	}
}

func (p *progress) loop() {
	defer p.wg.Done()
	logTick := time.NewTicker(p.opts.Progress)
	defer logTick.Stop()
	var barTick <-chan time.Time
	if p.opts.Terminal != nil {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		barTick = t.C
	}
	for {
		select {
		case <-p.done:
			return
		case <-logTick.C:
			p.log()
		case <-barTick:
			fmt.Fprintf(p.opts.Terminal, "\r%s\x1b[K", p.line())
		}
	}
}

func (p *progress) rate() float64 {
	el := time.Since(p.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(p.live.Load()) / el
}

func (p *progress) log() {
	attrs := []any{"files", p.files.Load(), "skipped", p.skipped.Load(), "bytes", p.live.Load(), "rate", HumanBytes(p.rate()) + "/s"}
	if total := p.total.Load(); total >= 0 {
		attrs = append(attrs, "objects", total)
		if eta, ok := p.eta(total); ok {
			attrs = append(attrs, "eta", eta.String())
		}
	}
	p.opts.Log.Info("transferring", attrs...)
}

// eta estimates the time left from the share of objects done.
func (p *progress) eta(total int64) (time.Duration, bool) {
	done := p.files.Load() + p.skipped.Load()
	if done == 0 || total <= done {
		return 0, false
	}
	el := time.Since(p.start)
	return (el * time.Duration(total-done) / time.Duration(done)).Round(time.Second), true
}

func (p *progress) line() string {
	s := fmt.Sprintf("%d files, %d up to date, %s, %s/s", p.files.Load(), p.skipped.Load(), HumanBytes(float64(p.live.Load())), HumanBytes(p.rate()))
	if total := p.total.Load(); total > 0 {
		done := p.files.Load() + p.skipped.Load()
		s = fmt.Sprintf("[%s] %d/%d objects · %s", bar(done, total, 24), done, total, s)
		if eta, ok := p.eta(total); ok {
			s += " · ETA " + eta.String()
		}
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
