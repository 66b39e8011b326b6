// Package sidecar uploads a job's outputs while it runs: every interval it
// scans a folder, uploads the files that are new or changed through the
// transfer engine, and when the main container ends (SIGTERM, an "until"
// file, or the pod's status) it flushes everything one last time within a
// grace budget. It never fails because the store was briefly down: what
// could not be uploaded is named in the log and in the report.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/transfer"
)

// MemoryLimitMiB is the default soft memory limit, in MiB, of a sidecar
// uploading with this many workers: 48 MiB, plus 192 KiB for each worker
// beyond 32 (its goroutine's stack, grown through the SDK's middleware,
// its read buffer and its connection: measured with 256 workers). Below
// that, the GC would run all the time once the workers are busy (with 256
// workers and 48 MiB, three times the CPU of 32 workers).
func MemoryLimitMiB(workers int) int64 {
	return 48 + int64(max(workers-32, 0))*192/1024
}

// Config is one sidecar run.
type Config struct {
	Bucket   *blob.Bucket
	Prefix   string // key prefix without a trailing slash; "" is the bucket's root
	StoreURL string // the store's location, for logs and the state's identity
	// StoreID is what else tells this store from others with the same
	// URL (the connection, the endpoint): part of the state's identity, so
	// that a state file saved for one store is not taken for another's.
	StoreID string
	Root    string // the folder whose files are uploaded

	Interval      time.Duration // between the starts of two cycles; 0 means 10 s
	Grace         time.Duration // budget of the final flush after the end; 0 means 25 s
	CheckInterval time.Duration // how often the end conditions are polled; 0 means 2 s
	Delete        bool          // delete the objects of files deleted locally
	Excludes      []string      // globs of names or paths not uploaded
	StatePath     string        // where the uploaded set is persisted; "" keeps it in memory only

	UntilFile string      // the run ends when this file exists
	Watch     *PodWatcher // the run ends when the pod's main container has ended

	Transfer transfer.UploadOptions
	Metrics  *Metrics // may be nil
	Log      *slog.Logger

	// AfterUpload, when set, is called after a file's upload succeeded (a
	// mount store sets the file's modification time with it).
	AfterUpload func(key string, st transfer.FileState) error
	// AfterCycle, when set, is called after each cycle that wrote something
	// (a mount store syncs its file system with it).
	AfterCycle func() error
	// AfterDelete, when set, is called after an object was deleted (a mount
	// removes the folders it leaves empty).
	AfterDelete func(key string) error
	// BeforeDelete, when set, may refuse the deletion of an object (a
	// mount store: a file reached through a link); the object is kept,
	// and the refusal warned about once.
	BeforeDelete func(key string) error
}

// Failure names a file that is not in the store.
type Failure struct {
	Path  string `json:"path"`
	Key   string `json:"key"`
	Error string `json:"error"`
	Class string `json:"class"`
}

// Report is what a run did.
type Report struct {
	EndReason     string        `json:"endReason"`
	Cycles        int           `json:"cycles"`
	Files         int64         `json:"files"` // uploads done (a file changed n times counts n times)
	Bytes         int64         `json:"bytes"`
	Deleted       int64         `json:"deleted"`
	Watched       int           `json:"watched"` // files below the folder at the last scan
	Errors        int64         `json:"errors"`  // failed uploads over the run
	FlushComplete bool          `json:"flushComplete"`
	FlushSeconds  float64       `json:"flushSeconds"`
	NotUploaded   []Failure     `json:"notUploaded"`
	Restored      string        `json:"restored,omitempty"` // how the uploaded set was known at start
	Skipped       int64         `json:"skipped"`            // files found in the store at start, not uploaded again
	FirstClass    fault.Class   `json:"-"`                  // the class of the first not-uploaded file's error
	WatchError    error         `json:"-"`                  // why the end could not be watched for (a flag or RBAC mistake), which ended the run
	Duration      time.Duration `json:"-"`
}

