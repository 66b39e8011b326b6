package sidecar

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/initializer/initializer/fsutil"
)

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func scanOK(t *testing.T, ix *index) scanResult {
	t.Helper()
	res, err := ix.scan()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(res.dirty)
	sort.Strings(res.gone)
	return res
}

func markAll(ix *index, rels []string) {
	for _, r := range rels {
		ix.uploaded(r, ix.files[r].cur)
	}
}

func TestScanDirtyGoneAndExcludes(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.txt", "a")
	write(t, root, "d/b.txt", "b")
	write(t, root, ".git/HEAD", "ref")
	write(t, root, "d/.git/config", "x")
	write(t, root, "d/"+fsutil.TempPrefix+"123", "temp")
	write(t, root, "cache/x.bin", "c")
	write(t, root, "logs/run.tmp", "t")
	write(t, root, "logs/keep.log", "k")
	write(t, root, "deep/cache/y", "kept: only the top cache/ is excluded by path")
	if err := os.Symlink("a.txt", filepath.Join(root, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d", filepath.Join(root, "dirlink")); err != nil {
		t.Fatal(err)
	}
	x, err := newExcluder([]string{"*.tmp", "/cache/"})
	if err != nil {
		t.Fatal(err)
	}
	ix := newIndex(root, x)
	res := scanOK(t, ix)
	want := []string{"a.txt", "d/b.txt", "deep/cache/y", "link.txt", "logs/keep.log"}
	if !slices.Equal(res.dirty, want) || res.files != len(want) {
		t.Fatalf("dirty %v (%d files), want %v", res.dirty, res.files, want)
	}
	markAll(ix, res.dirty)

	// Nothing changed: nothing dirty.
	if res := scanOK(t, ix); len(res.dirty)+len(res.gone) != 0 {
		t.Fatalf("unchanged tree: %+v", res)
	}
	// A change of content with the same size shows through the mtime; a
	// replacement through the inode; a deletion as gone.
	later := time.Now().Add(time.Hour)
	write(t, root, "a.txt", "A")
	os.Chtimes(filepath.Join(root, "a.txt"), later, later)
	write(t, root, "d/b2", "b")
	os.Rename(filepath.Join(root, "d/b2"), filepath.Join(root, "d/b.txt"))
	os.Remove(filepath.Join(root, "logs/keep.log"))
	res = scanOK(t, ix)
	if !slices.Equal(res.dirty, []string{"a.txt", "d/b.txt", "link.txt"}) || !slices.Equal(res.gone, []string{"logs/keep.log"}) {
		t.Fatalf("after changes: %+v", res)
	}
}

func TestScanMissingRoot(t *testing.T) {
	ix := newIndex(filepath.Join(t.TempDir(), "not-yet"), &excluder{})
	res := scanOK(t, ix)
	if !res.missing || res.files != 0 {
		t.Fatalf("%+v", res)
	}
}

func TestStateRoundTrip(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"a", "sp ace/b", "new\nline", `quo"te`, "ünï/ç"} {
		write(t, root, n, n)
	}
	x, _ := newExcluder(nil)
	ix := newIndex(root, x)
	res := scanOK(t, ix)
	markAll(ix, res.dirty[:4])
	state := filepath.Join(t.TempDir(), "state")
	if err := ix.save(state, "id1", nil); err != nil {
		t.Fatal(err)
	}

	again := newIndex(root, x)
	if ok, err := again.load(state, "id1"); !ok || err != nil {
		t.Fatalf("load: %v %v", ok, err)
	}
	res2 := scanOK(t, again)
	if !slices.Equal(res2.dirty, res.dirty[4:]) {
		t.Errorf("after a restart, dirty %v, want %v", res2.dirty, res.dirty[4:])
	}
	// Another store or folder does not use it.
	other := newIndex(root, x)
	if ok, err := other.load(state, "id2"); ok || err != nil {
		t.Errorf("load with another identity: %v %v", ok, err)
	}
	if ok, err := other.load(filepath.Join(t.TempDir(), "none"), "id1"); ok || err != nil {
		t.Errorf("load of a missing file: %v %v", ok, err)
	}
	os.WriteFile(state, []byte("garbage\n"), 0o644)
	if _, err := other.load(state, "id1"); err == nil {
		t.Error("a corrupt state file was accepted")
	}
}

func TestExcluderGlobs(t *testing.T) {
	if _, err := newExcluder([]string{"[bad"}); err == nil {
		t.Error("a bad glob was accepted")
	}
	x, _ := newExcluder([]string{"*.ckpt", "tmp/", "out/private/*"})
	for _, c := range []struct {
		name, rel string
		dir, want bool
	}{
		{"m.ckpt", "a/m.ckpt", false, true},
		{"m.pt", "a/m.pt", false, false},
		{"tmp", "x/tmp", true, true},
		{"tmp", "x/tmp", false, false},
		{"s", "out/private/s", false, true},
		{"private", "out/private", true, false},
		{".git", ".git", true, true},
	} {
		got := x.file(c.name, []byte(c.rel))
		if c.dir {
			got = x.dir(c.name, []byte(c.rel))
		}
		if got != c.want {
			t.Errorf("%s (dir %v): excluded %v, want %v", c.rel, c.dir, got, c.want)
		}
	}
}

