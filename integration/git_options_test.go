package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGitHTTPAuthForms clones over smart HTTP with each way of giving the
// credentials, on both engines, and checks that none of them leaks.
func TestGitHTTPAuthForms(t *testing.T) {
	f := newGitFixture(t)
	url := f.env.HTTPURL + "/" + f.name
	store := writeFile(t, t.TempDir(), "git-credentials", fmt.Sprintf("%s://%s:%s@%s\n", "http", f.env.HTTPUser, f.env.HTTPPassword, strings.TrimPrefix(f.env.HTTPURL, "http://")))
	storeSecret := t.TempDir()
	writeFile(t, storeSecret, ".git-credentials", fmt.Sprintf("http://%s:%s@%s\n", f.env.HTTPUser, f.env.HTTPPassword, strings.TrimPrefix(f.env.HTTPURL, "http://")))
	withUserinfo := strings.Replace(url, "http://", "http://"+f.env.HTTPUser+":"+f.env.HTTPPassword+"@", 1)
	cases := []struct {
		name, url, secret string
		env               []string
		auth              string
	}{
		{name: "POLYAXON_GIT_CREDENTIALS", url: url, env: []string{"POLYAXON_GIT_CREDENTIALS=" + f.env.HTTPUser + ":" + f.env.HTTPPassword}, auth: "basic"},
		{name: "secret username and password files", url: url, secret: f.httpSecret, auth: "basic"},
		{name: "secret keys as env", url: url, env: []string{"GIT_USERNAME=" + f.env.HTTPUser, "GIT_PASSWORD=" + f.env.HTTPPassword}, auth: "basic"},
		{name: "credential store variable", url: url, env: []string{"POLYAXON_GIT_CREDENTIALS_STORE=" + store}, auth: "credential-store"},
		{name: "credential store in the secret", url: url, secret: storeSecret, auth: "credential-store"},
		{name: "credentials in the URL", url: withUserinfo, auth: "basic"},
	}
	for _, eng := range engines {
		for _, c := range cases {
			t.Run(eng+"/"+c.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "code")
				r := clone(t, c.env, gitCatalog(t, c.url, "v1.0", []string{"--depth 1"}, c.secret), dir, eng)
				d := details(t, r)
				if d["auth"] != c.auth || d["url"] != url || d["commit"] != f.c2 {
					t.Errorf("details = %v", d)
				}
				if origin := gitCmd(t, dir, "config", "remote.origin.url"); origin != url {
					t.Errorf("origin = %s, want the credential-free %s", origin, url)
				}
				assertNoSecrets(t, r, dir, f.env.HTTPPassword)
			})
		}
	}
}

