package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initializer/initializer/integration/testenv"
)

// gitFixture is a bare repository made for one test under the git servers'
// root, served by all three of them.
//
// main: c1 (lightweight tag "light") ← c2 (annotated tag "v1.0") ← c3 ← c4,
// where c4 adds a submodule "sub" (relative URL ../NAME-sub.git);
// feature: c2 ← f1; refs/pull/1/head: c4 ← p1 (on no branch).
type gitFixture struct {
	env              testenv.Git
	name             string // NAME.git
	bare, work       string
	c1, c2, c3, c4   string
	f1, p1, subTip   string
	httpPassword     string
	sshSecret        string // a secret folder: id_rsa (passphrase-protected), known_hosts, ssh_passphrase
	sshPassphrase    string
	httpSecret       string // a secret folder: username, password
	unknownHostsFile string // a known_hosts without the server's key
}

func randomName(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// gitCmd runs git with a configuration of its own, failing the test on error.
func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gitCmdEnv(t, dir, nil, args...)
}

// gitCmdEnv is gitCmd with more environment variables.
func gitCmdEnv(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@initializer.invalid",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@initializer.invalid")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func commitFile(t *testing.T, work, file, content, msg string) string {
	t.Helper()
	writeFile(t, work, file, content)
	gitCmd(t, work, "add", file)
	gitCmd(t, work, "commit", "-q", "-m", msg)
	return gitCmd(t, work, "rev-parse", "HEAD")
}