type sidecar struct {
	cfg       Config
	ix        *index
	id        string
	errs      map[string]error // rel → why its latest upload failed
	dels      map[string]error // keys whose deletion is pending → why it failed (nil: not tried yet)
	rep       Report
	log       *slog.Logger
	journal   *uploadJournal // the multipart uploads begun and not ended; nil: none kept
	saved     bool           // the state was saved at least once
	savedAt   time.Time      // when the state was last saved
	firstScan bool           // the first cycle's scan is done

	unreadable  map[string]error      // folders the last scan could not read
	permanent   int                   // failures of the last cycle that trying again cannot mend
	changed     int                   // files the last cycle found new or changed
	stateWarned bool                  // a failure to save the state was logged
	linksOut    map[string]bool       // links leading out of the root, reported once
	watchErr    atomic.Pointer[error] // why the end cannot be watched (watchEnd), once known
	lastDown    error                 // the latest upload the store did not answer
	afterWarned atomic.Bool           // a failure of AfterUpload was logged as a warning
}

// reportLinksOut warns, once each, of links that are not uploaded (to
// files outside the root, to nothing), saying why.
func (s *sidecar) reportLinksOut(rels []string, why string) {
	for _, rel := range rels {
		if s.linksOut[rel] {
			continue
		}
		if s.linksOut == nil {
			s.linksOut = map[string]bool{}
		}
		s.linksOut[rel] = true
		s.log.Warn(why, "file", rel, "path", s.cfg.Root)
	}
}

// afterUploadFailed logs that what follows an upload (on a mount, setting
// the file's modification time) failed: the first time as a warning, then
// at debug level, so a file system that refuses it for every file does not
// flood the log.
func (s *sidecar) afterUploadFailed(key string, err error) {
	if s.afterWarned.CompareAndSwap(false, true) {
		s.log.Warn("the upload succeeded, but not what follows it (on a mount, setting the file's modification time); further failures are logged at debug level", "key", key, "error", err.Error())
		return
	}
	s.log.Debug("after upload", "key", key, "error", err.Error())
}

// classify is the store's classification of err.
func (s *sidecar) classify(err error) fault.Class {
	if s.cfg.Transfer.Classify != nil {
		return s.cfg.Transfer.Classify(err)
	}
	return transfer.ClassifyCode(err)
}

// recordFailure keeps why rel's latest upload failed. An upload stopped at
// the end keeps the cause of the failures before it; one stopped before a
// try of its own failed (the SDK's own retries were still waiting) gets
// the store's latest failure, which says why.
func (s *sidecar) recordFailure(rel string, err error) {
	prev := s.errs[rel]
	switch {
	case fault.ClassOf(err) != fault.Interrupted:
		s.errs[rel] = err
		if fault.ClassOf(err) == fault.Transient {
			s.lastDown = err
		}
	case prev == nil && s.lastDown != nil:
		s.errs[rel] = fmt.Errorf("%w; the store's latest failure, for another file: %v", err, s.lastDown)
	case prev == nil:
		s.errs[rel] = err
	}
}

// permanentDels counts the pending deletions that trying again cannot mend
// (the store refused them).
func (s *sidecar) permanentDels() int {
	n := 0
	for _, err := range s.dels {
		if err != nil && permanentClass(s.classify(err)) {
			n++
		}
	}
	return n
}

// permanentClass says whether a failed upload of that class would fail
// again however often it is tried: a name or a file the store or the
// system refuses, credentials refused, a bucket missing, a full disk.
func permanentClass(c fault.Class) bool {
	switch c {
	case fault.Usage, fault.Auth, fault.NotFound, fault.LocalDisk:
		return true
	}
	return false
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 25 * time.Second
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 2 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Transfer.Log == nil {
		c.Transfer.Log = c.Log
	}
	if c.Transfer.Progress == 0 {
		c.Transfer.Progress = time.Minute
	}
}

