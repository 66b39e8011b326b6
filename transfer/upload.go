package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/semaphore"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
)

// MetaModTime is the object metadata key under which an upload records the
// local file's modification time, as RFC 3339 with nanoseconds in UTC
// (time.RFC3339Nano), e.g. "2026-11-27T02:15:34.123456789Z".
const MetaModTime = "mtime"

// ErrChanged is wrapped by the error of a file that kept changing while it
// was being uploaded: the object may hold a mix of old and new content, and
// the file needs another upload once it is stable.
var ErrChanged = errors.New("the file changed while it was being uploaded")

// UploadFile is one local file to upload.
type UploadFile struct {
	Rel string // slash-separated path below the upload root
	Key string // object key
}

// FileState identifies a version of a local file: a file whose state is
// unchanged is assumed to have unchanged content.
type FileState struct {
	Size    int64
	ModTime int64 // nanoseconds since the epoch; see Time
	Ino     uint64
}

// Time returns the modification time of s, and whether it is exact: a
// time nanoseconds since the epoch cannot hold (before 1678, after 2262)
// is kept as the nearest one they can, and is not.
func (s FileState) Time() (time.Time, bool) {
	return time.Unix(0, s.ModTime), s.ModTime != math.MaxInt64 && s.ModTime != math.MinInt64
}

// unixNano is t.UnixNano, held at the bounds it can represent instead of
// wrapping around (a file dated 2446 would read as 1901).
func unixNano(t time.Time) int64 {
	switch {
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	}
	return t.UnixNano()
}

// StateOf returns the state of the file fi describes.
func StateOf(fi fs.FileInfo) FileState {
	s := FileState{Size: fi.Size(), ModTime: unixNano(fi.ModTime())}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.Ino = st.Ino
	}
	return s
}

// FileResult is the outcome of one file's upload.
type FileResult struct {
	UploadFile
	// State is the state of the file whose content is now the object's
	// (when Err is nil), or the state last seen.
	State FileState
	// Gone is set when the file no longer existed: nothing was uploaded and
	// nothing failed.
	Gone bool
	// Err is nil when the object now holds the file's content, verified.
	Err error
	// Partial is set when the file kept growing while it was uploaded, as
	// a log does: the object holds its first State.Size bytes, as they were
	// read, and the file is to be uploaded again.
	Partial bool

	prefixOK bool // this attempt may upload the first bytes of a growing file
}

// UploadOptions tune an upload. The zero value is usable.
type UploadOptions struct {
	// Options are the engine's shared settings. For uploads, PartSize is the
	// size of each part of a multipart upload (0 means 5 MiB, grown for files
	// beyond 9,000 parts), LargeObject
	// the size from which a file is streamed with a CRC32C instead of being
	// hashed with MD5 first (0 means 64 MiB); Checksum is not used.
	Options
	// PartConcurrency is the number of parts of one large file sent in
	// parallel; 0 means 4.
	PartConcurrency int
	// MemoryBudget bounds the bytes the uploads in flight may buffer (the
	// SDKs buffer each part); 0 means 64 MiB. A large file takes at most
	// three quarters of it, so small files keep flowing beside it.
	MemoryBudget int64
	// ChangeRetries is how many times a file that changed while it was being
	// uploaded is uploaded again in the same call; 0 means 3, negative none.
	ChangeRetries int
	// NoVerify skips reading the object's attributes after each upload.
	NoVerify bool
	// ListVerify verifies the uploads with listings of ListPrefix instead
	// of reading each object's attributes: one request per 1000 objects
	// under the prefix rather than one per file. Every key must start with
	// ListPrefix. A listing runs every 10 s while the uploads go on (so that
	// OnFile learns of uploaded files as a long batch goes), and one at the
	// end for the rest.
	ListVerify bool
	ListPrefix string
	// OnFile, when set, receives each file's outcome as soon as it is known,
	// from the worker goroutines (concurrently).
	OnFile func(FileResult)

	beforeSend func(rel string, attempt int) // test hook: called once the file is open, before it is read
	afterList  func()                        // test hook: called as each verifying listing page arrives
}

// inlineMax is the largest file read into memory in one go and sent with
// one request.
const inlineMax = 256 << 10

func (o *UploadOptions) defaults() {
	if o.PartSize <= 0 {
		o.PartSize = 5 << 20
	}
	o.Options.defaults()
	if o.PartConcurrency <= 0 {
		o.PartConcurrency = 4
	}
	if o.MemoryBudget <= 0 {
		o.MemoryBudget = 64 << 20
	}
	if o.ChangeRetries == 0 {
		o.ChangeRetries = 3
	} else if o.ChangeRetries < 0 {
		o.ChangeRetries = 0
	}
}

