package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/initializer/initializer/fault"
)

func uploadOpts() UploadOptions {
	return UploadOptions{Options: Options{Workers: 4, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		Retries: 2, LargeObject: 1 << 20, PartSize: 256 << 10}}
}

// tree writes files (name → content) under a new folder and returns it with
// the UploadFile list, keys under prefix.
func tree(t *testing.T, files map[string][]byte, prefix string) (string, []UploadFile) {
	t.Helper()
	root := t.TempDir()
	var list []UploadFile
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		list = append(list, UploadFile{Rel: name, Key: prefix + name})
	}
	return root, list
}

func TestUploadSizesAndMetadata(t *testing.T) {
	files := map[string][]byte{
		"empty":             nil,
		"small.txt":         []byte("hello"),
		"dir/inline.bin":    randomBytes(inlineMax, 1),
		"dir/hashed.bin":    randomBytes(inlineMax+1, 2),
		"dir/sub/large.bin": randomBytes(3<<20+5, 3), // multipart: LargeObject is 1 MiB
		"ünï cødé/f.txt":    []byte("unicode"),
	}
	root, list := tree(t, files, "run/")
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, f := range list {
		if err := os.Chtimes(filepath.Join(root, f.Rel), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range map[string]*blob.Bucket{"memblob": memblob.OpenBucket(nil), "fileblob": fileBucket(t)} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]FileResult{}
			opts := uploadOpts()
			opts.OnFile = func(r FileResult) { mu.Lock(); seen[r.Rel] = r; mu.Unlock() }
			st, err := Upload(context.Background(), b, root, list, opts)
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, v := range files {
				total += int64(len(v))
			}
			if st.Files != int64(len(files)) || st.Bytes != total || len(st.Failed) != 0 || st.Changed != 0 {
				t.Fatalf("stats = %+v, failed %v", st, st.Failed)
			}
			for name, want := range files {
				got, err := b.ReadAll(context.Background(), "run/"+name)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
				}
				attrs, err := b.Attributes(context.Background(), "run/"+name)
				if err != nil {
					t.Fatal(err)
				}
				if m := attrs.Metadata[MetaModTime]; m != mtime.Format(time.RFC3339Nano) {
					t.Errorf("%s: metadata %s = %q, want %q", name, MetaModTime, m, mtime.Format(time.RFC3339Nano))
				}
				r := seen[name]
				if r.Err != nil || r.Gone || r.State.Size != int64(len(want)) || r.State.ModTime != mtime.UnixNano() || r.State.Ino == 0 {
					t.Errorf("%s: OnFile got %+v", name, r)
				}
			}
		})
	}
}