// Run uploads until ctx ends (SIGTERM), the until file appears or the
// watched container ends, then flushes within the grace budget. Its error
// is for a configuration that cannot work; upload failures are in the
// report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.defaults()
	start := time.Now()
	excl, err := newExcluder(cfg.Excludes)
	if err != nil {
		return Report{}, fault.Wrap(fault.Usage, err)
	}
	if err := foreignState(cfg.StatePath); err != nil {
		return Report{}, err
	}
	if cfg.UntilFile != "" {
		// A file this user cannot look for would never be seen: the run
		// would not end.
		if _, err := os.Stat(cfg.UntilFile); errors.Is(err, syscall.ENOTDIR) {
			return Report{}, fault.New(fault.Usage, "--until-file %s: a part of its path is a file, not a folder: %v; give a file in a folder", cfg.UntilFile, err)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Report{}, fault.New(fault.Usage, "--until-file %s cannot be looked for by this container's user (uid %d): %v; give a file in a folder it may enter (a shared emptyDir, the pod's fsGroup)", cfg.UntilFile, os.Getuid(), err)
		}
	}
	if cfg.StatePath != "" {
		// Through a link: the file it leads to is kept up to date (a
		// rename onto the link would replace the link).
		// A link to a state file not written yet (into a persistent
		// volume, say) is followed too.
		if real, err := filepath.EvalSymlinks(cfg.StatePath); err == nil {
			cfg.StatePath = real
		} else {
			cfg.StatePath = fsutil.FollowLinks(cfg.StatePath)
		}
	}
	s := &sidecar{cfg: cfg, ix: newIndex(cfg.Root, excl), id: stateID(cfg.StoreURL+"\x00"+cfg.StoreID, cfg.Prefix, cfg.Root),
		errs: map[string]error{}, dels: map[string]error{}, log: cfg.Log}
	// A state file below the folder is not uploaded: each upload would
	// change it, and it would never be in the store as it is. Its
	// temporary files (fsutil.TempPrefix) are excluded like any other.
	if rel := below(cfg.Root, cfg.StatePath); rel != "" {
		excl.exact = append(excl.exact, rel)
		s.log.Info("the state file is inside --path: it is not uploaded", "state", cfg.StatePath, "path", cfg.Root, "file", rel)
	}
	// Nor is the file that says the job has ended: it is no output.
	if rel := below(cfg.Root, cfg.UntilFile); rel != "" {
		excl.exact = append(excl.exact, rel)
	}
	// The multipart uploads a killed sidecar left, recorded beside the
	// state, are aborted (below, beside the work); this one's are recorded
	// there in turn.
	ab, _ := cfg.Transfer.Provider.(transfer.UploadAborter)
	var left []journalEntry
	if ab != nil && cfg.StatePath != "" {
		s.journal = &uploadJournal{path: journalPath(cfg.StatePath, s.id), open: map[string]string{}, log: s.log}
		if rel := below(cfg.Root, s.journal.path); rel != "" {
			excl.exact = append(excl.exact, rel)
		}
		left = s.journal.load()
	}

	// The end: the first of SIGTERM (ctx), the until file, the pod.
	var once sync.Once
	ended := make(chan struct{})
	reason := ""
	var endAt time.Time
	end := func(why string) {
		once.Do(func() {
			reason, endAt = why, time.Now()
			if s.watchErr.Load() != nil {
				s.log.Warn("stopping before the job has ended: its end cannot be watched", "reason", why)
			} else {
				s.log.Info("the job has ended", "reason", why)
			}
			close(ended)
		})
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go func() {
		select {
		case <-ctx.Done():
			end("signal (SIGTERM or SIGINT)")
		case <-watchCtx.Done():
		}
	}()
	if cfg.UntilFile != "" || cfg.Watch != nil {
		go s.watchEnd(watchCtx, end)
	}
	// Work goes on after the end for the grace budget, then stops.
	work, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	go func() {
		select {
		case <-ended:
		case <-watchCtx.Done():
			return
		}
		t := time.NewTimer(cfg.Grace)
		defer t.Stop()
		select {
		case <-t.C:
			stopWork()
		case <-watchCtx.Done():
		}
	}()

	// The aborts go on beside the uploads, within the work's time (a
	// store that does not answer does not hold up the end past the grace),
	// 30 s at most; the end waits for them within that time, since a
	// sidecar that ends its pod's job may have no successor to do them.
	var leftAborted chan struct{}
	if len(left) > 0 {
		actx, cancelAborts := context.WithTimeout(work, 30*time.Second)
		leftAborted = make(chan struct{})
		go func() {
			defer close(leftAborted)
			s.journal.abortLeft(actx, cfg.Bucket, ab, left, "a killed sidecar left")
		}()
		defer func() { <-leftAborted; cancelAborts() }()
	}

	// What is already uploaded, known before the first cycle. A SIGTERM
	// during the store's listing does not cut it short (the files it
	// finds need no upload in the flush), only the end of the grace does.
	s.restore(work)
	s.log.Info("sidecar started", "path", cfg.Root, "store", cfg.StoreURL, "prefix", cfg.Prefix,
		"interval", cfg.Interval.String(), "grace", cfg.Grace.String(), "delete", cfg.Delete, "state", cfg.StatePath)
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for {
		select {
		case <-ended:
			break loop
		case <-timer.C:
			s.cycle(work)
			timer.Reset(cfg.Interval)
		}
	}
	cfg.Metrics.end()
	s.rep.EndReason = reason
	if err := s.watchErr.Load(); err != nil {
		s.rep.WatchError = *err
	}
	// The grace counts from the end, through the cycle that was running
	// then: so does the flush's time.
	s.log.Info("final flush", "reason", reason, "grace", cfg.Grace.String(), "since the end", time.Since(endAt).Round(time.Millisecond).String())
	s.rep.FlushComplete = s.flush(work)
	if s.journal != nil {
		// The uploads still recorded once the flush is done are ones whose
		// abort failed (the store slow or down then), this sidecar's or a
		// killed one's: tried once more within the grace, since no
		// sidecar may come after this one.
		if leftAborted != nil {
			<-leftAborted
		}
		if open := s.journal.entries(); len(open) > 0 && work.Err() == nil {
			actx, cancel := context.WithTimeout(work, 30*time.Second)
			s.journal.abortLeft(actx, cfg.Bucket, ab, open, "whose abort failed")
			cancel()
		}
	}
	s.rep.FlushSeconds = time.Since(endAt).Seconds()
	s.finish()
	s.rep.Duration = time.Since(start)
	return s.rep, nil
}

