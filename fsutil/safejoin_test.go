package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafeJoin(t *testing.T) {
	root := "/data/root"
	tests := []struct {
		name, want string
		bad        bool
	}{
		{name: "", want: root},
		{name: ".", want: root},
		{name: "a", want: root + "/a"},
		{name: "a/b/c.txt", want: root + "/a/b/c.txt"},
		{name: "a//b/./c", want: root + "/a/b/c"},
		{name: "a/", want: root + "/a"},
		{name: "..", bad: true},
		{name: "../x", bad: true},
		{name: "a/../../x", bad: true},
		{name: "a/../b", bad: true},
		{name: "/etc/passwd", bad: true},
		{name: "a\\..\\..\\x", bad: true},
		{name: "C:x", want: root + "/C:x"},
		{name: "c:/x", want: root + "/c:/x"},
		{name: "C:\\x", bad: true},
		{name: "a\x00b", bad: true},
		{name: "...", want: root + "/..."},
		{name: "..a/b..", want: root + "/..a/b.."},
	}
	for _, tt := range tests {
		got, err := SafeJoin(root, tt.name)
		if tt.bad {
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("SafeJoin(%q) = %q, %v; want ErrUnsafePath", tt.name, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("SafeJoin(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, tt := range []struct {
		root, p string
		want    bool
	}{
		{"/a", "/a", true}, {"/a", "/a/b", true}, {"/a", "/ab", false},
		{"/a", "/", false}, {"/a/b", "/a", false}, {"/a", "/a/../b", false},
		{"/a", "/a/..b", true},
	} {
		if got := Within(tt.root, tt.p); got != tt.want {
			t.Errorf("Within(%q, %q) = %v", tt.root, tt.p, got)
		}
	}
}

func FuzzSafeJoin(f *testing.F) {
	for _, s := range []string{"", ".", "a/b", "../a", "a/../..", "/abs", "a\\b", "C:\\x", "a/./b/", "....//..", "\x00", "é/ü"} {
		f.Add(s)
	}
	const root = "/srv/root"
	f.Fuzz(func(t *testing.T, name string) {
		got, err := SafeJoin(root, name)
		if err != nil {
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !Within(root, got) {
			t.Fatalf("SafeJoin(%q) = %q escapes %q", name, got, root)
		}
		if got != filepath.Clean(got) {
			t.Fatalf("SafeJoin(%q) = %q is not clean", name, got)
		}
		if strings.Contains(name, "..") && strings.Contains(got, "..") {
			for _, el := range strings.Split(got, "/") {
				if el == ".." {
					t.Fatalf("SafeJoin(%q) = %q has a .. element", name, got)
				}
			}
		}
	})
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	os.MkdirAll(filepath.Join(real, "sub"), 0o755)
	os.Symlink(real, filepath.Join(dir, "link"))
	rd, _ := filepath.EvalSymlinks(real)
	for in, want := range map[string]string{
		filepath.Join(dir, "link"):                      rd,
		filepath.Join(dir, "link", "sub"):               filepath.Join(rd, "sub"),
		filepath.Join(dir, "link", "not", "yet"):        filepath.Join(rd, "not", "yet"),
		filepath.Join(dir, "link", "..", "link", "sub"): filepath.Join(rd, "sub"),
	} {
		if got := Resolve(in); got != want {
			t.Errorf("Resolve(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestFirstMissingAndRemoveEmptyUpTo(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "a", "b", "c")
	if got := FirstMissing(target); got != filepath.Join(root, "a") {
		t.Fatalf("FirstMissing = %q, want %q", got, filepath.Join(root, "a"))
	}
	if got := FirstMissing(root); got != "" {
		t.Fatalf("FirstMissing of an existing folder = %q", got)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	// A file written meanwhile in a created folder keeps that folder.
	if err := os.WriteFile(filepath.Join(root, "a", "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	RemoveEmptyUpTo(target, filepath.Join(root, "a"))
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !os.IsNotExist(err) {
		t.Errorf("empty created folders left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "keep")); err != nil {
		t.Errorf("a folder holding a file was removed: %v", err)
	}
	os.Remove(filepath.Join(root, "a", "keep"))
	RemoveEmptyUpTo(filepath.Join(root, "a"), filepath.Join(root, "a"))
	if _, err := os.Stat(filepath.Join(root, "a")); !os.IsNotExist(err) {
		t.Errorf("the top created folder is left: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("a folder that existed before was removed: %v", err)
	}
}

// A relative link target is taken from the real path of the link's folder,
// as the kernel takes it.
func TestFollowLinksThroughLinkedFolder(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"vol/sub", "vol/states", "work"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../vol/sub", filepath.Join(base, "work", "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../states/sc.state", filepath.Join(base, "vol", "sub", "state")); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(base)
	if got, want := FollowLinks(filepath.Join(base, "work", "d", "state")), filepath.Join(real, "vol", "states", "sc.state"); got != want {
		t.Errorf("FollowLinks = %s, want %s", got, want)
	}
}

// A ".." after a link to a folder leaves the folder it leads to, as the
// kernel walks the path, not the link's.
func TestFollowLinkDotDotAfterLink(t *testing.T) {
	base, _ := filepath.EvalSymlinks(t.TempDir())
	for _, d := range []string{"out", "O/deep", "O/locked"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(base, "O", "deep"), filepath.Join(base, "out", "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d/../locked/file", filepath.Join(base, "out", "f")); err != nil {
		t.Fatal(err)
	}
	if got, want := FollowLinks(filepath.Join(base, "out", "f")), filepath.Join(base, "O", "locked", "file"); got != want {
		t.Errorf("FollowLinks = %s, want %s", got, want)
	}
}

// A ".." in the link's own path is walked as the kernel walks it too.
func TestFollowLinkDotDotInPath(t *testing.T) {
	base, _ := filepath.EvalSymlinks(t.TempDir())
	for _, d := range []string{"a/b", "deep/sub"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(base, "deep", "sub"), filepath.Join(base, "a", "b", "dl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("res.json", filepath.Join(base, "deep", "lnk")); err != nil {
		t.Fatal(err)
	}
	if got, want := FollowLinks(base+"/a/b/dl/../lnk"), filepath.Join(base, "deep", "res.json"); got != want {
		t.Errorf("FollowLinks = %s, want %s", got, want)
	}
}
