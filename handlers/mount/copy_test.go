package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers"
)

func write(t *testing.T, root, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sourceTree lays out a mount with files, modes, nested folders and links.
func sourceTree(t *testing.T) (src, outside string) {
	base := t.TempDir()
	src, outside = filepath.Join(base, "mount"), filepath.Join(base, "outside")
	write(t, src, "a.txt", "alpha", 0o644)
	write(t, src, "bin/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	write(t, src, "deep/er/x.csv", "1,2,3", 0o600)
	write(t, src, ".hidden", "dot files too", 0o644)
	write(t, outside, "secret", "not yours", 0o644)
	os.Symlink("a.txt", filepath.Join(src, "link-in"))
	os.Symlink("../../a.txt", filepath.Join(src, "deep/er/up"))
	os.Symlink(filepath.Join(src, "bin"), filepath.Join(src, "abs-dir-link"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(src, "link-out"))
	os.Symlink("../outside", filepath.Join(src, "dir-out"))
	os.Symlink("missing", filepath.Join(src, "dangling"))
	return src, outside
}

func TestCopyTree(t *testing.T) {
	src, _ := sourceTree(t)
	dst := filepath.Join(t.TempDir(), "code")
	st, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 || st.Links != 3 || st.Skipped != 0 || len(st.Ignored) != 3 {
		t.Errorf("stats = %+v", st)
	}
	if read(t, filepath.Join(dst, "deep/er/x.csv")) != "1,2,3" || read(t, filepath.Join(dst, ".hidden")) != "dot files too" {
		t.Error("content")
	}
	for rel, mode := range map[string]os.FileMode{"bin/run.sh": 0o755, "deep/er/x.csv": 0o600, "a.txt": 0o644} {
		fi, _ := os.Stat(filepath.Join(dst, rel))
		si, _ := os.Stat(filepath.Join(src, rel))
		if fi.Mode().Perm() != mode || !fi.ModTime().Equal(si.ModTime()) {
			t.Errorf("%s: mode %v mtime %v (source %v)", rel, fi.Mode(), fi.ModTime(), si.ModTime())
		}
	}
	// Links inside the root are relative links in the copy; others are left out.
	if l, _ := os.Readlink(filepath.Join(dst, "abs-dir-link")); l != "bin" {
		t.Errorf("abs-dir-link -> %q", l)
	}
	if read(t, filepath.Join(dst, "deep/er/up")) != "alpha" {
		t.Error("relative link")
	}
	for _, n := range []string{"link-out", "dir-out", "dangling"} {
		if _, err := os.Lstat(filepath.Join(dst, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s copied: %v", n, err)
		}
	}

	// A re-run skips what is identical (files: links up to date are not
	// counted, as they are not among the files) and rewrites what changed.
	write(t, src, "a.txt", "ALPHA!", 0o644)
	st, err = CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 1 || st.Skipped != 3 {
		t.Errorf("re-run stats = %+v", st)
	}
	if read(t, filepath.Join(dst, "a.txt")) != "ALPHA!" {
		t.Error("changed file not copied")
	}
}

func TestCopyMappingsSubPaths(t *testing.T) {
	src, _ := sourceTree(t)
	dst := t.TempDir()
	maps, err := handlers.ParseMappings(conn(t, "host_path", "/mnt", false), "--paths", []string{"deep/er:data", "a.txt:renamed.txt", "bin", "a.txt:into/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CopyMappings(context.Background(), src, dst, maps, Options{}); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dst, "data/x.csv")) != "1,2,3" || read(t, filepath.Join(dst, "renamed.txt")) != "alpha" || read(t, filepath.Join(dst, "bin/run.sh")) == "" ||
		read(t, filepath.Join(dst, "into/a.txt")) != "alpha" {
		t.Error("mapped content")
	}
	if _, err := os.Stat(filepath.Join(dst, "a.txt")); err == nil {
		t.Error("unasked file copied")
	}
	for _, tt := range []struct {
		path  string
		class fault.Class
	}{{"nope", fault.NotFound}, {"dir-out", fault.Usage}, {"dir-out/secret", fault.Usage}} {
		_, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{Src: tt.path, Dst: tt.path}}, Options{})
		if fault.ClassOf(err) != tt.class {
			t.Errorf("%s: class %v: %v", tt.path, fault.ClassOf(err), err)
		}
	}
	if _, err := handlers.ParseMappings(conn(t, "host_path", "/mnt", false), "--paths", []string{"../etc:x"}); fault.ClassOf(err) != fault.Usage {
		t.Errorf("escape accepted: %v", err)
	}
	if _, err := handlers.ParseMappings(conn(t, "host_path", "/mnt", false), "--paths", []string{"a:/abs"}); fault.ClassOf(err) != fault.Usage {
		t.Errorf("absolute dst accepted: %v", err)
	}
}

// Links met by --paths that do not copy what they lead to: a link in a
// copied folder to a file elsewhere in the mount is copied as that file
// (as rsync --copy-unsafe-links), one to a folder elsewhere is left out
// and reported; a link named by --paths is copied as what it leads to,
// its folder made as for any file. Nothing dangles in the copy.
func TestCopyLinksOutsideThePaths(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "mount")
	write(t, src, "data/real.txt", "real", 0o644)
	write(t, src, "ckpt/v2.bin", "v2", 0o644)
	write(t, src, "train/t.txt", "t", 0o644)
	os.Symlink("real.txt", filepath.Join(src, "data/cur.txt"))
	os.Symlink("../ckpt/v2.bin", filepath.Join(src, "train/latest.bin"))
	os.Symlink("../ckpt", filepath.Join(src, "train/ckpts"))
	os.Symlink("t.txt", filepath.Join(src, "train/same.txt"))
	os.Symlink("train", filepath.Join(src, "current"))

	dst := t.TempDir()
	maps, err := handlers.ParseMappings(conn(t, "host_path", "/mnt", false), "--paths",
		[]string{"train:job/train", "data/cur.txt:models/current.txt", "data/cur.txt:cur.txt", "current:run"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := CopyMappings(context.Background(), src, dst, maps, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"job/train/latest.bin": "v2", "job/train/t.txt": "t", "job/train/same.txt": "t",
		"models/current.txt": "real", "cur.txt": "real", "run/t.txt": "t", "run/latest.bin": "v2"} {
		p := filepath.Join(dst, rel)
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", rel, got, err)
		}
	}
	// Links within what is copied stay links; the rest are files.
	if l, err := os.Readlink(filepath.Join(dst, "job/train/same.txt")); err != nil || l != "t.txt" {
		t.Errorf("same.txt -> %q, %v", l, err)
	}
	for _, rel := range []string{"job/train/latest.bin", "cur.txt", "models/current.txt"} {
		if st, err := os.Lstat(filepath.Join(dst, rel)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s is not a file: %v", rel, err)
		}
	}
	for _, rel := range []string{"job/train/ckpts", "run/ckpts"} {
		if _, err := os.Lstat(filepath.Join(dst, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s copied: %v", rel, err)
		}
	}
	if len(st.Ignored) != 2 || !strings.Contains(st.Ignored[0], "link to a folder outside the paths copied") {
		t.Errorf("ignored: %q", st.Ignored)
	}
	// A re-run finds it all up to date.
	st, err = CopyMappings(context.Background(), src, dst, maps, Options{})
	if err != nil || st.Files != 0 {
		t.Errorf("re-run: %+v, %v", st, err)
	}

	// A link to a folder another --paths copies leads to where that one
	// puts it, renamed or not.
	dst2 := t.TempDir()
	maps, err = handlers.ParseMappings(conn(t, "host_path", "/mnt", false), "--paths", []string{"train:job/train", "ckpt:saved/ckpt"})
	if err != nil {
		t.Fatal(err)
	}
	st, err = CopyMappings(context.Background(), src, dst2, maps, Options{})
	if err != nil || len(st.Ignored) != 0 {
		t.Fatalf("%+v, %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(dst2, "job/train/ckpts")); err != nil || l != "../../saved/ckpt" {
		t.Errorf("ckpts -> %q, %v", l, err)
	}
	if got, err := os.ReadFile(filepath.Join(dst2, "job/train/ckpts/v2.bin")); err != nil || string(got) != "v2" {
		t.Errorf("through the link: %q, %v", got, err)
	}
}

func TestCopyRefusesOverlap(t *testing.T) {
	src, _ := sourceTree(t)
	_, err := CopyMappings(context.Background(), src, filepath.Join(src, "inside"), []handlers.Mapping{{}}, Options{})
	if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("overlap: %v", err)
	}
}

// TestCopyConflicts: what stands in the way is refused (exit 2), and
// removed with --force: a folder where a file or a link goes, a file where
// a folder goes, a file at --path itself.
func TestCopyConflicts(t *testing.T) {
	src, _ := sourceTree(t)
	dst := t.TempDir()
	write(t, dst, "a.txt/old", "a folder where a file goes", 0o644)
	write(t, dst, "link-in/old", "a folder where a link goes", 0o644)
	write(t, dst, "deep", "a file where a folder goes", 0o644)
	for _, force := range []bool{false, true} {
		_, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, Options{Force: force})
		if !force {
			if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "--force") {
				t.Errorf("conflict: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("--force: %v", err)
		}
	}
	if read(t, filepath.Join(dst, "a.txt")) != "alpha" || read(t, filepath.Join(dst, "deep/er/x.csv")) != "1,2,3" {
		t.Error("--force did not replace what stood in the way")
	}
	if l, err := os.Readlink(filepath.Join(dst, "link-in")); err != nil || l != "a.txt" {
		t.Errorf("link-in: %q %v", l, err)
	}

	// A file at --path itself, and a file on its path.
	file := filepath.Join(t.TempDir(), "code")
	write(t, filepath.Dir(file), "code", "x", 0o644)
	for _, p := range []string{file, filepath.Join(file, "below")} {
		_, err := CopyMappings(context.Background(), src, p, []handlers.Mapping{{Src: "a.txt", Dst: "a.txt"}}, Options{})
		if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "is a file") {
			t.Errorf("--path %s: %v", p, err)
		}
	}
	// A failed copy (a --paths the mount lacks) puts the file back.
	if _, err := CopyMappings(context.Background(), src, file, []handlers.Mapping{{Src: "missing.txt", Dst: "m.txt"}}, Options{Force: true}); fault.ClassOf(err) != fault.NotFound {
		t.Fatalf("--force, a --paths not in the mount: %v", err)
	}
	if read(t, file) != "x" {
		t.Error("a failed --force copy lost the file at --path")
	}
	if _, err := CopyMappings(context.Background(), src, file, []handlers.Mapping{{Src: "a.txt", Dst: "a.txt"}}, Options{Force: true}); err != nil {
		t.Fatalf("--force over a file at --path: %v", err)
	}
	if read(t, filepath.Join(file, "a.txt")) != "alpha" {
		t.Error("--force over a file at --path: not copied")
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("--force left %v beside --path", entries)
	}
	// A file a killed --force run moved aside (the run never settled it):
	// kept by a run without --force, removed by one with it that succeeds.
	left := filepath.Join(filepath.Dir(file), ".code.initializer-aside-0123456789ab")
	write(t, filepath.Dir(file), filepath.Base(left), "x", 0o644)
	if _, err := CopyMappings(context.Background(), src, file, []handlers.Mapping{{Src: "a.txt", Dst: "a.txt"}}, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); err != nil {
		t.Errorf("a run without --force removed the file a killed run moved aside: %v", err)
	}
	if _, err := CopyMappings(context.Background(), src, file, []handlers.Mapping{{Src: "a.txt", Dst: "a.txt"}}, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); err == nil {
		t.Error("a successful --force run kept the file a killed run moved aside")
	}
}

func TestCopyCancelledLeavesNothingHalfWritten(t *testing.T) {
	src := t.TempDir()
	for i := range 200 {
		write(t, src, fmt.Sprintf("d%d/f%03d.bin", i%7, i), strings.Repeat("x", 64<<10), 0o644)
	}
	dst := t.TempDir()
	// A temporary file from a "killed" earlier run is cleaned up.
	write(t, dst, "d1/"+fsutil.TempPrefix+"old", "stale", 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dst, "d1", fsutil.TempPrefix+"old"), old, old)
	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int32
	_, err := CopyMappings(ctx, src, dst, []handlers.Mapping{{}}, Options{Workers: 4, beforeFile: func(string) {
		if started.Add(1) == 20 {
			cancel()
		}
	}})
	if fault.ClassOf(err) != fault.Interrupted {
		t.Fatalf("err = %v (class %v)", err, fault.ClassOf(err))
	}
	n := 0
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), fsutil.TempPrefix) {
			t.Errorf("temp file left: %s", p)
		}
		if fi, _ := d.Info(); fi.Size() != 64<<10 {
			t.Errorf("partial file: %s (%d bytes)", p, fi.Size())
		}
		n++
		return nil
	})
	if n >= 200 {
		t.Errorf("all %d files copied despite cancellation", n)
	}
}

