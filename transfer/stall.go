package transfer

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/initializer/initializer/fault"
)

// stallWatch bounds the wait for a stream's next bytes: a connection that
// stays open but sends nothing (a stalled peer, a half-open socket that no
// reset ever reaches) is cut after idle without a byte, by cancelling the
// request's context, and the read's error is then a transient one that the
// retries take (stalled). The HTTP clients bound the connection and the
// response headers, not the body.
type stallWatch struct {
	r      io.Reader
	idle   time.Duration
	cancel func()
	last   atomic.Int64 // when bytes last came, in ns since start
	start  time.Time
	fired  atomic.Bool
	timer  *time.Timer
}

// watchStall starts watching r, read under a context that cancel ends.
// Stop must be called when the reading is over.
func watchStall(r io.Reader, idle time.Duration, cancel func()) *stallWatch {
	w := &stallWatch{r: r, idle: idle, cancel: cancel, start: time.Now()}
	w.timer = time.AfterFunc(idle, w.check)
	return w
}

func (w *stallWatch) check() {
	since := time.Duration(time.Since(w.start).Nanoseconds() - w.last.Load())
	if since < w.idle {
		w.timer.Reset(w.idle - since)
		return
	}
	w.fired.Store(true)
	w.cancel()
}

func (w *stallWatch) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.last.Store(time.Since(w.start).Nanoseconds())
	}
	return n, err
}

// Stop ends the watch. It returns the error to report instead of err when
// the stream was cut for stalling (err is then the cancellation's).
func (w *stallWatch) Stop(err error) error {
	w.timer.Stop()
	if err != nil && w.fired.Load() {
		return fault.New(fault.Transient, "no data received for %s (--read-timeout): the connection stalled", w.idle)
	}
	return err
}