// UploadStats count what an upload did.
type UploadStats struct {
	Stats
	Changed int64        `json:"changed"` // uploads repeated because the file changed meanwhile
	Gone    int64        `json:"gone"`    // files that disappeared before they could be read
	Failed  []FileResult `json:"-"`       // files not uploaded, with the reason
}

type uploader struct {
	b        *blob.Bucket
	root     string
	realRoot string // root with its links resolved
	opts     UploadOptions
	retry    *retrier
	mem      *semaphore.Weighted
	prog     *Progress

	// halt is the error that stopped the upload for every remaining file
	// (credentials refused, store unreachable after retries).
	haltMu       sync.Mutex
	halt         error
	authFailures atomic.Int64 // files refused for want of permission (see stopAll)
	readRefused  atomic.Bool  // a HEAD after an upload was refused (logged once)

	// pending holds, with ListVerify, the uploads waiting for the listing;
	// pendingSeq numbers them as they come, so that a listing page checks
	// only those that were done before it was asked for (an older page may
	// still show the object's previous version).
	pendingMu  sync.Mutex
	pending    map[string]pendingUpload
	pendingSeq uint64

	files, bytes, skipped, retries, changed, gone atomic.Int64
	failedMu                                      sync.Mutex
	failed                                        []FileResult
}

// Upload copies the files, which are below the folder root, to b, with
// opts.Workers files in flight. Each object gets the file's modification
// time in its metadata (MetaModTime). Small files are sent with their MD5
// (Content-MD5) and large ones streamed with a CRC32C; every object's size
// and, where the store reports one, its digest are checked afterwards. A
// file that changes while it is uploaded is uploaded again.
//
// A file that cannot be uploaded does not stop the others; the failures are
// returned in UploadStats.Failed (and given to OnFile). When the store
// refuses the credentials or stays unreachable after the retries, the
// remaining files are not tried and fail with the same error. The error
// returned is nil unless ctx ended.
func Upload(ctx context.Context, b *blob.Bucket, root string, files []UploadFile, opts UploadOptions) (UploadStats, error) {
	opts.defaults()
	// A worker holds a file, and a connection for each part in flight.
	opts.Workers = fitWorkers(opts.Workers, 2+opts.PartConcurrency, opts.Log)
	start := time.Now()
	u := &uploader{b: b, root: root, opts: opts, mem: semaphore.NewWeighted(opts.MemoryBudget), pending: map[string]pendingUpload{}}
	if abs, err := filepath.Abs(root); err == nil {
		u.realRoot = fsutil.Resolve(abs)
	}
	u.retry = &retrier{opts: &u.opts.Options, retries: &u.retries}
	u.prog = newProgress(&u.opts.Options, &u.files, &u.skipped, nil)
	u.prog.Planned(int64(len(files)), -1)

	// With ListVerify, uploads are verified every listEvery as they go.
	stopVerify := make(chan struct{})
	var vwg sync.WaitGroup
	if opts.ListVerify {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			t := time.NewTicker(listEvery)
			defer t.Stop()
			for {
				select {
				case <-stopVerify:
					return
				case <-ctx.Done():
					return
				case <-t.C:
					u.verifyListing(ctx, false)
				}
			}
		}()
	}
	jobs := make(chan UploadFile)
	var wg sync.WaitGroup
	for range min(opts.Workers, max(len(files), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				r, deferred := u.uploadFile(ctx, f)
				if !deferred {
					u.done(r)
				}
			}
		}()
	}
	for _, f := range files {
		jobs <- f
	}
	close(jobs)
	wg.Wait()
	close(stopVerify)
	vwg.Wait()
	if len(u.pending) > 0 {
		u.verifyListing(ctx, true)
	}
	u.prog.Stop()

	st := UploadStats{
		Stats: Stats{Objects: int64(len(files)), Files: u.files.Load(), Bytes: u.bytes.Load(),
			Retries: u.retries.Load(), Duration: time.Since(start)},
		Changed: u.changed.Load(), Gone: u.gone.Load(), Failed: u.failed,
	}
	if err := ctx.Err(); err != nil {
		return st, fault.Wrap(fault.Interrupted, fmt.Errorf("%s: upload interrupted after %d of %s: %w", opts.Conn, st.Files, Count(len(files), "file"), err))
	}
	return st, nil
}

func (u *uploader) done(r FileResult) {
	switch {
	case r.Gone:
		u.gone.Add(1)
	case r.Err != nil:
		u.failedMu.Lock()
		u.failed = append(u.failed, r)
		u.failedMu.Unlock()
	}
	if u.opts.OnFile != nil {
		u.opts.OnFile(r)
	}
}

func (u *uploader) halted() error {
	u.haltMu.Lock()
	defer u.haltMu.Unlock()
	return u.halt
}

