package transfer

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/initializer/initializer/fault"
)

// cancelOnOpen ends the upload's context as soon as the blob writer has
// opened its temporary file (fileblob looks at the context only when it
// closes it), and keeps a descriptor of that file to see afterwards how
// much was written to it.
type cancelOnOpen struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	fd     int
	name   string
}

func (*cancelOnOpen) PinVersion(*blob.Attributes) func(func(any) bool) error { return nil }
func (*cancelOnOpen) CRC32C(func(any) bool) (uint32, bool)                   { return 0, false }
func (p *cancelOnOpen) BeforeWrite() func(func(any) bool) error {
	return func(as func(any) bool) error {
		var f *os.File
		if as(&f) {
			p.mu.Lock()
			p.fd, _ = syscall.Dup(int(f.Fd()))
			p.name = f.Name()
			p.mu.Unlock()
		}
		p.cancel()
		return nil
	}
}

// A file streamed to a fileblob store stops within a buffer of the
// context's end, instead of being copied whole before the writer notices,
// and nothing is committed: no object, no temporary file.
func TestUploadStopsMidCopy(t *testing.T) {
	for name, size := range map[string]int{"large": 24 << 20, "hashed": 900 << 10} {
		t.Run(name, func(t *testing.T) {
			root, list := tree(t, map[string][]byte{"f.bin": randomBytes(size, 7)}, "run/")
			dir := t.TempDir()
			b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true, Metadata: fileblob.MetadataDontWrite})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p := &cancelOnOpen{cancel: cancel, fd: -1}
			opts := uploadOpts()
			opts.Provider = p
			st, err := Upload(ctx, b, root, list, opts)
			if fault.ClassOf(err) != fault.Interrupted || len(st.Failed) != 1 || fault.ClassOf(st.Failed[0].Err) != fault.Interrupted {
				t.Fatalf("%v %+v", err, st.Failed)
			}
			if p.fd < 0 {
				t.Fatal("the writer's file was not seen")
			}
			defer syscall.Close(p.fd)
			var fst syscall.Stat_t
			if err := syscall.Fstat(p.fd, &fst); err != nil {
				t.Fatal(err)
			}
			if fst.Size > 256<<10 {
				t.Errorf("%d of %d bytes were copied after the context ended", fst.Size, size)
			}
			if ok, _ := b.Exists(context.Background(), "run/f.bin"); ok {
				t.Error("the object was committed")
			}
			if _, err := os.Stat(p.name); !os.IsNotExist(err) {
				t.Errorf("the temporary file %s is left: %v", filepath.Base(p.name), err)
			}
		})
	}
}