func newGitFixture(t *testing.T) *gitFixture {
	t.Helper()
	e := testenv.Load(t)
	g := e.Git()
	f := &gitFixture{env: g, httpPassword: g.HTTPPassword}
	base := randomName("t")
	f.name = base + ".git"
	f.bare = filepath.Join(g.Root, f.name)
	t.Cleanup(func() {
		os.RemoveAll(f.bare)
		os.RemoveAll(filepath.Join(g.Root, base+"-sub.git"))
	})

	// The submodule's repository.
	subWork := t.TempDir()
	gitCmd(t, subWork, "init", "-q", "-b", "main")
	f.subTip = commitFile(t, subWork, "sub.txt", "in the submodule\n", "sub")
	gitCmd(t, g.Root, "init", "-q", "--bare", "-b", "main", base+"-sub.git")
	gitCmd(t, subWork, "push", "-q", filepath.Join(g.Root, base+"-sub.git"), "main")

	f.work = t.TempDir()
	w := f.work
	gitCmd(t, w, "init", "-q", "-b", "main")
	f.c1 = commitFile(t, w, "a.txt", "one\n", "c1")
	gitCmd(t, w, "tag", "light")
	f.c2 = commitFile(t, w, "a.txt", "two\n", "c2")
	gitCmd(t, w, "tag", "-a", "v1.0", "-m", "release 1.0")
	f.c3 = commitFile(t, w, "b.txt", "three\n", "c3")
	writeFile(t, w, ".gitmodules", fmt.Sprintf("[submodule \"sub\"]\n\tpath = sub\n\turl = ../%s-sub.git\n", base))
	gitCmd(t, w, "add", ".gitmodules")
	gitCmd(t, w, "update-index", "--add", "--cacheinfo", "160000,"+f.subTip+",sub")
	f.c4 = commitFile(t, w, "c.txt", "four\n", "c4")
	gitCmd(t, w, "checkout", "-q", "-b", "feature", f.c2)
	f.f1 = commitFile(t, w, "feature.txt", "feature\n", "f1")
	gitCmd(t, w, "checkout", "-q", "--detach", f.c4)
	f.p1 = commitFile(t, w, "pull.txt", "pull\n", "p1")
	gitCmd(t, w, "checkout", "-q", "main")
	gitCmd(t, g.Root, "init", "-q", "--bare", "-b", "main", f.name)
	gitCmd(t, w, "push", "-q", f.bare, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*", f.p1+":refs/pull/1/head")

	// SSH secret: the test key under upstream's default name, protected by
	// a passphrase, and the servers' known_hosts.
	f.sshPassphrase = "pass-" + randomName("phrase")
	f.sshSecret = t.TempDir()
	key := filepath.Join(f.sshSecret, "id_rsa")
	b, err := os.ReadFile(g.SSHKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.sshSecret, "id_rsa", string(b))
	os.Chmod(key, 0o600)
	if out, err := exec.Command("ssh-keygen", "-q", "-p", "-P", "", "-N", f.sshPassphrase, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -p: %v\n%s", err, out)
	}
	os.Chmod(key, 0o644) // as a Kubernetes secret volume mounts it
	kh, err := os.ReadFile(g.SSHKnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.sshSecret, "known_hosts", string(kh))
	writeFile(t, f.sshSecret, "ssh_passphrase", f.sshPassphrase)
	// A known_hosts that knows another key for the server.
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(other + ".pub")
	hostField := strings.Fields(string(kh))[0]
	f.unknownHostsFile = writeFile(t, t.TempDir(), "known_hosts", hostField+" "+strings.Join(strings.Fields(string(pub))[:2], " ")+"\n")

	f.httpSecret = t.TempDir()
	writeFile(t, f.httpSecret, "username", g.HTTPUser)
	writeFile(t, f.httpSecret, "password", g.HTTPPassword+"\n")
	return f
}

// push adds a commit on main and pushes it; it returns the commit.
func (f *gitFixture) push(t *testing.T, file string) string {
	t.Helper()
	c := commitFile(t, f.work, file, file+"\n", "more "+file)
	gitCmd(t, f.work, "push", "-q", f.bare, "main")
	return c
}

// transport is one way to reach the fixture.
type transport struct {
	name string
	url  func(f *gitFixture) string
	// secret and env give the credentials.
	secret func(f *gitFixture) string
	env    func(f *gitFixture) []string
}

// credentials returns the transport's credentials for f: the environment
// to run with and the secret folder ("" for none).
func (tr transport) credentials(f *gitFixture) (env []string, secretDir string) {
	if tr.env != nil {
		env = tr.env(f)
	}
	if tr.secret != nil {
		secretDir = tr.secret(f)
	}
	return env, secretDir
}

var transports = []transport{
	{
		name: "http",
		url:  func(f *gitFixture) string { return f.env.HTTPURL + "/" + f.name },
		env: func(f *gitFixture) []string {
			return []string{"POLYAXON_GIT_CREDENTIALS=" + f.env.HTTPUser + ":" + f.env.HTTPPassword}
		},
	},
	{
		name: "daemon",
		url:  func(f *gitFixture) string { return f.env.DaemonURL + "/" + f.name },
	},
	{
		name:   "ssh",
		url:    func(f *gitFixture) string { return f.env.SSHURL + "/" + f.name },
		secret: func(f *gitFixture) string { return f.sshSecret },
	},
}

var engines = []string{"cli", "go-git"}

// gitCatalog writes a catalog with one git connection "repo".
func gitCatalog(t *testing.T, url, revision string, flags []string, secretDir string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "connections:\n  - name: repo\n    kind: git\n    schema:\n      url: %q\n", url)
	if revision != "" {
		fmt.Fprintf(&b, "      revision: %q\n", revision)
	}
	if len(flags) > 0 {
		q := make([]string, len(flags))
		for i, f := range flags {
			q[i] = fmt.Sprintf("%q", f)
		}
		fmt.Fprintf(&b, "      flags: [%s]\n", strings.Join(q, ", "))
	}
	if secretDir != "" {
		fmt.Fprintf(&b, "    secret: {name: repo-secret, mountPath: %q}\n", secretDir)
	}
	return catalog(t, b.String())
}

// clone runs the initializer on connection "repo" of cat into path.
func clone(t *testing.T, env []string, cat, path, engine string, extra ...string) run {
	t.Helper()
	args := append([]string{"--catalog", cat, "--connection", "repo", "--path", path, "--git-engine", engine}, extra...)
	return cli(t, env, args...)
}

// details returns the result's details, failing unless the run succeeded.
func details(t *testing.T, r run) map[string]any {
	t.Helper()
	r.expectCode(t, 0)
	res, _ := r.Result["result"].(map[string]any)
	d, _ := res["details"].(map[string]any)
	if d == nil {
		t.Fatalf("no result details: %v", r.Result)
	}
	return d
}

// headOf reads HEAD's commit and branch ("" when detached) with git.
func headOf(t *testing.T, dir string) (commit, branch string) {
	t.Helper()
	commit = gitCmd(t, dir, "rev-parse", "HEAD")
	cmd := exec.Command("git", "symbolic-ref", "--quiet", "--short", "HEAD")
	cmd.Dir = dir
	out, _ := cmd.Output()
	return commit, strings.TrimSpace(string(out))
}

