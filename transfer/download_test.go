package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
)

func put(t *testing.T, b *blob.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var whole = []Selection{{Dir: true}}

func testOpts() Options {
	return Options{Workers: 4, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond}
}

func TestDownloadTree(t *testing.T) {
	b := memblob.OpenBucket(nil)
	files := map[string][]byte{
		"data/a.txt":                []byte("alpha"),
		"data/nested/deep/b.csv":    []byte("1,2,3\n"),
		"data/ünïcødé/ファイル.txt":     []byte("unicode"),
		"data/with space/a b c.txt": []byte("spaces"),
		"data/empty":                nil,
		"other/not-selected":        []byte("x"),
	}
	for k, v := range files {
		put(t, b, k, v)
	}
	put(t, b, "data/folder/", nil) // a folder marker
	dst := t.TempDir()
	st, err := Download(context.Background(), b, []Selection{{Key: "data", Dir: true}}, dst, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 5 || st.Dirs != 1 || st.Skipped != 0 || st.Bytes != 5+6+7+6 {
		t.Errorf("stats = %+v", st)
	}
	for k, v := range files {
		if strings.HasPrefix(k, "other/") {
			continue
		}
		p := filepath.Join(dst, strings.TrimPrefix(k, "data/"))
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, v) {
			t.Errorf("%s: %q, %v", k, got, err)
		}
		attrs, _ := b.Attributes(context.Background(), k)
		if fi, _ := os.Stat(p); fi.ModTime().Unix() != attrs.ModTime.Unix() {
			t.Errorf("%s: mtime %v, object %v", k, fi.ModTime(), attrs.ModTime)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "folder")); err != nil || !fi.IsDir() {
		t.Errorf("folder marker: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "not-selected")); err == nil {
		t.Error("object outside the prefix downloaded")
	}

	// A re-run downloads nothing.
	st, err = Download(context.Background(), b, []Selection{{Key: "data", Dir: true}}, dst, testOpts())
	if err != nil || st.Files != 0 || st.Skipped != 5 {
		t.Errorf("re-run: %+v, %v", st, err)
	}
	// A changed object is downloaded again, with --checksum too.
	time.Sleep(1100 * time.Millisecond) // object modification times have a one-second grain
	put(t, b, "data/a.txt", []byte("ALPHA"))
	for _, checksum := range []bool{false, true} {
		o := testOpts()
		o.Checksum = checksum
		st, err = Download(context.Background(), b, []Selection{{Key: "data", Dir: true}}, dst, o)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int64{false: 1, true: 0}[checksum]; st.Files != want {
			t.Errorf("checksum=%v: %d files downloaded, want %d", checksum, st.Files, want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "a.txt")); string(got) != "ALPHA" {
		t.Errorf("changed object: %q", got)
	}
	// With --checksum, same size and time but different content is caught.
	os.WriteFile(filepath.Join(dst, "a.txt"), []byte("alpha"), 0o644)
	attrs, _ := b.Attributes(context.Background(), "data/a.txt")
	os.Chtimes(filepath.Join(dst, "a.txt"), attrs.ModTime, attrs.ModTime)
	o := testOpts()
	o.Checksum = true
	if st, err = Download(context.Background(), b, []Selection{{Key: "data", Dir: true}}, dst, o); err != nil || st.Files != 1 {
		t.Errorf("--checksum: %+v, %v", st, err)
	}
	// An object replaced within the same second by one of the same size:
	// the store's time is finer than a second (memblob's, as GCS's), and
	// the file got that time, so the change is seen without --checksum.
	put(t, b, "data/same.txt", []byte("one"))
	if st, err = Download(context.Background(), b, []Selection{{Key: "data", Dir: true}}, dst, testOpts()); err != nil || st.Files != 1 {
		t.Errorf("new object: %+v, %v", st, err)
	}
	put(t, b, "data/same.txt", []byte("two"))
	if st, err = Download(context.Background(), b, []Selection{{Key: "data", Dir: true}}, dst, testOpts()); err != nil || st.Files != 1 || st.Skipped != 5 {
		t.Errorf("replaced within the second: %+v, %v", st, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "same.txt")); string(got) != "two" {
		t.Errorf("replaced within the second: %q", got)
	}
	// A file whose time has whole seconds only (a store that keeps no
	// finer time, an earlier release) is compared to the second.
	attrs, _ = b.Attributes(context.Background(), "data/a.txt")
	os.Chtimes(filepath.Join(dst, "a.txt"), attrs.ModTime.Truncate(time.Second), attrs.ModTime.Truncate(time.Second))
	if st, err = Download(context.Background(), b, []Selection{{Key: "data", Dir: true}}, dst, testOpts()); err != nil || st.Files != 0 || st.Skipped != 6 {
		t.Errorf("whole seconds: %+v, %v", st, err)
	}
	assertNoTemps(t, dst)
}

func TestSameTime(t *testing.T) {
	base := time.Date(2026, 11, 27, 16, 28, 52, 0, time.UTC)
	fine := base.Add(372142 * time.Microsecond)
	for _, tt := range []struct {
		local, remote time.Time
		want          bool
	}{
		{fine, fine, true},
		{base, fine, true}, // the file has whole seconds
		{fine, base, true}, // the store has whole seconds
		{fine, fine.Add(time.Microsecond), false},
		{base, base.Add(time.Second), false},
		{fine.In(time.Local), fine, true},
	} {
		if got := sameTime(tt.local, tt.remote); got != tt.want {
			t.Errorf("sameTime(%v, %v) = %v", tt.local, tt.remote, got)
		}
	}
}

func TestDownloadSelections(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "p/models/m.bin", []byte("model"))
	put(t, b, "p/models/cfg.json", []byte("{}"))
	put(t, b, "p/data/x", []byte("x"))
	put(t, b, "p/readme", []byte("hi"))
	dst := t.TempDir()
	sels := []Selection{
		{Key: "p/models", Dst: "weights", Dir: true},
		{Key: "p/readme", Dst: "docs/README"},
	}
	st, err := Download(context.Background(), b, sels, dst, testOpts())
	if err != nil || st.Files != 3 {
		t.Fatalf("%+v, %v", st, err)
	}
	for p, want := range map[string]string{"weights/m.bin": "model", "weights/cfg.json": "{}", "docs/README": "hi"} {
		if got, _ := os.ReadFile(filepath.Join(dst, p)); string(got) != want {
			t.Errorf("%s = %q", p, got)
		}
	}
	_, err = Download(context.Background(), b, []Selection{{Key: "p/missing"}}, dst, testOpts())
	if fault.ClassOf(err) != fault.NotFound || !strings.Contains(err.Error(), `"p/missing"`) {
		t.Errorf("missing object: %v", err)
	}
}

func TestDownloadLargeObjectInRanges(t *testing.T) {
	b := memblob.OpenBucket(nil)
	data := randomBytes(5<<20+123, 1)
	put(t, b, "big.bin", data)
	dst := t.TempDir()
	o := testOpts()
	o.PartSize, o.LargeObject = 256<<10, 1<<20
	st, err := Download(context.Background(), b, whole, dst, o)
	if err != nil || st.Files != 1 || st.Bytes != int64(len(data)) {
		t.Fatalf("%+v, %v", st, err)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "big.bin"))
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Error("large object differs")
	}
}

