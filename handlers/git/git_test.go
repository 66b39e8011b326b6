package git

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/secret"
)

func TestParseOptions(t *testing.T) {
	for _, tt := range []struct {
		items []string
		want  Options
		err   string
	}{
		{nil, Options{}, ""},
		{[]string{"--depth 1", "--recurse-submodules"}, Options{Depth: 1, RecurseSubmodules: true}, ""},
		{[]string{"--depth", "3", "--no-tags"}, Options{Depth: 3, NoTags: true}, ""},
		{[]string{"--depth=2", "--single-branch", "--branch=dev"}, Options{Depth: 2, SingleBranch: true, Branch: "dev"}, ""},
		{[]string{"-b", "dev", "--shallow-submodules"}, Options{Branch: "dev", ShallowSubmodules: true}, ""},
		{[]string{"--filter=blob:none", "--experimental-fetch"}, Options{Filter: "blob:none", ExperimentalFetch: true}, ""},
		{[]string{"--filter", "tree:0"}, Options{Filter: "tree:0"}, ""},
		{[]string{"--recurse-submodules=yes"}, Options{RecurseSubmodules: true}, ""},
		{[]string{"--depth"}, Options{}, "needs a value"},
		{[]string{"--depth", "--no-tags"}, Options{}, "needs a value"},
		{[]string{"--depth 0"}, Options{}, "positive"},
		{[]string{"--depth x"}, Options{}, "positive"},
		{[]string{"--depth -1"}, Options{}, `positive number of commits, got "-1"`},
		{[]string{"--no-tags=1"}, Options{}, "takes no value"},
		{[]string{"--mirror"}, Options{}, `unknown flag "--mirror"`},
		{[]string{"--recurse-submodules=lib"}, Options{}, "only all submodules"},
	} {
		got, err := ParseOptions(tt.items)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseOptions(%q) error = %v, want %q", tt.items, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseOptions(%q) = %+v, %v; want %+v", tt.items, got, err, tt.want)
		}
	}
}

// Both of upstream's encodings of the same flags give the same options.
func TestFlagEncodings(t *testing.T) {
	want := Options{Depth: 1, RecurseSubmodules: true}
	for _, s := range []string{`["--depth 1","--recurse-submodules"]`, `["--depth","1","--recurse-submodules"]`, "--depth 1,--recurse-submodules", "--depth,1,--recurse-submodules"} {
		items, err := connections.ParseFlagList(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ParseOptions(items); err != nil || got != want {
			t.Errorf("%s: %+v, %v", s, got, err)
		}
	}
}

func TestRemoteRewriting(t *testing.T) {
	for _, tt := range []struct {
		in, str, https, ssh string
	}{
		{"https://foo.com/test", "https://foo.com/test", "https://foo.com/test", "git@foo.com:test.git"},
		{"https://user:tok@foo.com/org/repo.git", "https://foo.com/org/repo.git", "https://foo.com/org/repo.git", "git@foo.com:org/repo.git"},
		{"git@foo.com:test.git", "git@foo.com:test.git", "https://foo.com/test", "git@foo.com:test.git"},
		{"git@internal.git.foo.com:test", "git@internal.git.foo.com:test", "https://internal.git.foo.com/test", "git@internal.git.foo.com:test"},
		{"ssh://git@127.0.0.1:2222/org/repo.git", "ssh://git@127.0.0.1:2222/org/repo.git", "https://127.0.0.1/org/repo", "ssh://git@127.0.0.1:2222/org/repo.git"},
		{"http://127.0.0.1:8080/repo.git", "http://127.0.0.1:8080/repo.git", "http://127.0.0.1:8080/repo.git", "git@127.0.0.1:repo.git"},
		{"git://127.0.0.1:9418/repo.git", "git://127.0.0.1:9418/repo.git", "git://127.0.0.1:9418/repo.git", "git://127.0.0.1:9418/repo.git"},
	} {
		r, err := parseRemote(tt.in)
		if err != nil {
			t.Errorf("parseRemote(%q): %v", tt.in, err)
			continue
		}
		if got := r.String(); got != tt.str {
			t.Errorf("%q String() = %q, want %q", tt.in, got, tt.str)
		}
		if got := r.toHTTPS().String(); got != tt.https {
			t.Errorf("%q toHTTPS() = %q, want %q", tt.in, got, tt.https)
		}
		if got := r.toSSH().String(); got != tt.ssh {
			t.Errorf("%q toSSH() = %q, want %q", tt.in, got, tt.ssh)
		}
	}
	for _, bad := range []string{"", "foo", "ftp://host/x", "https://", "host:"} {
		if _, err := parseRemote(bad); err == nil {
			t.Errorf("parseRemote(%q) accepted", bad)
		}
	}
	// The parser's error never echoes a password.
	if _, err := parseRemote("https://u:s3cr3t%zz@host/x"); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error = %v", err)
	}
	a, _ := parseRemote("https://user:tok@Foo.com/org/repo.git/")
	b, _ := parseRemote("https://foo.com/org/repo")
	if a.canonical() != b.canonical() {
		t.Errorf("canonical: %q != %q", a.canonical(), b.canonical())
	}
}

