package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// lfsFixture is a gitFixture whose main branch adds Git LFS files, with
// their objects in an LFS store that a committed .lfsconfig names by a
// file:// URL: git-lfs (>= 2.9) reads such a store itself, through its
// standalone transfer agent ("lfs-standalone-file"), so no LFS server is
// needed. Branch "missing" adds one more LFS file whose object the store
// lacks.
type lfsFixture struct {
	*gitFixture
	home    string            // HOME for the git-lfs commands of the fixture
	store   string            // the LFS store: a bare repository, objects in lfs/objects
	url     string            // the repository over smart HTTP
	creds   string            // POLYAXON_GIT_CREDENTIALS=...
	files   map[string][]byte // LFS file → its content, on main
	missing string            // the LFS file of branch "missing"
}

// lfsGit runs git (and so git-lfs) with the configuration of gitCmd and
// HOME in home, so that no git-lfs command reads or writes the real HOME.
func lfsGit(t *testing.T, home, dir string, args ...string) string {
	t.Helper()
	return gitCmdEnv(t, dir, []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "GIT_TERMINAL_PROMPT=0"}, args...)
}

// needGitLFS fails the test (it does not skip: a skipped test proves
// nothing) when git-lfs is not installed.
func needGitLFS(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git-lfs"); err != nil {
		t.Fatalf("git-lfs is needed for this test (integration/servers.sh install puts it in with apt-get): %v", err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// lfsPointer is the pointer file git-lfs commits in place of content.
func lfsPointer(content []byte) string {
	return fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sha256Hex(content), len(content))
}

func newLFSFixture(t *testing.T) *lfsFixture {
	t.Helper()
	needGitLFS(t)
	f := &lfsFixture{gitFixture: newGitFixture(t), home: t.TempDir(), missing: "missing.bin"}
	f.url = f.env.HTTPURL + "/" + f.name
	f.creds = "POLYAXON_GIT_CREDENTIALS=" + f.env.HTTPUser + ":" + f.env.HTTPPassword
	pushURL := strings.Replace(f.url, "http://", "http://"+f.env.HTTPUser+":"+f.env.HTTPPassword+"@", 1)
	f.store = filepath.Join(t.TempDir(), "lfs-store.git")
	lfsGit(t, f.home, "", "init", "-q", "--bare", f.store)
	storeURL := "file://" + f.store

	w := f.work
	// The clean filter in the work repository's own config only.
	lfsGit(t, f.home, w, "lfs", "install", "--local")
	lfsGit(t, f.home, w, "lfs", "track", "*.bin")
	writeFile(t, w, ".lfsconfig", "[lfs]\n\turl = "+storeURL+"\n")
	f.files = map[string][]byte{
		"model.bin":        randomBytes(t, 4<<20+123),
		"data/weights.bin": randomBytes(t, 64<<10),
		"small.bin":        randomBytes(t, 200),
	}
	add := []string{"add", ".gitattributes", ".lfsconfig"}
	for name, content := range f.files {
		writeFile(t, w, name, string(content))
		add = append(add, name)
	}
	lfsGit(t, f.home, w, add...)
	lfsGit(t, f.home, w, "commit", "-q", "-m", "LFS files")
	for name, content := range f.files {
		if got := lfsGit(t, f.home, w, "cat-file", "blob", "HEAD:"+name) + "\n"; got != lfsPointer(content) {
			t.Fatalf("%s was not committed as an LFS pointer:\n%.200s", name, got)
		}
	}
	lfsGit(t, f.home, w, "lfs", "push", storeURL, "main")
	for name, content := range f.files {
		oid := sha256Hex(content)
		if _, err := os.Stat(filepath.Join(f.store, "lfs", "objects", oid[:2], oid[2:4], oid)); err != nil {
			t.Fatalf("git lfs push did not store %s: %v", name, err)
		}
	}
	// --no-verify: git lfs install's pre-push hook would upload the
	// objects too, which branch "missing" must not do.
	lfsGit(t, f.home, w, "push", "-q", "--no-verify", pushURL, "main")

	lfsGit(t, f.home, w, "checkout", "-q", "-b", "missing")
	writeFile(t, w, f.missing, string(randomBytes(t, 3000)))
	lfsGit(t, f.home, w, "add", f.missing)
	lfsGit(t, f.home, w, "commit", "-q", "-m", "an LFS file whose object was never pushed")
	lfsGit(t, f.home, w, "push", "-q", "--no-verify", pushURL, "missing")
	lfsGit(t, f.home, w, "checkout", "-q", "main")
	return f
}

// lfsConfigs are the git configurations the initializer may meet: git-lfs
// installed but its filter configured nowhere (the handler must not need a
// global `git lfs install`), and the filter in the global config (as
// `git lfs install` or Debian's package, in /etc/gitconfig, set it): then
// git clone itself smudges.
var lfsConfigs = []struct {
	name   string
	filter bool
}{{"no filter config", false}, {"global git lfs install", true}}

// lfsEnv returns the initializer's environment for a configuration: HOME
// and the global config in a temporary folder, no system config, so that
// the machine's config plays no part and the real HOME is never written.
// check, to call after the runs, fails the test if the initializer wrote
// to that HOME or global config.
func (f *lfsFixture) lfsEnv(t *testing.T, filter bool) (env []string, check func()) {
	t.Helper()
	home := t.TempDir()
	global := writeFile(t, t.TempDir(), "gitconfig", "")
	env = []string{f.creds, "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"GIT_CONFIG_GLOBAL=" + global, "GIT_CONFIG_NOSYSTEM=1"}
	if filter {
		cmd := exec.Command("git", "lfs", "install", "--skip-repo")
		cmd.Dir = home
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git lfs install: %v\n%s", err, out)
		}
	}
	before, _ := os.ReadFile(global)
	if filter != bytes.Contains(before, []byte(`[filter "lfs"]`)) {
		t.Fatalf("global config:\n%s", before)
	}
	return env, func() {
		t.Helper()
		if after, _ := os.ReadFile(global); !bytes.Equal(after, before) {
			t.Errorf("the initializer changed the global git config:\n%s", after)
		}
		if entries, _ := os.ReadDir(home); len(entries) != 0 {
			t.Errorf("the initializer wrote to HOME: %v", entries)
		}
	}
}

// TestGitLFSSmudge clones a repository with LFS files with the git CLI
// engine and git-lfs installed: the checkout has their content, byte for
// byte, whether or not git's config has the LFS filter. The go-git engine,
// which cannot fetch LFS content, leaves the pointers and warns, naming them.
func TestGitLFSSmudge(t *testing.T) {
	f := newLFSFixture(t)
	cat := gitCatalog(t, f.url, "", nil, "")
	for _, c := range lfsConfigs {
		t.Run("cli/"+c.name, func(t *testing.T) {
			env, check := f.lfsEnv(t, c.filter)
			dir := filepath.Join(t.TempDir(), "code")
			r := clone(t, env, cat, dir, "cli")
			d := details(t, r)
			check()
			if d["engine"] != "cli" || d["lfs"] != true || d["lfsSmudged"] != true {
				t.Errorf("details = %v", d)
			}
			if p, ok := d["lfsPointers"]; ok {
				t.Errorf("lfsPointers = %v", p)
			}
			if strings.Contains(r.Stderr, "pointer") || !strings.Contains(r.Stderr, "LFS files fetched") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}
			var total int64
			for name, content := range f.files {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if got, want := sha256Hex(b), sha256Hex(content); got != want {
					t.Errorf("%s: sha256 %s (%d bytes), want %s (%d bytes)", name, got, len(b), want, len(content))
				}
				total += int64(len(content))
			}
			// The result counts the content, not the pointers.
			if res, _ := r.Result["result"].(map[string]any); res["bytes"].(float64) < float64(total) {
				t.Errorf("result bytes %v < %d bytes of LFS content", res["bytes"], total)
			}
			// The index knows the smudged files: the checkout is clean.
			if status := gitCmd(t, dir, "status", "--porcelain"); status != "" {
				t.Errorf("the checkout is not clean:\n%s", status)
			}
			assertNoSecrets(t, r, dir, f.env.HTTPPassword)
		})
	}
	t.Run("go-git", func(t *testing.T) {
		env, check := f.lfsEnv(t, true)
		dir := filepath.Join(t.TempDir(), "code")
		r := clone(t, env, cat, dir, "go-git")
		d := details(t, r)
		check()
		want := []any{"data/weights.bin", "model.bin", "small.bin"}
		if p, _ := d["lfsPointers"].([]any); !reflect.DeepEqual(p, want) || d["lfs"] != true || d["lfsSmudged"] != false {
			t.Errorf("details = %v, want lfsPointers %v", d, want)
		}
		if !strings.Contains(r.Stderr, "level=WARN") || !strings.Contains(r.Stderr, "go-git engine cannot fetch LFS content") {
			t.Errorf("no LFS warning:\n%s", r.Stderr)
		}
		for name, content := range f.files {
			if !strings.Contains(r.Stderr, name) {
				t.Errorf("the warning does not name %s:\n%s", name, r.Stderr)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != lfsPointer(content) {
				t.Errorf("%s is not its pointer: %.200q", name, b)
			}
		}
	})
}

// TestGitLFSMissingObject: an LFS object missing from the LFS store fails
// the run, naming the file, and ships nothing: never a pointer in place of
// the content. Without the LFS filter in git's config, git lfs pull fails
// after the checkout: not found (exit 4). With it, git clone's smudge
// filter fails the clone itself, whose message names the file too (the
// exit class is then what git clone's last lines say: internal).
func TestGitLFSMissingObject(t *testing.T) {
	f := newLFSFixture(t)
	cat := gitCatalog(t, f.url, "missing", nil, "")
	for _, c := range lfsConfigs {
		t.Run(c.name, func(t *testing.T) {
			env, check := f.lfsEnv(t, c.filter)
			dir := filepath.Join(t.TempDir(), "code")
			r := clone(t, env, cat, dir, "cli")
			check()
			if c.filter {
				// git clone's smudge filter fails: the error names the file
				// and git-lfs's reason.
				r.expectCode(t, 4)
				for _, msg := range []string{"the Git LFS content of " + f.missing + " could not be fetched", "remote missing object"} {
					if !strings.Contains(r.Stderr, msg) {
						t.Errorf("stderr lacks %q:\n%s", msg, r.Stderr)
					}
				}
			} else {
				r.expectCode(t, 4)
				for _, msg := range []string{"the Git LFS content of 1 file(s) could not be fetched (" + f.missing + "): ", "remote missing object"} {
					if !strings.Contains(r.Stderr, msg) {
						t.Errorf("stderr lacks %q:\n%s", msg, r.Stderr)
					}
				}
			}
			if r.Result["exitCode"] != float64(r.Code) {
				t.Errorf("result = %v", r.Result)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("the failed run left %s", dir)
			}
			if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 0 {
				t.Errorf("the failed run left %v next to --path", entries)
			}
			assertNoSecrets(t, r, dir, f.env.HTTPPassword)
		})
	}
}