func TestDownloadRefusesTraversalKeys(t *testing.T) {
	for _, key := range []string{"../evil.txt", "a/../../evil.txt", "/abs/evil.txt", `a\..\..\evil.txt`} {
		b := memblob.OpenBucket(nil)
		put(t, b, "a/good.txt", []byte("good"))
		put(t, b, key, []byte("evil"))
		base := t.TempDir()
		dst := filepath.Join(base, "target")
		_, err := Download(context.Background(), b, whole, dst, testOpts())
		if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
			t.Errorf("key %q: %v", key, err)
		}
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), "evil") {
				t.Errorf("key %q: %s written", key, p)
			}
			return nil
		})
	}
}

func TestDownloadRefusesLongNames(t *testing.T) {
	b := memblob.OpenBucket(nil)
	key := "d/" + strings.Repeat("n", 300) + "/f.txt"
	put(t, b, key, []byte("x"))
	_, err := Download(context.Background(), b, whole, t.TempDir(), testOpts())
	if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "longer than the file system allows") || !strings.Contains(err.Error(), "nnnn") {
		t.Errorf("long name: %v", err)
	}
}

func TestDownloadReportsKeyConflicts(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "a", []byte("file"))
	put(t, b, "a/b", []byte("child"))
	_, err := Download(context.Background(), b, whole, t.TempDir(), testOpts())
	if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "both") {
		t.Errorf("conflict: %v", err)
	}
}

func TestDownloadChecksumMismatch(t *testing.T) {
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{CreateDir: true})
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "f.bin", []byte("the real content"))
	// Corrupt the stored bytes behind the recorded MD5 (same size).
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), []byte("the fake content"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, large := range []bool{false, true} {
		dst := t.TempDir()
		o := testOpts()
		if large {
			o.PartSize, o.LargeObject = 4, 4
		}
		_, err = Download(context.Background(), b, whole, dst, o)
		if fault.ClassOf(err) != fault.Integrity || !strings.Contains(err.Error(), "MD5") {
			t.Errorf("large=%v: %v", large, err)
		}
		if _, err := os.Stat(filepath.Join(dst, "f.bin")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("large=%v: corrupt file published", large)
		}
		assertNoTemps(t, dst)
	}
}

func TestDownloadCancelled(t *testing.T) {
	b := memblob.OpenBucket(nil)
	for i := range 100 {
		put(t, b, fmt.Sprintf("f%03d", i), randomBytes(32<<10, uint64(i)))
	}
	dst := t.TempDir()
	os.WriteFile(filepath.Join(dst, fsutil.TempPrefix+"stale"), []byte("old run"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dst, fsutil.TempPrefix+"stale"), old, old)
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	o := testOpts()
	o.beforeObject = func(string) {
		if n.Add(1) == 10 {
			cancel()
		}
	}
	st, err := Download(ctx, b, whole, dst, o)
	if fault.ClassOf(err) != fault.Interrupted {
		t.Fatalf("err = %v", err)
	}
	if st.Files >= 100 {
		t.Errorf("everything downloaded: %+v", st)
	}
	assertNoTemps(t, dst)
}