func refsFixture() *remoteRefs {
	r := newRemoteRefs()
	r.head = "refs/heads/main"
	r.refs["refs/heads/main"] = "aaaa000000000000000000000000000000000001"
	r.refs["refs/heads/dev"] = "bbbb000000000000000000000000000000000002"
	r.refs["refs/heads/cafe"] = "cccc000000000000000000000000000000000003"
	r.refs["refs/tags/v1"] = "dddd000000000000000000000000000000000004"
	r.peeled["refs/tags/v1"] = "eeee000000000000000000000000000000000005"
	r.refs["refs/tags/light"] = "aaaa000000000000000000000000000000000001"
	r.refs["refs/pull/1/head"] = "ffff000000000000000000000000000000000006"
	return r
}

func TestResolve(t *testing.T) {
	refs := refsFixture()
	for _, tt := range []struct {
		rev  string
		want target
		code fault.Class
	}{
		{"", target{kind: "branch", name: "main", ref: "refs/heads/main", commit: "aaaa000000000000000000000000000000000001"}, 0},
		{"dev", target{kind: "branch", name: "dev", ref: "refs/heads/dev", commit: "bbbb000000000000000000000000000000000002"}, 0},
		// A branch named like a hash is a branch.
		{"cafe", target{kind: "branch", name: "cafe", ref: "refs/heads/cafe", commit: "cccc000000000000000000000000000000000003"}, 0},
		{"v1", target{kind: "tag", name: "v1", ref: "refs/tags/v1", commit: "eeee000000000000000000000000000000000005"}, 0},
		{"refs/tags/light", target{kind: "tag", name: "light", ref: "refs/tags/light", commit: "aaaa000000000000000000000000000000000001"}, 0},
		{"refs/pull/1/head", target{kind: "ref", name: "refs/pull/1/head", ref: "refs/pull/1/head", commit: "ffff000000000000000000000000000000000006"}, 0},
		// A hash at a tip is fetched through that ref, a branch first.
		{"eeee0000", target{kind: "commit", name: "eeee0000", ref: "refs/tags/v1", commit: "eeee000000000000000000000000000000000005"}, 0},
		{"AAAA000000000000000000000000000000000001", target{kind: "commit", name: "aaaa000000000000000000000000000000000001", ref: "refs/heads/main", commit: "aaaa000000000000000000000000000000000001"}, 0},
		{"1234567890123456789012345678901234567890", target{kind: "commit", name: "1234567890123456789012345678901234567890", commit: "1234567890123456789012345678901234567890"}, 0},
		{"123456a", target{kind: "commit", name: "123456a", prefix: true}, 0},
		{"nope", target{}, fault.NotFound},
		{"refs/heads/nope", target{}, fault.NotFound},
	} {
		got, err := resolve(refs, tt.rev, "https://h/r")
		if tt.code != 0 {
			if fault.ClassOf(err) != tt.code {
				t.Errorf("resolve(%q) err = %v, want class %v", tt.rev, err, tt.code)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolve(%q) = %+v, %v; want %+v", tt.rev, got, err, tt.want)
		}
	}
	_, err := resolve(refs, "nope", "https://h/r")
	if err == nil || !strings.Contains(err.Error(), "cafe, dev, main") || !strings.Contains(err.Error(), "light, v1") {
		t.Errorf("not-found error lists no refs: %v", err)
	}
	empty := newRemoteRefs()
	if _, err := resolve(empty, "", "https://h/r"); fault.ClassOf(err) != fault.NotFound || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty repo: %v", err)
	}
	noHead := refsFixture()
	noHead.head = ""
	if got, err := resolve(noHead, "", "u"); err != nil || got.name != "main" {
		t.Errorf("no HEAD symref: %+v %v", got, err)
	}
}

