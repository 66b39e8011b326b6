package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/initializer/initializer/fault"
)

// Failures of a mount store that trying again cannot mend are not
// "unreachable": a name conflict, a rename across file systems (a volume
// mounted below the store's folder after the start), a full disk.
func TestMountClass(t *testing.T) {
	for err, want := range map[error]fault.Class{
		&os.LinkError{Op: "rename", Old: "/m/.t/x", New: "/m/sub/x", Err: syscall.EXDEV}:     fault.Usage,
		&os.PathError{Op: "open", Path: "/m/a/b", Err: syscall.ENOTDIR}:                      fault.Usage,
		&os.PathError{Op: "write", Path: "/m/a", Err: syscall.ENOSPC}:                        fault.LocalDisk,
		fmt.Errorf("copy: %w", &os.PathError{Op: "open", Path: "/m/a", Err: syscall.EACCES}): fault.Auth,
	} {
		if got := mountClass(err); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
}

// After a deletion on a mount store, the folders it emptied go, up to the
// run's folder; a link to a folder stays, and so does what it points to.
func TestRemoveEmptied(t *testing.T) {
	top := t.TempDir()
	elsewhere := t.TempDir()
	os.WriteFile(filepath.Join(elsewhere, "other.txt"), []byte("o"), 0o644)
	os.MkdirAll(filepath.Join(top, "a", "b"), 0o755)
	if err := os.Symlink(elsewhere, filepath.Join(top, "a", "linked")); err != nil {
		t.Fatal(err)
	}
	if err := removeEmptied(top, filepath.Join(top, "a", "b", "gone.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(top, "a", "b")); !os.IsNotExist(err) {
		t.Errorf("the emptied folder is left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(top, "a")); err != nil {
		t.Errorf("a folder holding a link was removed: %v", err)
	}
	if err := removeEmptied(top, filepath.Join(top, "a", "linked", "f.txt")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(top, "a", "linked")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link to a folder was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "other.txt")); err != nil {
		t.Error(err)
	}
}

// A deletion below a link to a folder in the store (a file uploaded
// through it) removes nothing in the link's target.
func TestRemoveEmptiedStopsAtLinksOnThePath(t *testing.T) {
	top, ext := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(ext, "sub2"), 0o755)
	if err := os.Symlink(ext, filepath.Join(top, "lnk")); err != nil {
		t.Fatal(err)
	}
	if err := removeEmptied(top, filepath.Join(top, "lnk", "sub2", "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ext, "sub2")); err != nil {
		t.Errorf("a folder in the link's target was removed: %v", err)
	}
}

// A file of the store reached through a link to a folder is not deleted
// (it lies outside the store); one in the store's own folders is.
func TestNoLinkOnPath(t *testing.T) {
	top, ext := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(top, "own", "deep"), 0o755)
	if err := os.Symlink(ext, filepath.Join(top, "d")); err != nil {
		t.Fatal(err)
	}
	if err := noLinkOnPath(top, filepath.Join(top, "d", "x.txt")); err == nil {
		t.Error("a file through a link may be deleted")
	}
	for _, ok := range []string{"x.txt", "own/deep/y.txt", "gone/z.txt"} {
		if err := noLinkOnPath(top, filepath.Join(top, ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// The summary names where the objects went: the store, then --prefix.
func TestUnderPrefix(t *testing.T) {
	for _, c := range [][3]string{{"s3://data/outputs", "run1", "s3://data/outputs/run1"}, {"s3://data/", "run1", "s3://data/run1"}, {"/mnt/store", "", "/mnt/store"}} {
		if got := underPrefix(c[0], c[1]); got != c[2] {
			t.Errorf("underPrefix(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}
