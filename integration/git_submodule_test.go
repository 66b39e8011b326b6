package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// advanceSub pushes one more commit to the fixture's submodule repository,
// so that the commit the parent pins is no longer its branch's tip (the usual
// state of a submodule). It returns the new tip.
func (f *gitFixture) advanceSub(t *testing.T) string {
	t.Helper()
	bare := filepath.Join(f.env.Root, strings.TrimSuffix(f.name, ".git")+"-sub.git")
	w := t.TempDir()
	gitCmd(t, w, "clone", "-q", bare, ".")
	tip := commitFile(t, w, "later.txt", "later\n", "later")
	gitCmd(t, w, "push", "-q", "origin", "HEAD:main")
	return tip
}

// TestGitShallowSubmodulePinned clones with --shallow-submodules a parent
// whose submodule pins a commit that is not its remote's tip: the submodule
// is checked out at the pinned commit, at depth 1 where the server gives a
// commit by its hash, by a deeper fetch where it does not.
func TestGitShallowSubmodulePinned(t *testing.T) {
	for _, allowSHA := range []bool{false, true} {
		mode := "server refuses hashes"
		if allowSHA {
			mode = "server gives reachable hashes"
		}
		for _, tr := range transports {
			for _, eng := range engines {
				t.Run(mode+"/"+tr.name+"/"+eng, func(t *testing.T) {
					f := newGitFixture(t)
					later := f.advanceSub(t)
					if allowSHA {
						gitCmd(t, filepath.Join(f.env.Root, strings.TrimSuffix(f.name, ".git")+"-sub.git"), "config", "uploadpack.allowReachableSHA1InWant", "true")
					}
					env, secretDir := tr.credentials(f)
					cat := gitCatalog(t, tr.url(f), "", []string{"--recurse-submodules", "--shallow-submodules"}, secretDir)
					dir := filepath.Join(t.TempDir(), "code")
					r := clone(t, env, cat, dir, eng)
					d := details(t, r)
					if subs, _ := d["submodules"].([]any); len(subs) != 1 || subs[0] != "sub" {
						t.Errorf("submodules = %v", d["submodules"])
					}
					sub := filepath.Join(dir, "sub")
					if c, _ := headOf(t, sub); c != f.subTip {
						t.Fatalf("submodule at %s, want the pinned %s (its tip is %s)\n%s", c, f.subTip, later, r.Stderr)
					}
					if _, err := os.Stat(filepath.Join(sub, "later.txt")); err == nil {
						t.Error("the submodule's checkout has a file of a later commit")
					}
					if refs := gitCmd(t, sub, "for-each-ref", "--format=%(refname)"); strings.Contains(refs, f.subTip) {
						t.Errorf("the fetch by hash left a ref named after it:\n%s", refs)
					}
					if status := gitCmd(t, dir, "status", "--porcelain"); status != "" {
						t.Errorf("the checkout is not clean:\n%s", status)
					}
					if allowSHA {
						if n := gitCmd(t, sub, "rev-list", "--count", "HEAD"); n != "1" {
							t.Errorf("--shallow-submodules: the submodule has %s commits, want 1", n)
						}
					}
					assertNoSecrets(t, r, dir, f.secrets()...)
				})
			}
		}
	}
}

// TestGitSubmoduleErrorNamesItsURL checks that a submodule that cannot be
// fetched is reported with the submodule's URL, not the parent's.
func TestGitSubmoduleErrorNamesItsURL(t *testing.T) {
	f := newGitFixture(t)
	subName := strings.TrimSuffix(f.name, ".git") + "-sub.git"
	if err := os.RemoveAll(filepath.Join(f.env.Root, subName)); err != nil {
		t.Fatal(err)
	}
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			cat := gitCatalog(t, f.env.DaemonURL+"/"+f.name, "", []string{"--recurse-submodules", "--shallow-submodules"}, "")
			dir := filepath.Join(t.TempDir(), "code")
			r := clone(t, nil, cat, dir, eng)
			r.expectCode(t, 4)
			if !strings.Contains(r.Stderr, f.env.DaemonURL+"/"+subName) {
				t.Errorf("the error does not name the submodule's URL %s:\n%s", f.env.DaemonURL+"/"+subName, r.Stderr)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("a failed clone left %s", dir)
			}
		})
	}
}
