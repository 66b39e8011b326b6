package sidecar

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers/store"
)

// Through OpenMount's bucket, an upload is written in the hidden folder
// at the mount's root, then renamed into place.
func TestOpenMountTempsInHiddenFolder(t *testing.T) {
	m, dir, _ := openTestMount(t)
	var temp string
	opts := &blob.WriterOptions{BeforeWrite: func(as func(any) bool) error {
		var f *os.File
		if as(&f) {
			temp = f.Name()
		}
		return nil
	}}
	if err := m.Bucket.WriteAll(context.Background(), "run/a/model.bin", []byte("m"), opts); err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(temp) != filepath.Join(dir, mountTempDir) || !isFileblobTemp(filepath.Base(temp), time.Now()) {
		t.Errorf("written through %s", temp)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "run/a/model.bin")); err != nil || string(got) != "m" {
		t.Errorf("%q %v", got, err)
	}
	if left, _ := os.ReadDir(m.TempDir); len(left) != 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
	// Shared with the sidecars of the volume's other users, as /tmp is.
	if st, err := os.Stat(m.TempDir); err != nil || st.Mode()&(os.ModeSticky|os.ModePerm) != os.ModeSticky|0o777 {
		t.Errorf("the temporary folder's mode: %v", st.Mode())
	}
}