func TestCopyProgressLines(t *testing.T) {
	src, _ := sourceTree(t)
	var lines atomic.Int32
	_, err := CopyMappings(context.Background(), src, t.TempDir(), []handlers.Mapping{{}}, Options{
		ProgressEvery: time.Millisecond,
		beforeFile:    func(string) { time.Sleep(5 * time.Millisecond) },
		Log:           newCountingLogger(&lines),
	})
	if err != nil {
		t.Fatal(err)
	}
	if lines.Load() == 0 {
		t.Error("no progress line logged")
	}
}

// A re-run finds a file changed within the same second (copies keep
// nanoseconds), and --checksum compares contents: a change that keeps the
// size and the time is copied, the same content with another time is not
// (it gets the source's time).
func TestCopyRerunChanges(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	f := filepath.Join(src, "f")
	at := func(ns int) time.Time { return time.Date(2025, 1, 1, 0, 0, 0, ns, time.UTC) }
	put := func(content string, mt time.Time) {
		os.WriteFile(f, []byte(content), 0o644)
		os.Chtimes(f, mt, mt)
	}
	run := func(opts Options) Stats {
		t.Helper()
		st, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	got := func() string { b, _ := os.ReadFile(filepath.Join(dst, "f")); return string(b) }

	put("aaaa", at(100_000_000))
	run(Options{})
	put("bbbb", at(900_000_000)) // same size, same second
	if st := run(Options{}); st.Files != 1 || got() != "bbbb" {
		t.Errorf("a change within the same second: %+v, %q", st, got())
	}
	put("cccc", at(900_000_000)) // same size, same time
	if st := run(Options{}); st.Skipped != 1 || got() != "bbbb" {
		t.Errorf("without --checksum, same size and time is up to date: %+v, %q", st, got())
	}
	if st := run(Options{Checksum: true}); st.Files != 1 || got() != "cccc" {
		t.Errorf("--checksum, other content: %+v, %q", st, got())
	}
	os.Chtimes(f, at(5), at(5)) // same content, another time
	if st := run(Options{Checksum: true}); st.Files != 0 || st.Skipped != 1 {
		t.Errorf("--checksum, same content: %+v", st)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "f")); !fi.ModTime().Equal(at(5)) {
		t.Errorf("the copy keeps its time %v", fi.ModTime())
	}
	if st := run(Options{}); st.Skipped != 1 {
		t.Errorf("after --checksum set the time, a plain re-run copies again: %+v", st)
	}
}