func keysOf(t *testing.T, doc string, env map[string]string) (*connections.Connection, *connections.Keys) {
	t.Helper()
	cat, err := connections.Parse([]byte(doc), "test")
	if err != nil {
		t.Fatal(err)
	}
	c := cat.Connections[0]
	return c, connections.NewKeys(c, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestResolveAuth(t *testing.T) {
	secretDir := t.TempDir()
	os.WriteFile(filepath.Join(secretDir, "username"), []byte("alice\n"), 0o644)
	os.WriteFile(filepath.Join(secretDir, "password"), []byte("pw-from-file\n"), 0o644)
	keyDir := t.TempDir()
	os.WriteFile(filepath.Join(keyDir, "id_rsa"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
	os.WriteFile(filepath.Join(keyDir, "known_hosts"), []byte("host ssh-ed25519 AAAA\n"), 0o644)
	store := filepath.Join(t.TempDir(), ".git-credentials")
	os.WriteFile(store, []byte("https://bob:tok@foo.com\n"), 0o600)
	plain := `{"name":"r","kind":"git","schema":{"url":"x"}}`
	withSecret := func(dir string) string {
		return `{"name":"r","kind":"git","schema":{"url":"x"},"secret":{"name":"s","mountPath":"` + dir + `"}}`
	}
	for _, tt := range []struct {
		name           string
		doc            string
		env            map[string]string
		url            string
		kind           authKind
		user, pass     string
		fetch          string
		knownHosts     int
		keyFromSSHPath bool
	}{
		{name: "user:token", doc: plain, env: map[string]string{"POLYAXON_GIT_CREDENTIALS": "foo:bar"}, url: "git@foo.com:test.git", kind: authBasic, user: "foo", pass: "bar", fetch: "https://foo.com/test"},
		{name: "oauth2:token", doc: plain, env: map[string]string{"POLYAXON_GIT_CREDENTIALS": "oauth2:glpat-x"}, url: "https://gitlab.com/o/r.git", kind: authBasic, user: "oauth2", pass: "glpat-x", fetch: "https://gitlab.com/o/r.git"},
		{name: "bare token", doc: plain, env: map[string]string{"POLYAXON_GIT_CREDENTIALS": "ghp_abc"}, url: "https://github.com/o/r", kind: authBasic, user: "ghp_abc", fetch: "https://github.com/o/r"},
		{name: "secret files", doc: withSecret(secretDir), url: "https://h/r.git", kind: authBasic, user: "alice", pass: "pw-from-file", fetch: "https://h/r.git"},
		{name: "token key", doc: plain, env: map[string]string{"GIT_TOKEN": "tkn"}, url: "https://h/r.git", kind: authBasic, user: "tkn", fetch: "https://h/r.git"},
		{name: "url userinfo", doc: plain, url: "https://u:p@h/r.git", kind: authBasic, user: "u", pass: "p", fetch: "https://h/r.git"},
		{name: "store", doc: plain, env: map[string]string{"POLYAXON_GIT_CREDENTIALS_STORE": store}, url: "git@foo.com:test.git", kind: authStore, fetch: "https://foo.com/test"},
		{name: "store missing", doc: plain, env: map[string]string{"POLYAXON_GIT_CREDENTIALS_STORE": "/nonexistent"}, url: "https://foo.com/test", kind: authNone, fetch: "https://foo.com/test"},
		{name: "ssh key", doc: plain, env: map[string]string{"POLYAXON_SSH_PATH": keyDir}, url: "https://foo.com/test", kind: authSSH, fetch: "git@foo.com:test.git", knownHosts: 1, keyFromSSHPath: true},
		{name: "ssh url no key", doc: plain, url: "ssh://git@h:22/r.git", kind: authSSH, fetch: "ssh://git@h:22/r.git"},
		{name: "known_hosts env", doc: plain, env: map[string]string{"SSH_KNOWN_HOSTS": filepath.Join(keyDir, "known_hosts")}, url: "git@h:r.git", kind: authSSH, fetch: "git@h:r.git", knownHosts: 1},
		{name: "creds win over key", doc: plain, env: map[string]string{"POLYAXON_GIT_CREDENTIALS": "a:b", "POLYAXON_SSH_PATH": keyDir}, url: "git@h:r.git", kind: authBasic, user: "a", pass: "b", fetch: "https://h/r"},
		{name: "anonymous", doc: plain, url: "git://h/r.git", kind: authNone, fetch: "git://h/r.git"},
	} {
		c, keys := keysOf(t, tt.doc, tt.env)
		u, err := parseRemote(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		a, fetch, err := resolveAuth(c, keys, u, false)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if a.kind != tt.kind || a.user.Reveal() != tt.user || a.pass.Reveal() != tt.pass || fetch.String() != tt.fetch || len(a.knownHosts) != tt.knownHosts {
			t.Errorf("%s: kind %v user %q pass %q fetch %q knownHosts %v", tt.name, a.kind, a.user.Reveal(), a.pass.Reveal(), fetch, a.knownHosts)
		}
		if tt.keyFromSSHPath && a.keySource != filepath.Join(keyDir, "id_rsa") {
			t.Errorf("%s: key from %q", tt.name, a.keySource)
		}
		if tt.user != "" && a.user.String() == tt.user {
			t.Errorf("%s: the user prints: %s", tt.name, a.user)
		}
	}
	// A named key that is not there is a usage error.
	c, keys := keysOf(t, plain, map[string]string{"POLYAXON_SSH_PATH": keyDir, "POLYAXON_SSH_PRIVATE_KEY": "deploy_key"})
	u, _ := parseRemote("git@h:r.git")
	if _, _, err := resolveAuth(c, keys, u, false); fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "deploy_key") {
		t.Errorf("missing named key: %v", err)
	}
}

func TestStoreLookup(t *testing.T) {
	p := filepath.Join(t.TempDir(), "creds")
	os.WriteFile(p, []byte("https://a:1@other.com\n# comment\nhttps://b:2@foo.com:8443\nhttps://c:3@foo.com/org\nhttps://d:4@foo.com\n"), 0o600)
	for _, tt := range []struct{ url, user string }{
		{"https://foo.com/org/repo", "c"},
		{"https://foo.com/x/repo", "d"},
		{"https://foo.com:8443/x", "b"},
		{"https://none.com/x", ""},
	} {
		u, _ := parseRemote(tt.url)
		user, _, ok, err := storeLookup(p, u)
		if err != nil || user != tt.user || ok != (tt.user != "") {
			t.Errorf("%s: %q %v %v", tt.url, user, ok, err)
		}
	}
}

func TestClassify(t *testing.T) {
	for msg, want := range map[string]fault.Class{
		"fatal: Authentication failed for 'http://127.0.0.1/x.git/'":                                                    fault.Auth,
		"fatal: could not read Username for 'http://h': terminal prompts disabled":                                      fault.Auth,
		"git@h: Permission denied (publickey).":                                                                         fault.Auth,
		"Host key verification failed. / fatal: Could not read from remote repository.":                                 fault.Auth,
		"fatal: remote error: no such repository: /x.git":                                                               fault.NotFound,
		"fatal: repository 'http://h/x.git/' not found":                                                                 fault.NotFound,
		"fatal: couldn't find remote ref refs/heads/x":                                                                  fault.NotFound,
		"fatal: unable to access 'http://127.0.0.1:1/r.git/': Failed to connect to 127.0.0.1":                           fault.Transient,
		"fatal: unable to connect to 127.0.0.1: Connection refused":                                                     fault.Transient,
		"error: RPC failed; curl 18 / fatal: early EOF":                                                                 fault.Transient,
		"fatal: write error: No space left on device":                                                                   fault.LocalDisk,
		"No user exists for uid 65532 / fatal: Could not read from remote repository.":                                  fault.Usage,
		"fatal: unable to access 'https://h/r.git/': gnutls_handshake() failed: An unexpected TLS packet was received.": fault.Usage,
		"fatal: unable to access 'https://h/r.git/': gnutls_handshake() failed: Error in the pull function.":            fault.Transient,
		"something else": fault.Internal,
	} {
		if got := classify(msg); got != want {
			t.Errorf("classify(%q) = %v, want %v", msg, got, want)
		}
	}
}

func TestConfigEnv(t *testing.T) {
	got := configEnv("2", [][2]string{{"a.b", "1"}, {"c.d", ""}})
	want := []string{"GIT_CONFIG_KEY_2=a.b", "GIT_CONFIG_VALUE_2=1", "GIT_CONFIG_KEY_3=c.d", "GIT_CONFIG_VALUE_3=", "GIT_CONFIG_COUNT=4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("configEnv = %q", got)
	}
}

func TestInspectDest(t *testing.T) {
	c, _ := keysOf(t, `{"name":"r","kind":"git","schema":{"url":"x"}}`, nil)
	u, _ := parseRemote("https://h/org/repo.git")
	root := t.TempDir()

	d, err := inspectDest(c, filepath.Join(root, "missing"), u, false)
	if err != nil || !d.fresh {
		t.Errorf("missing: %+v %v", d, err)
	}
	empty := filepath.Join(root, "empty")
	os.MkdirAll(filepath.Join(empty, "lost+found"), 0o755)
	if d, err := inspectDest(c, empty, u, false); err != nil || !d.fresh || d.replace {
		t.Errorf("empty: %+v %v", d, err)
	}
	same := filepath.Join(root, "same")
	os.MkdirAll(filepath.Join(same, ".git"), 0o755)
	os.WriteFile(filepath.Join(same, ".git", "config"), []byte("[remote \"origin\"]\n\turl = https://h/org/repo\n"), 0o644)
	if d, err := inspectDest(c, same, u, false); err != nil || d.fresh {
		t.Errorf("same remote: %+v %v", d, err)
	}
	other := filepath.Join(root, "other")
	os.MkdirAll(filepath.Join(other, ".git"), 0o755)
	os.WriteFile(filepath.Join(other, ".git", "config"), []byte("[remote \"origin\"]\n\turl = https://u:tok3n-secret@h/other\n"), 0o644)
	if _, err := inspectDest(c, other, u, false); fault.ClassOf(err) != fault.Usage || strings.Contains(err.Error(), "tok3n") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("other remote: %v", err)
	}
	if d, err := inspectDest(c, other, u, true); err != nil || !d.replace {
		t.Errorf("other remote, --force: %+v %v", d, err)
	}
	foreign := filepath.Join(root, "foreign")
	os.MkdirAll(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "data.csv"), nil, 0o644)
	if _, err := inspectDest(c, foreign, u, false); fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "data.csv") {
		t.Errorf("foreign: %v", err)
	}
}

// A failed clone leaves nothing; a published one replaces an empty folder,
// and with --force a foreign one.
func TestDestStagingAndPublish(t *testing.T) {
	c, _ := keysOf(t, `{"name":"r","kind":"git","schema":{"url":"x"}}`, nil)
	u, _ := parseRemote("https://h/r.git")
	root := t.TempDir()
	target := filepath.Join(root, "code")

	d, _ := inspectDest(c, target, u, false)
	dir, err := d.prepare()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "half"), nil, 0o644)
	d.abandon()
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("abandon left %v", entries)
	}

	os.MkdirAll(target, 0o755)
	os.WriteFile(filepath.Join(target, "old.txt"), nil, 0o644)
	d, err = inspectDest(c, target, u, true)
	if err != nil {
		t.Fatal(err)
	}
	dir, err = d.prepare()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "new.txt"), nil, 0o644)
	if err := d.publish(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "new.txt")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(target, "old.txt")); err == nil {
		t.Error("old content kept")
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("publish left %v", entries)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", st.Mode())
	}
}