// assertNoSecrets fails if a secret shows in the run's output or in any git
// config of the clone (submodules' included).
func assertNoSecrets(t *testing.T, r run, dir string, secrets ...string) {
	t.Helper()
	var configs []string
	filepath.Walk(filepath.Join(dir, ".git"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() == "config" {
			configs = append(configs, p)
		}
		return nil
	})
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(r.Stderr, s) || strings.Contains(r.Stdout, s) {
			t.Errorf("a secret appears in the output:\n%s", r.Stderr)
		}
		if strings.Contains(fmt.Sprint(r.Result), s) {
			t.Errorf("a secret appears in the result: %v", r.Result)
		}
		for _, c := range configs {
			if b, _ := os.ReadFile(c); strings.Contains(string(b), s) {
				t.Errorf("a secret appears in %s:\n%s", c, b)
			}
		}
	}
}

func (f *gitFixture) secrets() []string { return []string{f.httpPassword, f.sshPassphrase} }

// TestGitRevisions clones each kind of revision over each transport with
// each engine, and checks the checkout, the result and that no secret leaks.
func TestGitRevisions(t *testing.T) {
	f := newGitFixture(t)
	cases := []struct {
		name, revision string
		flags          []string
		commit         func() string
		branch         string // "" for detached
		file           string // a file the checkout must have
	}{
		{"default branch", "", nil, func() string { return f.c4 }, "main", "c.txt"},
		{"branch", "feature", nil, func() string { return f.f1 }, "feature", "feature.txt"},
		{"branch depth 1", "feature", []string{"--depth 1"}, func() string { return f.f1 }, "feature", "feature.txt"},
		{"annotated tag", "v1.0", nil, func() string { return f.c2 }, "", "a.txt"},
		{"lightweight tag", "light", []string{"--depth", "1"}, func() string { return f.c1 }, "", "a.txt"},
		{"full sha at a tip", f.f1, []string{"--depth=1"}, func() string { return f.f1 }, "", "feature.txt"},
		{"short sha", f.c3[:8], nil, func() string { return f.c3 }, "", "b.txt"},
		{"non-tip sha depth 1", f.c3, []string{"--depth 1", "--single-branch"}, func() string { return f.c3 }, "", "b.txt"},
		{"pull ref", "refs/pull/1/head", []string{"--depth 1"}, func() string { return f.p1 }, "", "pull.txt"},
		{"experimental fetch", f.c3, []string{"--experimental-fetch", "--depth 1"}, func() string { return f.c3 }, "", "b.txt"},
	}
	for _, tr := range transports {
		for _, eng := range engines {
			t.Run(tr.name+"/"+eng, func(t *testing.T) {
				env, secretDir := tr.credentials(f)
				for _, c := range cases {
					t.Run(c.name, func(t *testing.T) {
						dir := filepath.Join(t.TempDir(), "code")
						r := clone(t, env, gitCatalog(t, tr.url(f), c.revision, c.flags, secretDir), dir, eng)
						d := details(t, r)
						commit, branch := headOf(t, dir)
						if commit != c.commit() || branch != c.branch {
							t.Fatalf("HEAD is %s on %q, want %s on %q\n%s", commit, branch, c.commit(), c.branch, r.Stderr)
						}
						if d["commit"] != commit || d["engine"] != eng || d["url"] != tr.url(f) {
							t.Errorf("details = %v", d)
						}
						wantBranch := c.branch
						if wantBranch == "" {
							wantBranch = "HEAD"
							if d["detached"] != true {
								t.Errorf("detached not reported: %v", d)
							}
						}
						if d["branch"] != wantBranch {
							t.Errorf("branch = %v, want %s", d["branch"], wantBranch)
						}
						if _, err := os.Stat(filepath.Join(dir, c.file)); err != nil {
							t.Errorf("checkout lacks %s: %v", c.file, err)
						}
						if !strings.Contains(r.Stderr, commit) {
							t.Errorf("no log line carries the commit:\n%s", r.Stderr)
						}
						if origin := gitCmd(t, dir, "config", "remote.origin.url"); origin != tr.url(f) {
							t.Errorf("origin = %s, want %s", origin, tr.url(f))
						}
						if status := gitCmd(t, dir, "status", "--porcelain"); status != "" {
							t.Errorf("the checkout is not clean:\n%s", status)
						}
						assertNoSecrets(t, r, dir, f.secrets()...)
					})
				}
			})
		}
	}
}