// A failed copy into a --path it created leaves no empty folders of it;
// a --path that was there stays.
func TestCopyFailedLeavesNoNewFolders(t *testing.T) {
	src, _ := sourceTree(t)
	base := t.TempDir()
	dst := filepath.Join(base, "new", "deep")
	_, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{Src: "bin", Dst: "bin"}, {Src: "nope", Dst: "nope"}}, Options{})
	if fault.ClassOf(err) != fault.NotFound {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	existing := t.TempDir()
	if _, err := CopyMappings(context.Background(), src, existing, []handlers.Mapping{{Src: "nope", Dst: "nope"}}, Options{}); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(existing); err != nil {
		t.Errorf("the --path that was there: %v", err)
	}
}

// --path keeps its own mode (an emptyDir's group-writable, setgid mode),
// whatever the mount's root has; the folders below get the mount's.
func TestCopyKeepsPathMode(t *testing.T) {
	src, _ := sourceTree(t)
	os.Chmod(src, 0o755)
	os.Chmod(filepath.Join(src, "bin"), 0o750)
	dst := t.TempDir()
	if err := os.Chmod(dst, 0o2777|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(dst)
	if _, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, Options{}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(dst)
	if after.Mode() != before.Mode() {
		t.Errorf("--path's mode %v, was %v", after.Mode(), before.Mode())
	}
	if st, _ := os.Stat(filepath.Join(dst, "bin")); st.Mode().Perm() != 0o750 || st.Mode()&os.ModeSetgid == 0 {
		t.Errorf("bin: %v (the mount's mode, and the setgid bit it inherited)", st.Mode())
	}
}

// A --path reached through a link into the mount overlaps it as much as
// one given plainly: refused, nothing written into the mount.
func TestCopyPathThroughLinkIntoMount(t *testing.T) {
	src, _ := sourceTree(t)
	link := filepath.Join(t.TempDir(), "to-mount")
	os.Symlink(src, link)
	_, err := CopyMappings(context.Background(), src, filepath.Join(link, "out"), []handlers.Mapping{{}}, Options{Conn: "data"})
	if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "overlap") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(src, "out")); err == nil {
		t.Error("the copy wrote into the mount")
	}
}

