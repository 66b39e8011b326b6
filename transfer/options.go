// Package transfer is the one copy engine between a *blob.Bucket and a local
// folder, in both directions. It knows nothing of the provider behind the
// bucket: what the portable API lacks comes through a Provider.
//
// A download streams the listing page by page into a bounded pipeline
// (list → plan → workers), so memory does not grow with the number of
// objects. Each file goes to a temporary name in its target folder, is
// verified (size, MD5 or CRC32C where the store keeps one), gets the
// object's modification time, and is renamed into place; large objects are
// read as parallel ranges pinned to one object version. The file system is
// synced once at the end.
package transfer

import (
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"gocloud.dev/gcerrors"
	"golang.org/x/sys/unix"

	"github.com/initializer/initializer/fault"
)

// Options tune a transfer. The zero value is usable.
type Options struct {
	Workers     int           // objects transferred in parallel, and the bound on open streams; 0 means 16
	PartSize    int64         // size of each ranged read of a large object; 0 means 16 MiB
	LargeObject int64         // objects at least this big are read as parallel ranges; 0 means 64 MiB
	Checksum    bool          // re-runs compare hashes, not size and modification time
	Force       bool          // replace what stood at the target before: a folder where a file goes, a file where a folder goes
	Retries     int           // retries of each request after the first try; 0 means 5, negative none
	BackoffBase time.Duration // first retry delay; 0 means 200 ms (doubles, with jitter)
	BackoffMax  time.Duration // longest retry delay; 0 means 5 s
	PageSize    int           // listing page size; 0 means 1000

	Provider Provider                // provider extras; may be nil
	Classify func(error) fault.Class // the store's error classes; nil means gcerrors codes only
	Brief    func(error) string      // a store error's cause on one line, for messages; nil means its Error()
	// Explain, when set, words a store's refusal (auth) or an answer that
	// shows a setting is wrong (usage: TLS, plain http, region) with the
	// connection's own settings to check; what names the request
	// (`object "k"`). It returns nil when it has nothing better to say
	// than the generic message.
	Explain func(err error, what string) error
	// Credentials, when set, names the credentials requests are made with
	// (their kind and source, never a value), for an upload's refusal.
	Credentials string
	// Retried, when set, counts the retries Retry makes (the requests a
	// caller makes before a transfer), for its result.
	Retried  *atomic.Int64
	Log      *slog.Logger  // step and progress lines; nil discards
	Progress time.Duration // how often a progress line is logged; 0 means 5 s
	Terminal io.Writer     // when set, a live progress bar is drawn there
	Conn     string        // names the connection in errors

	beforeObject func(key string)             // test hook: called as each object's download starts
	freeBytes    uint64                       // test hook: free space to assume at the target
	devOf        func(string) (uint64, error) // test hook: the device of a path (stat(2) follows links)
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	if o.LargeObject <= 0 {
		o.LargeObject = 64 << 20
	}
	if o.LargeObject < o.PartSize {
		o.LargeObject = o.PartSize
	}
	if o.Retries == 0 {
		o.Retries = 5
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 200 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}

	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Progress <= 0 {
		o.Progress = 5 * time.Second
	}
	if o.Classify == nil {
		o.Classify = ClassifyCode
	}
}

// Stats count what a transfer did.
type Stats struct {
	Objects  int64         `json:"objects"` // objects listed or named
	Files    int64         `json:"files"`   // files written
	Bytes    int64         `json:"bytes"`   // bytes written
	Skipped  int64         `json:"skipped"` // files already up to date
	Dirs     int64         `json:"dirs"`    // folder markers turned into folders
	Retries  int64         `json:"retries"` // requests tried again
	Duration time.Duration `json:"-"`
}

// ClassifyCode maps a store error to an exit class through gcerrors codes and
// common network failures.
func ClassifyCode(err error) fault.Class {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Class
	}
	if c, ok := CodeClass(err); ok {
		return c
	}
	if isNetwork(err) {
		return fault.Transient
	}
	return fault.Internal
}

// CodeClass maps the gcerrors code of err to an exit class; ok is false for
// codes that say nothing (Unknown, OK).
func CodeClass(err error) (c fault.Class, ok bool) {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return fault.NotFound, true
	case gcerrors.PermissionDenied:
		return fault.Auth, true
	case gcerrors.InvalidArgument, gcerrors.Unimplemented:
		return fault.Usage, true
	case gcerrors.FailedPrecondition:
		return fault.Integrity, true
	case gcerrors.Canceled:
		return fault.Interrupted, true
	case gcerrors.Internal, gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return fault.Transient, true
	}
	return 0, false
}

func isNetwork(err error) bool {
	return fault.IsNetwork(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// fitWorkers lowers workers to what the process's open-files limit allows,
// each taking perWorker descriptors beside a reserve for the rest of the
// process, and says so: past it, files and connections fail to open
// ("too many open files"). Go raises the soft limit to the hard one at
// start; a container's hard limit may still be low.
func fitWorkers(workers, perWorker int, log *slog.Logger) int {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<20 {
		return workers
	}
	fit := max(1, (int(rl.Cur)-32)/perWorker)
	if fit >= workers {
		return workers
	}
	if log != nil && !fitWarned.Swap(true) { // once: the sidecar transfers every cycle
		log.Warn("fewer workers than asked: the open-files limit (ulimit -n) allows no more", "workers", fit, "asked", workers, "openFilesLimit", rl.Cur)
	}
	return fit
}

var fitWarned atomic.Bool