// stopAll records err as the reason no further file is tried, when it is
// one that every other file would meet too.
func (u *uploader) stopAll(err error) {
	var le *localError
	if errors.As(err, &le) || errors.Is(err, ErrChanged) {
		return
	}
	switch fault.ClassOf(err) {
	case fault.Auth:
		// Credentials refused fail every file; a policy that denies some
		// keys fails only those: stop after a few, not after the first.
		if u.authFailures.Add(1) < authHalt {
			return
		}
	case fault.Transient, fault.NotFound:
	default:
		return
	}
	u.haltMu.Lock()
	if u.halt == nil {
		u.halt = err
	}
	u.haltMu.Unlock()
}

// authHalt is how many files refused for want of permission stop a batch.
const authHalt = 3

// uploadFile uploads one file, again while it keeps changing underneath.
// It reports whether the result waits for the listing (ListVerify).
func (u *uploader) uploadFile(ctx context.Context, f UploadFile) (FileResult, bool) {
	r := FileResult{UploadFile: f}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			r.Err = err
			return r, false
		}
		if err := u.halted(); err != nil {
			r.Err = fmt.Errorf("not tried: %w", err)
			return r, false
		}
		// The last attempt takes what the file held when it started, if
		// it only grew: a log that never stops growing is still uploaded.
		r.prefixOK = attempt >= u.opts.ChangeRetries
		changed, deferred, err := u.once(ctx, &r, attempt)
		if r.Gone {
			return r, false
		}
		if err != nil {
			r.Err = err
			u.stopAll(err)
			return r, false
		}
		if !changed {
			return r, deferred
		}
		u.changed.Add(1)
		if attempt >= u.opts.ChangeRetries {
			r.Err = fault.Wrap(fault.Transient, fmt.Errorf("%s: %w %d times in a row; it will be uploaded once it is stable", f.Rel, ErrChanged, attempt+1))
			return r, false
		}
		u.opts.Log.Info("file changed while it was uploaded, uploading it again", "file", f.Rel)
	}
}

// racyWait is how long to wait before a file modified at mtime, whose
// reading started at start, can be read again knowing that a change is
// seen: 0 when no write after start can have kept mtime. File systems
// stamp times in ticks: a second where they keep whole seconds (mtime has
// no fraction: older ext4 layouts, some network file systems), a few
// milliseconds on kernels before 6.13 (the clock tick).
func racyWait(mtime, start time.Time) time.Duration {
	tick := 20 * time.Millisecond
	if mtime.Nanosecond() == 0 {
		tick = time.Second
	}
	end := mtime.Add(tick)
	if !end.After(start) || mtime.After(start.Add(racyAhead)) {
		// Long modified; or stamped far ahead of this clock (an archive's
		// times): no wait would see its tick pass.
		return 0
	}
	// (A time a little ahead, from a file server whose clock runs ahead,
	// is waited out too: that server stamps the next write.)
	return min(max(time.Until(end), time.Millisecond), racyAhead+tick)
}

// racyAhead is how far ahead of this clock a file's time may be and still
// be waited for (racyWait).
const racyAhead = 2 * time.Second

// snapshot is what one pass over a file read and hashed.
type snapshot struct {
	md5 []byte
	crc uint32
	n   int64
}

