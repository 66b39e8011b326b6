package git

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
)

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// An update of a clone in place that is stopped before its files are moved
// into place leaves the work tree at the old revision, whole; run again, it
// leaves it at the new one, clean for git.
func TestCheckoutUpdateStoppedLeavesOldTree(t *testing.T) {
	dir := t.TempDir()
	gitIn(t, dir, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("gone later\n"), 0o644)
	gitIn(t, dir, "add", ".")
	gitIn(t, dir, "commit", "-q", "-m", "A")
	a := gitIn(t, dir, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("two\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "c.txt"), []byte("new\n"), 0o644)
	gitIn(t, dir, "rm", "-q", "b.txt")
	gitIn(t, dir, "add", ".")
	gitIn(t, dir, "commit", "-q", "-m", "B")
	b := gitIn(t, dir, "rev-parse", "HEAD")
	gitIn(t, dir, "checkout", "-q", a)
	os.WriteFile(filepath.Join(dir, "output.log"), []byte("the job's\n"), 0o644)

	e := &goGitEngine{}
	defer e.close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.checkout(ctx, dir, b, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if head := gitIn(t, dir, "rev-parse", "HEAD"); head != a {
		t.Errorf("HEAD moved to %s with the work tree left at %s", head, a)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(got) != "one\n" {
		t.Errorf("a.txt = %q", got)
	}
	for _, name := range []string{"b.txt", "output.log"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"d", ".git/initializer-checkout"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s is there", name)
		}
	}

	if err := e.checkout(context.Background(), dir, b, ""); err != nil {
		t.Fatal(err)
	}
	if head := gitIn(t, dir, "rev-parse", "HEAD"); head != b {
		t.Errorf("HEAD %s, want %s", head, b)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "d", "c.txt")); string(got) != "new\n" {
		t.Errorf("d/c.txt = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.txt")); err == nil {
		t.Error("b.txt, dropped by B, is still there")
	}
	if _, err := os.Stat(filepath.Join(dir, "output.log")); err != nil {
		t.Errorf("the untracked file went: %v", err)
	}
	if out := gitIn(t, dir, "status", "--porcelain", "--untracked-files=no"); out != "" {
		t.Errorf("not clean:\n%s", out)
	}
}

// A staging folder of a run still cloning is left by another run's
// clean-up; one a killed run left goes.
func TestRemoveStaleLeavesLiveStaging(t *testing.T) {
	dir := t.TempDir()
	prefix := stagingPrefix(filepath.Join(dir, "code"))
	live, dead := filepath.Join(dir, prefix+"live"), filepath.Join(dir, prefix+"dead")
	os.Mkdir(live, 0o755)
	os.Mkdir(dead, 0o755)
	fsutil.Lock(live)
	old := time.Now().Add(-time.Hour) // not made an instant ago: the lock alone tells
	os.Chtimes(live, old, old)
	os.Chtimes(dead, old, old)
	removeStale(dir, prefix)
	if _, err := os.Stat(live); err != nil {
		t.Error("a live run's staging folder was removed")
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("a killed run's staging folder was left")
	}
}

// Line endings as .gitattributes ask (eol=crlf with text, text=auto, the
// binary macro, -text, a deeper .gitattributes over the root's): the same
// bytes as git's own checkout, and a work tree git finds clean.
func TestCheckoutLineEndingsAsGit(t *testing.T) {
	src := t.TempDir()
	gitIn(t, src, "init", "-q", "-b", "main")
	files := map[string]string{
		".gitattributes":     "* text=auto\n*.bat text eol=crlf\n*.cmd eol=crlf\nauto/* text=auto eol=crlf\n*.bin binary\nraw.txt -text eol=crlf\n[attr]winfile text eol=crlf\n*.m winfile\n*.in crlf=input eol=crlf\n",
		"a.m":                "m\nm\n",
		"a.in":               "i\ni\n",
		"win.bat":            "x\ny\n",
		"alone.cmd":          "a\nb",
		"auto/text.txt":      "a\nb\n",
		"auto/has-crlf.txt":  "a\r\nb\n",
		"auto/binary.dat":    "a\x00\nb\n",
		"data.bin":           "z\nz\n",
		"raw.txt":            "r\nr\n",
		"plain.txt":          "p\n",
		"sub/.gitattributes": "*.txt eol=crlf\n",
		"sub/deep.txt":       "d\nd\n",
		"sub/keep.md":        "m\n",
	}
	for name, content := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	gitIn(t, src, "add", "--renormalize", ".")
	gitIn(t, src, "add", ".")
	gitIn(t, src, "commit", "-q", "-m", "eol")
	head := gitIn(t, src, "rev-parse", "HEAD")
	ref := filepath.Join(t.TempDir(), "ref")
	gitIn(t, filepath.Dir(ref), "clone", "-q", src, ref)

	dir := filepath.Join(t.TempDir(), "ours")
	gitIn(t, filepath.Dir(dir), "clone", "-q", "--no-checkout", src, dir)
	os.Remove(filepath.Join(dir, ".git", "index"))
	r, err := gogit.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkoutTree(context.Background(), dir, r, plumbing.NewHash(head), nil); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		want, _ := os.ReadFile(filepath.Join(ref, filepath.FromSlash(name)))
		got, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if string(got) != string(want) {
			t.Errorf("%s: %q, git wrote %q", name, got, want)
		}
	}
	if out := gitIn(t, dir, "status", "--porcelain"); out != "" {
		t.Errorf("not clean:\n%s", out)
	}
}

// A --path that received files from elsewhere while the clone ran (another
// run into it, a folder put in its place) is refused (exit 2) before
// anything of the clone moves: nothing there is replaced.
func TestPublishRefusesWhatCameMeanwhile(t *testing.T) {
	c, _ := keysOf(t, `{"name":"r","kind":"git","schema":{"url":"x"}}`, nil)
	u, _ := parseRemote("https://h/r.git")
	target := filepath.Join(t.TempDir(), "code")
	d, _ := inspectDest(c, target, u, false)
	dir, err := d.prepare()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"README", "other", ".git/HEAD"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte("the clone's"), 0o644)
	}
	os.MkdirAll(target, 0o755)
	os.WriteFile(filepath.Join(target, "README"), []byte("mine"), 0o644)
	err = d.publish()
	if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "received README from elsewhere while the clone ran") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "README")); string(b) != "mine" {
		t.Errorf("README = %q", b)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 1 {
		t.Errorf("--path holds %v", entries)
	}
	d.abandon()
}