// TestGitTargetFolder covers what may already be at --path: a foreign
// folder (refused unless --force), a clone of another remote, an empty
// mount point.
func TestGitTargetFolder(t *testing.T) {
	f := newGitFixture(t)
	url := f.env.DaemonURL + "/" + f.name
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			cat := gitCatalog(t, url, "", nil, "")
			dir := filepath.Join(t.TempDir(), "code")
			writeFile(t, dir, "data.csv", "1,2\n")
			r := clone(t, nil, cat, dir, eng)
			r.expectCode(t, 2)
			if !strings.Contains(r.Stderr, "is not empty (data.csv)") || !strings.Contains(r.Stderr, "--force") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "data.csv")); string(b) != "1,2\n" {
				t.Errorf("the refused run touched the folder: %q", b)
			}
			r = clone(t, nil, cat, dir, eng, "--force")
			details(t, r)
			if _, err := os.Stat(filepath.Join(dir, "data.csv")); err == nil {
				t.Error("--force kept the old content")
			}
			if c, _ := headOf(t, dir); c != f.c4 {
				t.Errorf("HEAD %s, want %s", c, f.c4)
			}

			// A clone of another remote is refused too.
			other := gitCatalog(t, f.env.DaemonURL+"/"+strings.TrimSuffix(f.name, ".git")+"-sub.git", "", nil, "")
			r = clone(t, nil, other, dir, eng)
			r.expectCode(t, 2)
			if !strings.Contains(r.Stderr, "holds a clone of another remote") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}

			// An empty folder (a WORKDIR, an mkdir -p) takes the clone and
			// keeps its mode; one holding only lost+found keeps that too.
			empty := filepath.Join(t.TempDir(), "empty")
			os.Mkdir(empty, 0o755)
			os.Chmod(empty, 0o775|os.ModeSetgid)
			r = clone(t, nil, cat, empty, eng)
			details(t, r)
			if c, _ := headOf(t, empty); c != f.c4 {
				t.Errorf("clone into an empty folder: HEAD %s, want %s\n%s", c, f.c4, r.Stderr)
			}
			if st, err := os.Stat(empty); err != nil || st.Mode()&(os.ModePerm|os.ModeSetgid) != 0o775|os.ModeSetgid {
				t.Errorf("the empty folder's mode was not kept: %v %v", st.Mode(), err)
			}
			lf := filepath.Join(t.TempDir(), "lf")
			os.MkdirAll(filepath.Join(lf, "lost+found"), 0o700)
			r = clone(t, nil, cat, lf, eng)
			details(t, r)
			if c, _ := headOf(t, lf); c != f.c4 {
				t.Errorf("clone into a folder with lost+found: HEAD %s, want %s\n%s", c, f.c4, r.Stderr)
			}
			if st, err := os.Stat(filepath.Join(lf, "lost+found")); err != nil || !st.IsDir() {
				t.Errorf("lost+found is gone: %v", err)
			}
			for _, d := range []string{empty, lf} {
				entries, _ := os.ReadDir(filepath.Dir(d))
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".initializer-tmp") {
						t.Errorf("staging folder left next to %s: %s", d, e.Name())
					}
				}
			}

			// --path is a link to an empty folder: the clone goes into the
			// folder, the link stays.
			target := filepath.Join(t.TempDir(), "x")
			os.Mkdir(target, 0o755)
			link := filepath.Join(t.TempDir(), "xl")
			os.Symlink(target, link)
			r = clone(t, nil, cat, link, eng)
			details(t, r)
			if c, _ := headOf(t, target); c != f.c4 {
				t.Errorf("clone through a link: HEAD %s, want %s\n%s", c, f.c4, r.Stderr)
			}
			if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the link was replaced: %v", err)
			}
			dangling := filepath.Join(t.TempDir(), "dl")
			os.Symlink(filepath.Join(t.TempDir(), "nowhere"), dangling)
			r = clone(t, nil, cat, dangling, eng)
			r.expectCode(t, 2)

			// --path is a mount point (a volume), which cannot be renamed
			// over: the clone is staged inside it.
			src := t.TempDir()
			mnt := filepath.Join(t.TempDir(), "mnt")
			os.Mkdir(mnt, 0o755)
			if _, err := exec.LookPath("unshare"); err != nil {
				t.Fatalf("unshare (util-linux) is needed for this test: %v", err)
			}
			wrapper := "unshare -m sh -c " + shellQuote(fmt.Sprintf("mount --bind %q %q && exec {}", src, mnt))
			r = cliCmd(t, nil, wrapper, "--catalog", cat, "--connection", "repo", "--path", mnt, "--git-engine", eng)
			details(t, r)
			if c, _ := headOf(t, src); c != f.c4 {
				t.Errorf("clone in the mounted volume: HEAD %s, want %s\n%s", c, f.c4, r.Stderr)
			}
			entries, _ := os.ReadDir(src)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".initializer-tmp") {
					t.Errorf("staging folder left in the volume: %s", e.Name())
				}
			}
		})
	}
}

// TestGitCommandLineOverrides gives the URL, revision and flags on the
// command line, in both of upstream's flag encodings.
func TestGitCommandLineOverrides(t *testing.T) {
	f := newGitFixture(t)
	cat := catalog(t, "connections:\n  - name: repo\n    kind: git\n")
	for _, eng := range engines {
		for _, flags := range []string{`["--depth","1","--no-tags"]`, `--depth 1,--no-tags`} {
			t.Run(eng+"/"+flags, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "code")
				r := clone(t, nil, cat, dir, eng, "--url", f.env.DaemonURL+"/"+f.name, "--revision", "feature", "--flags", flags)
				d := details(t, r)
				if d["commit"] != f.f1 || d["branch"] != "feature" || d["shallow"] != true {
					t.Errorf("details = %v", d)
				}
				if n := gitCmd(t, dir, "rev-list", "--count", "HEAD"); n != "1" {
					t.Errorf("--depth 1 gave %s commits", n)
				}
				if tags := gitCmd(t, dir, "tag"); tags != "" {
					t.Errorf("--no-tags fetched tags: %s", tags)
				}
			})
		}
	}
	r := cli(t, nil, "--catalog", cat, "--connection", "repo", "--path", t.TempDir())
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "set schema.url in the connection or pass --url") {
		t.Errorf("stderr:\n%s", r.Stderr)
	}
	r = cli(t, nil, "--catalog", cat, "--connection", "repo", "--path", t.TempDir(), "--url", "git://127.0.0.1:1/r.git", "--git-engine", "svn")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, `--git-engine "svn"`) {
		t.Errorf("stderr:\n%s", r.Stderr)
	}
}