// once uploads the file once. It reports whether the file changed while it
// was read (then the object may not match any version of it), and whether
// its verification waits for the listing.
func (u *uploader) once(ctx context.Context, r *FileResult, attempt int) (changed, deferred bool, err error) {
	path := filepath.Join(u.root, filepath.FromSlash(r.Rel))
	file, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			r.Gone = true
			return false, false, nil
		}
		return false, false, u.localFault(r.Rel, err)
	}
	defer file.Close()
	// What was opened, not what the path named a moment before: a link
	// (or a folder swapped for one) leading out of root is refused, so
	// that the job's code cannot make this upload what only this process
	// may read.
	if opened, err := fsutil.OpenedPath(file); err == nil && u.realRoot != "" && !fsutil.Within(u.realRoot, opened) {
		return false, false, fault.New(fault.Usage, "%s: %s leads out of the folder (to %s): links to files outside it are not uploaded", u.opts.Conn, r.Rel, opened)
	}
	fi, err := file.Stat()
	if err != nil {
		return false, false, u.localFault(r.Rel, err)
	}
	if !fi.Mode().IsRegular() {
		return false, false, fault.New(fault.Usage, "%s: %s is not a regular file", u.opts.Conn, r.Rel)
	}
	// Modified so shortly before that a write while it is read could leave
	// its time as it is (file systems stamp times in ticks): it is read once
	// that tick is past, so that any later write shows. A file written
	// again meanwhile is waited for a few times, then read as it is (its
	// next write, in a later tick, shows).
	for range 3 {
		wait := racyWait(fi.ModTime(), time.Now())
		if wait == 0 {
			break
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false, false, ctx.Err()
		}
		if fi, err = file.Stat(); err != nil {
			return false, false, u.localFault(r.Rel, err)
		}
	}
	before := StateOf(fi)
	r.State = before
	if u.opts.beforeSend != nil {
		u.opts.beforeSend(r.Rel, attempt)
	}
	opts := &blob.WriterOptions{Metadata: map[string]string{MetaModTime: fi.ModTime().UTC().Format(time.RFC3339Nano)}}
	if u.opts.Provider != nil {
		opts.BeforeWrite = u.opts.Provider.BeforeWrite()
	}

	digest := func() []byte { return nil }
	if ud, ok := u.opts.Provider.(UploadDigests); ok {
		ctx, digest = ud.WatchUpload(ctx, opts)
	}
	// Checked just before the upload is committed: a file written while it
	// was read gives content that may match no version of it, which must
	// not replace the object (the last one stored is a whole version).
	ctx = context.WithValue(ctx, sourceKey{}, func() bool {
		fi, err := file.Stat()
		if err != nil {
			return true // cannot tell; the check after the upload stands
		}
		now := StateOf(fi)
		// On the last attempt a file that only grew is taken as far as it
		// was (a log): its first bytes are as they were.
		return now == before || r.prefixOK && now.Ino == before.Ino && now.Size > before.Size
	})
	var snap snapshot
	switch {
	case before.Size <= inlineMax:
		snap, changed, err = u.sendInline(ctx, r, file, before.Size, opts)
	case before.Size < u.opts.LargeObject:
		snap, changed, err = u.sendHashed(ctx, r, file, before.Size, opts)
	default:
		snap, changed, err = u.sendLarge(ctx, r, file, before.Size, opts)
	}
	if err != nil || changed {
		return changed, false, err
	}
	// The content sent is the file's only if the file is still the same.
	after, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Deleted after it was read: what was sent is its last content.
			after = fi
		} else {
			return false, false, u.localFault(r.Rel, err)
		}
	}
	if StateOf(after) != before {
		if !r.prefixOK || after.Size() <= before.Size {
			return true, false, nil
		}
		r.Partial = true
	}
	stored := digest()
	switch {
	case u.opts.NoVerify:
	case snap.md5 != nil && stored != nil:
		// The store computed the MD5 of what it received: compare it now.
		if err := u.check(r, snap, snap.n, stored, noAttributes); err != nil {
			return false, false, err
		}
	case u.opts.ListVerify:
		u.pendingMu.Lock()
		u.pendingSeq++
		u.pending[r.Key] = pendingUpload{r: *r, snap: snap, seq: u.pendingSeq}
		u.pendingMu.Unlock()
		return false, true, nil
	default:
		if err := u.verify(ctx, r, snap); err != nil {
			return false, false, err
		}
	}
	u.files.Add(1)
	u.bytes.Add(snap.n)
	return false, false, nil
}

// sendInline reads a small file into memory and sends it with its MD5.
func (u *uploader) sendInline(ctx context.Context, r *FileResult, f *os.File, size int64, opts *blob.WriterOptions) (snapshot, bool, error) {
	bp, pool := inlineBuffer(size)
	defer pool.Put(bp)
	buf := (*bp)[:size+1]
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return snapshot{}, false, u.localFault(r.Rel, err)
	}
	if int64(n) != size {
		if !r.prefixOK || int64(n) < size {
			return snapshot{}, true, nil // grew or shrank while read
		}
		n = int(size) // it grew: its first size bytes (see once)
	}
	if !SourceUnchanged(ctx) {
		return snapshot{}, true, nil // written while read: what was read may be no version of it
	}
	buf = buf[:n]
	sum := md5.Sum(buf)
	snap := snapshot{md5: sum[:], crc: crc32.Checksum(buf, crcTable), n: int64(n)}
	opts.ContentMD5 = snap.md5
	held, err := u.acquire(ctx, 2*size)
	if err != nil {
		return snap, false, err
	}
	defer u.mem.Release(held)
	bu, _ := u.opts.Provider.(BytesUploader)
	err = u.retry.do(ctx, "PUT "+r.Key, func() error {
		if bu != nil {
			if used, err := bu.UploadBytes(ctx, u.b, r.Key, buf, opts); used {
				return err
			}
		}
		w, err := u.b.NewWriter(ctx, r.Key, opts)
		if err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			closeWriter(w)
			return err
		}
		return closeWriter(w)
	})
	if err != nil {
		return snap, false, u.remoteFault(r, err)
	}
	u.prog.Live.Add(size)
	return snap, false, nil
}