func fileBucket(t *testing.T) *blob.Bucket {
	t.Helper()
	b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A file appended to while it is being uploaded ends up in the store with
// its final content, on each of the three upload paths.
func TestUploadFileChangedDuringUpload(t *testing.T) {
	for _, size := range []int{1000, inlineMax + 1000, 2 << 20} {
		b := memblob.OpenBucket(nil)
		first := randomBytes(size, uint64(size))
		root, list := tree(t, map[string][]byte{"grow.log": first}, "")
		tail := []byte("appended while uploading\n")
		opts := uploadOpts()
		opts.beforeSend = func(rel string, attempt int) {
			if attempt == 0 {
				f, err := os.OpenFile(filepath.Join(root, rel), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Error(err)
					return
				}
				f.Write(tail)
				f.Close()
			}
		}
		st, err := Upload(context.Background(), b, root, list, opts)
		if err != nil || len(st.Failed) != 0 {
			t.Fatalf("size %d: %v %v", size, err, st.Failed)
		}
		if st.Changed != 1 || st.Files != 1 {
			t.Errorf("size %d: stats %+v, want one change and one file", size, st)
		}
		got, _ := b.ReadAll(context.Background(), "grow.log")
		if want := append(first, tail...); !bytes.Equal(got, want) {
			t.Errorf("size %d: the object has %d bytes, want the final %d", size, len(got), len(want))
		}
	}
}

// A file rewritten in place (same size) while it is uploaded, on its last
// attempt, is not committed: the object stays the whole version it was,
// on each of the three upload paths, and the file is reported changed.
func TestUploadRewrittenInPlaceNotCommitted(t *testing.T) {
	for _, size := range []int{1000, inlineMax + 1000, 2 << 20} {
		b := memblob.OpenBucket(nil)
		old := bytes.Repeat([]byte{0xaa}, size)
		if err := b.WriteAll(context.Background(), "ckpt", old, nil); err != nil {
			t.Fatal(err)
		}
		root, list := tree(t, map[string][]byte{"ckpt": bytes.Repeat([]byte{0xbb}, size)}, "")
		opts := uploadOpts()
		opts.ChangeRetries = 0 // the first attempt is the last
		opts.beforeSend = func(rel string, attempt int) {
			time.Sleep(20 * time.Millisecond) // a later modification time
			f, err := os.OpenFile(filepath.Join(root, rel), os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.WriteAt([]byte{0xcc}, int64(size/2))
			f.Close()
		}
		st, err := Upload(context.Background(), b, root, list, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Failed) != 1 || !errors.Is(st.Failed[0].Err, ErrChanged) || st.Files != 0 {
			t.Errorf("size %d: stats %+v, failed %v", size, st, st.Failed)
		}
		if got, _ := b.ReadAll(context.Background(), "ckpt"); !bytes.Equal(got, old) {
			t.Errorf("size %d: the object is no longer the version it was", size)
		}
	}
}

// A file that never stops growing (a log) is uploaded as far as it was
// when the last attempt started, and marked Partial: the object is a prefix
// the file really had. One that keeps changing otherwise is reported, not
// uploaded.
func TestUploadFileThatKeepsChanging(t *testing.T) {
	for _, tc := range []struct {
		grow bool
		size int
	}{{true, 12}, {true, inlineMax + 1000}, {false, 12}} {
		grow, first := tc.grow, bytes.Repeat([]byte("x"), tc.size)
		b := memblob.OpenBucket(nil)
		root, list := tree(t, map[string][]byte{"busy": first}, "")
		opts := uploadOpts()
		opts.ChangeRetries = 2
		var results []FileResult
		opts.OnFile = func(r FileResult) { results = append(results, r) }
		opts.beforeSend = func(rel string, attempt int) {
			p := filepath.Join(root, rel)
			if grow {
				f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
				f.Write([]byte("more"))
				f.Close()
			} else {
				old, _ := os.ReadFile(p)
				os.WriteFile(p, old[1:], 0o644) // rewritten, shorter
			}
		}
		st, err := Upload(context.Background(), b, root, list, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !grow {
			if len(st.Failed) != 1 || !errors.Is(st.Failed[0].Err, ErrChanged) || st.Changed != 3 || st.Files != 0 {
				t.Fatalf("rewritten: stats %+v, failed %v", st, st.Failed)
			}
			continue
		}
		if len(st.Failed) != 0 || st.Files != 1 || st.Changed != 2 || len(results) != 1 || !results[0].Partial {
			t.Fatalf("growing: stats %+v, results %+v", st, results)
		}
		// The object is the file as the last attempt found it: two appends
		// before it started, none of the third.
		got, _ := b.ReadAll(context.Background(), "busy")
		if want := string(first) + "moremore"; string(got) != want || results[0].State.Size != int64(len(want)) {
			t.Errorf("growing, %d bytes: object of %d bytes (state size %d), want %d", tc.size, len(got), results[0].State.Size, len(want))
		}
	}
}

func TestUploadGoneFile(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root, list := tree(t, map[string][]byte{"kept": []byte("k")}, "")
	list = append(list, UploadFile{Rel: "deleted", Key: "deleted"})
	st, err := Upload(context.Background(), b, root, list, uploadOpts())
	if err != nil || st.Gone != 1 || st.Files != 1 || len(st.Failed) != 0 {
		t.Fatalf("%v %+v", err, st)
	}
}

// A store that fails every write: the first file exhausts its retries, the
// others are not tried, and every file is named in Failed. Once the store
// works again, the same call uploads everything.
func TestUploadStoreDown(t *testing.T) {
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	files := map[string][]byte{}
	for i := range 40 {
		files[string(rune('a'+i%26))+"/"+string(rune('a'+i))] = []byte{byte(i)}
	}
	root, list := tree(t, files, "sub/")
	// The store's folder becomes a file: every write fails.
	if err := os.WriteFile(filepath.Join(dir, "sub"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := uploadOpts()
	opts.Workers = 2
	st, err := Upload(context.Background(), b, root, list, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 0 || len(st.Failed) != len(files) {
		t.Fatalf("files %d, failed %d of %d", st.Files, len(st.Failed), len(files))
	}
	// Not every file paid for the retries: at most one per worker did.
	if st.Retries > int64(opts.Workers*opts.Retries) {
		t.Errorf("%d retries: the failure did not stop the upload", st.Retries)
	}
	for _, f := range st.Failed {
		if fault.ClassOf(f.Err) != fault.Transient {
			t.Errorf("%s: class %v: %v", f.Rel, fault.ClassOf(f.Err), f.Err)
		}
	}
	os.Remove(filepath.Join(dir, "sub"))
	st, err = Upload(context.Background(), b, root, list, opts)
	if err != nil || st.Files != int64(len(files)) || len(st.Failed) != 0 {
		t.Fatalf("after recovery: %v %+v", err, st)
	}
}

// The MD5 sent is the content's: the writer refuses bytes that differ, so a
// wrong MD5 can never be stored silently.
func TestUploadSendsContentMD5(t *testing.T) {
	b := memblob.OpenBucket(nil)
	data := randomBytes(inlineMax+10, 9)
	root, list := tree(t, map[string][]byte{"f": data}, "")
	if _, err := Upload(context.Background(), b, root, list, uploadOpts()); err != nil {
		t.Fatal(err)
	}
	attrs, err := b.Attributes(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	if !bytes.Equal(attrs.MD5, sum[:]) {
		t.Errorf("MD5 %x, want %x", attrs.MD5, sum)
	}
}

func TestUploadCancelled(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root, list := tree(t, map[string][]byte{"a": []byte("a"), "b": []byte("b")}, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, err := Upload(ctx, b, root, list, uploadOpts())
	if fault.ClassOf(err) != fault.Interrupted || st.Files != 0 || len(st.Failed) != 2 {
		t.Fatalf("%v %+v", err, st)
	}
}

// With ListVerify, one listing checks every upload; a file the listing
// does not show is reported, not taken as uploaded.
func TestUploadListVerify(t *testing.T) {
	files := map[string][]byte{"a": []byte("a"), "d/b": randomBytes(inlineMax+3, 5), "d/e/c": randomBytes(2<<20, 6)}
	for _, prefix := range []string{"run/", "elsewhere/"} {
		b := memblob.OpenBucket(nil)
		b.WriteAll(context.Background(), "run/other", []byte("not ours"), nil)
		root, list := tree(t, files, "run/")
		opts := uploadOpts()
		opts.ListVerify, opts.ListPrefix = true, prefix
		var mu sync.Mutex
		var seen []FileResult
		opts.OnFile = func(r FileResult) { mu.Lock(); seen = append(seen, r); mu.Unlock() }
		st, err := Upload(context.Background(), b, root, list, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(files) {
			t.Fatalf("%s: OnFile called %d times", prefix, len(seen))
		}
		if prefix == "run/" {
			if st.Files != 3 || len(st.Failed) != 0 {
				t.Errorf("stats %+v, failed %v", st, st.Failed)
			}
			continue
		}
		if st.Files != 0 || len(st.Failed) != 3 || fault.ClassOf(st.Failed[0].Err) != fault.Integrity {
			t.Errorf("listing elsewhere: stats %+v, failed %v", st, st.Failed)
		}
	}
}

// With ListVerify, a long batch is verified as it goes: OnFile learns of
// uploaded files while others are still being uploaded, and a listing page
// asked for before an upload was done does not judge it (an object
// replaced in the batch is checked against its new version).
func TestUploadListVerifyAsItGoes(t *testing.T) {
	defer func(d time.Duration) { listEvery = d }(listEvery)
	listEvery = 20 * time.Millisecond
	files := map[string][]byte{}
	for i := range 40 {
		files[fmt.Sprintf("f%02d", i)] = randomBytes(100+i, uint64(i))
	}
	b := memblob.OpenBucket(nil)
	// Older versions of every object: a stale page would fail them.
	for k := range files {
		b.WriteAll(context.Background(), "run/"+k, []byte("old version"), nil)
	}
	root, list := tree(t, files, "run/")
	opts := uploadOpts()
	opts.Workers = 1
	opts.ListVerify, opts.ListPrefix = true, "run/"
	var started, early atomic.Int64
	opts.beforeSend = func(string, int) { started.Add(1); time.Sleep(5 * time.Millisecond) }
	opts.afterList = func() { time.Sleep(30 * time.Millisecond) } // uploads finish meanwhile: the page is stale for them
	opts.OnFile = func(r FileResult) {
		if started.Load() < int64(len(files)) {
			early.Add(1)
		}
	}
	st, err := Upload(context.Background(), b, root, list, opts)
	if err != nil || st.Files != int64(len(files)) || len(st.Failed) != 0 {
		t.Fatalf("%v %+v %v", err, st, st.Failed)
	}
	if early.Load() == 0 {
		t.Error("no file was verified before the batch ended")
	}
}

// digestProvider answers every upload with the same MD5, as S3 answers a
// PutObject with its ETag.
type digestProvider struct{ sum []byte }

func (digestProvider) PinVersion(*blob.Attributes) func(func(any) bool) error { return nil }
func (digestProvider) CRC32C(func(any) bool) (uint32, bool)                   { return 0, false }
func (digestProvider) BeforeWrite() func(func(any) bool) error                { return nil }
func (p digestProvider) WatchUpload(ctx context.Context, _ *blob.WriterOptions) (context.Context, func() []byte) {
	return ctx, func() []byte { return p.sum }
}

// An upload the store answered with its MD5 is verified by that answer: a
// listing that would not show it (ListPrefix elsewhere) is not consulted,
// and a wrong answer fails the file.
func TestUploadStoreDigest(t *testing.T) {
	data := randomBytes(inlineMax+10, 7)
	sum := md5.Sum(data)
	for _, c := range []struct {
		name   string
		digest []byte
		ok     bool
	}{{"right", sum[:], true}, {"wrong", make([]byte, md5.Size), false}} {
		t.Run(c.name, func(t *testing.T) {
			b := memblob.OpenBucket(nil)
			root, list := tree(t, map[string][]byte{"f": data}, "run/")
			opts := uploadOpts()
			opts.Provider = digestProvider{c.digest}
			opts.ListVerify, opts.ListPrefix = true, "elsewhere/"
			st, err := Upload(context.Background(), b, root, list, opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.ok {
				if st.Files != 1 || len(st.Failed) != 0 {
					t.Errorf("stats %+v, failed %v", st, st.Failed)
				}
				return
			}
			if st.Files != 0 || len(st.Failed) != 1 || fault.ClassOf(st.Failed[0].Err) != fault.Integrity {
				t.Errorf("wrong digest: stats %+v, failed %v", st, st.Failed)
			}
		})
	}
}

// fileUploader uploads large files itself, as S3's provider does; its first
// upload finds the file cut short underneath it.
type fileUploader struct {
	digestProvider
	calls int
}

func (p *fileUploader) UploadFile(ctx context.Context, b *blob.Bucket, key string, f *os.File, size int64, opts *blob.WriterOptions,
	partSize int64, conc int, sent func(int64)) (bool, error) {
	p.calls++
	if p.calls == 1 {
		if err := os.Truncate(f.Name(), size/2); err != nil {
			return true, err
		}
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil {
		return true, fmt.Errorf("part 2: body shorter than its content length: %w", err)
	}
	sent(size)
	return true, b.WriteAll(ctx, key, data, opts)
}

// A large file sent by the provider's FileUploader that shrinks while it
// is read is uploaded again, with its new content.
func TestUploadFileUploaderShrunk(t *testing.T) {
	b := memblob.OpenBucket(nil)
	data := randomBytes(2<<20, 8)
	root, list := tree(t, map[string][]byte{"big.bin": data}, "")
	opts := uploadOpts()
	fu := &fileUploader{}
	opts.Provider = fu
	st, err := Upload(context.Background(), b, root, list, opts)
	if err != nil || st.Files != 1 || st.Changed != 1 || len(st.Failed) != 0 || fu.calls != 2 {
		t.Fatalf("%v: stats %+v, failed %v, calls %d", err, st, st.Failed, fu.calls)
	}
	got, err := b.ReadAll(context.Background(), "big.bin")
	if err != nil || !bytes.Equal(got, data[:len(data)/2]) {
		t.Errorf("object: %d bytes (%v), want the file's %d", len(got), err, len(data)/2)
	}
}

// rewriteUploader uploads large files itself; its first upload finds the
// file rewritten in place (same size) underneath it and fails as the store
// answers such a part: with the error given.
type rewriteUploader struct {
	digestProvider
	fail  error
	calls int
}

func (p *rewriteUploader) UploadFile(ctx context.Context, b *blob.Bucket, key string, f *os.File, size int64, opts *blob.WriterOptions,
	partSize int64, conc int, sent func(int64)) (bool, error) {
	p.calls++
	if p.calls == 1 {
		time.Sleep(20 * time.Millisecond) // a later modification time
		if err := os.WriteFile(f.Name(), bytes.Repeat([]byte{0xbb}, int(size)), 0o644); err != nil {
			return true, err
		}
		return true, p.fail
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil {
		return true, err
	}
	sent(size)
	return true, b.WriteAll(ctx, key, data, opts)
}

// A large file rewritten in place (same size) while the provider uploads
// it, which the store then refuses (its part differs from the hash sent
// with it), is uploaded again with its new content: the refusal says the
// file changed (ErrChanged), or the file's own state does.
func TestUploadFileUploaderRewritten(t *testing.T) {
	for name, fail := range map[string]error{
		"hash mismatch": fmt.Errorf("part 1: %w (XAmzContentSHA256Mismatch)", ErrChanged),
		"any refusal":   errors.New("api error BadRequest: 400"),
	} {
		b := memblob.OpenBucket(nil)
		size := 2 << 20
		root, list := tree(t, map[string][]byte{"ckpt.bin": bytes.Repeat([]byte{0xaa}, size)}, "")
		opts := uploadOpts()
		fu := &rewriteUploader{fail: fail}
		opts.Provider = fu
		// As S3 classes a 400: not to be tried again as it is.
		opts.Classify = func(error) fault.Class { return fault.Usage }
		st, err := Upload(context.Background(), b, root, list, opts)
		if err != nil || st.Files != 1 || st.Changed != 1 || len(st.Failed) != 0 || fu.calls != 2 {
			t.Fatalf("%s: %v: stats %+v, failed %v, calls %d", name, err, st, st.Failed, fu.calls)
		}
		if got, err := b.ReadAll(context.Background(), "ckpt.bin"); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xbb}, size)) {
			t.Errorf("%s: the object is not the file's new content (%v)", name, err)
		}
	}
}

func TestInlineBuffer(t *testing.T) {
	for _, c := range []struct{ size, want int64 }{
		{0, 4<<10 + 1}, {1, 4<<10 + 1}, {4 << 10, 4<<10 + 1}, {4<<10 + 1, 8<<10 + 1},
		{16 << 10, 16<<10 + 1}, {inlineMax - 1, inlineMax + 1}, {inlineMax, inlineMax + 1},
	} {
		bp, pool := inlineBuffer(c.size)
		if int64(len(*bp)) != c.want {
			t.Errorf("size %d: buffer of %d bytes, want %d", c.size, len(*bp), c.want)
		}
		pool.Put(bp)
		if again, p2 := inlineBuffer(c.size); p2 != pool || int64(len(*again)) != c.want {
			t.Errorf("size %d: not the same pool again", c.size)
		}
	}
}

// bytesProvider sends small files itself, except keys containing
// "decline", which it leaves to the blob writer.
type bytesProvider struct {
	mu   sync.Mutex
	sent []string
}

func (*bytesProvider) PinVersion(*blob.Attributes) func(func(any) bool) error { return nil }
func (*bytesProvider) CRC32C(func(any) bool) (uint32, bool)                   { return 0, false }
func (*bytesProvider) BeforeWrite() func(func(any) bool) error                { return nil }

func (p *bytesProvider) UploadBytes(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) (bool, error) {
	if bytes.Contains([]byte(key), []byte("decline")) {
		return false, nil
	}
	if sum := md5.Sum(data); !bytes.Equal(opts.ContentMD5, sum[:]) {
		return true, fmt.Errorf("%s: ContentMD5 %x, want %x", key, opts.ContentMD5, sum)
	}
	p.mu.Lock()
	p.sent = append(p.sent, key)
	p.mu.Unlock()
	o := *opts
	o.Metadata = maps.Clone(opts.Metadata)
	o.Metadata["via"] = "bytes"
	return true, b.WriteAll(ctx, key, data, &o)
}

func TestUploadBytesUploader(t *testing.T) {
	files := map[string][]byte{"a.txt": []byte("a"), "decline.txt": []byte("d"), "big.bin": randomBytes(inlineMax+1, 4)}
	root, list := tree(t, files, "p/")
	b := memblob.OpenBucket(nil)
	p := &bytesProvider{}
	opts := uploadOpts()
	opts.Provider = p
	st, err := Upload(context.Background(), b, root, list, opts)
	if err != nil || st.Files != 3 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if len(p.sent) != 1 || p.sent[0] != "p/a.txt" {
		t.Errorf("the bytes uploader sent %v, want only the small file it accepts", p.sent)
	}
	for name, want := range files {
		got, err := b.ReadAll(context.Background(), "p/"+name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
		a, _ := b.Attributes(context.Background(), "p/"+name)
		if via := a.Metadata["via"]; (via == "bytes") != (name == "a.txt") {
			t.Errorf("%s: sent via %q", name, via)
		}
	}
}

// A file this uid cannot read fails alone: the others are still tried.
func TestUploadUnreadableFileStopsNothing(t *testing.T) {
	u := &uploader{}
	err := u.localFault("secret.bin", &fs.PathError{Op: "open", Path: "secret.bin", Err: fs.ErrPermission})
	if fault.ClassOf(err) != fault.Auth || !strings.Contains(err.Error(), "secret.bin") {
		t.Fatalf("%v (%v)", err, fault.ClassOf(err))
	}
	u.stopAll(err)
	if h := u.halted(); h != nil {
		t.Errorf("one unreadable file halted the batch: %v", h)
	}
}

// One or two files refused for want of permission (a policy on some keys)
// stop nothing; a third does, as credentials refused would fail them all.
func TestUploadAuthHalt(t *testing.T) {
	u := &uploader{}
	denied := fault.New(fault.Auth, "AccessDenied")
	for i := 1; i <= authHalt; i++ {
		u.stopAll(denied)
		if h := u.halted(); (h != nil) != (i == authHalt) {
			t.Fatalf("after %d refusals: halted %v", i, h)
		}
	}
	u = &uploader{}
	u.stopAll(fault.New(fault.Transient, "connection refused"))
	if u.halted() == nil {
		t.Error("a store that is down does not halt the batch")
	}
}

// The reader of a direct upload ends with an error instead of EOF when the
// file changed or shrank since it was hashed, so the upload is abandoned.
func TestFileReaderEnd(t *testing.T) {
	data := []byte("the content as hashed")
	sum := md5.Sum(data)
	var live atomic.Int64
	for _, tt := range []struct {
		name string
		src  []byte
		want error
	}{{"same", data, nil}, {"changed", []byte("THE content as hashed"), errChangedMidRead}, {"shrank", data[:5], errShrank}} {
		fr := &fileReader{r: bytes.NewReader(tt.src), size: int64(len(data)), live: &live, sum: md5.New(), want: sum[:]}
		_, err := io.ReadAll(fr)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// A link to a file outside the folder (the job could point one at the
// sidecar's credentials) is refused when it is opened, whatever the scan
// saw before; links within the folder, absolute or relative, upload.
func TestUploadRefusesLinksLeadingOut(t *testing.T) {
	b := memblob.OpenBucket(nil)
	root, list := tree(t, map[string][]byte{"data.bin": []byte("inside")}, "")
	outside := filepath.Join(t.TempDir(), "AWS_SECRET_ACCESS_KEY")
	if err := os.WriteFile(outside, []byte("the secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"out": outside, "abs-in": filepath.Join(root, "data.bin"), "rel-in": "data.bin"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
		list = append(list, UploadFile{Rel: name, Key: name})
	}
	st, err := Upload(context.Background(), b, root, list, uploadOpts())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Failed) != 1 || st.Failed[0].Rel != "out" || fault.ClassOf(st.Failed[0].Err) != fault.Usage {
		t.Fatalf("failed %+v, want only the link leading out, refused", st.Failed)
	}
	if ok, _ := b.Exists(context.Background(), "out"); ok {
		t.Error("the file outside the folder was uploaded")
	}
	for _, k := range []string{"abs-in", "rel-in", "data.bin"} {
		if got, err := b.ReadAll(context.Background(), k); err != nil || string(got) != "inside" {
			t.Errorf("%s: %q, %v", k, got, err)
		}
	}
}

// A time nanoseconds since 1970 cannot hold is kept at the nearest bound,
// not wrapped around (2446 read as 1901), and said not to be exact.
func TestFileStateTimeBounds(t *testing.T) {
	for _, tt := range []struct {
		t     time.Time
		exact bool
	}{
		{time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC), true},
		{time.Date(2446, 5, 10, 22, 38, 55, 0, time.UTC), false},
		{time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		s := FileState{ModTime: unixNano(tt.t)}
		got, exact := s.Time()
		if exact != tt.exact || exact && !got.Equal(tt.t) {
			t.Errorf("%v: %v, exact %v", tt.t, got, exact)
		}
		if !exact && (got.Year() < 2262) == (tt.t.Year() > 2262) {
			t.Errorf("%v wrapped around to %v", tt.t, got)
		}
	}
}

// On a file system that keeps whole seconds, a file modified in the
// current second is read only once that second is past: a write while it
// is read then shows in its time, and the object gets the final content.
func TestUploadWaitsOutACoarseTick(t *testing.T) {
	for _, ahead := range []time.Duration{0, 1500 * time.Millisecond} { // (a file server's clock ahead of this one)
		uploadWaitsOutACoarseTick(t, ahead)
	}
}

func uploadWaitsOutACoarseTick(t *testing.T, ahead time.Duration) {
	b := memblob.OpenBucket(nil)
	v1, v2 := bytes.Repeat([]byte("1"), 100), bytes.Repeat([]byte("2"), 100)
	root, list := tree(t, map[string][]byte{"m.json": v1}, "")
	p := filepath.Join(root, "m.json")
	tick := time.Now().Add(ahead).Truncate(time.Second)
	if err := os.Chtimes(p, tick, tick); err != nil {
		t.Fatal(err)
	}
	opts := uploadOpts()
	var readAt time.Time
	opts.beforeSend = func(rel string, attempt int) {
		if attempt == 0 {
			readAt = time.Now()
			// Rewritten, same size, stamped as such a file system does.
			os.WriteFile(p, v2, 0o644)
			now := time.Now().Add(ahead).Truncate(time.Second)
			os.Chtimes(p, now, now)
		}
	}
	st, err := Upload(context.Background(), b, root, list, opts)
	if err != nil || len(st.Failed) != 0 {
		t.Fatalf("%v %v", err, st.Failed)
	}
	if readAt.Add(ahead).Before(tick.Add(time.Second)) {
		t.Errorf("ahead %v: read at %s, within the file's second %s", ahead, readAt.Format(time.RFC3339Nano), tick.Format(time.RFC3339))
	}
	if got, _ := b.ReadAll(context.Background(), "m.json"); !bytes.Equal(got, v2) {
		t.Errorf("the object has %q, want the final content", got[:1])
	}
}

// racyWait: nothing for a file modified long ago or stamped far ahead of
// this clock; a little ahead (a file server's clock) is waited out; never
// more than that lead and a tick.
func TestRacyWait(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		mtime time.Time
		max   time.Duration
		zero  bool
	}{
		{now.Add(-time.Hour), 0, true},
		{now.Add(10 * time.Minute), 0, true}, // an archive's time
		{now.Add(10 * time.Minute).Truncate(time.Second), 0, true},
		{now.Add(600 * time.Millisecond).Truncate(time.Second), 3 * time.Second, false}, // a file server ahead
		{now.Add(-5 * time.Millisecond), 20 * time.Millisecond, false},
		{now.Truncate(time.Second), time.Second, false},
	} {
		w := racyWait(c.mtime, now)
		if c.zero != (w == 0) || w > c.max && !c.zero {
			t.Errorf("modified %v from now: wait %v", c.mtime.Sub(now), w)
		}
	}
}