func TestDownloadChecksFreeSpace(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "a", randomBytes(3000, 1))
	put(t, b, "b", randomBytes(3000, 2))
	o := testOpts()
	o.freeBytes = 4000
	o.Workers = 1
	_, err := Download(context.Background(), b, whole, t.TempDir(), o)
	if fault.ClassOf(err) != fault.LocalDisk || !strings.Contains(err.Error(), "not enough space") {
		t.Errorf("err = %v", err)
	}
}

// Small files take whole blocks: 10 files of 10 bytes need 10 blocks,
// not 100 bytes, and are refused before the disk fills.
func TestDownloadFreeSpaceCountsBlocks(t *testing.T) {
	b := memblob.OpenBucket(nil)
	for i := range 10 {
		put(t, b, fmt.Sprintf("f%d", i), []byte("ten bytes!"))
	}
	dst := t.TempDir()
	sp, err := fsutil.FreeSpace(dst)
	if err != nil || sp.Block < 512 {
		t.Fatalf("no block size: %+v, %v", sp, err)
	}
	o := testOpts()
	o.freeBytes = 5 * sp.Block
	_, err = Download(context.Background(), b, whole, dst, o)
	if fault.ClassOf(err) != fault.LocalDisk || !strings.Contains(err.Error(), "not enough space") {
		t.Errorf("err = %v", err)
	}
}

func TestRetrier(t *testing.T) {
	var retries atomic.Int64
	o := testOpts()
	o.defaults()
	r := &retrier{opts: &o, retries: &retries}
	calls := 0
	err := r.do(context.Background(), "GET x", func() error {
		calls++
		if calls < 3 {
			return syscall.ECONNRESET
		}
		return nil
	})
	if err != nil || calls != 3 || retries.Load() != 2 {
		t.Errorf("flaky: %v, %d calls", err, calls)
	}
	calls = 0
	err = r.do(context.Background(), "GET x", func() error { calls++; return syscall.ECONNREFUSED })
	if fault.ClassOf(err) != fault.Transient || calls != o.Retries+1 || !strings.Contains(err.Error(), "gave up after 6 attempts") {
		t.Errorf("exhausted: %v, %d calls", err, calls)
	}
	calls = 0
	err = r.do(context.Background(), "GET x", func() error { calls++; return local(syscall.ENOSPC) })
	if calls != 1 || fault.ClassOf(err) == fault.Transient {
		t.Errorf("local errors are not retried: %v, %d calls", err, calls)
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), fsutil.TempPrefix) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// wholeProvider reads whole objects itself through the bucket's reader,
// except keys containing "decline", which it leaves to the downloader; a
// key containing "flaky" fails once with a connection reset, and one
// containing "corrupt" comes back with its bytes changed.
type wholeProvider struct {
	mu    sync.Mutex
	read  []string
	flaky bool
}

func (*wholeProvider) PinVersion(*blob.Attributes) func(func(any) bool) error { return nil }
func (*wholeProvider) CRC32C(func(any) bool) (uint32, bool)                   { return 0, false }
func (*wholeProvider) BeforeWrite() func(func(any) bool) error                { return nil }

func (p *wholeProvider) ReadWhole(ctx context.Context, b *blob.Bucket, key string) (ObjectReader, bool, error) {
	if strings.Contains(key, "decline") {
		return nil, false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.Contains(key, "flaky") && !p.flaky {
		p.flaky = true
		return nil, true, fmt.Errorf("GET %s: %w", key, syscall.ECONNRESET)
	}
	p.read = append(p.read, key)
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, true, err
	}
	if strings.Contains(key, "corrupt") {
		return corrupted{r}, true, nil
	}
	if strings.Contains(key, "badsum") {
		return badSum{r}, true, nil
	}
	return r, true, nil
}

// badSum fails at its end as a reader whose checksum does not match.
type badSum struct{ *blob.Reader }

func (b badSum) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF {
		err = fmt.Errorf("%w: CRC32C AAAAAA==, expected BBBBBB==", ErrChecksumMismatch)
	}
	return n, err
}

// corrupted flips the first byte it reads.
type corrupted struct{ *blob.Reader }

func (c corrupted) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	if n > 0 {
		p[0] ^= 0xff
	}
	return n, err
}