// below returns the slash-separated path of file below the folder root,
// through symbolic links, or "" when it is not below it.
func below(root, file string) string {
	if root == "" || file == "" {
		return ""
	}
	r, errR := filepath.Abs(root)
	f, errF := filepath.Abs(file)
	if errR != nil || errF != nil {
		return ""
	}
	r, f = fsutil.Resolve(r), fsutil.Resolve(f)
	if r == f || !fsutil.Within(r, f) {
		return ""
	}
	rel, err := filepath.Rel(r, f)
	if err != nil {
		return ""
	}
	return filepath.ToSlash(rel)
}

// watchEnd polls the until file and the pod until one says the job ended.
func (s *sidecar) watchEnd(ctx context.Context, end func(string)) {
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	failures, refused := 0, 0
	untilWarned := false
	for {
		if s.cfg.UntilFile != "" {
			_, err := os.Stat(s.cfg.UntilFile)
			if err == nil {
				end("file " + s.cfg.UntilFile + " exists")
				return
			}
			if !errors.Is(err, fs.ErrNotExist) && !untilWarned {
				untilWarned = true
				s.log.Warn("--until-file cannot be looked for (its folder changed?): the end of the job is not seen until it can", "error", err.Error())
			}
		}
		if s.cfg.Watch != nil {
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			done, why, err := s.cfg.Watch.Ended(rctx)
			cancel()
			if fault.ClassOf(err) == fault.Auth {
				refused++
			} else {
				refused = 0
			}
			switch {
			case fault.ClassOf(err) == fault.Usage || refused >= 3:
				// The end can never be seen (no such container, no right
				// to read the pod): the pod would never complete. Stop
				// now, with what is there uploaded, and say why.
				s.log.Error("cannot watch for the end of the job", "error", err.Error())
				s.watchErr.Store(&err)
				end("--watch-container cannot be watched: " + err.Error())
				return
			case err != nil:
				failures++
				// Log the first failures, then one in ten: the API may be
				// down for a while, and the end may also come as SIGTERM.
				if failures <= 3 || failures%10 == 0 {
					s.log.Warn("cannot read the pod's status", "error", err.Error(), "failures", failures)
				}
			case done:
				end(why)
				return
			default:
				failures = 0
				if why != "" {
					s.log.Info(why)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// restore loads the uploaded set from the state file, or else compares the
// folder with one listing of the store.
func (s *sidecar) restore(ctx context.Context) {
	if s.cfg.StatePath != "" {
		ok, err := s.ix.load(s.cfg.StatePath, s.id)
		switch {
		case err != nil:
			s.log.Warn("state file not used", "state", s.cfg.StatePath, "error", err.Error())
			s.ix.files = map[string]*entry{}
		case ok:
			s.rep.Restored = "state file"
			s.log.Info("uploaded files known from the state file", "state", s.cfg.StatePath, "files", len(s.ix.files))
			if len(s.ix.dels) > 0 && s.cfg.Delete {
				for _, k := range s.ix.dels {
					s.dels[k] = nil
				}
				s.log.Info("deletions still waiting from before the restart", "objects", len(s.ix.dels))
			}
			s.ix.dels = nil
			return
		}
	}
	s.compareWithStore(ctx)
}

// compareWithStore marks as uploaded the files the store already holds with
// the same size, stored after the file's last change (notOlder). It reads
// one listing, page by page.
func (s *sidecar) compareWithStore(ctx context.Context) {
	res, err := s.ix.scan()
	if err != nil || res.missing || res.files == 0 {
		return
	}
	prefix := s.cfg.Prefix
	if prefix != "" {
		prefix += "/"
	}
	token := blob.FirstPageToken
	matched := 0
	defer func() {
		// What the pages read matched, even when a later one failed.
		if matched > 0 {
			s.ix.changed = true
			s.rep.Restored = "store listing"
			s.log.Info("files already in the store, not uploaded again", "files", matched)
		}
	}()
	for {
		// Each page in bounded time: a store that does not answer delays
		// the start by that much, not by the client's own timeouts.
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		page, next, err := s.cfg.Bucket.ListPage(lctx, token, 1000, &blob.ListOptions{Prefix: prefix})
		cancel()
		if err != nil {
			what := "every file"
			if matched > 0 {
				what = "every file not found on the pages read"
			}
			s.log.Warn("cannot list the store to skip files already there; "+what+" will be uploaded", "error", err.Error())
			return
		}
		for _, o := range page {
			e, ok := s.ix.files[o.Key[len(prefix):]]
			if !ok || o.IsDir || e.cur.Size != o.Size || !notOlder(o.ModTime, e.cur.ModTime) {
				continue
			}
			e.up, e.uploaded = e.cur, true
			matched++
		}
		if len(next) == 0 {
			break
		}
		token = next
	}
}

// notOlder reports whether an object, stored at stored, holds a file
// modified at modNs (Unix nanoseconds) as far as times can tell: stored no
// earlier, to the nanosecond where the store keeps a fraction; where it
// keeps whole seconds, in a later second (in the same one, the file may
// have changed after the upload).
func notOlder(stored time.Time, modNs int64) bool {
	if stored.Nanosecond() != 0 {
		return stored.UnixNano() >= modNs
	}
	return stored.Unix() > modNs/1e9
}

func (s *sidecar) key(rel string) string {
	if s.cfg.Prefix == "" {
		return rel
	}
	return s.cfg.Prefix + "/" + rel
}

// cycle scans, deletes what was deleted (with --delete) and uploads what
// is new or changed. It returns the number of files still pending.
func (s *sidecar) cycle(ctx context.Context) int {
	start := time.Now()
	s.rep.Cycles++
	s.permanent = 0
	res, err := s.ix.scan()
	if err != nil {
		s.log.Warn("scan incomplete", "path", s.cfg.Root, "error", err.Error())
	}
	if res.missing {
		s.log.Debug("the folder does not exist yet", "path", s.cfg.Root)
	}
	s.rep.Watched = res.files
	s.unreadable = res.unreadable
	if !s.firstScan {
		s.firstScan = true
		if s.rep.Restored != "" {
			s.rep.Skipped = int64(res.files - len(res.dirty))
		}
	}
	s.reportLinksOut(res.linksOut, "not uploaded: a symbolic link to a file outside --path")
	s.reportLinksOut(res.dangling, "not uploaded: a symbolic link to nothing")
	wrote := false
	s.forget(res.gone)
	for _, rel := range res.dirty {
		if _, ok := s.dels[s.key(rel)]; ok {
			s.dropDel(s.key(rel)) // there again: its upload replaces the object
		}
	}
	if len(s.dels) > 0 {
		wrote = s.deletePending(ctx) || wrote
	}
	sort.Strings(res.dirty)
	var files []transfer.UploadFile
	for _, rel := range res.dirty {
		files = append(files, transfer.UploadFile{Rel: rel, Key: s.key(rel)})
	}
	s.changed = len(files)
	pending := 0
	if len(files) > 0 {
		pending = s.upload(ctx, files)
		wrote = true
		if len(files) >= 1000 {
			// Give the memory of a big batch back before the idle cycles.
			debug.FreeOSMemory()
		}
	}
	pending += len(s.dels)
	if s.cfg.AfterCycle != nil && wrote {
		if err := s.cfg.AfterCycle(); err != nil {
			s.log.Warn("syncing the store's file system", "error", err.Error())
		}
	}
	s.save()
	s.cfg.Metrics.cycle(time.Since(start), res.files, pending, time.Now())
	if len(files) > 0 || pending > 0 {
		s.log.Info("cycle", "changed", len(files), "pending", pending, "watched", res.files, "seconds", time.Since(start).Seconds())
	}
	return pending
}

// forget drops the files a scan no longer found from the index; with
// --delete, the objects of those that were uploaded and no longer exist
// (not merely excluded now, or in a folder the scan could not read) are to
// be deleted.
func (s *sidecar) forget(gone []string) {
	for _, rel := range gone {
		e := s.ix.files[rel]
		if e.uploaded && s.cfg.Delete && !s.exists(rel) {
			s.dels[s.key(rel)] = nil
		}
		delete(s.errs, rel)
		s.ix.remove(rel)
	}
}

// exists reports whether a file named rel is still in the folder, whatever
// the scan made of it (an excluded file). What stands there in its place
// (a folder, a link the scan does not follow, a pipe) is no file: the file
// is gone. When that cannot be told (a permission error), it is taken as
// there: a deletion is never made on a guess.
//
// Each folder on the way is looked at too: a folder replaced by a link to
// one (latest/ made a link to ckpt5/) holds no file the scan uploads, as
// links to folders are not followed.
func (s *sidecar) exists(rel string) bool {
	p := s.cfg.Root
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		switch {
		case err != nil:
			return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR)
		case i == len(parts)-1 && st.Mode()&fs.ModeSymlink != 0:
			// A link to a file below the folder is uploaded as the file
			// (the scan's rule): it is there, maybe excluded.
			t, err := os.Stat(p)
			if err != nil {
				// Its target cannot be looked at: there if it leads below
				// the folder (the scan's rule). To nothing, a loop: gone.
				return errors.Is(err, fs.ErrPermission) && s.ix.insideAsFar(p)
			}
			return t.Mode().IsRegular() && s.ix.inside(p)
		case i == len(parts)-1:
			return st.Mode().IsRegular()
		case !st.IsDir():
			return false // a link, or a file, where the folder was
		}
	}
	return false
}

// upload sends files and records the outcome; it returns how many failed.
func (s *sidecar) upload(ctx context.Context, files []transfer.UploadFile) int {
	// Outcomes are applied as they come (the loop waits in Upload
	// meanwhile), so no list of them grows with the batch.
	var mu sync.Mutex
	failed, partial := 0, 0
	opts := s.cfg.Transfer
	opts.OnFile = func(r transfer.FileResult) {
		if r.Err == nil && !r.Gone {
			s.cfg.Metrics.uploaded(r.State.Size)
			if s.cfg.AfterUpload != nil {
				if err := s.cfg.AfterUpload(r.Key, r.State); err != nil {
					s.afterUploadFailed(r.Key, err)
				}
			}
		} else if r.Err != nil {
			s.cfg.Metrics.failed()
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Gone:
			delete(s.errs, r.Rel)
		case r.Err != nil:
			failed++
			s.rep.Errors++
			// Files not tried after a batch was halted take the halt's
			// class: credentials refused halt after a few refusals only.
			if permanentClass(fault.ClassOf(r.Err)) {
				s.permanent++
			}
			s.recordFailure(r.Rel, r.Err)
			if failed <= 5 {
				s.log.Warn("not uploaded", "file", r.Rel, "error", r.Err.Error())
			}
		default:
			delete(s.errs, r.Rel)
			s.ix.uploaded(r.Rel, r.State)
			// A long batch saves what it has done now and then: a sidecar
			// killed midway (OOM, SIGKILL after the grace) does not upload
			// it again after its restart.
			if time.Since(s.savedAt) >= saveEvery {
				s.save()
			}
			if r.Partial {
				partial++ // still growing: pending, so that a final flush waits for its end
				s.log.Info("file still growing: uploaded as far as it was when read; the rest goes up next cycle", "file", r.Rel, "bytes", r.State.Size)
			}
		}
	}
	// Verify with one listing of the prefix when that costs fewer requests
	// than reading each object's attributes (many files, few objects).
	if s.cfg.Prefix != "" && len(files) > 2*(len(s.ix.files)/1000+1)+10 {
		opts.ListVerify, opts.ListPrefix = true, s.cfg.Prefix+"/"
	}
	if s.journal != nil {
		ctx = transfer.WithUploadJournal(ctx, s.journal)
	}
	st, err := transfer.Upload(ctx, s.cfg.Bucket, s.cfg.Root, files, opts)
	if err != nil {
		s.log.Warn("upload stopped", "error", err.Error())
	}
	s.rep.Files += st.Files
	s.rep.Bytes += st.Bytes
	if failed > 5 {
		s.log.Warn("more files not uploaded", "count", failed-5)
	}
	// Files the upload never reached (it was stopped) stay pending too.
	return len(files) - int(st.Files) - int(st.Gone) + partial
}

// dropDel ends the wait of k's deletion, in the state file too.
func (s *sidecar) dropDel(k string) {
	delete(s.dels, k)
	s.ix.changed = true
}

// deletePending deletes the objects of deleted files; it reports whether
// it deleted any.
func (s *sidecar) deletePending(ctx context.Context) bool {
	keys := make([]string, 0, len(s.dels))
	for k := range s.dels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	deleted := false
	for _, k := range keys {
		if ctx.Err() != nil {
			return deleted
		}
		rel := k
		if s.cfg.Prefix != "" {
			rel = strings.TrimPrefix(k, s.cfg.Prefix+"/")
		}
		if s.exists(rel) {
			// The file is back (re-created while its deletion waited).
			s.dropDel(k)
			continue
		}
		if s.cfg.BeforeDelete != nil {
			if err := s.cfg.BeforeDelete(k); err != nil {
				s.log.Warn("not deleted: the object is kept", "key", k, "reason", err.Error())
				s.dropDel(k)
				continue
			}
		}
		err := s.cfg.Bucket.Delete(ctx, k)
		if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			s.log.Warn("cannot delete the object of a deleted file", "key", k, "error", err.Error())
			s.dels[k] = err
			continue
		}
		if s.cfg.AfterDelete != nil {
			if err := s.cfg.AfterDelete(k); err != nil {
				s.log.Debug("after delete", "key", k, "error", err.Error())
			}
		}
		s.dropDel(k)
		s.rep.Deleted++
		s.cfg.Metrics.removed()
		deleted = true
		s.log.Info("deleted", "key", k)
	}
	return deleted
}

func (s *sidecar) save() {
	if s.cfg.StatePath == "" || (!s.ix.changed && s.saved) {
		return
	}
	s.savedAt = time.Now()
	if err := s.ix.save(s.cfg.StatePath, s.id, s.dels); err != nil {
		if !s.stateWarned {
			s.log.Warn("cannot save the state; after a restart, files will be compared with the store (give --state a file on a writable volume, an emptyDir say, or --state none)", "state", s.cfg.StatePath, "error", err.Error())
			s.stateWarned = true
		}
		return
	}
	s.saved = true
}

// flush runs cycles until nothing is pending or the grace budget is spent.
// It reports whether everything was uploaded.
func (s *sidecar) flush(ctx context.Context) bool {
	wait := 250 * time.Millisecond
	for {
		if ctx.Err() != nil {
			return false
		}
		pending := s.cycle(ctx)
		if pending == 0 {
			if s.changed == 0 {
				return len(s.unreadable) == 0
			}
			// Everything went up: one more scan a moment later, to see
			// that nothing changes any more (a log still being written,
			// a last file written just after the end was signalled).
			select {
			case <-ctx.Done():
				return false
			case <-time.After(settle):
			}
			continue
		}
		if pending == s.permanent+s.permanentDels() {
			return false // what is left cannot be uploaded by trying again
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// settle is how long the final flush waits, after a cycle that uploaded
// everything, before the scan that must find nothing changed to end it.
const settle = 100 * time.Millisecond

// saveEvery is how often a long batch of uploads saves the state.
const saveEvery = 10 * time.Second

// foreignState refuses a --state path that holds something else than a
// state file (a file of the job's, given by mistake): it would be written
// over. An empty file, or none, is fine.
func foreignState(path string) error {
	if path == "" {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil // none yet; an unreadable one is warned about when loaded
	}
	if st.IsDir() {
		return fault.New(fault.Usage, "--state %s is a folder: give the path of a file (it need not exist)", path)
	}
	if !st.Mode().IsRegular() {
		return fault.New(fault.Usage, "--state %s is not a regular file (a device, a pipe…): give the path of a file (it need not exist), or --state none", path)
	}
	if st.Size() == 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	head := make([]byte, len(stateHeader)+1)
	n, _ := io.ReadFull(f, head)
	if string(head[:n]) != stateHeader+"\n" {
		return fault.New(fault.Usage, "--state %s is not a sidecar state file: it is left as it is; give another path, or remove that file", path)
	}
	return nil
}

// finish lists what is not in the store, and saves the state. A last scan
// first finds the files written since the last cycle, which the flush may
// not have had the time to scan.
func (s *sidecar) finish() {
	res, _ := s.ix.scan() // its errors are in res.unreadable
	s.forget(res.gone)
	if !res.missing {
		s.unreadable = res.unreadable
	}
	var rels []string
	for rel, e := range s.ix.files {
		// The files of a folder that cannot be read are not seen: the
		// folder is named below, not each file the state file knew there.
		if e.dirty() && !underAny(rel, s.unreadable) {
			rels = append(rels, rel)
		}
	}
	sort.Strings(rels)
	for _, rel := range rels {
		f := Failure{Path: rel, Key: s.key(rel)}
		err := s.errs[rel]
		if err == nil {
			err = errors.New("not uploaded before the grace period (--grace) ran out")
			if s.rep.FlushComplete {
				err = errors.New("changed after the final flush")
			}
		}
		c := fault.ClassOf(err)
		if c == fault.Interrupted {
			err = fmt.Errorf("stopped when the grace period (--grace) ran out: %w", err)
		}
		if c == fault.Interrupted || c == fault.Internal {
			c = fault.Transient
		}
		f.Error, f.Class = err.Error(), c.String()
		if s.rep.FirstClass == 0 {
			s.rep.FirstClass = c
		}
		s.rep.NotUploaded = append(s.rep.NotUploaded, f)
	}
	dirs := make([]string, 0, len(s.unreadable))
	for d := range s.unreadable {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		err := s.unreadable[d]
		c := fault.ClassOf(fault.FromSystem(err))
		if c == fault.Internal {
			c = fault.LocalDisk
		}
		p, k := d+"/", s.key(d)+"/"
		if d == "" { // --path itself
			p, k = "./", s.cfg.Prefix
		}
		msg := fmt.Sprintf("the folder cannot be read: %v; its files are not uploaded", err)
		if c == fault.Auth {
			msg += ": let this container's user read it (the job's umask, the pod's fsGroup)"
		}
		s.rep.NotUploaded = append(s.rep.NotUploaded, Failure{Path: p, Key: k, Error: msg, Class: c.String()})
		if s.rep.FirstClass == 0 {
			s.rep.FirstClass = c
		}
	}
	keys := make([]string, 0, len(s.dels))
	for k := range s.dels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		msg, c := "deletion of the object pending", fault.Transient
		if err := s.dels[k]; err != nil {
			msg += ": " + err.Error()
			if dc := s.classify(err); dc != fault.Internal && dc != fault.Interrupted {
				c = dc
			}
		}
		rel := k
		if s.cfg.Prefix != "" {
			rel = strings.TrimPrefix(k, s.cfg.Prefix+"/")
		}
		s.rep.NotUploaded = append(s.rep.NotUploaded, Failure{Path: rel, Key: k, Error: msg, Class: c.String()})
		if s.rep.FirstClass == 0 {
			s.rep.FirstClass = c
		}
	}
	for i, f := range s.rep.NotUploaded {
		if i == 100 {
			s.log.Error("and more files not uploaded", "count", len(s.rep.NotUploaded)-100)
			break
		}
		s.log.Error("not uploaded", "file", f.Path, "key", f.Key, "error", f.Error)
	}
	s.save()
	if s.rep.NotUploaded == nil {
		s.rep.NotUploaded = []Failure{}
	}
	s.log.Info("sidecar done", "reason", s.rep.EndReason, "uploads", s.rep.Files, "bytes", s.rep.Bytes,
		"deleted", s.rep.Deleted, "notUploaded", len(s.rep.NotUploaded), "flushSeconds", s.rep.FlushSeconds)
}

// Summary is the report in one line.
func (r Report) Summary(storeURL string) string {
	s := fmt.Sprintf("sidecar: %s (%d bytes) to %s in %s, %s deleted; ended by %s",
		transfer.Count(r.Files, "upload"), r.Bytes, storeURL, transfer.Count(r.Cycles, "cycle"), transfer.Count(r.Deleted, "object"), r.EndReason)
	if n := len(r.NotUploaded); n > 0 {
		names := ""
		for i, f := range r.NotUploaded {
			if i == 5 {
				names += ", …"
				break
			}
			if i > 0 {
				names += ", "
			}
			names += f.Path
		}
		s += fmt.Sprintf("; %s NOT uploaded: %s", transfer.Count(n, "file"), names)
	} else {
		s += "; every file is in the store"
	}
	return s
}
