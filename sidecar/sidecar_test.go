package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/transfer"
)

func testConfig(b *blob.Bucket, root string) Config {
	return Config{
		Bucket: b, Prefix: "run", StoreURL: "mem://", Root: root,
		Interval: 50 * time.Millisecond, CheckInterval: 10 * time.Millisecond, Grace: 5 * time.Second,
		Transfer: transfer.UploadOptions{Options: transfer.Options{Workers: 4, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, Retries: 1}},
	}
}

// runOnce runs the sidecar as if its job had ended at its start: one
// flush, then the end.
func runOnce(cfg Config) (Report, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return Run(ctx, cfg)
}

// runAsync runs the sidecar in the background; its report comes on the
// channel.
func runAsync(t *testing.T, ctx context.Context, cfg Config) <-chan Report {
	done := make(chan Report, 1)
	go func() {
		rep, err := Run(ctx, cfg)
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	return done
}

func has(t *testing.T, b *blob.Bucket, key, want string) bool {
	t.Helper()
	got, err := b.ReadAll(context.Background(), key)
	return err == nil && string(got) == want
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The loop uploads while running, mirrors deletions with Delete, and ends
// with the until file after a flush that catches the last files.
func TestRunUntilFileWithDelete(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := filepath.Join(t.TempDir(), "out")
	write(t, root, "a", "1")
	write(t, root, "gone", "2")
	until := filepath.Join(t.TempDir(), "until")
	cfg := testConfig(b, root)
	cfg.UntilFile, cfg.Delete, cfg.Metrics = until, true, NewMetrics()
	cfg.StatePath = filepath.Join(t.TempDir(), "state")
	done := runAsync(t, context.Background(), cfg)
	eventually(t, "gone uploaded", func() bool { return has(t, b, "run/gone", "2") })
	os.Remove(filepath.Join(root, "gone"))
	eventually(t, "gone deleted", func() bool { ok, _ := b.Exists(context.Background(), "run/gone"); return !ok })
	write(t, root, "last", "3")
	write(t, filepath.Dir(until), "until", "")
	rep := <-done
	if !has(t, b, "run/last", "3") || !has(t, b, "run/a", "1") {
		t.Error("files missing after the flush")
	}
	if rep.Deleted != 1 || !rep.FlushComplete || len(rep.NotUploaded) != 0 || !strings.Contains(rep.EndReason, "until") {
		t.Errorf("report %+v", rep)
	}
	rec := httptest.NewRecorder()
	cfg.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, m := range []string{"initializer_sidecar_uploaded_files_total 3", "initializer_sidecar_deleted_objects_total 1", "initializer_sidecar_pending_files 0"} {
		if !strings.Contains(rec.Body.String(), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

// A store that fails: the run ends (cancelled like SIGTERM), spends its
// grace budget, and names every file not uploaded.
func TestRunStoreDownAtTheEnd(t *testing.T) {
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	os.WriteFile(filepath.Join(dir, "run"), nil, 0o644) // every write fails
	root := t.TempDir()
	write(t, root, "x/1", "1")
	write(t, root, "x/2", "2")
	cfg := testConfig(b, root)
	cfg.Grace = 300 * time.Millisecond
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FlushComplete || len(rep.NotUploaded) != 2 || rep.NotUploaded[0].Path != "x/1" || rep.NotUploaded[1].Key != "run/x/2" {
		t.Fatalf("report %+v", rep)
	}
	if rep.FirstClass != fault.Transient || !strings.Contains(rep.EndReason, "signal") {
		t.Errorf("class %v, reason %q", rep.FirstClass, rep.EndReason)
	}
	if s := rep.Summary("file://"); !strings.Contains(s, "2 files NOT uploaded: x/1, x/2") {
		t.Errorf("summary %q", s)
	}
}

// Without a state file, one listing of the store spares files already there.
func TestRunComparesWithStore(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := t.TempDir()
	write(t, root, "same", "same")
	write(t, root, "other", "local")
	b.WriteAll(context.Background(), "run/same", []byte("same"), nil)
	b.WriteAll(context.Background(), "run/other", []byte("remote, other size"), nil)
	cfg := testConfig(b, root)
	rep, err := runOnce(cfg)
	if err != nil || rep.Files != 1 || rep.Restored != "store listing" || !has(t, b, "run/other", "local") {
		t.Fatalf("%v %+v", err, rep)
	}
}

func TestMemoryLimitMiB(t *testing.T) {
	for _, c := range []struct {
		workers int
		want    int64
	}{{1, 48}, {32, 48}, {64, 54}, {128, 66}, {256, 90}} {
		if got := MemoryLimitMiB(c.workers); got != c.want {
			t.Errorf("MemoryLimitMiB(%d) = %d, want %d", c.workers, got, c.want)
		}
	}
}

// A deletion that failed and waits is dropped once the file is back, even
// when the file's new upload came first.
func TestPendingDeletionOfARecreatedFile(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := t.TempDir()
	cfg := testConfig(b, root)
	cfg.Delete, cfg.Log = true, slog.New(slog.DiscardHandler)
	s := &sidecar{cfg: cfg, ix: newIndex(root, nil), errs: map[string]error{}, dels: map[string]error{}, log: cfg.Log}
	write(t, root, "a", "new")
	if err := b.WriteAll(context.Background(), "run/a", []byte("new"), nil); err != nil {
		t.Fatal(err)
	}
	s.dels["run/a"], s.dels["run/gone"] = nil, nil
	s.deletePending(context.Background())
	if !has(t, b, "run/a", "new") || len(s.dels) != 0 || s.rep.Deleted != 1 {
		t.Errorf("object %v, pending %v, deleted %d", has(t, b, "run/a", "new"), s.dels, s.rep.Deleted)
	}
}

// A --state file inside the folder is not uploaded: the final flush ends
// at once instead of chasing the state file, which each upload rewrites,
// for the whole grace, and reports nothing missing.
func TestRunStateFileInsideFolder(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := filepath.Join(t.TempDir(), "out")
	write(t, root, "a", "1")
	write(t, root, "sub/b", "2")
	cfg := testConfig(b, root)
	cfg.StatePath = filepath.Join(root, "sub", "sidecar.state")
	cfg.Grace = 3 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(t, ctx, cfg)
	eventually(t, "the files uploaded", func() bool { return has(t, b, "run/a", "1") && has(t, b, "run/sub/b", "2") })
	write(t, root, "c", "3")
	cancel()
	rep := <-done
	if !rep.FlushComplete || len(rep.NotUploaded) != 0 || rep.FlushSeconds > 1.5 {
		t.Errorf("flush complete %v in %.1f s, not uploaded %+v", rep.FlushComplete, rep.FlushSeconds, rep.NotUploaded)
	}
	if !has(t, b, "run/c", "3") {
		t.Error("c not uploaded")
	}
	if ok, _ := b.Exists(context.Background(), "run/sub/sidecar.state"); ok {
		t.Error("the state file was uploaded")
	}
	if _, err := os.Stat(cfg.StatePath); err != nil {
		t.Errorf("the state file was not written: %v", err)
	}
	if got := below(root, filepath.Join(root, "sub", "..", "x.state")); got != "x.state" {
		t.Errorf("below: %q", got)
	}
	if got := below(root, filepath.Join(filepath.Dir(root), "out.state")); got != "" {
		t.Errorf("below, outside: %q", got)
	}
}

// An upload stopped at the end keeps the cause of its earlier failures;
// one stopped before any try of its own failed gets the store's latest
// failure, so the report says why (connection refused), not only that
// the grace ran out.
func TestRecordFailureKeepsACause(t *testing.T) {
	s := &sidecar{errs: map[string]error{}}
	stopped := fault.Wrap(fault.Interrupted, errors.New("upload stopped: context canceled"))
	down := fault.New(fault.Transient, "upload of a: the store did not answer: connection refused")
	s.recordFailure("a", down)
	s.recordFailure("a", stopped)
	if s.errs["a"] != down {
		t.Errorf("a: %v", s.errs["a"])
	}
	s.recordFailure("late", stopped)
	if e := s.errs["late"]; !strings.Contains(e.Error(), "connection refused") || fault.ClassOf(e) != fault.Interrupted {
		t.Errorf("late: %v (%v)", e, fault.ClassOf(e))
	}
	fresh := &sidecar{errs: map[string]error{}}
	fresh.recordFailure("x", stopped)
	if fresh.errs["x"] != stopped {
		t.Errorf("x: %v", fresh.errs["x"])
	}
}

// A deletion that BeforeDelete refuses keeps the object, and is not
// tried again.
func TestRunBeforeDeleteRefuses(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := filepath.Join(t.TempDir(), "out")
	write(t, root, "kept", "1")
	until := filepath.Join(t.TempDir(), "until")
	cfg := testConfig(b, root)
	cfg.UntilFile, cfg.Delete = until, true
	var asked atomic.Int32
	cfg.BeforeDelete = func(key string) error { asked.Add(1); return errors.New("reached through a link") }
	done := runAsync(t, context.Background(), cfg)
	eventually(t, "kept uploaded", func() bool { return has(t, b, "run/kept", "1") })
	os.Remove(filepath.Join(root, "kept"))
	eventually(t, "the deletion asked", func() bool { return asked.Load() > 0 })
	time.Sleep(200 * time.Millisecond) // a few more cycles
	write(t, filepath.Dir(until), "until", "")
	rep := <-done
	if !has(t, b, "run/kept", "1") || rep.Deleted != 0 || asked.Load() != 1 {
		t.Errorf("object kept %v, deleted %d, asked %d times", has(t, b, "run/kept", "1"), rep.Deleted, asked.Load())
	}
}

// A state file is tied to its store: the same URL on another connection
// (another endpoint) uploads everything, not nothing.
func TestRunStateOfAnotherStore(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a", "1")
	state := filepath.Join(t.TempDir(), "state")
	run := func(b *blob.Bucket, id string) Report {
		cfg := testConfig(b, root)
		cfg.StatePath, cfg.StoreID = state, id
		rep, err := runOnce(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	first := memblob.OpenBucket(nil)
	if rep := run(first, "onprem\x00http://a:9000"); rep.Files != 1 {
		t.Fatalf("first: %+v", rep)
	}
	if rep := run(first, "onprem\x00http://a:9000"); rep.Files != 0 || rep.Restored != "state file" || rep.Skipped != 1 {
		t.Errorf("restart on the same store: %+v", rep)
	}
	second := memblob.OpenBucket(nil)
	if rep := run(second, "backup\x00http://b:9000"); rep.Files != 1 || !has(t, second, "run/a", "1") {
		t.Errorf("another store with the same URL: %+v", rep)
	}
}

// A --state path holding something else is refused and left as it is; an
// empty file is taken.
func TestRunForeignStateFile(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a", "1")
	dir := t.TempDir()
	csv := filepath.Join(dir, "metrics.csv")
	os.WriteFile(csv, []byte("metric,1\n"), 0o644)
	cfg := testConfig(memblob.OpenBucket(nil), root)
	cfg.StatePath = csv
	_, err := runOnce(cfg)
	if err == nil || fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "not a sidecar state file") {
		t.Errorf("a foreign --state file: %v", err)
	}
	if b, _ := os.ReadFile(csv); string(b) != "metric,1\n" {
		t.Errorf("the file given as --state was changed: %q", b)
	}
	cfg.StatePath = dir
	if _, err := runOnce(cfg); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("a folder as --state: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.StatePath = fifo
	if _, err := runOnce(cfg); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a pipe as --state: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	cfg.StatePath = empty
	if rep, err := runOnce(cfg); err != nil || rep.Files != 1 {
		t.Fatalf("an empty --state file: %v %+v", err, rep)
	}
	if b, _ := os.ReadFile(empty); !strings.HasPrefix(string(b), stateHeader+"\n") {
		t.Errorf("the empty state file was not written: %q", b)
	}
	// Through a link, the file it leads to is kept up to date.
	link := filepath.Join(dir, "link")
	os.Symlink(empty, link)
	write(t, root, "b", "2")
	cfg.StatePath = link
	if rep, err := runOnce(cfg); err != nil || rep.Files != 1 {
		t.Fatalf("--state through a link: %v %+v", err, rep)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v", err)
	}
	if b, _ := os.ReadFile(empty); !strings.Contains(string(b), `"b"`) {
		t.Errorf("the linked state file was not updated: %q", b)
	}
}

// A long batch saves the state as it goes: after a kill midway, what was
// uploaded is known.
func TestRunSavesStateDuringBatch(t *testing.T) {
	root := t.TempDir()
	for i := range 20 {
		write(t, root, fmt.Sprintf("f%02d", i), "x")
	}
	b := memblob.OpenBucket(nil)
	cfg := testConfig(b, root)
	cfg.StatePath = filepath.Join(t.TempDir(), "state")
	cfg.Transfer.Workers = 1
	var seen atomic.Int32
	saved := make(chan string, 1)
	cfg.AfterUpload = func(key string, _ transfer.FileState) error {
		if seen.Add(1) == 10 {
			// Halfway: what the state file holds now is what a kill now
			// would leave.
			b, _ := os.ReadFile(cfg.StatePath)
			saved <- string(b)
		}
		return nil
	}
	if _, err := runOnce(cfg); err != nil {
		t.Fatal(err)
	}
	st := <-saved
	if n := strings.Count(st, "\n") - 2; n < 1 {
		t.Errorf("halfway through the batch the state file holds %d files:\n%s", n, st)
	}
}

// After a restart, the files of a folder that cannot be read any more are
// not reported one by one as not uploaded: the folder is.
func TestRunUnreadableFolderAfterRestart(t *testing.T) {
	root := t.TempDir()
	write(t, root, "locked/l", "1")
	write(t, root, "a", "2")
	b := memblob.OpenBucket(nil)
	cfg := testConfig(b, root)
	cfg.StatePath = filepath.Join(t.TempDir(), "state")
	if rep, err := runOnce(cfg); err != nil || rep.Files != 2 {
		t.Fatalf("%v %+v", err, rep)
	}
	locked := filepath.Join(root, "locked")
	openDir = func(name string) (*os.File, error) {
		if name == locked {
			return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrPermission}
		}
		return os.Open(name)
	}
	defer func() { openDir = os.Open }()
	rep, err := runOnce(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.NotUploaded) != 1 || rep.NotUploaded[0].Path != "locked/" || rep.FirstClass != fault.Auth {
		t.Errorf("not uploaded: %+v (first class %v)", rep.NotUploaded, rep.FirstClass)
	}
}

// notOlder: an object stored in the same whole second as the file's
// change may predate it; with a fraction, times compare to the nanosecond.
func TestNotOlder(t *testing.T) {
	mod := time.Date(2026, 1, 2, 3, 4, 5, 500, time.UTC).UnixNano()
	for _, c := range []struct {
		stored time.Time
		want   bool
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), false}, // whole second, the same one
		{time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), true},
		{time.Date(2026, 1, 2, 3, 4, 5, 400, time.UTC), false},
		{time.Date(2026, 1, 2, 3, 4, 5, 500, time.UTC), true},
		{time.Date(2026, 1, 2, 3, 4, 5, 900, time.UTC), true},
	} {
		if got := notOlder(c.stored, mod); got != c.want {
			t.Errorf("stored %s: %v", c.stored.Format(time.RFC3339Nano), got)
		}
	}
}

// A sidecar started again without its state compares the folder with the
// store's listing: a file changed after its upload, in the same second and
// at the same size, is uploaded again.
func TestRestartWithoutStateSameSecond(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := filepath.Join(t.TempDir(), "out")
	write(t, root, "m.json", "v1")
	until := filepath.Join(t.TempDir(), "until")
	write(t, filepath.Dir(until), "until", "")
	cfg := testConfig(b, root)
	cfg.UntilFile = until
	<-runAsync(t, context.Background(), cfg)
	attrs, err := b.Attributes(context.Background(), "run/m.json")
	if err != nil {
		t.Fatal(err)
	}
	// Changed 1 ns after the upload: the same second, nearly always.
	write(t, root, "m.json", "v2")
	mod := attrs.ModTime.Add(time.Nanosecond)
	os.Chtimes(filepath.Join(root, "m.json"), mod, mod)
	rep := <-runAsync(t, context.Background(), cfg)
	if !has(t, b, "run/m.json", "v2") {
		t.Errorf("the store kept the old content: %+v", rep)
	}
}

// A deletion (--delete) that the store refused when the sidecar stopped is
// kept in the state file: the next sidecar, started with it, deletes the
// object once the store lets it.
func TestDeletionWaitsAcrossRestarts(t *testing.T) {
	storeDir := t.TempDir()
	b, err := fileblob.OpenBucket(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	root := filepath.Join(t.TempDir(), "out")
	write(t, root, "keep", "k")
	write(t, root, "ckpt", "c")
	state := filepath.Join(t.TempDir(), "state")
	until := filepath.Join(t.TempDir(), "until")
	cfg := testConfig(b, root)
	cfg.UntilFile, cfg.Delete, cfg.StatePath, cfg.Grace = until, true, state, 300*time.Millisecond
	done := runAsync(t, context.Background(), cfg)
	eventually(t, "ckpt uploaded", func() bool { return has(t, b, "run/ckpt", "c") })
	// The store cannot delete it now (a folder with something in it where
	// the object's file was), and the job deletes its file.
	obj := filepath.Join(storeDir, "run", "ckpt")
	os.Remove(obj)
	write(t, obj, "blocker", "x")
	os.Remove(filepath.Join(root, "ckpt"))
	eventually(t, "the deletion tried", func() bool {
		st, _ := os.ReadFile(state)
		return strings.Contains(string(st), `delete "run/ckpt"`)
	})
	write(t, filepath.Dir(until), "until", "")
	<-done

	// The store is back to normal, with the object.
	os.RemoveAll(obj)
	if err := b.WriteAll(context.Background(), "run/ckpt", []byte("c"), nil); err != nil {
		t.Fatal(err)
	}
	rep := <-runAsync(t, context.Background(), cfg)
	if ok, _ := b.Exists(context.Background(), "run/ckpt"); ok || rep.Deleted != 1 {
		t.Errorf("the object of the deleted file is still there (deleted %d)", rep.Deleted)
	}
	if st, _ := os.ReadFile(state); strings.Contains(string(st), "delete ") {
		t.Errorf("the state still lists the deletion:\n%s", st)
	}
	if !has(t, b, "run/keep", "k") {
		t.Error("keep lost")
	}
}

// An --until-file inside the folder marks the end: it is not an output.
func TestUntilFileInsideNotUploaded(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := filepath.Join(t.TempDir(), "out")
	write(t, root, "model.bin", "m")
	cfg := testConfig(b, root)
	cfg.UntilFile = filepath.Join(root, "logs", ".done")
	done := runAsync(t, context.Background(), cfg)
	eventually(t, "model.bin uploaded", func() bool { return has(t, b, "run/model.bin", "m") })
	write(t, root, "logs/.done", "")
	rep := <-done
	if ok, _ := b.Exists(context.Background(), "run/logs/.done"); ok || rep.Files != 1 {
		t.Errorf("the end marker was uploaded (%d files)", rep.Files)
	}
}

// With Delete, a folder replaced by a link to a folder (latest/ made a link
// to ckpt5/) holds no file any more (links to folders are not followed):
// the objects of the files it held are deleted.
func TestRunDeleteFolderReplacedByLink(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := t.TempDir()
	write(t, root, "latest/model.bin", "old")
	write(t, root, "ckpt5/model.bin", "new")
	cfg := testConfig(b, root)
	cfg.Delete, cfg.StatePath = true, filepath.Join(t.TempDir(), "state")
	if _, err := runOnce(cfg); err != nil || !has(t, b, "run/latest/model.bin", "old") {
		t.Fatalf("first run: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ckpt5", filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
	rep, err := runOnce(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Exists(context.Background(), "run/latest/model.bin"); ok || rep.Deleted != 1 {
		t.Errorf("the object of a file under a folder now a link is kept (deleted %d)", rep.Deleted)
	}
	if !has(t, b, "run/ckpt5/model.bin", "new") {
		t.Error("ckpt5/model.bin is not in the store")
	}
}

// With Delete, a link to a file below the folder (uploaded as the file)
// that is excluded later keeps its object, as an excluded file does.
func TestRunDeleteKeepsExcludedLink(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := t.TempDir()
	write(t, root, "ckpt/model.bin", "weights")
	if err := os.Symlink("ckpt/model.bin", filepath.Join(root, "latest.bin")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(b, root)
	cfg.Delete, cfg.StatePath = true, filepath.Join(t.TempDir(), "state")
	if _, err := runOnce(cfg); err != nil || !has(t, b, "run/latest.bin", "weights") {
		t.Fatalf("first run: %v", err)
	}
	cfg.Excludes = []string{"latest.bin"}
	rep, err := runOnce(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !has(t, b, "run/latest.bin", "weights") || rep.Deleted != 0 {
		t.Errorf("the object of an excluded link to a file was deleted (deleted %d)", rep.Deleted)
	}
}

// A --state given through a link to a file not written yet (in a
// persistent volume) is written where the link leads; the link stays.
func TestRunStateThroughDanglingLink(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := t.TempDir()
	write(t, root, "a", "1")
	vol, links := t.TempDir(), t.TempDir()
	link := filepath.Join(links, "state")
	if err := os.Symlink(filepath.Join(vol, "sc.state"), link); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(b, root)
	cfg.StatePath = link
	if _, err := runOnce(cfg); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(vol, "sc.state")); err != nil {
		t.Errorf("the state is not where the link leads: %v", err)
	}
}

// Links to nothing, loops and links through a file are left out (named
// once) at once: they hold neither the flush nor the report; with Delete,
// a file replaced by one is gone.
func TestRunLinksThatCannotBeFollowed(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root := t.TempDir()
	write(t, root, "a.txt", "a")
	write(t, root, "b.txt", "b")
	cfg := testConfig(b, root)
	cfg.Delete, cfg.StatePath = true, filepath.Join(t.TempDir(), "state")
	if _, err := runOnce(cfg); err != nil || !has(t, b, "run/b.txt", "b") {
		t.Fatalf("first run: %v", err)
	}
	os.Remove(filepath.Join(root, "b.txt"))
	for name, to := range map[string]string{"b.txt": "b.txt", "loop": "loop", "through": "a.txt/x", "nothing": "none"} {
		if err := os.Symlink(to, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := runOnce(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.NotUploaded) != 0 || !rep.FlushComplete || rep.Deleted != 1 {
		t.Errorf("not uploaded %v, flush complete %v, deleted %d", rep.NotUploaded, rep.FlushComplete, rep.Deleted)
	}
}
