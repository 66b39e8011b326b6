package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGitCloneAsAnotherUser clones, as an unprivileged user, into a mount
// point root owns and lets everyone write in (as an emptyDir is, for a
// container that runs as another uid), with both engines: the clone is
// checked out (git would otherwise refuse the folder as of "dubious
// ownership").
func TestGitCloneAsAnotherUser(t *testing.T) {
	f := newGitFixture(t)
	base, cat := sharedGitCatalog(t, f)
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			empty := filepath.Join(base, "empty-"+eng) // root's, writable by all
			if err := os.Mkdir(empty, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(empty, 0o777)
			// A mount point, as an emptyDir is: the clone cannot take its
			// place, and the folder stays root's.
			code, out := runCmd(t, []string{"HOME=" + base}, "unshare", "-m", "sh", "-c",
				`mount --bind "$1" "$1" && exec setpriv --reuid 65534 --regid 65534 --clear-groups "$2" --catalog "$3" --connection repo --path "$1" --git-engine "$4"`,
				"sh", empty, binary, cat, eng)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if got, err := os.ReadFile(filepath.Join(empty, "b.txt")); err != nil || string(got) != "three\n" {
				t.Errorf("b.txt: %q, %v\n%s", got, err, out)
			}
		})
	}
}

// TestGitRerunByUserWhoMayNotWrite: a re-run by a user who may not write
// the clone's .git (another uid of the pod's group, the clone made by the
// first) is a permission fault (exit 3) that says what to give, on both
// engines; not git's unrelated "remote origin already exists" (exit 1), nor
// a hint about credentials.
func TestGitRerunByUserWhoMayNotWrite(t *testing.T) {
	f := newGitFixture(t)
	base, cat := sharedGitCatalog(t, f)
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			code := filepath.Join(base, "code-"+eng)
			as := func(uid string) (int, string) {
				return runCmd(t, []string{"HOME=" + base}, "setpriv", "--reuid", uid, "--regid", uid, "--groups", "2000", binary,
					"--catalog", cat, "--connection", "repo", "--path", code, "--git-engine", eng)
			}
			if c, out := as("1001"); c != 0 {
				t.Fatalf("first clone: exit %d\n%s", c, out)
			}
			c, out := as("1002")
			if c != 3 || !strings.Contains(out, "let this container's user (uid 1002) write to --path") || strings.Contains(out, "credentials") {
				t.Errorf("exit %d\n%s", c, out)
			}
		})
	}
}

// sharedGitCatalog returns a folder every user may write in, and in it a
// catalog of the fixture's repository as "repo", for runs as other users.
func sharedGitCatalog(t *testing.T, f *gitFixture) (base, cat string) {
	t.Helper()
	base = sharedDir(t, 0o777)
	cat = filepath.Join(base, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf("connections:\n  - {name: repo, kind: git, schema: {url: %q}}\n", f.env.DaemonURL+"/"+f.name)), 0o644); err != nil {
		t.Fatal(err)
	}
	return base, cat
}

// TestGitFileRepoOfAnotherUser: a file:// repository another user owns (a
// read-only mirror volume), cloned as uid 65534. git refuses such a
// repository ("dubious ownership"), and git passes a local upload-pack none
// of the configuration that would trust it: the CLI engine clones it all
// the same; go-git's refusal is exit 3 with what to do, not a network
// failure retried.
func TestGitFileRepoOfAnotherUser(t *testing.T) {
	f := newGitFixture(t)
	base := sharedDir(t, 0o777)
	mirror := filepath.Join(base, "mirror.git")
	gitCmd(t, base, "clone", "-q", "--bare", f.bare, mirror)
	filepath.Walk(mirror, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			os.Chmod(p, info.Mode().Perm()|0o044|map[bool]os.FileMode{true: 0o011}[info.IsDir()])
		}
		return nil
	})
	cat := filepath.Join(base, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf("connections:\n  - {name: repo, kind: git, schema: {url: %q}}\n", "file://"+mirror)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dst := filepath.Join(base, "code-"+eng)
			code, out := runCmd(t, []string{"HOME=" + base}, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", binary,
				"--catalog", cat, "--connection", "repo", "--path", dst, "--git-engine", eng)
			if eng == "cli" {
				if code != 0 {
					t.Fatalf("exit %d\n%s", code, out)
				}
				if c := gitCmd(t, dst, "-c", "safe.directory=*", "rev-parse", "HEAD"); c != f.c4 {
					t.Errorf("HEAD at %s, want %s", c, f.c4)
				}
				return
			}
			if code != 3 || !strings.Contains(out, "belongs to another user") || strings.Contains(out, "retry") {
				t.Errorf("exit %d, want 3 naming the owner\n%s", code, out)
			}
		})
	}
}