// A --path that is a link to a folder is that folder: the copy goes into
// it and the link stays.
func TestCopyPathIsLinkToFolder(t *testing.T) {
	src, _ := sourceTree(t)
	base := t.TempDir()
	real, link := filepath.Join(base, "volume"), filepath.Join(base, "data")
	os.Mkdir(real, 0o755)
	os.Symlink(real, link)
	for _, force := range []bool{false, true} {
		if _, err := CopyMappings(context.Background(), src, link+"/", []handlers.Mapping{{}}, Options{Conn: "data", Force: force}); err != nil {
			t.Fatalf("force=%v: %v", force, err)
		}
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("force=%v: the link was replaced: %v %v", force, st, err)
		}
		if got := read(t, filepath.Join(real, "a.txt")); got != "alpha" {
			t.Fatalf("force=%v: a.txt = %q", force, got)
		}
	}
}

// A file with no permissions at all is copied with none, not with a
// default mode, on the first run as on re-runs.
func TestCopyKeepsModeZero(t *testing.T) {
	src := t.TempDir()
	write(t, src, "locked", "private", 0)
	dst := filepath.Join(t.TempDir(), "out")
	for run := 1; run <= 2; run++ {
		if _, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, Options{Conn: "data"}); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join(dst, "locked")); err != nil || st.Mode().Perm() != 0 {
			t.Fatalf("run %d: %v %v", run, st.Mode(), err)
		}
	}
}