func TestDownloadWholeReader(t *testing.T) {
	b := memblob.OpenBucket(nil)
	files := map[string][]byte{"a.txt": []byte("a"), "decline.txt": []byte("d"), "flaky.bin": randomBytes(5000, 1), "big.bin": randomBytes(20000, 2)}
	for k, v := range files {
		put(t, b, k, v)
	}
	p := &wholeProvider{}
	o := testOpts()
	o.Provider = p
	o.PartSize, o.LargeObject = 8192, 8192 // big.bin is read in ranges
	dst := t.TempDir()
	st, err := Download(context.Background(), b, whole, dst, o)
	if err != nil || st.Files != 4 || st.Retries != 1 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	sort.Strings(p.read)
	if want := []string{"a.txt", "flaky.bin"}; !slices.Equal(p.read, want) {
		t.Errorf("the whole reader read %v, want %v", p.read, want)
	}
	for k, v := range files {
		if got, err := os.ReadFile(filepath.Join(dst, k)); err != nil || !bytes.Equal(got, v) {
			t.Errorf("%s: %d bytes, %v", k, len(got), err)
		}
	}

	// A checksum the reader checks itself fails as a mismatch: once more,
	// then an integrity error, with nothing published.
	put(t, b, "badsum.txt", []byte("content"))
	_, err = Download(context.Background(), b, []Selection{{Key: "badsum.txt", Dst: "badsum.txt"}}, dst, o)
	if fault.ClassOf(err) != fault.Integrity || !strings.Contains(err.Error(), "CRC32C AAAAAA==") || strings.Count(strings.Join(p.read, " "), "badsum") != 2 {
		t.Errorf("bad checksum: %v (read %v)", err, p.read)
	}
	if _, err := os.Stat(filepath.Join(dst, "badsum.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("file with a bad checksum published")
	}

	// What the whole reader gives is verified as any download is.
	put(t, b, "corrupt.txt", []byte("content"))
	_, err = Download(context.Background(), b, []Selection{{Key: "corrupt.txt", Dst: "corrupt.txt"}}, dst, o)
	if fault.ClassOf(err) != fault.Integrity {
		t.Errorf("corrupt read: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "corrupt.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("corrupt file published")
	}
	assertNoTemps(t, dst)
}

// TestDownloadSelectionAttrs: an object selection with the attributes the
// caller has read is planned from them, without reading them again.
func TestDownloadSelectionAttrs(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "f.txt", []byte("new content"))
	dst := t.TempDir()
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.WriteFile(filepath.Join(dst, "f.txt"), []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(dst, "f.txt"), old, old)
	// Attributes that say the local file is up to date: nothing is read.
	sel := []Selection{{Key: "f.txt", Dst: "f.txt", Attrs: &blob.Attributes{Size: 11, ModTime: old}}}
	st, err := Download(context.Background(), b, sel, dst, testOpts())
	if err != nil || st.Skipped != 1 || st.Files != 0 {
		t.Errorf("with attributes: %+v, %v", st, err)
	}
	// Without them, the object's own say otherwise.
	sel[0].Attrs = nil
	st, err = Download(context.Background(), b, sel, dst, testOpts())
	if got, _ := os.ReadFile(filepath.Join(dst, "f.txt")); err != nil || st.Files != 1 || string(got) != "new content" {
		t.Errorf("without: %+v, %v, %q", st, err, got)
	}
}

func TestRemoteFaultBrief(t *testing.T) {
	d := &downloader{opts: Options{Conn: `connection "c"`, Brief: func(error) string { return "HTTP 503 ServerBusy" }}}
	d.opts.defaults()
	cause := fmt.Errorf("RESPONSE 503\n----\n<xml>…</xml>: %w", syscall.ECONNRESET)
	err := d.remoteFault(cause, "object %q", "k")
	if fault.ClassOf(err) != fault.Transient || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("class %v, cause lost: %v", fault.ClassOf(err), err)
	}
	if msg := err.Error(); !strings.Contains(msg, `connection "c": object "k"`) || !strings.Contains(msg, "HTTP 503 ServerBusy") || strings.Contains(msg, "\n") {
		t.Errorf("message: %q", msg)
	}
}

// A re-run that replaces files counts the space each replaced file frees:
// it fits where the whole download would not, file by file, whatever the
// workers (those that do not fit wait for the replacements in flight).
// What does not fit even so still fails.
func TestDownloadFreeSpaceCountsReplacedFiles(t *testing.T) {
	for _, workers := range []int{1, 8} {
		b := memblob.OpenBucket(nil)
		for i := range 10 {
			put(t, b, fmt.Sprintf("f%d", i), randomBytes(3000, uint64(i)))
		}
		dst := t.TempDir()
		if _, err := Download(context.Background(), b, whole, dst, testOpts()); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			put(t, b, fmt.Sprintf("f%d", i), randomBytes(2990, uint64(100+workers+i))) // new content (a size the re-run sees as changed)
		}
		o := testOpts()
		o.Workers = workers
		o.freeBytes = 6000 // one file (one 4 KiB block) at a time fits, not the 30,000 bytes
		st, err := Download(context.Background(), b, whole, dst, o)
		if err != nil || st.Files != 10 {
			t.Fatalf("%d workers: %+v, %v", workers, st, err)
		}
		for i := range 10 {
			if got, _ := os.ReadFile(filepath.Join(dst, fmt.Sprintf("f%d", i))); !bytes.Equal(got, randomBytes(2990, uint64(100+workers+i))) {
				t.Errorf("%d workers: f%d not replaced", workers, i)
			}
		}
		// Two new files beside the replacements: they never fit.
		put(t, b, "new1", randomBytes(3000, 1))
		put(t, b, "new2", randomBytes(3000, 2))
		for i := range 10 {
			put(t, b, fmt.Sprintf("f%d", i), randomBytes(2980, uint64(200+i)))
		}
		if _, err := Download(context.Background(), b, whole, dst, o); fault.ClassOf(err) != fault.LocalDisk {
			t.Errorf("%d workers, more than fits: %v", workers, err)
		}
	}
}