// TestGitSubmodulesAndRerun clones with submodules, then re-runs into the
// existing clone after a new commit: fetch and check out, not fail.
func TestGitSubmodulesAndRerun(t *testing.T) {
	for _, tr := range transports {
		for _, eng := range engines {
			t.Run(tr.name+"/"+eng, func(t *testing.T) {
				f := newGitFixture(t)
				env, secretDir := tr.credentials(f)
				cat := gitCatalog(t, tr.url(f), "main", []string{"--recurse-submodules", "--depth 1"}, secretDir)
				dir := filepath.Join(t.TempDir(), "code")
				r := clone(t, env, cat, dir, eng)
				d := details(t, r)
				if b, err := os.ReadFile(filepath.Join(dir, "sub", "sub.txt")); err != nil || string(b) != "in the submodule\n" {
					t.Fatalf("submodule not checked out: %q %v\n%s", b, err, r.Stderr)
				}
				if subs, _ := d["submodules"].([]any); len(subs) != 1 || subs[0] != "sub" {
					t.Errorf("submodules = %v", d["submodules"])
				}
				if d["updated"] != false {
					t.Errorf("a fresh clone reported as an update: %v", d)
				}
				assertNoSecrets(t, r, dir, f.secrets()...)

				// A pod restart with the volume kept, after a push.
				c5 := f.push(t, "five.txt")
				writeFile(t, dir, "a.txt", "local change\n")
				writeFile(t, dir, "output.log", "the job's own file\n")
				r = clone(t, env, cat, dir, eng)
				d = details(t, r)
				commit, branch := headOf(t, dir)
				if commit != c5 || branch != "main" || d["updated"] != true {
					t.Fatalf("re-run: HEAD %s on %q (want %s on main), details %v\n%s", commit, branch, c5, d, r.Stderr)
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "two\n" {
					t.Errorf("tracked file not reset: %q", b)
				}
				if _, err := os.Stat(filepath.Join(dir, "five.txt")); err != nil {
					t.Error(err)
				}
				if _, err := os.Stat(filepath.Join(dir, "output.log")); err != nil {
					t.Errorf("an untracked file of the job was removed: %v", err)
				}
				assertNoSecrets(t, r, dir, f.secrets()...)

				// Another revision into the same clone.
				r = clone(t, env, gitCatalog(t, tr.url(f), "v1.0", nil, secretDir), dir, eng)
				details(t, r)
				if commit, _ := headOf(t, dir); commit != f.c2 {
					t.Errorf("re-run at v1.0: HEAD %s, want %s", commit, f.c2)
				}
			})
		}
	}
}

// TestGitFailures checks the exit codes of the usual failures, that they
// leave nothing at --path, and that secrets stay out of the output.
func TestGitFailures(t *testing.T) {
	f := newGitFixture(t)
	httpURL := f.env.HTTPURL + "/" + f.name
	sshURL := f.env.SSHURL + "/" + f.name
	wrongHosts := t.TempDir()
	for _, name := range []string{"id_rsa", "ssh_passphrase"} {
		b, _ := os.ReadFile(filepath.Join(f.sshSecret, name))
		writeFile(t, wrongHosts, name, string(b))
	}
	b, _ := os.ReadFile(f.unknownHostsFile)
	writeFile(t, wrongHosts, "known_hosts", string(b))
	noHosts := t.TempDir()
	for _, name := range []string{"id_rsa", "ssh_passphrase"} {
		b, _ := os.ReadFile(filepath.Join(f.sshSecret, name))
		writeFile(t, noHosts, name, string(b))
	}
	wrongPass := "wrong-" + randomName("pw")
	// The passphrase-protected key, without its passphrase or with a wrong one.
	noPassphrase, wrongPassphrase := t.TempDir(), t.TempDir()
	for _, name := range []string{"id_rsa", "known_hosts"} {
		b, _ := os.ReadFile(filepath.Join(f.sshSecret, name))
		writeFile(t, noPassphrase, name, string(b))
		writeFile(t, wrongPassphrase, name, string(b))
	}
	writeFile(t, wrongPassphrase, "ssh_passphrase", wrongPass)
	cases := []struct {
		name   string
		url    string
		rev    string
		secret string
		env    []string
		extra  []string
		code   int
		stderr string
	}{
		{name: "wrong password", url: httpURL, env: []string{"POLYAXON_GIT_CREDENTIALS=git:" + wrongPass}, code: 3, stderr: "credentials"},
		{name: "no credentials", url: httpURL, code: 3, stderr: "POLYAXON_GIT_CREDENTIALS"},
		{name: "unknown host key strict", url: sshURL, secret: wrongHosts, extra: []string{"--strict-host-key-checking"}, code: 3, stderr: "the server's host key is not the one the known_hosts given holds for it"},
		{name: "unknown host key", url: sshURL, secret: wrongHosts, code: 3, stderr: "known_hosts"},
		{name: "key passphrase missing", url: sshURL, secret: noPassphrase, code: 3, stderr: "is protected by a passphrase and none was given; add SSH_PASSPHRASE"},
		{name: "key passphrase wrong", url: sshURL, secret: wrongPassphrase, code: 3, stderr: "the passphrase given (SSH_PASSPHRASE) is wrong"},
		{name: "no known_hosts strict", url: sshURL, secret: noHosts, extra: []string{"--strict-host-key-checking"}, code: 3, stderr: "no known_hosts"},
		{name: "missing revision", url: httpURL, rev: "no-such-branch", env: []string{"POLYAXON_GIT_CREDENTIALS=git:" + f.httpPassword}, code: 4, stderr: "no-such-branch"},
		{name: "missing commit", url: f.env.DaemonURL + "/" + f.name, rev: strings.Repeat("ab", 20), code: 4, stderr: "abab"},
		{name: "missing repository", url: f.env.DaemonURL + "/no-such-repo.git", code: 4, stderr: "check schema.url"},
		{name: "missing repository over http", url: f.env.HTTPURL + "/no-such-repo.git", env: []string{"POLYAXON_GIT_CREDENTIALS=git:" + f.httpPassword}, code: 4, stderr: "check schema.url"},
		{name: "unreachable server", url: "http://127.0.0.1:1/repo.git", code: 5, stderr: "retries"},
		{name: "unknown host", url: "http://nosuchhost.invalid/repo.git", code: 4, stderr: "the host nosuchhost.invalid does not exist: check schema.url"},
		{name: "https to a plain-http server", url: strings.Replace(httpURL, "http://", "https://", 1), env: []string{"POLYAXON_GIT_CREDENTIALS=git:" + f.httpPassword}, code: 2, stderr: "the server speaks plain http, not https: give schema.url as http://"},
		{name: "unknown flag", url: httpURL, extra: []string{"--flags", "--depth 1,--mirror"}, code: 2, stderr: "--mirror"},
	}
	for _, eng := range engines {
		for _, c := range cases {
			t.Run(eng+"/"+c.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "code")
				r := clone(t, c.env, gitCatalog(t, c.url, c.rev, nil, c.secret), dir, eng, c.extra...)
				r.expectCode(t, c.code)
				if !strings.Contains(r.Stderr, c.stderr) {
					t.Errorf("stderr lacks %q:\n%s", c.stderr, r.Stderr)
				}
				if r.Result["exitCode"] != float64(c.code) {
					t.Errorf("result = %v", r.Result)
				}
				// One line, that neither repeats itself nor ends on nothing.
				msg, _ := r.Result["error"].(string)
				if strings.Contains(msg, "\n") || strings.Contains(msg, "required: authentication required") || strings.HasSuffix(msg, ": ") || strings.Contains(msg, ": ;") {
					t.Errorf("error = %q", msg)
				}
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("a failed clone left %s", dir)
				}
				entries, _ := os.ReadDir(filepath.Dir(dir))
				if len(entries) != 0 {
					t.Errorf("a failed clone left %v next to --path", entries)
				}
				assertNoSecrets(t, r, dir, wrongPass, f.httpPassword, f.sshPassphrase)
			})
		}
	}
}