// A file written to while it is copied is copied once more, from what it
// is then; one written to again fails with exit 6 and leaves no copy.
func TestCopyFileChangedDuringCopy(t *testing.T) {
	for _, times := range []int{1, 2} {
		src := t.TempDir()
		write(t, src, "log", "first", 0o644)
		dst := filepath.Join(t.TempDir(), "out")
		var calls atomic.Int32
		_, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, Options{Conn: "data", afterCopy: func(p string) {
			if int(calls.Add(1)) <= times {
				f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString(" more")
				f.Close()
			}
		}})
		switch times {
		case 1:
			if err != nil {
				t.Fatal(err)
			}
			if got := read(t, filepath.Join(dst, "log")); got != "first more" {
				t.Fatalf("copy = %q", got)
			}
		case 2:
			if fault.ClassOf(err) != fault.Integrity || !strings.Contains(err.Error(), "changed while it was copied, twice") {
				t.Fatalf("err = %v", err)
			}
			if _, err := os.Lstat(filepath.Join(dst, "log")); err == nil {
				t.Error("a copy was left")
			}
		}
	}
}

// A file removed from the mount while the copy runs is named as such.
func TestCopyFileRemovedDuringCopy(t *testing.T) {
	src := t.TempDir()
	write(t, src, "gone", "x", 0o644)
	_, err := CopyMappings(context.Background(), src, filepath.Join(t.TempDir(), "out"), []handlers.Mapping{{}}, Options{Conn: "data", beforeFile: func(p string) { os.Remove(p) }})
	if fault.ClassOf(err) != fault.NotFound || !strings.Contains(err.Error(), "was removed from the mount while the copy ran") {
		t.Fatalf("err = %v", err)
	}
}