// --force replaces what stood in the way before the run (a folder where a
// file goes, a file where a folder goes); without it the error says so. A
// conflict within the bucket stays an error either way.
func TestDownloadForce(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "a.txt", []byte("a"))
	put(t, b, "sub/c.txt", []byte("c"))
	prepare := func() string {
		dst := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dst, "a.txt", "inner"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, "a.txt", "inner", "k"), []byte("old"), 0o644)
		os.WriteFile(filepath.Join(dst, "sub"), []byte("a file where a folder goes"), 0o644)
		return dst
	}
	dst := prepare()
	_, err := Download(context.Background(), b, whole, dst, testOpts())
	if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("without --force: %v", err)
	}
	o := testOpts()
	o.Force = true
	dst = prepare()
	if _, err := Download(context.Background(), b, whole, dst, o); err != nil {
		t.Fatalf("with --force: %v", err)
	}
	for rel, want := range map[string]string{"a.txt": "a", "sub/c.txt": "c"} {
		if got, err := os.ReadFile(filepath.Join(dst, rel)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", rel, got, err)
		}
	}

	// A link to a folder on the way is the folder, but what lies beyond it
	// is not --path's: --force removes nothing there (the error stays),
	// and the link stays.
	dst = t.TempDir()
	elsewhere := t.TempDir()
	if err := os.MkdirAll(filepath.Join(elsewhere, "a.txt", "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	nested := memblob.OpenBucket(nil)
	put(t, nested, "linked/a.txt", []byte("a"))
	if err := os.Symlink(elsewhere, filepath.Join(dst, "linked")); err != nil {
		t.Fatal(err)
	}
	if _, err := Download(context.Background(), nested, whole, dst, o); fault.ClassOf(err) != fault.Usage {
		t.Errorf("through a linked folder, with --force: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "linked")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link to a folder was replaced: %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "a.txt", "old")); err != nil {
		t.Errorf("--force removed a folder beyond a link: %v", err)
	}

	// Many workers meeting one stale file where the bucket now has a
	// folder: one clears it, all download.
	many := memblob.OpenBucket(nil)
	for i := range 64 {
		put(t, many, fmt.Sprintf("a/f%02d", i), []byte("x"))
	}
	dst = t.TempDir()
	os.WriteFile(filepath.Join(dst, "a"), []byte("an old file"), 0o644)
	o.Workers = 32
	if st, err := Download(context.Background(), many, whole, dst, o); err != nil || st.Files != 64 {
		t.Errorf("64 files below a stale file, 32 workers, --force: %+v, %v", st, err)
	}

	conflict := memblob.OpenBucket(nil)
	put(t, conflict, "x", []byte("x"))
	put(t, conflict, "x/y", []byte("y"))
	dst = t.TempDir()
	os.WriteFile(filepath.Join(dst, "unrelated"), nil, 0o644) // not a fresh folder
	o.Workers = 1
	if _, err := Download(context.Background(), conflict, whole, dst, o); fault.ClassOf(err) != fault.Usage {
		t.Errorf("a conflict within the bucket, with --force: %v", err)
	}

	// A folder an earlier run filled, where the bucket now also has an
	// object: the bucket's own conflict, refused with --force, and
	// nothing of the earlier download is removed, whatever the order.
	grown := memblob.OpenBucket(nil)
	put(t, grown, "a/b/c/file", []byte("data"))
	dst = t.TempDir()
	if _, err := Download(context.Background(), grown, whole, dst, testOpts()); err != nil {
		t.Fatal(err)
	}
	put(t, grown, "a/b", []byte("now a file too"))
	for _, workers := range []int{1, 32} {
		o.Workers = workers
		if _, err := Download(context.Background(), grown, whole, dst, o); fault.ClassOf(err) != fault.Usage {
			t.Errorf("workers %d: a key that is a file and a folder, with --force: %v", workers, err)
		}
		if got, err := os.ReadFile(filepath.Join(dst, "a/b/c/file")); err != nil || string(got) != "data" {
			t.Fatalf("workers %d: --force removed an earlier download: %q, %v", workers, got, err)
		}
	}

	// Only a name conflict clears the way: a write refused for another
	// reason (a read-only volume behind a linked folder) removes nothing.
	dst = t.TempDir()
	target := t.TempDir()
	if err := os.Symlink(target, filepath.Join(dst, "data")); err != nil {
		t.Fatal(err)
	}
	d := &downloader{b: grown, root: dst, opts: o}
	d.retry = &retrier{opts: &d.opts, retries: &d.retries}
	cleared, err := d.clearWay(context.Background(), object{key: "data/x.bin", path: filepath.Join(dst, "data", "x.bin")},
		&fs.PathError{Op: "open", Path: filepath.Join(dst, "data"), Err: syscall.EROFS})
	if cleared || err != nil {
		t.Errorf("cleared %v, %v for a read-only folder", cleared, err)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "data")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was removed: %v, %v", fi, err)
	}
}

// A link to a folder where the bucket puts a file is a folder in the way:
// refused without --force, and with it the link goes, not what it points to.
func TestDownloadLinkedFolderInTheWay(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "models", []byte("weights"))
	dst, elsewhere := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(elsewhere, "keep"), []byte("k"), 0o644)
	if err := os.Symlink(elsewhere, filepath.Join(dst, "models")); err != nil {
		t.Fatal(err)
	}
	if _, err := Download(context.Background(), b, whole, dst, testOpts()); fault.ClassOf(err) != fault.Usage {
		t.Fatalf("without --force: %v", err)
	}
	o := testOpts()
	o.Force = true
	if _, err := Download(context.Background(), b, whole, dst, o); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "models")); string(got) != "weights" {
		t.Errorf("models: %q", got)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "keep")); err != nil {
		t.Errorf("what the link pointed to was removed: %v", err)
	}
}

