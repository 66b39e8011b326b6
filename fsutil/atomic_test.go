package fsutil

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f.txt")
	mt := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	n, err := WriteFileAtomic(context.Background(), p, strings.NewReader("hello"), FileMeta{Mode: 0o600, ModTime: mt})
	if err != nil || n != 5 {
		t.Fatalf("WriteFileAtomic = %d, %v", n, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || !st.ModTime().Equal(mt) {
		t.Errorf("mode %v mtime %v", st.Mode(), st.ModTime())
	}
	assertNoTemps(t, dir)
}

// Publish gives the file the mode asked whatever it was created with, and
// the modification time to the nanosecond.
func TestPublishModes(t *testing.T) {
	dir := t.TempDir()
	mt := time.Date(2023, 7, 8, 9, 10, 11, 123456789, time.UTC)
	for _, c := range []struct{ created, want os.FileMode }{
		{0, 0o644}, {0o644, 0o644}, {0o644, 0o600}, {0o600, 0o640}, {0o644, 0o755},
	} {
		p := filepath.Join(dir, "f")
		var f *os.File
		var err error
		if c.created == 0 {
			f, err = CreateTemp(p)
		} else {
			f, err = CreateTempMode(p, c.created)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := Publish(f, p, FileMeta{Mode: c.want, ModTime: mt, Created: c.created}); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.want || !st.ModTime().Equal(mt) {
			t.Errorf("created %o, want %o: mode %o, mtime %v", c.created, c.want, st.Mode().Perm(), st.ModTime())
		}
	}
	assertNoTemps(t, dir)
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 0 {
		f.n--
		return copy(p, "partial"), nil
	}
	return 0, errors.New("boom")
}

func TestWriteFileAtomicFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFileAtomic(context.Background(), p, &failingReader{n: 3}, FileMeta{}); err == nil {
		t.Fatal("want error")
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file changed to %q", b)
	}
	assertNoTemps(t, dir)
}

func TestWriteFileAtomicCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("some"))
		cancel()
		pw.Write([]byte("more"))
		pw.Close()
	}()
	_, err := WriteFileAtomic(ctx, filepath.Join(dir, "f"), pr, FileMeta{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target exists after cancel: %v", err)
	}
	assertNoTemps(t, dir)
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	for _, n := range []string{"a/" + TempPrefix + "1", "a/b/" + TempPrefix + "2", "a/keep"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
		backdate(filepath.Join(dir, n))
	}
	n, err := RemoveTemps(dir)
	if err != nil || n != 2 {
		t.Fatalf("RemoveTemps = %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a/keep")); err != nil {
		t.Error(err)
	}
	if n, err := RemoveTemps(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Errorf("missing root: %d, %v", n, err)
	}
}

func TestRemoveTempsIn(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	for _, n := range []string{TempPrefix + "1", "sub/" + TempPrefix + "2", "keep"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
		backdate(filepath.Join(dir, n))
	}
	n, err := RemoveTempsIn(dir)
	if err != nil || n != 1 {
		t.Fatalf("RemoveTempsIn = %d, %v", n, err)
	}
	for _, keep := range []string{"keep", "sub/" + TempPrefix + "2"} {
		if _, err := os.Stat(filepath.Join(dir, keep)); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
	if n, err := RemoveTempsIn(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Errorf("missing dir: %d, %v", n, err)
	}
}

func TestFreeSpaceAndSync(t *testing.T) {
	dir := t.TempDir()
	sp, err := FreeSpace(dir)
	if err != nil || sp.Total == 0 || sp.Free > sp.Total {
		t.Fatalf("FreeSpace = %+v, %v", sp, err)
	}
	if _, err := FreeSpace(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}
	if err := Syncfs(dir); err != nil {
		t.Fatal(err)
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), TempPrefix) {
			t.Errorf("temp file left: %s", p)
		}
		return nil
	})
}

// Where $TMPDIR cannot take a folder (a read-only root file system), a
// private one is made under /dev/shm; with neither, the error says to set
// TMPDIR.
func TestPrivateTempDir(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	dir, err := PrivateTempDir("x-")
	if _, serr := os.Stat("/dev/shm"); serr != nil {
		if err == nil || !strings.Contains(err.Error(), "set TMPDIR") {
			t.Errorf("no /dev/shm: %q, %v", dir, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := os.Stat(dir)
	if err != nil || !strings.HasPrefix(dir, "/dev/shm/x-") || st.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v, %v", dir, st.Mode(), err)
	}
}

// A temporary file a live run holds (another process's, or another open of
// it) is left by RemoveTemps; once closed, it is a leftover and goes.
func TestRemoveTempsLeavesLiveOnes(t *testing.T) {
	dir := t.TempDir()
	f, err := CreateTemp(filepath.Join(dir, "sub", "file"))
	if err != nil {
		t.Fatal(err)
	}
	backdate(f.Name()) // its lock alone keeps it
	for _, remove := range []func(string) (int, error){RemoveTemps, func(string) (int, error) { return RemoveTempsIn(filepath.Dir(f.Name())) }} {
		if n, err := remove(dir); err != nil || n != 0 {
			t.Fatalf("removed %d (%v) of a live run's", n, err)
		}
		if _, err := os.Stat(f.Name()); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if n, err := RemoveTemps(dir); err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
}

// backdate gives p a modification time an hour ago: a killed run's
// leftover, not a file a live run has just made.
func backdate(p string) {
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
}

// A temporary file made an instant ago, not locked yet (its run locks it
// right after making it), is taken for a live run's and left.
func TestRemoveTempsLeavesJustMadeOnes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, TempPrefix+"new")
	os.WriteFile(p, nil, 0o644)
	if n, err := RemoveTemps(dir); err != nil || n != 0 {
		t.Fatalf("removed %d, %v", n, err)
	}
	backdate(p)
	if n, err := RemoveTemps(dir); err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
}