// sendHashed hashes a medium file, then streams it with its MD5, which the
// blob writer checks against what it actually sent.
func (u *uploader) sendHashed(ctx context.Context, r *FileResult, f *os.File, size int64, opts *blob.WriterOptions) (snapshot, bool, error) {
	h := md5.New()
	c := crc32.New(crcTable)
	limit := size + 1 // one more: a file that grew shows
	if r.prefixOK {
		limit = size
	}
	n, err := copyPooled(io.MultiWriter(h, c), fsutil.ContextReader(ctx, io.NewSectionReader(f, 0, limit)), nil, true)
	if cerr := ctx.Err(); cerr != nil {
		return snapshot{}, false, u.remoteFault(r, cerr) // stopped, not a read error
	}
	if err != nil {
		return snapshot{}, false, u.localFault(r.Rel, err)
	}
	if n != size {
		return snapshot{}, true, nil
	}
	snap := snapshot{md5: h.Sum(nil), crc: c.Sum32(), n: n}
	opts.ContentMD5 = snap.md5
	// The SDKs buffer up to a part per part in flight, and S3's reads a
	// whole 16 MiB first chunk before deciding on a multipart upload.
	cost := min(2*size, 32<<20) + (int64(u.opts.PartConcurrency)+1)*u.opts.PartSize
	if size < 16<<20 {
		cost = 2 * size
	}
	changed, err := u.stream(ctx, r, f, size, opts, cost, nil)
	return snap, changed, err
}

// sendLarge uploads a large file in parts: read straight from the file by
// the provider's FileUploader where it has one, else streamed through a
// blob writer and hashed with CRC32C on the way.
func (u *uploader) sendLarge(ctx context.Context, r *FileResult, f *os.File, size int64, opts *blob.WriterOptions) (snapshot, bool, error) {
	if fu, ok := u.opts.Provider.(FileUploader); ok {
		if sent, changed, err := u.sendFile(ctx, fu, r, f, size, opts); sent || err != nil {
			// The store keeps no CRC32C to compare: the check is its size.
			return snapshot{n: size}, changed, err
		}
	}
	c := crc32.New(crcTable)
	cost := 32<<20 + (int64(u.opts.PartConcurrency)+1)*u.opts.PartSize
	changed, err := u.stream(ctx, r, f, size, opts, cost, c)
	return snapshot{crc: c.Sum32(), n: size}, changed, err
}

// directPart is the smallest part of a file uploaded by a FileUploader:
// parts read from the file cost no memory, and fewer parts cost the store
// less (to MinIO, a 2 GiB file went up in 0.6× s5cmd's time with 64 MiB
// parts, 1.04× with 5 MiB ones through the blob writer).
const directPart = 64 << 20

// sendFile uploads a large file through fu. It reports whether fu took
// it, and whether the file shrank while it was read (the upload then
// failed: its parts came up short).
func (u *uploader) sendFile(ctx context.Context, fu FileUploader, r *FileResult, f *os.File, size int64, opts *blob.WriterOptions) (used, changed bool, err error) {
	part := max(u.opts.PartSize, directPart, (size/9000+1<<20-1)&^(1<<20-1))
	// The SDK's buffers for each request in flight, not the parts.
	held, err := u.acquire(ctx, int64(u.opts.PartConcurrency)<<20)
	if err != nil {
		return false, false, err
	}
	defer u.mem.Release(held)
	err = u.retry.do(ctx, "PUT "+r.Key, func() error {
		var err error
		used, err = fu.UploadFile(ctx, u.b, r.Key, f, size, opts, part, u.opts.PartConcurrency, func(n int64) { u.prog.Live.Add(n) })
		if err == nil || ctx.Err() != nil {
			return err
		}
		// A failure the file's own change explains (the store refused a
		// part that differed from its hash, or the file was written or
		// resized): sent again, as any file that changes while it is
		// uploaded.
		fi, ferr := f.Stat()
		if errors.Is(err, ErrChanged) || !SourceUnchanged(ctx) || ferr == nil && fi.Size() != size {
			changed = true
			return nil
		}
		return err
	})
	if err != nil {
		return true, false, u.remoteFault(r, err)
	}
	return used, changed, nil
}

