package sidecar

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/initializer/initializer/connections"
)

// Through OpenMount's bucket, an upload is written in the hidden folder
// at the mount's root, then renamed into place.
func TestOpenMountTempsInHiddenFolder(t *testing.T) {
	t.Setenv("TMPDIR", os.TempDir())
	dir, local := t.TempDir(), t.TempDir()
	cat, err := connections.Parse([]byte(`{"name":"out","kind":"host_path","schema":{"hostPath":"/h","mountPath":"`+dir+`"}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	m, err := OpenMount(cat.Connections[0], "run", local, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Bucket.Close()
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