// --checksum finds identical content up to date, and gives the file the
// object's time, so a later run by size and time finds it up to date too.
func TestDownloadChecksumFixesModTime(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "a.txt", []byte("same content"))
	dst := t.TempDir()
	if _, err := Download(context.Background(), b, whole, dst, testOpts()); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dst, "a.txt")
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	o := testOpts()
	o.Checksum = true
	if st, err := Download(context.Background(), b, whole, dst, o); err != nil || st.Skipped != 1 {
		t.Fatalf("%+v, %v", st, err)
	}
	if fi, _ := os.Stat(p); fi.ModTime().Equal(old) {
		t.Error("the file kept its wrong time")
	}
	if st, err := Download(context.Background(), b, whole, dst, testOpts()); err != nil || st.Skipped != 1 || st.Files != 0 {
		t.Errorf("the next run by size and time: %+v, %v", st, err)
	}
}

// A failed run removes the folders it created for files that never came.
func TestDownloadFailedLeavesNoEmptyFolders(t *testing.T) {
	b := memblob.OpenBucket(nil)
	for i := range 8 {
		name := "f.bin"
		if i == 5 {
			name = "corrupt.bin" // fails its check twice, after its folders were made
		}
		put(t, b, fmt.Sprintf("tree/d%02d/deeper/%s", i, name), randomBytes(1000, uint64(i)))
	}
	dst := t.TempDir()
	os.Mkdir(filepath.Join(dst, "kept"), 0o755) // was there before: stays
	o := testOpts()
	o.Workers = 1
	o.Provider = &wholeProvider{}
	st, err := Download(context.Background(), b, whole, dst, o)
	if fault.ClassOf(err) != fault.Integrity {
		t.Fatalf("err = %v", err)
	}
	if st.Files == 0 {
		t.Error("nothing downloaded before the failure: the test shows nothing")
	}
	err = filepath.WalkDir(dst, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() && p != dst && filepath.Base(p) != "kept" {
			if entries, _ := os.ReadDir(p); len(entries) == 0 {
				t.Errorf("empty folder left: %s", p)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "kept")); err != nil {
		t.Errorf("a folder from before the run was removed: %v", err)
	}
}

// escapingProvider is a store whose storage library escapes "%" in keys
// (as gocloud does on Azure): its real keys differ from the blob API's.
type escapingProvider struct{ wholeProvider }

func (*escapingProvider) RealKey(lo *blob.ListObject) (string, bool) { return lo.Key, false }
func (*escapingProvider) RealPrefix(prefix string) string {
	return strings.ReplaceAll(prefix, "%", "__0x25__")
}
func (*escapingProvider) OpenReal(ctx context.Context, b *blob.Bucket, key, real string) (ObjectReader, error) {
	return b.NewReader(ctx, key, nil)
}

// With --force, a conflict on a name the storage library escapes is not
// cleared: the bucket cannot be asked reliably whether it is its own.
func TestDownloadForceEscapedNames(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "a%/b", []byte("b"))
	dst := t.TempDir()
	os.WriteFile(filepath.Join(dst, "a%"), []byte("maybe this run's"), 0o644)
	o := testOpts()
	o.Force, o.Provider = true, &escapingProvider{}
	if _, err := Download(context.Background(), b, whole, dst, o); fault.ClassOf(err) != fault.Usage {
		t.Errorf("err = %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "a%")); string(got) != "maybe this run's" {
		t.Errorf("a%%: %q", got)
	}
}

// A file where a renamed selection's destination folder goes: a clear
// conflict (exit 2) without --force, cleared with it.
func TestDownloadFileAboveARenamedSelection(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "ds/train/a", []byte("a"))
	sel := []Selection{{Key: "ds/train", Dst: "out/train", Dir: true}}
	dst := t.TempDir()
	os.WriteFile(filepath.Join(dst, "out"), []byte("an old file"), 0o644)
	if _, err := Download(context.Background(), b, sel, dst, testOpts()); fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "--force") {
		t.Errorf("without --force: %v (%v)", err, fault.ClassOf(err))
	}
	o := testOpts()
	o.Force = true
	if _, err := Download(context.Background(), b, sel, dst, o); err != nil {
		t.Fatalf("with --force: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "out/train/a")); string(got) != "a" {
		t.Errorf("out/train/a: %q", got)
	}
}