// stream sends size bytes of f through a blob writer, retried from the
// start on transient failures. h, when set, hashes what the last attempt
// sent.
func (u *uploader) stream(ctx context.Context, r *FileResult, f *os.File, size int64, opts *blob.WriterOptions, cost int64, h hash.Hash32) (bool, error) {
	// Parts grow for very large files: stores allow 10,000 parts at most.
	part := max(u.opts.PartSize, (size/9000+1<<20-1)&^(1<<20-1))
	opts.BufferSize = int(part)
	opts.MaxConcurrency = u.opts.PartConcurrency
	if wt, ok := u.opts.Provider.(WriterTuner); ok {
		wt.TuneWriter(opts)
	}
	cost += (int64(u.opts.PartConcurrency) + 1) * (part - u.opts.PartSize)
	held, err := u.acquire(ctx, cost)
	if err != nil {
		return false, err
	}
	defer u.mem.Release(held)
	var changed bool
	su, _ := u.opts.Provider.(StreamUploader)
	err = u.retry.do(ctx, "PUT "+r.Key, func() error {
		changed = false
		if h != nil {
			h.Reset()
		}
		if su != nil {
			used, ch, err := u.streamDirect(ctx, su, r, f, size, opts, part, h)
			if used {
				changed = ch
				return err
			}
		}
		// The writer's context ends when the upload is abandoned (the
		// file changed); an abort that follows still has the upload's.
		wctx, cancel := context.WithCancel(context.WithValue(ctx, abortBaseKey{}, ctx))
		defer cancel()
		w, err := u.b.NewWriter(wctx, r.Key, opts)
		if err != nil {
			return err
		}
		var dst io.Writer = w
		if h != nil {
			dst = io.MultiWriter(w, h)
		}
		// The context is checked between buffers: a writer that looks
		// at it only when closed (fileblob's) would otherwise copy the
		// whole file past the end of the grace budget.
		n, err := copyPooled(dst, fsutil.ContextReader(ctx, io.NewSectionReader(f, 0, size)), &u.prog.Live, true)
		if cerr := ctx.Err(); cerr != nil {
			cancel() // abort the upload: nothing is committed
			closeWriter(w)
			return cerr
		}
		if err == nil && n != size {
			changed = true // shrank while read
			err = errShrank
		}
		if err != nil {
			cancel() // abort the upload: the object is left as it was
			closeWriter(w)
			if changed {
				return nil
			}
			return err
		}
		if !SourceUnchanged(ctx) {
			changed = true
			cancel() // abandon the upload: the object stays as it was
			closeWriter(w)
			return nil
		}
		err = closeWriter(w)
		if err != nil && len(opts.ContentMD5) > 0 && gcerrors.Code(err) == gcerrors.FailedPrecondition {
			// What was sent differs from what was hashed: the file changed.
			changed = true
			return nil
		}
		return err
	})
	if err != nil {
		return false, u.remoteFault(r, err)
	}
	return changed, nil
}

var errShrank = errors.New("the file shrank while it was read")

// streamDirect sends size bytes of f through su, hashing them into h and,
// when opts carries an MD5, checking that what was sent has it. It reports
// whether su took the upload, and whether the file changed while it was
// read (then the object holds no version of it, and it is sent again).
func (u *uploader) streamDirect(ctx context.Context, su StreamUploader, r *FileResult, f *os.File, size int64,
	opts *blob.WriterOptions, part int64, h hash.Hash32) (used, changed bool, err error) {
	cr := &fileReader{r: io.NewSectionReader(f, 0, size), live: &u.prog.Live, size: size, want: opts.ContentMD5,
		unchanged: func() bool { return SourceUnchanged(ctx) }}
	if len(opts.ContentMD5) > 0 {
		cr.sum = md5.New()
	}
	cr.h = h
	used, err = su.UploadStream(ctx, u.b, r.Key, cr, opts, part, u.opts.PartConcurrency)
	if errors.Is(err, errShrank) || errors.Is(err, errChangedMidRead) {
		return true, true, nil // the upload was abandoned before its commit
	}
	return used, false, err
}

var errChangedMidRead = errors.New("the file changed while it was read")

type sourceKey struct{}

// SourceUnchanged reports whether the file an upload reads is as it was
// when the upload began, for a FileUploader or StreamUploader to check
// just before it commits the upload (completes a multipart upload, commits
// a block list): if not, it abandons it and returns an error wrapping
// ErrChanged, and the object stays as it was. Without a file to check
// (ctx carries none), true.
func SourceUnchanged(ctx context.Context) bool {
	f, ok := ctx.Value(sourceKey{}).(func() bool)
	return !ok || f()
}

// fileReader reads a file's first size bytes for an upload, counting them
// into live and hashing them into h and sum; its read errors are local.
// Instead of the end, it returns errShrank when the file gave fewer bytes,
// errChangedMidRead when they do not have the MD5 want: the uploader then
// abandons the upload before committing it, and the object stays as it was.
type fileReader struct {
	r    io.Reader
	n    int64
	size int64
	live *atomic.Int64
	h    hash.Hash32
	sum  hash.Hash
	want []byte
	// unchanged, when set, says the file is still as it was when the
	// upload began; checked at the end, before the upload is committed.
	unchanged func() bool
}