// Links to files outside the root are left out and reported; links to
// files below it, absolute or relative, are uploaded as the files.
func TestScanLinksLeadingOut(t *testing.T) {
	root := t.TempDir()
	write(t, root, "run/model.pt", "m")
	secretDir := t.TempDir()
	write(t, secretDir, "AWS_SECRET_ACCESS_KEY", "s")
	for name, target := range map[string]string{
		"run/leak.txt":   filepath.Join(secretDir, "AWS_SECRET_ACCESS_KEY"),
		"run/up.txt":     "../../" + filepath.Base(secretDir) + "/AWS_SECRET_ACCESS_KEY",
		"run/latest.pt":  filepath.Join(root, "run/model.pt"),
		"run/latest2.pt": "model.pt",
		"run/dangling":   "nothing-there",
	} {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	x, _ := newExcluder(nil)
	res := scanOK(t, newIndex(root, x))
	if want := []string{"run/latest.pt", "run/latest2.pt", "run/model.pt"}; !slices.Equal(res.dirty, want) {
		t.Errorf("dirty %v, want %v", res.dirty, want)
	}
	sort.Strings(res.linksOut)
	if want := []string{"run/leak.txt", "run/up.txt"}; !slices.Equal(res.linksOut, want) {
		t.Errorf("links leading out %v, want %v", res.linksOut, want)
	}
	if want := []string{"run/dangling"}; !slices.Equal(res.dangling, want) {
		t.Errorf("links to nothing %v, want %v", res.dangling, want)
	}
}

// "**" is zero or more whole path segments, as in .gitignore, with the
// rules of the other globs: no slash left is a name at any depth, a
// leading slash anchors, a trailing slash is for folders only.
func TestExcluderDoubleStar(t *testing.T) {
	x, err := newExcluder([]string{"**/*.tmp", "**/ckpt/", "logs/**/debug.log", "/cache/**", "**/a/b.bin", "/**/top.txt", "ck2/**/", "d/logs/**"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rel       string
		dir, want bool
	}{
		{"x.tmp", false, true},
		{"d/e/x.tmp", false, true},
		{"x.tmpl", false, false},
		{"ckpt", true, true},
		{"run/1/ckpt", true, true},
		{"run/1/ckpt", false, false}, // a file named ckpt: the glob is for folders
		{"logs/debug.log", false, true},
		{"logs/a/b/debug.log", false, true},
		{"other/logs/debug.log", false, false},
		{"logs/debug.log.1", false, false},
		// As in .gitignore, "a/**" is what is inside a, not a itself.
		{"cache", true, false},
		{"cache/x", true, true},
		{"cache/x/y", false, true},
		{"ck2/a.bin", false, false},
		{"ck2/sub", true, true},
		{"ck2", true, false},
		{"d/logs", false, false},
		{"d/logs/x", false, true},
		{"sub/cache/y", false, false},
		{"a/b.bin", false, true},
		{"z/y/a/b.bin", false, true},
		{"z/a/c.bin", false, false},
		{"top.txt", false, true},
		{"deep/top.txt", false, true},
	} {
		name := path.Base(c.rel)
		got := x.file(name, []byte(c.rel))
		if c.dir {
			got = x.dir(name, []byte(c.rel))
		}
		if got != c.want {
			t.Errorf("%s (dir %v): excluded %v, want %v", c.rel, c.dir, got, c.want)
		}
	}
	for _, bad := range []string{"[bad", "a/{b", `x\`, "run}.txt"} {
		if _, err := newExcluder([]string{bad}); err == nil || !strings.Contains(err.Error(), "--exclude") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// A scan excludes what "**" globs name, and costs no allocation per file
// when nothing matches.
func TestScanDoubleStar(t *testing.T) {
	root := t.TempDir()
	for _, rel := range []string{"a.txt", "x.tmp", "d/e/y.tmp", "run/ckpt/w.bin", "run/ckpt.txt", "logs/debug.log", "logs/r/debug.log", "logs/r/info.log"} {
		write(t, root, rel, rel)
	}
	x, err := newExcluder([]string{"**/*.tmp", "**/ckpt/", "logs/**/debug.log"})
	if err != nil {
		t.Fatal(err)
	}
	ix := newIndex(root, x)
	res := scanOK(t, ix)
	if want := []string{"a.txt", "logs/r/info.log", "run/ckpt.txt"}; !slices.Equal(res.dirty, want) {
		t.Fatalf("dirty %v, want %v", res.dirty, want)
	}
	rel := []byte("logs/some/deeper/path/to/model-checkpoint.bin")
	if n := testing.AllocsPerRun(100, func() { x.file("model-checkpoint.bin", rel); x.dir("path", rel) }); n != 0 {
		t.Errorf("%v allocations per file matched", n)
	}
}
