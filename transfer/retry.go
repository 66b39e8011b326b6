package transfer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/initializer/initializer/fault"
)

// localError marks a failure of the local file system, which is never
// retried and is classified from its system cause (disk full → 7).
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

func local(err error) error {
	if err == nil {
		return nil
	}
	return &localError{err}
}

// retrier runs requests with exponential backoff and jitter.
type retrier struct {
	opts    *Options
	retries *atomic.Int64
}

// retryable says whether a failed request may succeed when tried again.
func (r *retrier) retryable(err error) bool {
	var le *localError
	var me *mismatchError
	if errors.As(err, &le) || errors.As(err, &me) || errors.Is(err, context.Canceled) {
		return false
	}
	switch r.opts.Classify(err) {
	case fault.Transient, fault.Internal:
		return true
	}
	return false
}

// do calls fn until it succeeds, fails for good, or the retries run out.
// what names the request in the log.
func (r *retrier) do(ctx context.Context, what string, fn func() error) error {
	delay := r.opts.BackoffBase
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || ctx.Err() != nil || !r.retryable(err) {
			return err
		}
		if attempt >= r.opts.Retries {
			return fault.Wrap(fault.Transient, &exhaustedError{what: what, attempts: attempt + 1, err: err})
		}
		r.retries.Add(1)
		// Full jitter between half and all of the delay.
		sleep := delay/2 + rand.N(delay/2+1)
		r.opts.Log.Warn("retrying", "request", what, "attempt", attempt+1, "in", sleep.Round(time.Millisecond).String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w while waiting to retry (last try: %v)", ctx.Err(), err)
		case <-time.After(sleep):
		}
		delay = min(delay*2, r.opts.BackoffMax)
	}
}

// Retry calls fn as the transfers call their requests: until it succeeds,
// fails for good (opts.Classify says so), or opts.Retries retries with
// exponential backoff and jitter have failed (then a Transient error). what
// names the request in the log. For the requests a caller makes before a
// transfer, such as whether a prefix names an object.
func Retry(ctx context.Context, opts Options, what string, fn func() error) error {
	opts.defaults()
	n := opts.Retried
	if n == nil {
		n = new(atomic.Int64)
	}
	return (&retrier{opts: &opts, retries: n}).do(ctx, what, fn)
}

type exhaustedError struct {
	what     string
	attempts int
	err      error
}

func (e *exhaustedError) Error() string {
	if e.attempts == 1 {
		return fmt.Sprintf("%s: failed (no retries): %v", e.what, e.err)
	}
	return fmt.Sprintf("%s: gave up after %d attempts: %v", e.what, e.attempts, e.err)
}
func (e *exhaustedError) Unwrap() error { return e.err }