// A link in --path to a folder on another volume is written through, and
// what goes there is not counted against --path's own free space.
func TestDownloadFreeSpaceThroughALinkToAnotherVolume(t *testing.T) {
	dst, far := t.TempDir(), t.TempDir()
	if err := os.Symlink(far, filepath.Join(dst, "big")); err != nil {
		t.Fatal(err)
	}
	b := memblob.OpenBucket(nil)
	for i := range 10 {
		put(t, b, fmt.Sprintf("big/f%d", i), randomBytes(3000, uint64(i)))
	}
	o := testOpts()
	o.freeBytes = 6000 // --path's own volume: one file would fit, not ten
	// far stands for another volume: another device, as stat(2) through
	// the link finds it.
	farReal, _ := filepath.EvalSymlinks(far)
	o.devOf = func(p string) (uint64, error) {
		if _, err := os.Stat(p); err != nil {
			return 0, err
		}
		if real, _ := filepath.EvalSymlinks(p); strings.HasPrefix(real, farReal) {
			return 2, nil
		}
		return 1, nil
	}
	st, err := Download(context.Background(), b, whole, dst, o)
	if err != nil || st.Files != 10 {
		t.Fatalf("%+v, %v", st, err)
	}
	if n, _ := os.ReadDir(far); len(n) != 10 {
		t.Errorf("%d files on the other volume", len(n))
	}
}

// An object replaced by a bigger one after it was listed is counted at its
// new size: what no longer fits fails before it is written (exit 7), what
// fits is downloaded.
func TestDownloadFreeSpaceObjectGrew(t *testing.T) {
	for _, c := range []struct {
		size int
		ok   bool
	}{{5000, true}, {30000, false}} {
		b := memblob.OpenBucket(nil)
		put(t, b, "f", randomBytes(100, 1))
		o := testOpts()
		o.freeBytes = 12000 // three 4 KiB blocks
		o.beforeObject = func(key string) { put(t, b, "f", randomBytes(c.size, 2)) }
		dst := t.TempDir()
		_, err := Download(context.Background(), b, whole, dst, o)
		if c.ok {
			if got, _ := os.ReadFile(filepath.Join(dst, "f")); err != nil || len(got) != c.size {
				t.Errorf("grown to %d: %d bytes, %v", c.size, len(got), err)
			}
			continue
		}
		if fault.ClassOf(err) != fault.LocalDisk || !strings.Contains(err.Error(), "grew") {
			t.Errorf("grown to %d: %v", c.size, err)
		}
		assertNoTemps(t, dst)
	}
}

// An object deleted after it was listed fails the run as not found
// (exit 4), saying it went since the listing, and leaves nothing of it.
func TestDownloadObjectGoneAfterListing(t *testing.T) {
	for _, size := range []int{100, 3 << 20} { // whole, and in ranges
		b := memblob.OpenBucket(nil)
		put(t, b, "f", randomBytes(size, 1))
		o := testOpts()
		o.LargeObject, o.PartSize = 1<<20, 1<<20
		o.beforeObject = func(key string) { b.Delete(context.Background(), key) }
		dst := t.TempDir()
		_, err := Download(context.Background(), b, whole, dst, o)
		if fault.ClassOf(err) != fault.NotFound || !strings.Contains(err.Error(), `object "f" is gone: it was deleted or renamed after the run listed it`) {
			t.Errorf("size %d: %v", size, err)
		}
		if _, err := os.Stat(filepath.Join(dst, "f")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("size %d: a file was left", size)
		}
		assertNoTemps(t, dst)
	}
}

// The totals (and so an ETA) are known once the last page of the listing
// is in, not once the short queue of objects has drained: a progress line
// while the first of 40 listed files are downloading has them.
func TestDownloadTotalsEarly(t *testing.T) {
	b := memblob.OpenBucket(nil)
	for i := range 40 {
		put(t, b, fmt.Sprintf("f%02d", i), randomBytes(100, uint64(i)))
	}
	rl := &recordLog{}
	o := testOpts()
	o.Workers = 1
	o.Log = slog.New(rl)
	o.Progress = time.Millisecond
	var n atomic.Int32
	o.beforeObject = func(string) {
		if n.Add(1) <= 3 {
			time.Sleep(30 * time.Millisecond) // a few progress lines while the first files come
		}
	}
	if _, err := Download(context.Background(), b, whole, t.TempDir(), o); err != nil {
		t.Fatal(err)
	}
	early := 0
	for _, r := range rl.recs {
		if files, err := strconv.Atoi(r["files"]); err == nil && files < 3 && r["objects"] == "40" && r["totalBytes"] == "4000" {
			early++
		}
	}
	if early == 0 {
		t.Errorf("no progress line with the totals while the first files came: %v", rl.recs)
	}
}