// TestGitRerunKeepsUntrackedInTheWay: a re-run at a revision that has a
// file where the clone holds an untracked one (the job's, the user's) is
// refused, naming it, on both engines; the file and the clone stay as they
// were. The same content as the revision's is no one's (a stopped run's):
// taken over. --force replaces it.
func TestGitRerunKeepsUntrackedInTheWay(t *testing.T) {
	f := newGitFixture(t)
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "code")
			details(t, clone(t, nil, gitCatalog(t, f.env.DaemonURL+"/"+f.name, "v1.0", nil, ""), dir, eng))
			writeFile(t, dir, "b.txt", "my results\n") // main adds b.txt
			writeFile(t, dir, "c.txt", "four\n")       // and c.txt: the same content
			cat := gitCatalog(t, f.env.DaemonURL+"/"+f.name, "main", nil, "")
			r := clone(t, nil, cat, dir, eng)
			r.expectCode(t, 2)
			if !strings.Contains(r.Stderr, "holds files the clone does not track where branch main has files of its own: b.txt; move them away, or pass --force") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "b.txt")); string(b) != "my results\n" {
				t.Errorf("the untracked file was replaced: %q", b)
			}
			if commit, _ := headOf(t, dir); commit != f.c2 {
				t.Errorf("HEAD moved to %s", commit)
			}
			details(t, clone(t, nil, cat, dir, eng, "--force"))
			if b, _ := os.ReadFile(filepath.Join(dir, "b.txt")); string(b) != "three\n" {
				t.Errorf("--force: b.txt = %q", b)
			}
			if out := gitCmd(t, dir, "status", "--porcelain", "--untracked-files=no"); out != "" {
				t.Errorf("the work tree is not clean:\n%s", out)
			}
		})
	}
}