func (fr *fileReader) Read(p []byte) (int, error) {
	n, err := fr.r.Read(p)
	fr.n += int64(n)
	fr.live.Add(int64(n))
	if fr.h != nil {
		fr.h.Write(p[:n])
	}
	if fr.sum != nil {
		fr.sum.Write(p[:n])
	}
	switch {
	case err == io.EOF && fr.n != fr.size:
		return n, errShrank
	case err == io.EOF && fr.sum != nil && !bytes.Equal(fr.sum.Sum(nil), fr.want):
		return n, errChangedMidRead
	case err == io.EOF && fr.unchanged != nil && !fr.unchanged():
		return n, errChangedMidRead
	case err != nil && err != io.EOF:
		err = local(err)
	}
	return n, err
}

// closeWriter closes w. gocloud's Azure writer (v0.47) dereferences a nil
// pipe in Close after its upload failed; the panic is turned into the
// upload's failure, classed transient (the upload is tried again), since
// the store's own error is lost with it.
func closeWriter(w *blob.Writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fault.Wrap(fault.Transient, fmt.Errorf("the upload failed, and the storage library lost the store's error (%v)", p))
		}
	}()
	return w.Close()
}

// acquire takes n bytes of the memory budget and returns what to release.
// A large file takes at most three quarters of the budget, so small files
// keep flowing beside it.
func (u *uploader) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(n, u.opts.MemoryBudget*3/4)
	if err := u.mem.Acquire(ctx, n); err != nil {
		return 0, fault.Wrap(fault.Interrupted, err)
	}
	return n, nil
}

// verify reads the object's attributes back and compares its size and,
// when the store keeps one, its digest with what was sent.
func (u *uploader) verify(ctx context.Context, r *FileResult, snap snapshot) error {
	var attrs *blob.Attributes
	err := u.retry.do(ctx, "HEAD "+r.Key, func() (err error) {
		attrs, err = u.b.Attributes(ctx, r.Key)
		return err
	})
	if err != nil && u.opts.Classify(err) == fault.Auth {
		// Credentials that may write but not read (s3:PutObject without
		// s3:GetObject): the store took the upload, and its answer is all
		// there is to check (it had no digest: a multipart upload, or an
		// object the bucket encrypts with KMS).
		if !u.readRefused.Swap(true) {
			u.opts.Log.Warn("the credentials may not read back what they upload: uploads without a digest in the store's answer are taken as the store answered them", "key", r.Key)
		}
		return nil
	}
	if err != nil {
		return u.remoteFault(r, err)
	}
	return u.check(r, snap, attrs.Size, attrs.MD5, attrs.As)
}

// check compares an object's size and digests with what was sent.
func (u *uploader) check(r *FileResult, snap snapshot, size int64, sum []byte, as func(any) bool) error {
	var problem string
	switch {
	case size != snap.n:
		problem = fmt.Sprintf("the store holds %d bytes, %d were sent", size, snap.n)
	case sum != nil && snap.md5 != nil && !bytes.Equal(sum, snap.md5) && u.md5Usable(as):
		problem = fmt.Sprintf("the store's MD5 is %s, the file's %s", hex.EncodeToString(sum), hex.EncodeToString(snap.md5))
	}
	if problem == "" && u.opts.Provider != nil {
		if crc, ok := u.opts.Provider.CRC32C(as); ok && crc != snap.crc {
			problem = fmt.Sprintf("the store's CRC32C is %08x, the file's %08x", crc, snap.crc)
		}
	}
	if problem != "" {
		return fault.New(fault.Integrity, "%s: %s was uploaded to %q but %s; it will be uploaded again", u.opts.Conn, r.Rel, r.Key, problem)
	}
	return nil
}

// md5Usable reports whether an object's MD5 (from its ETag) is one of its
// content (ETagDigests): not for an object the store encrypted with KMS or
// a customer key, as a bucket's default encryption does to every upload.
func (u *uploader) md5Usable(as func(any) bool) bool {
	ed, ok := u.opts.Provider.(ETagDigests)
	return !ok || ed.MD5Usable(as)
}

// noAttributes is the As function of an object whose attributes were not read.
func noAttributes(any) bool { return false }

type pendingUpload struct {
	r    FileResult
	snap snapshot
	seq  uint64 // its place in the order uploads were done (pendingSeq)
}

// listEvery is how often a batch verified by listings lists its prefix
// while its uploads go on.
var listEvery = 10 * time.Second