func TestIsFileblobTemp(t *testing.T) {
	now := time.Now()
	stamp := strconv.FormatInt(now.Add(-time.Minute).UnixNano(), 16)
	for name, want := range map[string]bool{
		"model.bin." + stamp + ".tmp":              true,
		"." + stamp + ".tmp":                       false, // no target name
		"model.bin." + stamp:                       false,
		"model." + stamp[1:] + ".tmp":              false, // 15 digits
		"model." + strings.ToUpper(stamp) + ".tmp": false,
		"model.xyz" + stamp[3:] + ".tmp":           false,
		"model." + strconv.FormatInt(now.Add(time.Hour).UnixNano(), 16) + ".tmp": false, // made after its last change
		"notes.tmp": false,
	} {
		if got := isFileblobTemp(name, now); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// The temporary files of killed uploads are removed at the start from the
// shared folder, once untouched for an hour (other runs' uploads write
// there). Nothing else in the store is touched, however it is named: a
// job's own output may look like a temporary file.
func TestRemoveStaleTemps(t *testing.T) {
	mount := t.TempDir()
	tmp := filepath.Join(mount, mountTempDir)
	top := filepath.Join(mount, "run")
	start := time.Now()
	old, recent := start.Add(-2*time.Hour), start.Add(-time.Minute)
	name := func(base string, made time.Time) string {
		return base + "." + strconv.FormatInt(made.UnixNano(), 16) + ".tmp"
	}
	plant := func(p string, mtime time.Time) string {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mtime, mtime)
		return p
	}
	gone := plant(filepath.Join(tmp, name("a.bin", old)), old)
	kept := []string{
		plant(filepath.Join(tmp, name("b.bin", recent)), recent), // another run's, maybe still written
		plant(filepath.Join(tmp, "notes.tmp"), old),
		plant(filepath.Join(top, "d", name("model.bin", old)), old), // in the run's folder: maybe the job's
		plant(filepath.Join(top, "model.0123456789abcdef.tmp"), old),
		plant(filepath.Join(mount, "other", name("c.bin", old)), old), // another run's folder
	}
	removeStaleTemps(tmp, start, slog.New(slog.DiscardHandler))
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("%s is left: %v", gone, err)
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

// Through MountUploader, names up to the 255 bytes a name may have go up
// (fileblob's temporary name would add 21 bytes), small and streamed
// files alike, to the file fileblob reads for the key (escaped names
// too), and nothing is left in the temporary folder.
func TestMountUploaderLongNames(t *testing.T) {
	m, dir, local := openTestMount(t)
	long := strings.Repeat("n", 250)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB: hashed, then streamed
	write(t, local, long, "small")
	write(t, local, "d/"+long+".bin", big)
	write(t, local, "tab\there", "escaped")
	cfg := testConfig(m.Bucket, local)
	cfg.Transfer.Provider, cfg.Transfer.NoVerify = m.Uploader, true
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, cfg)
	if err != nil || rep.Files != 3 || len(rep.NotUploaded) != 0 {
		t.Fatalf("%v %+v", err, rep)
	}
	for rel, want := range map[string]string{long: "small", "d/" + long + ".bin": big, "tab\there": "escaped"} {
		// Read as a file: fileblob's reader opens "<name>.attrs" first,
		// which fails for such names.
		if got, err := os.ReadFile(store.FileblobPath(dir, "run/"+rel)); err != nil || string(got) != want {
			t.Errorf("%.20s…: %d bytes, %v", rel, len(got), err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "tab__0x9__here")); err != nil {
		t.Errorf("not where fileblob reads it: %v", err)
	}
	if left, _ := os.ReadDir(m.TempDir); len(left) != 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// An upload whose context ends midway leaves nothing, neither at its
// target nor in the temporary folder.
func TestMountUploaderCancelled(t *testing.T) {
	m, dir, _ := openTestMount(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, ctx.Err()
	}))
	used, err := m.Uploader.UploadStream(ctx, m.Bucket, "run/f", r, &blob.WriterOptions{}, 0, 1)
	if !used || err == nil {
		t.Fatalf("%v %v", used, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "f")); err == nil {
		t.Error("a cancelled upload reached its target")
	}
	if left, _ := os.ReadDir(m.TempDir); len(left) != 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
	// A name the storage library reserves is a usage error; a shared
	// temporary folder removed meanwhile is made again.
	if used, err := m.Uploader.UploadStream(context.Background(), m.Bucket, "run/x.attrs", strings.NewReader("x"), &blob.WriterOptions{}, 0, 1); !used || fault.ClassOf(err) != fault.Usage {
		t.Errorf(".attrs: %v %v", used, err)
	}
	os.RemoveAll(m.TempDir)
	if used, err := m.Uploader.UploadStream(context.Background(), m.Bucket, "run/h", strings.NewReader("h"), &blob.WriterOptions{}, 0, 1); !used || err != nil {
		t.Errorf("after the temporary folder was removed: %v %v", used, err)
	}
	// Another bucket is not its own.
	if used, _ := m.Uploader.UploadStream(context.Background(), nil, "run/g", strings.NewReader("g"), &blob.WriterOptions{}, 0, 1); used {
		t.Error("an upload to another bucket was taken")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// openTestMount opens a host_path store in a temporary folder, for the
// files of another; it returns the store, its folder and the files'.
func openTestMount(t *testing.T) (*Mount, string, string) {
	t.Helper()
	t.Setenv("TMPDIR", os.TempDir()) // OpenMount sets it
	dir, local := t.TempDir(), t.TempDir()
	cat, err := connections.Parse([]byte(`{"name":"out","kind":"host_path","schema":{"hostPath":"/h","mountPath":"`+dir+`"}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	m, err := OpenMount(cat.Connections[0], "run", local, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Bucket.Close() })
	return m, dir, local
}

// An output whose name an earlier upload's folder (or file) holds in the
// store, without --delete: refused as a usage error that says what is in
// the way, and nothing is removed.
func TestMountUploaderNameTaken(t *testing.T) {
	m, dir, _ := openTestMount(t)
	put := func(key string) error {
		_, err := m.Uploader.UploadStream(context.Background(), m.Bucket, key, strings.NewReader("x"), &blob.WriterOptions{}, 0, 1)
		return err
	}
	if err := put("run/deep/inner"); err != nil {
		t.Fatal(err)
	}
	if err := put("run/ckpt"); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"run/deep": "a folder of earlier uploads has its name", "run/ckpt/step": "a file of an earlier upload has the name of one of its folders"} {
		err := put(key)
		if fault.ClassOf(err) != fault.Usage || !strings.Contains(fmt.Sprint(err), want) || !strings.Contains(fmt.Sprint(err), "--delete") {
			t.Errorf("%s: %v", key, err)
		}
	}
	for _, p := range []string{"run/deep/inner", "run/ckpt"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
