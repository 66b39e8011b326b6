package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/initializer/initializer/integration/testenv"
)

// privateGitHTTP starts a git smart-HTTP server of this test's own over the
// shared repositories, with basic auth for user and password, and returns
// its URL.
func privateGitHTTP(t *testing.T, user, password string) string {
	t.Helper()
	env := testenv.Load(t)
	githttp, root := env.Tool("githttp"), env.Git().Root
	p := &privateServer{name: "githttp", port: freePort(t), data: t.TempDir()}
	p.argv = func(port int, data string) ([]string, []string) {
		return []string{githttp, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-root", root, "-user", user, "-password-env", "GITHTTP_PASSWORD"},
			[]string{"GITHTTP_PASSWORD=" + password}
	}
	p.start(t)
	t.Cleanup(func() { p.stop(t) })
	return p.endpoint()
}

// TestGitCredentialsWithBackslashes clones with a user name and a password
// holding backslashes (a Windows domain user, a generated password): both
// engines send them as given.
func TestGitCredentialsWithBackslashes(t *testing.T) {
	f := newGitFixture(t)
	user, password := `CORP\nina`, `ab\\cd\c\tz`
	base := privateGitHTTP(t, user, password)
	secretDir := t.TempDir()
	writeFile(t, secretDir, "username", user)
	writeFile(t, secretDir, "password", password)
	cat := gitCatalog(t, base+"/"+f.name, "", nil, secretDir)
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "code")
			r := clone(t, nil, cat, dir, eng)
			r.expectCode(t, 0)
			if c, _ := headOf(t, dir); c != f.c4 {
				t.Errorf("HEAD at %s, want %s", c, f.c4)
			}
			assertNoSecrets(t, r, dir, password)
		})
	}
}

// TestGitSubmoduleOnAnotherPortGetsNoCredentials clones, with credentials,
// a parent whose submodule is on another port of the same host: the
// submodule's server must not receive the parent's credentials (the CLI
// scopes its credential helper to scheme://host:port, go-git must too).
// The submodule's server is a front that records the Authorization header
// it receives, then forwards the request with credentials of its own.
func TestGitSubmoduleOnAnotherPortGetsNoCredentials(t *testing.T) {
	f := newGitFixture(t)
	origin, err := url.Parse(f.env.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var received []string
	proxy := httputil.NewSingleHostReverseProxy(origin)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			mu.Lock()
			received = append(received, r.URL.Path)
			mu.Unlock()
		}
		r.SetBasicAuth(f.env.HTTPUser, f.env.HTTPPassword)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	sub := strings.TrimSuffix(f.name, ".git") + "-sub.git"
	tip := commitFile(t, f.work, ".gitmodules", fmt.Sprintf("[submodule \"sub\"]\n\tpath = sub\n\turl = %s/%s\n", front.URL, sub), "absolute submodule URL")
	gitCmd(t, f.work, "push", "-q", f.bare, "main")

	cat := gitCatalog(t, f.env.HTTPURL+"/"+f.name, "", []string{"--recurse-submodules"}, f.httpSecret)
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			mu.Lock()
			received = nil
			mu.Unlock()
			dir := filepath.Join(t.TempDir(), "code")
			r := clone(t, nil, cat, dir, eng)
			r.expectCode(t, 0)
			if c, _ := headOf(t, dir); c != tip {
				t.Errorf("HEAD at %s, want %s", c, tip)
			}
			if _, err := os.Stat(filepath.Join(dir, "sub", "sub.txt")); err != nil {
				t.Errorf("the submodule was not checked out: %v\n%s", err, r.Stderr)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(received) > 0 {
				t.Errorf("the submodule's server on another port received the parent's credentials, for %v", received)
			}
		})
	}
}

// TestGitSSHKeyAsTemplatesLeaveIt clones over SSH with a mounted key that
// has Windows line endings, or no final newline: both engines load it.
func TestGitSSHKeyAsTemplatesLeaveIt(t *testing.T) {
	f := newGitFixture(t)
	key, err := os.ReadFile(filepath.Join(f.sshSecret, "id_rsa"))
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"crlf":       strings.ReplaceAll(string(key), "\n", "\r\n"),
		"no newline": strings.TrimRight(string(key), "\n"),
	} {
		secretDir := t.TempDir()
		for _, n := range []string{"known_hosts", "ssh_passphrase"} {
			b, err := os.ReadFile(filepath.Join(f.sshSecret, n))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, secretDir, n, string(b))
		}
		writeFile(t, secretDir, "id_rsa", text)
		cat := gitCatalog(t, f.env.SSHURL+"/"+f.name, "", nil, secretDir)
		for _, eng := range engines {
			t.Run(name+"/"+eng, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "code")
				r := clone(t, nil, cat, dir, eng)
				r.expectCode(t, 0)
				if c, _ := headOf(t, dir); c != f.c4 {
					t.Errorf("HEAD at %s, want %s", c, f.c4)
				}
			})
		}
	}
}

// TestGitCredentialStoreMissing: POLYAXON_GIT_CREDENTIALS_STORE names a
// file that is not there, and the remote asks for credentials. The error
// names the variable and the file, not only "give credentials".
func TestGitCredentialStoreMissing(t *testing.T) {
	f := newGitFixture(t)
	missing := filepath.Join(t.TempDir(), "nosuch", ".git-credentials")
	cat := gitCatalog(t, f.env.HTTPURL+"/"+f.name, "", nil, "")
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "code")
			r := clone(t, []string{"POLYAXON_GIT_CREDENTIALS_STORE=" + missing}, cat, dir, eng)
			r.expectCode(t, 3)
			if !strings.Contains(r.Stderr, "POLYAXON_GIT_CREDENTIALS_STORE") || !strings.Contains(r.Stderr, missing) {
				t.Errorf("the error does not name the variable and its missing file:\n%s", r.Stderr)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("a failed clone left %s", dir)
			}
			// The store's content given in its place is never printed.
			content := "https://user:pass-" + randomName("w") + "@example.com"
			r = clone(t, []string{"POLYAXON_GIT_CREDENTIALS_STORE=" + strings.TrimPrefix(content, "https://")}, cat, dir, eng)
			r.expectCode(t, 3)
			if strings.Contains(r.Stderr, "pass-") || !strings.Contains(r.Stderr, "names a value that is no absolute path") {
				t.Errorf("a credential store variable holding no path:\n%s", r.Stderr)
			}
		})
	}
}