// verifyListing lists ListPrefix and checks each pending upload done
// before the page that shows it was asked for, against its entry: present,
// same size, same digest where the store reports one. The final listing
// (after the uploads) reports those it does not find, and those it could
// not check, as failed; one while the uploads go on leaves them pending.
func (u *uploader) verifyListing(ctx context.Context, final bool) {
	token := blob.FirstPageToken
	var lerr error
	for {
		u.pendingMu.Lock()
		left, seq := len(u.pending), u.pendingSeq
		u.pendingMu.Unlock()
		if left == 0 {
			break
		}
		var page []*blob.ListObject
		var next []byte
		lerr = u.retry.do(ctx, "LIST "+u.opts.ListPrefix, func() (err error) {
			page, next, err = u.b.ListPage(ctx, token, 1000, &blob.ListOptions{Prefix: u.opts.ListPrefix})
			return err
		})
		if lerr != nil {
			break
		}
		if u.opts.afterList != nil {
			u.opts.afterList()
		}
		for _, lo := range page {
			u.pendingMu.Lock()
			p, ok := u.pending[lo.Key]
			if ok && p.seq <= seq {
				delete(u.pending, lo.Key)
			}
			u.pendingMu.Unlock()
			if !ok || p.seq > seq {
				continue
			}
			err := u.check(&p.r, p.snap, lo.Size, lo.MD5, lo.As)
			if _, ok := u.opts.Provider.(ETagDigests); ok && err != nil && lo.Size == p.snap.n {
				// A listing cannot tell an encrypted object's ETag from an
				// MD5: its attributes can.
				err = u.verify(ctx, &p.r, p.snap)
			}
			if err != nil {
				p.r.Err = err
			} else {
				u.files.Add(1)
				u.bytes.Add(p.snap.n)
			}
			u.done(p.r)
		}
		if len(next) == 0 {
			break
		}
		token = next
	}
	if !final {
		return
	}
	for _, p := range u.pending {
		if lerr != nil {
			p.r.Err = u.remoteFault(&p.r, lerr)
		} else {
			p.r.Err = fault.New(fault.Integrity, "%s: %s was uploaded to %q but the store does not list it; it will be uploaded again", u.opts.Conn, p.r.Rel, p.r.Key)
		}
		u.done(p.r)
	}
	u.pending = nil
}

func (u *uploader) localFault(rel string, err error) error {
	c := fault.ClassOf(fault.FromSystem(err))
	if c == fault.Auth {
		// Marked local: one file this uid cannot read says nothing of the others.
		return fault.Wrap(c, &localError{fmt.Errorf("%s: cannot read %s as uid %d: %w; fix its permissions or the pod's securityContext (runAsUser, fsGroup)", u.opts.Conn, rel, os.Getuid(), err)})
	}
	return fault.Wrap(c, &localError{fmt.Errorf("%s: cannot read %s: %w", u.opts.Conn, rel, err)})
}

// remoteFault classifies a store error and names the file.
func (u *uploader) remoteFault(r *FileResult, err error) error {
	var le *localError
	if errors.As(err, &le) {
		return u.localFault(r.Rel, le.err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(fault.Interrupted, fmt.Errorf("%s: upload of %s to %q stopped: %w", u.opts.Conn, r.Rel, r.Key, err))
	}
	c := u.opts.Classify(err)
	var fe *fault.Error
	if errors.As(err, &fe) {
		c = fe.Class
		if c != fault.Transient {
			// Classified, and explained, by the provider (a mount
			// store's folder, say): its own words, not a bucket's.
			return fault.Wrap(c, fmt.Errorf("%s: upload of %s to %q: %w", u.opts.Conn, r.Rel, r.Key, err))
		}
	}
	if u.opts.Explain != nil && c == fault.Usage && fe == nil {
		// (A refusal keeps the message below, which names the write
		// permission.)
		if e := u.opts.Explain(err, fmt.Sprintf("upload of %s to %q", r.Rel, r.Key)); e != nil {
			return e
		}
	}
	err = u.opts.cause(err)
	switch c {
	case fault.Auth:
		if u.opts.Credentials != "" {
			return fault.New(c, "%s: upload of %s to %q: access denied with %s: %w; check them and their write permission on the bucket", u.opts.Conn, r.Rel, r.Key, u.opts.Credentials, err)
		}
		return fault.New(c, "%s: upload of %s to %q: access denied: %w; check the connection's credentials and their write permission on the bucket", u.opts.Conn, r.Rel, r.Key, err)
	case fault.NotFound:
		return fault.New(c, "%s: upload of %s to %q: not found: %w; check that the bucket exists", u.opts.Conn, r.Rel, r.Key, err)
	case fault.Transient:
		return fault.New(c, "%s: upload of %s to %q: the store did not answer: %w", u.opts.Conn, r.Rel, r.Key, err)
	}
	return fault.Wrap(c, fmt.Errorf("%s: upload of %s to %q: %w", u.opts.Conn, r.Rel, r.Key, err))
}

// inlinePools[i] holds read buffers of (4 KiB << i) + 1 bytes (one more to
// see a file that grew), up to inlineMax: a small file takes a buffer
// near its size, and many workers do not hold inlineMax each.
var inlinePools [7]sync.Pool

func inlineBuffer(size int64) (*[]byte, *sync.Pool) {
	i := 0
	for 4<<10<<i < size {
		i++
	}
	p := &inlinePools[i]
	bp, _ := p.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 4<<10<<i+1)
		bp = &b
	}
	return bp, p
}