// --path removed while the download writes into it: the run fails (exit 7)
// naming that, whatever else it met (a rename into a folder that is gone,
// or nothing, the workers making the folders again): never "ok" with files
// missing.
func TestDownloadPathRemovedMidway(t *testing.T) {
	b := memblob.OpenBucket(nil)
	for i := range 60 {
		put(t, b, fmt.Sprintf("d%d/f%03d", i%3, i), randomBytes(1<<10, uint64(i)))
	}
	dst := filepath.Join(t.TempDir(), "data")
	var n atomic.Int32
	o := testOpts()
	o.Workers = 1
	o.beforeObject = func(string) {
		if n.Add(1) == 30 {
			os.RemoveAll(dst)
		}
	}
	_, err := Download(context.Background(), b, whole, dst, o)
	if fault.ClassOf(err) != fault.LocalDisk || !strings.Contains(err.Error(), "was removed or replaced while the download wrote into it") {
		t.Fatalf("err = %v", err)
	}
}

// A failed download that made a folder per object, more than it records
// one by one, leaves none of them (empty) behind, and keeps the empty
// folders that were there before it.
func TestDownloadFailedRemovesManyFolders(t *testing.T) {
	b := memblob.OpenBucket(nil)
	const n = 4096 + 600 // more than the folders recorded one by one
	for i := range n {
		put(t, b, fmt.Sprintf("s/%05d/x", i), []byte("x"))
	}
	dst := t.TempDir()
	os.MkdirAll(filepath.Join(dst, "s", "before"), 0o755) // not this run's
	os.WriteFile(filepath.Join(dst, "other"), []byte("not fresh"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	var seen atomic.Int32
	o := testOpts()
	o.beforeObject = func(string) {
		if seen.Add(1) == n-400 {
			cancel()
			// Folders made for objects not downloaded: left empty.
			for i := n - 400; i < n; i++ {
				os.MkdirAll(filepath.Join(dst, "s", fmt.Sprintf("%05d", i)), 0o755)
			}
		}
	}
	if _, err := Download(ctx, b, whole, dst, o); fault.ClassOf(err) != fault.Interrupted {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dst, "s"))
	for _, e := range entries {
		if e.Name() == "before" {
			continue
		}
		if sub, _ := os.ReadDir(filepath.Join(dst, "s", e.Name())); len(sub) == 0 {
			t.Fatalf("an empty folder is left: s/%s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "s", "before")); err != nil {
		t.Errorf("a folder that was there before went: %v", err)
	}
}

// cancelAtSecondRange cancels the run from the second ranged read, which
// then takes its time: the loop that starts the ranges finds the run
// cancelled with every part it started done.
type cancelAtSecondRange struct {
	n      atomic.Int64
	cancel func()
}

func (p *cancelAtSecondRange) PinVersion(*blob.Attributes) func(func(any) bool) error {
	return func(func(any) bool) error {
		if p.n.Add(1) == 2 {
			p.cancel()
			time.Sleep(200 * time.Millisecond)
		}
		return nil
	}
}
func (*cancelAtSecondRange) CRC32C(func(any) bool) (uint32, bool)    { return 0, false }
func (*cancelAtSecondRange) BeforeWrite() func(func(any) bool) error { return nil }

// TestDownloadRangesCancelledBetweenParts: a large object whose download is
// cancelled between two ranges is not counted as downloaded (the run used
// to end with no error and no file).
func TestDownloadRangesCancelledBetweenParts(t *testing.T) {
	b := memblob.OpenBucket(nil)
	put(t, b, "big", randomBytes(8<<20, 7))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dst := t.TempDir()
	o := testOpts()
	o.Workers, o.PartSize, o.LargeObject = 1, 1<<20, 1<<20
	o.Provider = &cancelAtSecondRange{cancel: cancel}
	st, err := Download(ctx, b, whole, dst, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Download: %v (stats %+v), want the cancellation", err, st)
	}
	if st.Files != 0 {
		t.Errorf("files: %d", st.Files)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}

// rangeEnded refuses a range whose reader has more than the range (a store
// that ignores Range headers): its bytes would land on other ranges.
func TestRangeEnded(t *testing.T) {
	o := object{key: "big"}
	if err := rangeEnded(strings.NewReader(""), o, 0, 4, "c"); err != nil {
		t.Errorf("a range read whole: %v", err)
	}
	err := rangeEnded(strings.NewReader("more"), o, 4, 4, "c")
	if fault.ClassOf(err) != fault.Integrity || !strings.Contains(err.Error(), "ignores ranged reads") {
		t.Errorf("a range with more: %v", err)
	}
}