// TestGitEmptyRepository: a repository with no branch yet is named as
// such (exit 4) by both engines, and nothing is left at --path.
func TestGitEmptyRepository(t *testing.T) {
	f := newGitFixture(t)
	name := randomName("empty") + ".git"
	gitCmd(t, f.env.Root, "init", "-q", "--bare", "-b", "main", name)
	t.Cleanup(func() { os.RemoveAll(filepath.Join(f.env.Root, name)) })
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "code")
			r := clone(t, nil, gitCatalog(t, f.env.DaemonURL+"/"+name, "", nil, ""), dir, eng)
			r.expectCode(t, 4)
			if !strings.Contains(r.Stderr, "is empty (it has no branch)") || strings.Contains(r.Stderr, "ambiguous argument") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}
			if _, err := os.Lstat(dir); err == nil {
				t.Error("something was left at --path")
			}
		})
	}
}

// TestGitRerunShapeChanges: re-runs across revisions where the submodule
// becomes a file and comes back, and where a new folder goes where the
// clone holds an untracked link (to a folder of the user's): the
// submodule is checked out again on both engines, and the link is refused
// (exit 2) and kept, as git checkout refuses it.
func TestGitRerunShapeChanges(t *testing.T) {
	f := newGitFixture(t)
	// subfile: main with the submodule replaced by a file, and a new folder.
	gitCmd(t, f.work, "checkout", "-q", "-b", "subfile", "main")
	gitCmd(t, f.work, "rm", "-q", "--cached", "sub")
	os.RemoveAll(filepath.Join(f.work, "sub"))
	writeFile(t, f.work, "sub", "a file now\n")
	os.MkdirAll(filepath.Join(f.work, "newdir"), 0o755)
	writeFile(t, f.work, "newdir/f", "in a new folder\n")
	gitCmd(t, f.work, "add", "sub", "newdir/f")
	gitCmd(t, f.work, "commit", "-q", "-m", "sub is a file")
	gitCmd(t, f.work, "push", "-q", f.bare, "subfile")
	gitCmd(t, f.work, "checkout", "-q", "main")
	url := f.env.DaemonURL + "/" + f.name
	flags := []string{"--recurse-submodules"}
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "code")
			for _, rev := range []string{"main", "subfile", "main"} {
				details(t, clone(t, nil, gitCatalog(t, url, rev, flags, ""), dir, eng))
			}
			if b, err := os.ReadFile(filepath.Join(dir, "sub", "sub.txt")); err != nil || string(b) != "in the submodule\n" {
				t.Errorf("the submodule is not checked out again: %q %v", b, err)
			}
			victim := t.TempDir()
			os.Symlink(victim, filepath.Join(dir, "newdir"))
			r := clone(t, nil, gitCatalog(t, url, "subfile", flags, ""), dir, eng)
			r.expectCode(t, 2)
			if !strings.Contains(r.Stderr, "has files of its own: newdir;") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}
			if st, err := os.Lstat(filepath.Join(dir, "newdir")); err != nil || st.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the link was replaced: %v %v", st, err)
			}
		})
	}
}

// TestGitFileURL: a local repository given as file:// is cloned by both
// engines (git allows file:// only to the user's own commands by default).
func TestGitFileURL(t *testing.T) {
	f := newGitFixture(t)
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "code")
			details(t, clone(t, nil, gitCatalog(t, "file://"+f.bare, "v1.0", nil, ""), dir, eng))
			if c, _ := headOf(t, dir); c != f.c2 {
				t.Errorf("HEAD %s, want %s", c, f.c2)
			}
		})
	}
}