// onlyGit returns a PATH holding git and ssh but not git-lfs, or nothing
// at all when withGit is false.
func onlyGit(t *testing.T, withGit bool) string {
	t.Helper()
	dir := t.TempDir()
	if withGit {
		for _, prog := range []string{"git", "ssh", "sh"} {
			p, err := exec.LookPath(prog)
			if err != nil {
				t.Fatalf("%s is needed for this test: %v", prog, err)
			}
			if err := os.Symlink(p, filepath.Join(dir, prog)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return "PATH=" + dir
}

// TestGitEngineAuto picks the git CLI when git is on PATH and go-git when it
// is not, and refuses --git-engine cli without git.
func TestGitEngineAuto(t *testing.T) {
	f := newGitFixture(t)
	cat := gitCatalog(t, f.env.DaemonURL+"/"+f.name, "v1.0", nil, "")
	for _, tt := range []struct {
		withGit bool
		want    string
	}{{true, "cli"}, {false, "go-git"}} {
		dir := filepath.Join(t.TempDir(), "code")
		r := clone(t, []string{onlyGit(t, tt.withGit)}, cat, dir, "auto")
		if d := details(t, r); d["engine"] != tt.want || d["commit"] != f.c2 {
			t.Errorf("git on PATH %v: details %v", tt.withGit, d)
		}
	}
	r := clone(t, []string{onlyGit(t, false)}, cat, filepath.Join(t.TempDir(), "code"), "cli")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "needs git on PATH") {
		t.Errorf("stderr:\n%s", r.Stderr)
	}
}

// TestGitLFSWarning: a repository using LFS cloned where git-lfs is not
// installed (and with go-git) warns, naming the pointer files. Not installed
// means not on PATH, with the LFS filter either absent from git's config or
// left there (as Debian's git-lfs package writes it to the system config)
// and required: the clone must not fail on the missing filter.
func TestGitLFSWarning(t *testing.T) {
	f := newGitFixture(t)
	writeFile(t, f.work, ".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
	writeFile(t, f.work, "model.bin", "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")
	gitCmd(t, f.work, "add", ".gitattributes", "model.bin")
	gitCmd(t, f.work, "commit", "-q", "-m", "lfs")
	gitCmd(t, f.work, "push", "-q", f.bare, "main")
	cat := gitCatalog(t, f.env.DaemonURL+"/"+f.name, "", nil, "")
	configs := map[string]string{
		"no-filter":     "",
		"filter-no-lfs": "[filter \"lfs\"]\n\tclean = git-lfs clean -- %f\n\tsmudge = git-lfs smudge -- %f\n\tprocess = git-lfs filter-process\n\trequired = true\n",
	}
	for cname, config := range configs {
		env := []string{onlyGit(t, true), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + writeFile(t, t.TempDir(), "gitconfig", config)}
		for _, eng := range engines {
			t.Run(cname+"/"+eng, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "code")
				r := clone(t, env, cat, dir, eng)
				d := details(t, r)
				if !strings.Contains(r.Stderr, "level=WARN") || !strings.Contains(r.Stderr, "Git LFS") || !strings.Contains(r.Stderr, "model.bin") {
					t.Errorf("no LFS warning naming the pointer:\n%s", r.Stderr)
				}
				if p, _ := d["lfsPointers"].([]any); len(p) != 1 || p[0] != "model.bin" || d["lfsSmudged"] != false {
					t.Errorf("details = %v", d)
				}
			})
		}
	}
}

// TestGitCheck runs the pre-flight check: reachable, credentials accepted,
// revision there; nothing written.
func TestGitCheck(t *testing.T) {
	f := newGitFixture(t)
	url := f.env.HTTPURL + "/" + f.name
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "code")
			r := cli(t, []string{"POLYAXON_GIT_CREDENTIALS=git:" + f.env.HTTPPassword}, "check", "--catalog", gitCatalog(t, url, "v1.0", nil, ""), "--connection", "repo", "--path", dir, "--git-engine", eng)
			r.expectCode(t, 0)
			res := r.Result["result"].(map[string]any)
			if d := res["details"].(map[string]any); d["commit"] != f.c2 || !strings.Contains(res["summary"].(string), "tag v1.0") {
				t.Errorf("result = %v", res)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Error("check wrote to --path")
			}
			r = cli(t, []string{"POLYAXON_GIT_CREDENTIALS=git:wrong-password"}, "check", "--catalog", gitCatalog(t, url, "", nil, ""), "--connection", "repo", "--git-engine", eng)
			r.expectCode(t, 3)
			r = cli(t, []string{"POLYAXON_GIT_CREDENTIALS=git:" + f.env.HTTPPassword}, "check", "--catalog", gitCatalog(t, url, "nope", nil, ""), "--connection", "repo", "--git-engine", eng)
			r.expectCode(t, 4)
			// A commit at no ref's tip cannot be verified from the refs: the
			// summary does not claim the remote has it.
			r = cli(t, []string{"POLYAXON_GIT_CREDENTIALS=git:" + f.env.HTTPPassword}, "check", "--catalog", gitCatalog(t, url, "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef", nil, ""), "--connection", "repo", "--git-engine", eng)
			r.expectCode(t, 0)
			if s := r.Result["result"].(map[string]any)["summary"].(string); strings.Contains(s, "has commit") || !strings.Contains(s, "known only when a run fetches it") {
				t.Errorf("summary = %q", s)
			}
		})
	}
}