// A sparse file is copied with its holes: the same bytes, no more room.
func TestCopySparseFile(t *testing.T) {
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("middle"), 64<<20)
	f.Truncate(256 << 20) // a hole to the end
	f.Close()
	dst := filepath.Join(t.TempDir(), "out")
	st, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, Options{Conn: "data"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := read(t, filepath.Join(src, "disk.img")), read(t, filepath.Join(dst, "disk.img"))
	if a != b {
		t.Fatal("the copy differs")
	}
	info, _ := os.Stat(filepath.Join(dst, "disk.img"))
	if fsutil.Allocated(info) > 1<<20 || st.Files != 1 {
		t.Errorf("the copy takes %d bytes of %d; stats %+v", fsutil.Allocated(info), info.Size(), st)
	}
}

// --path removed while the copy writes into it: the run fails naming that.
func TestCopyPathRemovedMidway(t *testing.T) {
	src := t.TempDir()
	for i := range 40 {
		write(t, src, fmt.Sprintf("d%d/f%02d", i%4, i), "x", 0o644)
	}
	dst := filepath.Join(t.TempDir(), "out")
	var n atomic.Int32
	_, err := CopyMappings(context.Background(), src, dst, []handlers.Mapping{{}}, Options{Conn: "data", Workers: 1, beforeFile: func(string) {
		if n.Add(1) == 20 {
			os.RemoveAll(dst)
		}
	}})
	if fault.ClassOf(err) != fault.LocalDisk || !strings.Contains(err.Error(), "was removed or replaced while the copy wrote into it") {
		t.Fatalf("err = %v", err)
	}
}

// A copy into an existing --path that stops leaves none of the folders it
// made empty, and keeps the empty folders that were there.
func TestCopyFailedRemovesFoldersMade(t *testing.T) {
	src := t.TempDir()
	for i := range 60 {
		write(t, src, fmt.Sprintf("s/%02d/f", i), "x", 0o644)
	}
	dst := t.TempDir()
	os.MkdirAll(filepath.Join(dst, "s", "before"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	_, err := CopyMappings(ctx, src, dst, []handlers.Mapping{{}}, Options{Conn: "data", Workers: 1, beforeFile: func(string) {
		if n.Add(1) == 20 {
			cancel()
		}
	}})
	if fault.ClassOf(err) != fault.Interrupted {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dst, "s"))
	for _, e := range entries {
		if sub, _ := os.ReadDir(filepath.Join(dst, "s", e.Name())); len(sub) == 0 && e.Name() != "before" {
			t.Fatalf("an empty folder is left: s/%s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "s", "before")); err != nil {
		t.Errorf("a folder that was there before went: %v", err)
	}
}

// The space a copy needs counts whole blocks: a byte takes one; the
// progress counts the bytes and the files.
func TestCopyNeedsWholeBlocks(t *testing.T) {
	src := t.TempDir()
	for i := range 3 {
		write(t, src, fmt.Sprintf("f%d", i), "x", 0o644)
	}
	c := &copier{block: 4096}
	if n, err := c.pending(context.Background(), src, t.TempDir()); err != nil || n != (pendingCopy{room: 3 * 4096, size: 3, files: 3}) {
		t.Errorf("pending = %+v, %v", n, err)
	}
}