func TestLFSPointers(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".gitattributes"), []byte("*.bin filter=lfs diff=lfs merge=lfs -text\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	os.WriteFile(filepath.Join(dir, "data", "model.bin"), []byte(lfsPointerPrefix+"\noid sha256:abc\nsize 12\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "readme.md"), []byte("hello"), 0o644)
	files, _, attrs := scanTree(dir)
	if !usesLFS(attrs) || files != 3 {
		t.Fatalf("usesLFS = false, or %d files", files)
	}
	if got := lfsPointers(dir); !reflect.DeepEqual(got, []string{"data/model.bin"}) {
		t.Errorf("lfsPointers = %v", got)
	}
	if _, _, attrs := scanTree(t.TempDir()); usesLFS(attrs) {
		t.Error("usesLFS on an empty tree")
	}
}

func TestRetryAndInterrupt(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	calls := 0
	_, err := withRetry(context.Background(), log, []time.Duration{0, 0}, "x", func() (int, error) {
		calls++
		return 0, fault.New(fault.Transient, "connection refused")
	})
	if calls != 3 || fault.ClassOf(err) != fault.Transient {
		t.Errorf("transient: %d calls, %v", calls, err)
	}
	calls = 0
	_, err = withRetry(context.Background(), log, []time.Duration{0, 0}, "x", func() (int, error) {
		calls++
		return 0, fault.New(fault.Auth, "Authentication failed")
	})
	if calls != 1 || fault.ClassOf(err) != fault.Auth {
		t.Errorf("auth: %d calls, %v", calls, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = withRetry(ctx, log, []time.Duration{time.Hour}, "x", func() (int, error) {
		return 0, fault.New(fault.Transient, "early EOF")
	})
	c, _ := keysOf(t, `{"name":"r","kind":"git","schema":{"url":"x"}}`, nil)
	err = New().describe(&handlers.Request{Conn: c}, &spec{auth: &auth{}}, err)
	if fault.ClassOf(err) != fault.Interrupted {
		t.Errorf("cancelled: %v (class %v)", err, fault.ClassOf(err))
	}
}

func TestValidTreePath(t *testing.T) {
	for name, ok := range map[string]bool{
		"a/b.txt": true, "dir/.gitignore": true, ".github/x": true, "a..b": true,
		"": false, "/etc/passwd": false, "../x": false, "a/../../x": false, "a//b": false,
		".git/config": false, "sub/.GIT/hooks/x": false, ".git./x": false, "a/./b": false,
	} {
		if err := validTreePath(name); (err == nil) != ok {
			t.Errorf("validTreePath(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

// A --path that is a link to a folder gets the clone in that folder, the
// link kept; a link to nothing is refused before anything is fetched.
func TestDestLink(t *testing.T) {
	c, _ := keysOf(t, `{"name":"r","kind":"git","schema":{"url":"x"}}`, nil)
	u, _ := parseRemote("https://h/r.git")
	root := t.TempDir()
	target := filepath.Join(root, "volume", "x")
	os.MkdirAll(target, 0o755)
	link := filepath.Join(root, "xl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	d, err := inspectDest(c, link, u, false)
	if err != nil || !d.fresh {
		t.Fatalf("link to an empty folder: %+v %v", d, err)
	}
	dir, err := d.prepare()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "new.txt"), nil, 0o644)
	if err := d.publish(); err != nil {
		t.Fatalf("publish through a link: %v", err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(target, "new.txt")); err != nil {
		t.Errorf("the clone is not in the link's folder: %v", err)
	}
	for _, dir := range []string{root, filepath.Dir(target)} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".initializer-tmp") {
				t.Errorf("staging folder left in %s: %s", dir, e.Name())
			}
		}
	}

	dangling := filepath.Join(root, "dangling")
	os.Symlink(filepath.Join(root, "nowhere"), dangling)
	if _, err := inspectDest(c, dangling, u, false); fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("link to nothing: %v", err)
	}
	d, err = inspectDest(c, dangling, u, true)
	if err != nil {
		t.Fatalf("link to nothing, --force: %v", err)
	}
	if dir, err = d.prepare(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "new.txt"), nil, 0o644)
	if err := d.publish(); err != nil {
		t.Fatalf("publish over a link to nothing, --force: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dangling, "new.txt")); err != nil {
		t.Errorf("--force did not replace the link to nothing: %v", err)
	}
}

// A token given alone goes in the user name's place, where a short one
// would not look like a token: it is still blanked wherever it appears.
func TestTokenAloneScrubbed(t *testing.T) {
	c, keys := keysOf(t, "connections:\n  - name: repo\n    kind: git\n    schema: {url: \"https://h/r.git\"}\n", map[string]string{"GIT_TOKEN": "tok-4a7Z91"})
	u, err := parseRemote("https://h/r.git")
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := resolveAuth(c, keys, u, false)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.user.Name() // as the engines hand it over
	if got := secret.Scrub("echoed tok-4a7Z91"); got != "echoed "+secret.Redacted {
		t.Errorf("the token shows: %q", got)
	}
}
