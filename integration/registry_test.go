package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/initializer/initializer/integration/testenv"
)

// regCatalog is a catalog with one registry connection "docker"; secretDir
// may be empty (no secret) or "env" (a secret given as environment variables).
func regCatalog(t *testing.T, url string, insecure bool, secretDir string) string {
	t.Helper()
	sec := ""
	switch secretDir {
	case "":
	case "env":
		sec = "\n    secret: {name: docker-creds}"
	default:
		sec = fmt.Sprintf("\n    secret: {name: docker-creds, mountPath: %q}", secretDir)
	}
	return catalog(t, fmt.Sprintf(`
connections:
  - name: docker
    kind: registry
    schema: {url: %q, insecure: %v}%s
`, url, insecure, sec))
}

// regSecret writes a mounted secret's files and returns its folder.
func regSecret(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, dir, name, content)
	}
	return dir
}

func regBasicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// regTinyLayer writes a one-file layer tarball for crane append.
func regTinyLayer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "layer/hello.txt", "hello from the initializer's tests\n")
	tarball := filepath.Join(dir, "layer.tar")
	if out, err := exec.Command("tar", "-cf", tarball, "-C", filepath.Join(dir, "layer"), "hello.txt").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	return tarball
}

// regCranePush pushes a tiny image to ref with crane, reading credentials from
// the docker config in dockerConfig only (a fresh HOME, DOCKER_CONFIG set).
func regCranePush(t *testing.T, e testenv.Env, dockerConfig, ref string) (string, error) {
	t.Helper()
	cmd := exec.Command(e.Tool("crane"), "append", "-f", regTinyLayer(t), "-t", ref, "--insecure")
	cmd.Env = append(baseEnv(nil), "HOME="+t.TempDir(), "DOCKER_CONFIG="+dockerConfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// regCraneDigest reads ref's digest with crane, as the written config allows.
func regCraneDigest(t *testing.T, e testenv.Env, dockerConfig, ref string) string {
	t.Helper()
	cmd := exec.Command(e.Tool("crane"), "digest", ref, "--insecure")
	cmd.Env = append(baseEnv(nil), "HOME="+t.TempDir(), "DOCKER_CONFIG="+dockerConfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("crane digest %s: %v\n%s", ref, err, out)
	}
	return strings.TrimSpace(string(out))
}

// noSecret fails the test when any of secrets shows up in the run's stderr,
// stdout or --result document.
func regNoSecret(t *testing.T, r run, secrets ...string) {
	t.Helper()
	res, _ := json.Marshal(r.Result)
	for _, s := range secrets {
		for what, text := range map[string]string{"stderr": r.Stderr, "stdout": r.Stdout, "result": string(res)} {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("a secret appears in the %s:\n%s", what, text)
			}
		}
	}
}

func regDetails(t *testing.T, r run) map[string]any {
	t.Helper()
	res, ok := r.Result["result"].(map[string]any)
	if !ok {
		t.Fatalf("no result in %v", r.Result)
	}
	d, _ := res["details"].(map[string]any)
	return d
}

func regReadJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return m
}

func TestRegistryWritesConfigThatCranePushesWith(t *testing.T) {
	e := testenv.Load(t)
	reg := e.Registry()
	secretDir := regSecret(t, map[string]string{"username": reg.User, "password": reg.Password + "\n"})
	cat := regCatalog(t, reg.Host+"/initializer/tests", true, secretDir)
	out := filepath.Join(t.TempDir(), "docker")

	// check proves the credentials and writes nothing.
	r := cli(t, nil, "check", "--catalog", cat, "-c", "docker", "--path", out)
	r.expectCode(t, 0)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("check created %s: %v", out, err)
	}
	if d := regDetails(t, r); d["verified"] != "basic" {
		t.Errorf("check details: %v", d)
	}

	r = cli(t, nil, "--catalog", cat, "-c", "docker", "--path", out)
	r.expectCode(t, 0)
	regNoSecret(t, r, reg.Password, regBasicAuth(reg.User, reg.Password))
	d := regDetails(t, r)
	if d["verified"] != "basic" || d["registry"] != reg.Host || d["written"] != true || d["credentials"] != "username and password" {
		t.Errorf("details: %v", d)
	}
	cfgPath := filepath.Join(out, "config.json")
	st, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, want 0600", st.Mode().Perm())
	}
	want := map[string]any{"auths": map[string]any{reg.Host: map[string]any{"auth": regBasicAuth(reg.User, reg.Password)}}}
	if got := regReadJSON(t, cfgPath); !reflect.DeepEqual(got, want) {
		t.Errorf("config.json = %v, want %v", got, want)
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, ".initializer-tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// A real client pushes with it, and cannot without it.
	ref := reg.Host + "/initializer/tests:written"
	if log, err := regCranePush(t, e, out, ref); err != nil {
		t.Fatalf("crane push with the written config: %v\n%s", err, log)
	}
	if !strings.HasPrefix(regCraneDigest(t, e, out, ref), "sha256:") {
		t.Error("no digest for the pushed image")
	}
	if log, err := regCranePush(t, e, t.TempDir(), reg.Host+"/initializer/tests:anonymous"); err == nil || !strings.Contains(log, "401") {
		t.Errorf("crane pushed without credentials (err %v):\n%s", err, log)
	}
}

func TestRegistryCredentialsFromEnvironmentAndHTTPURL(t *testing.T) {
	e := testenv.Load(t)
	reg := e.Registry()
	out := t.TempDir()
	// A secret without mountPath reaches the container as environment
	// variables; the upstream look-up also takes POLYAXON_-prefixed names.
	env := []string{"USERNAME=" + reg.User, "POLYAXON_PASSWORD=" + reg.Password}
	r := cli(t, env, "--catalog", regCatalog(t, reg.URL, true, "env"), "-c", "docker", "--path", out)
	r.expectCode(t, 0)
	regNoSecret(t, r, reg.Password)
	if got := regReadJSON(t, filepath.Join(out, "config.json")); !reflect.DeepEqual(got["auths"], map[string]any{reg.Host: map[string]any{"auth": regBasicAuth(reg.User, reg.Password)}}) {
		t.Errorf("config.json = %v", got)
	}
	if log, err := regCranePush(t, e, out, reg.Host+"/initializer/tests:from-env"); err != nil {
		t.Fatalf("crane push: %v\n%s", err, log)
	}

	// Plain http needs insecure: true.
	r = cli(t, env, "--catalog", regCatalog(t, reg.URL, false, "env"), "-c", "docker", "--path", t.TempDir())
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "set insecure: true to allow plain HTTP") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	// Without a scheme and without insecure, https is tried and the plain
	// HTTP answer explained.
	r = cli(t, env, "--catalog", regCatalog(t, reg.Host, false, "env"), "-c", "docker", "--path", t.TempDir())
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "speaks plain HTTP, not HTTPS; set schema.insecure: true") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	// No credentials at all: the registry demands them.
	r = cli(t, nil, "--catalog", regCatalog(t, reg.Host, true, ""), "-c", "docker", "--path", t.TempDir())
	r.expectCode(t, 3)
	if !strings.Contains(r.Stderr, "requires credentials and the connection has none") {
		t.Errorf("stderr: %s", r.Stderr)
	}
}

func TestRegistryMergesExistingConfig(t *testing.T) {
	e := testenv.Load(t)
	reg := e.Registry()
	out := t.TempDir()
	existing := fmt.Sprintf(`{
	"auths": {
		%[1]q: {"auth": %[2]q},
		"http://%[3]s/v1/": {"auth": %[2]q},
		"other.example.com": {"auth": "b3RoZXI6c2VjcmV0", "email": "ci@example.com"},
		"https://index.docker.io/v1/": {"identitytoken": "hub-token"}
	},
	"credHelpers": {"gcr.io": "gcloud", %[1]q: "no-such-helper"},
	"HttpHeaders": {"User-Agent": "team-agent/1.0"},
	"detachKeys": "ctrl-e,e",
	"x-unknown": {"nested": [1, true, null]}
}
`, reg.Host, regBasicAuth(reg.User, "stale-password"), reg.Host)
	writeFile(t, out, "config.json", existing)
	secretDir := regSecret(t, map[string]string{"USERNAME": reg.User, "PASSWORD": reg.Password})

	r := cli(t, nil, "--catalog", regCatalog(t, reg.Host, true, secretDir), "-c", "docker", "--path", out)
	r.expectCode(t, 0)
	regNoSecret(t, r, reg.Password)
	got := regReadJSON(t, filepath.Join(out, "config.json"))
	want := map[string]any{
		"auths": map[string]any{
			reg.Host:                      map[string]any{"auth": regBasicAuth(reg.User, reg.Password)},
			"other.example.com":           map[string]any{"auth": "b3RoZXI6c2VjcmV0", "email": "ci@example.com"},
			"https://index.docker.io/v1/": map[string]any{"identitytoken": "hub-token"},
		},
		"credHelpers": map[string]any{"gcr.io": "gcloud"},
		"HttpHeaders": map[string]any{"User-Agent": "team-agent/1.0"},
		"detachKeys":  "ctrl-e,e",
		"x-unknown":   map[string]any{"nested": []any{1.0, true, nil}},
	}
	if !reflect.DeepEqual(got, want) {
		b, _ := os.ReadFile(filepath.Join(out, "config.json"))
		t.Errorf("merged config.json:\n%s", b)
	}
	if st, _ := os.Stat(filepath.Join(out, "config.json")); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	if !strings.Contains(r.Stderr, "removed credHelpers entries that would shadow") {
		t.Errorf("no warning about the removed credHelpers entry:\n%s", r.Stderr)
	}
	if log, err := regCranePush(t, e, out, reg.Host+"/initializer/tests:merged"); err != nil {
		t.Fatalf("crane push with the merged config: %v\n%s", err, log)
	}

	// A broken existing config is not overwritten without --force.
	broken := writeFile(t, t.TempDir(), "config.json", "{not json")
	r = cli(t, nil, "--catalog", regCatalog(t, reg.Host, true, secretDir), "-c", "docker", "--path", filepath.Dir(broken))
	r.expectCode(t, 2)
	if b, _ := os.ReadFile(broken); string(b) != "{not json" || !strings.Contains(r.Stderr, "pass --force to replace it") {
		t.Errorf("broken config: now %q; stderr %s", b, r.Stderr)
	}
	r = cli(t, nil, "--catalog", regCatalog(t, reg.Host, true, secretDir), "-c", "docker", "--path", filepath.Dir(broken), "--force")
	r.expectCode(t, 0)
	if got := regReadJSON(t, broken); len(got["auths"].(map[string]any)) != 1 {
		t.Errorf("--force config: %v", got)
	}
}

// An empty config.json is an empty config (as the docker CLI reads it): the
// credentials are merged into it. A config whose credHelpers is not an
// object is refused with a message that reads as one.
func TestRegistryEmptyOrInvalidExistingConfig(t *testing.T) {
	e := testenv.Load(t)
	reg := e.Registry()
	secretDir := regSecret(t, map[string]string{"USERNAME": reg.User, "PASSWORD": reg.Password})
	cat := regCatalog(t, reg.Host, true, secretDir)

	empty := writeFile(t, t.TempDir(), "config.json", "")
	r := cli(t, nil, "--catalog", cat, "-c", "docker", "--path", filepath.Dir(empty))
	r.expectCode(t, 0)
	regNoSecret(t, r, reg.Password)
	want := map[string]any{"auths": map[string]any{reg.Host: map[string]any{"auth": regBasicAuth(reg.User, reg.Password)}}}
	if got := regReadJSON(t, empty); !reflect.DeepEqual(got, want) {
		t.Errorf("config.json written over an empty one: %v", got)
	}

	// A config.json that is a link to a shared file: written where it leads, the link kept.
	shared := writeFile(t, t.TempDir(), "shared.json", "")
	linked := filepath.Join(t.TempDir(), "config.json")
	os.Symlink(shared, linked)
	r = cli(t, nil, "--catalog", cat, "-c", "docker", "--path", filepath.Dir(linked))
	r.expectCode(t, 0)
	if st, err := os.Lstat(linked); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the config.json link was replaced: %v %v", st, err)
	}
	if got := regReadJSON(t, shared); !reflect.DeepEqual(got, want) {
		t.Errorf("the file the link leads to: %v", got)
	}

	bad := writeFile(t, t.TempDir(), "config.json", `{"credHelpers": "gcloud"}`)
	r = cli(t, nil, "--catalog", cat, "-c", "docker", "--path", filepath.Dir(bad))
	r.expectCode(t, 2)
	msg := fmt.Sprintf(`connection "docker" (registry): the existing %s is not a valid docker config: "credHelpers" is not a JSON object; fix or remove it, or pass --force to replace it`, bad)
	if !strings.Contains(r.Stderr, msg) {
		t.Errorf("stderr lacks %q:\n%s", msg, r.Stderr)
	}
	if b, _ := os.ReadFile(bad); string(b) != `{"credHelpers": "gcloud"}` {
		t.Errorf("the invalid config was changed: %q", b)
	}
}

func TestRegistryWrongPasswordExits3(t *testing.T) {
	e := testenv.Load(t)
	reg := e.Registry()
	wrong := "wrong-password-4f1d9c"
	secretDir := regSecret(t, map[string]string{"username": reg.User, "password": wrong})
	cat := regCatalog(t, reg.Host, true, secretDir)

	out := filepath.Join(t.TempDir(), "docker")
	r := cli(t, nil, "--catalog", cat, "-c", "docker", "--path", out)
	r.expectCode(t, 3)
	regNoSecret(t, r, wrong, regBasicAuth(reg.User, wrong))
	if !strings.Contains(r.Stderr, "refused the username and password (HTTP 401") || r.Result["exitCode"] != float64(3) {
		t.Errorf("stderr: %s\nresult: %v", r.Stderr, r.Result)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a config was written despite the refusal: %v", err)
	}
	r = cli(t, nil, "check", "--catalog", cat, "-c", "docker")
	r.expectCode(t, 3)
	regNoSecret(t, r, wrong)

	// An existing config is left as it was.
	keep := writeFile(t, t.TempDir(), "config.json", `{"auths":{}}`)
	r = cli(t, nil, "--catalog", cat, "-c", "docker", "--path", filepath.Dir(keep))
	r.expectCode(t, 3)
	if b, _ := os.ReadFile(keep); string(b) != `{"auths":{}}` {
		t.Errorf("existing config changed to %s", b)
	}

	// --no-verify writes what it was given.
	r = cli(t, nil, "--catalog", cat, "-c", "docker", "--path", out, "--no-verify")
	r.expectCode(t, 0)
	regNoSecret(t, r, wrong)
	if d := regDetails(t, r); d["verified"] != "skipped (--no-verify)" {
		t.Errorf("details: %v", d)
	}
	if got := regReadJSON(t, filepath.Join(out, "config.json")); !reflect.DeepEqual(got["auths"], map[string]any{reg.Host: map[string]any{"auth": regBasicAuth(reg.User, wrong)}}) {
		t.Errorf("config.json: %v", got)
	}
}

// TestRegistryUpstreamMountedConfig is upstream's way: a secret holding a
// ready config.json, mounted where the client reads it. Nothing is
// rewritten; the mounted file is verified.
func TestRegistryUpstreamMountedConfig(t *testing.T) {
	e := testenv.Load(t)
	reg := e.Registry()
	content := fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q}}}`, reg.Host, regBasicAuth(reg.User, reg.Password))
	mounted := regSecret(t, map[string]string{"config.json": content})
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(filepath.Join(mounted, "config.json"), old, old)
	os.Chmod(mounted, 0o555) // a secret volume is read-only
	t.Cleanup(func() { os.Chmod(mounted, 0o755) })
	cat := regCatalog(t, reg.Host+"/org", true, mounted)
	home := t.TempDir()

	for _, args := range [][]string{
		{"--catalog", cat, "-c", "docker"},                      // no --path, no DOCKER_CONFIG
		{"--catalog", cat, "-c", "docker", "--path", mounted},   // --path is the mount
		{"check", "--catalog", cat, "-c", "docker"},             // check
		{"--catalog", cat, "-c", "docker", "-p", mounted + "/"}, // the same folder, spelled differently
	} {
		r := cli(t, []string{"HOME=" + home}, args...)
		r.expectCode(t, 0)
		regNoSecret(t, r, reg.Password)
		if d := regDetails(t, r); d["verified"] != "basic" || d["written"] == true {
			t.Errorf("%v: details %v", args, d)
		}
		st, err := os.Stat(filepath.Join(mounted, "config.json"))
		if b, _ := os.ReadFile(filepath.Join(mounted, "config.json")); err != nil || string(b) != content || !st.ModTime().Equal(old) {
			t.Errorf("%v: the mounted config.json was touched: %q %v", args, b, err)
		}
		if _, err := os.Stat(filepath.Join(home, ".docker")); !os.IsNotExist(err) {
			t.Errorf("%v: ~/.docker was created", args)
		}
	}
	if log, err := regCranePush(t, e, mounted, reg.Host+"/org/mounted:v1"); err != nil {
		t.Fatalf("crane with the mounted config: %v\n%s", err, log)
	}

	// Wrong credentials in the mounted config: exit 3.
	wrong := regSecret(t, map[string]string{"config.json": fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":"not-the-password-71"}}}`, reg.Host, reg.User)})
	r := cli(t, []string{"HOME=" + home}, "--catalog", regCatalog(t, reg.Host, true, wrong), "-c", "docker")
	r.expectCode(t, 3)
	regNoSecret(t, r, "not-the-password-71")

	// A config for other registries only is a usage error naming them.
	other := regSecret(t, map[string]string{"config.json": `{"auths":{"other.example.com":{"auth":"eDp5"}}}`})
	r = cli(t, []string{"HOME=" + home}, "--catalog", regCatalog(t, reg.Host, true, other), "-c", "docker")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "has no auths entry for "+reg.Host+" (it has: other.example.com)") {
		t.Errorf("stderr: %s", r.Stderr)
	}
}

// TestRegistryDockerConfigJSONSecretMergedElsewhere: a
// kubernetes.io/dockerconfigjson secret (key .dockerconfigjson) mounted
// somewhere, its entries merged into the config.json in --path.
func TestRegistryDockerConfigJSONSecretMergedElsewhere(t *testing.T) {
	e := testenv.Load(t)
	reg := e.Registry()
	mounted := regSecret(t, map[string]string{".dockerconfigjson": fmt.Sprintf(`{"auths":{%q:{"auth":%q},"pull.example.com":{"auth":"cHVsbDpwdWxs"}}}`, reg.Host, regBasicAuth(reg.User, reg.Password))})
	out := t.TempDir()
	writeFile(t, out, "config.json", `{"auths":{"keep.example.com":{"auth":"a2VlcDprZWVw"}},"psFormat":"table"}`)
	// DOCKER_CONFIG is the default --path.
	r := cli(t, []string{"DOCKER_CONFIG=" + out}, "--catalog", regCatalog(t, reg.Host, true, mounted), "-c", "docker")
	r.expectCode(t, 0)
	regNoSecret(t, r, reg.Password)
	got := regReadJSON(t, filepath.Join(out, "config.json"))
	auths := got["auths"].(map[string]any)
	if len(auths) != 3 || auths["keep.example.com"] == nil || auths["pull.example.com"] == nil || got["psFormat"] != "table" {
		t.Errorf("config.json: %v", got)
	}
	if log, err := regCranePush(t, e, out, reg.Host+"/initializer/tests:dockerconfigjson"); err != nil {
		t.Fatalf("crane push: %v\n%s", err, log)
	}
}

// ---------------------------------------------------------------- bearer

// regTokenServer is a docker token server (the realm of a registry configured
// with auth.token), issuing ES256 JWTs with the signing certificate in x5c.
type regTokenServer struct {
	*httptest.Server
	key      *ecdsa.PrivateKey
	certDER  []byte
	user     string
	password string
	identity string // an identity (refresh) token it accepts

	mu       sync.Mutex
	requests []string // "GET basic", "POST refresh_token", … as seen
}

const (
	regTokenService = "initializer-test-registry"
	regTokenIssuer  = "initializer-test-issuer"
)

func regNewTokenServer(t *testing.T, user, password, identity string) *regTokenServer {
	t.Helper()
	key, certDER := regSelfSigned(t, "initializer test token signer", nil)
	ts := &regTokenServer{key: key, certDER: certDER, user: user, password: password, identity: identity}
	ts.Server = httptest.NewTLSServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *regTokenServer) note(s string) {
	ts.mu.Lock()
	ts.requests = append(ts.requests, s)
	ts.mu.Unlock()
}

func (ts *regTokenServer) seen() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.requests...)
}

func (ts *regTokenServer) serve(w http.ResponseWriter, r *http.Request) {
	var subject string
	var scopes []string
	switch r.Method {
	case http.MethodGet:
		u, p, ok := r.BasicAuth()
		if !ok || u != ts.user || p != ts.password {
			ts.note("GET refused")
			http.Error(w, `{"details":"bad credentials"}`, http.StatusUnauthorized)
			return
		}
		ts.note("GET basic")
		subject, scopes = u, r.URL.Query()["scope"]
	case http.MethodPost:
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != ts.identity {
			ts.note("POST refused")
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusUnauthorized)
			return
		}
		ts.note("POST refresh_token")
		subject, scopes = "identity-user", strings.Fields(r.PostForm.Get("scope"))
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	type access struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	grants := []access{}
	for _, s := range scopes {
		for _, one := range strings.Fields(s) {
			parts := strings.Split(one, ":")
			if len(parts) == 3 {
				grants = append(grants, access{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
			}
		}
	}
	now := time.Now().Unix()
	claims := map[string]any{
		"iss": regTokenIssuer, "sub": subject, "aud": regTokenService,
		"exp": now + 300, "nbf": now - 30, "iat": now, "jti": fmt.Sprint(now, len(grants)),
		"access": grants,
	}
	tok := ts.sign(claims)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
}

func (ts *regTokenServer) sign(claims map[string]any) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "JWT", "x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)}})
	payload, _ := json.Marshal(claims)
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, regSHA256([]byte(signing)))
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig)
}

// regSelfSigned returns a P-256 key and a self-signed CA certificate for it,
// valid for the given IP addresses and localhost.
func regSelfSigned(t *testing.T, cn string, ips []net.IP) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func regWritePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	return writeFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

func regFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// regStartTokenRegistry runs a second distribution registry, over TLS with a
// self-signed certificate, whose auth is the token server ts. It returns
// its host:port; the registry is stopped by PID when the test ends.
func regStartTokenRegistry(t *testing.T, e testenv.Env, ts *regTokenServer) string {
	t.Helper()
	dir := t.TempDir()
	bundle := regWritePEM(t, dir, "token-signer.pem", "CERTIFICATE", ts.certDER)
	key, cert := regSelfSigned(t, "initializer test registry", []net.IP{net.ParseIP("127.0.0.1")})
	certFile := regWritePEM(t, dir, "registry.crt", "CERTIFICATE", cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := regWritePEM(t, dir, "registry.key", "EC PRIVATE KEY", keyDER)
	port := regFreePort(t)
	host := fmt.Sprintf("127.0.0.1:%d", port)
	// The realm is named "localhost" (not 127.0.0.1): clients such as crane
	// refuse a realm on a loopback IP literal other than the registry's own.
	realm := "https://localhost:" + strings.TrimPrefix(ts.URL, "https://127.0.0.1:") + "/token"
	cfg := writeFile(t, dir, "config.yml", fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  secret: initializer-test-secret
  tls:
    certificate: %s
    key: %s
auth:
  token:
    realm: %s
    service: %s
    issuer: %s
    rootcertbundle: %s
`, filepath.Join(dir, "storage"), host, certFile, keyFile, realm, regTokenService, regTokenIssuer, bundle))
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.Tool("registry"), "serve", cfg)
	cmd.Env = append(baseEnv(nil), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the token-auth registry: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("token-auth registry log:\n%s", b)
		}
	})
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitFor(t, 30*time.Second, "the token-auth registry to answer /v2/ with 401", func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile.Name())
			t.Fatalf("the token-auth registry exited:\n%s", b)
		default:
		}
		resp, err := client.Get("https://" + host + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ")
	})
	return host
}

func TestRegistryBearerTokenFlow(t *testing.T) {
	e := testenv.Load(t)
	const user, password, identity = "bearer-user", "bearer-password-93e1", "identity-token-5a7c2e"
	ts := regNewTokenServer(t, user, password, identity)
	host := regStartTokenRegistry(t, e, ts)

	// Username and password, exchanged for a token by the realm.
	secretDir := regSecret(t, map[string]string{"username": user, "password": password})
	out := t.TempDir()
	r := cli(t, nil, "--catalog", regCatalog(t, host+"/team/app", true, secretDir), "-c", "docker", "--path", out)
	r.expectCode(t, 0)
	regNoSecret(t, r, password, regBasicAuth(user, password))
	d := regDetails(t, r)
	if d["verified"] != "bearer" || !strings.HasSuffix(fmt.Sprint(d["tokenServer"]), "/token") || d["url"] != "https://"+host+"/v2/" {
		t.Errorf("details: %v", d)
	}
	if seen := ts.seen(); len(seen) != 1 || seen[0] != "GET basic" {
		t.Errorf("token server saw %v", seen)
	}
	if log, err := regCranePush(t, e, out, host+"/team/app:bearer"); err != nil {
		t.Fatalf("crane push through the token flow: %v\n%s", err, log)
	}

	// Wrong password: the token server refuses, exit 3.
	wrong := regSecret(t, map[string]string{"username": user, "password": "bearer-wrong-1c9b"})
	r = cli(t, nil, "--catalog", regCatalog(t, host, true, wrong), "-c", "docker", "--path", t.TempDir())
	r.expectCode(t, 3)
	regNoSecret(t, r, "bearer-wrong-1c9b")
	if !strings.Contains(r.Stderr, "the token server https://localhost:") || !strings.Contains(r.Stderr, "refused the username and password (HTTP 401") {
		t.Errorf("stderr: %s", r.Stderr)
	}

	// An identity token, exchanged through the OAuth2 refresh_token grant,
	// written as identitytoken.
	tokDir := regSecret(t, map[string]string{"token": identity})
	out = t.TempDir()
	r = cli(t, nil, "--catalog", regCatalog(t, host, true, tokDir), "-c", "docker", "--path", out)
	r.expectCode(t, 0)
	regNoSecret(t, r, identity)
	if d := regDetails(t, r); d["verified"] != "bearer" || d["credentials"] != "identity token" {
		t.Errorf("details: %v", d)
	}
	if got := regReadJSON(t, filepath.Join(out, "config.json")); !reflect.DeepEqual(got["auths"], map[string]any{host: map[string]any{"identitytoken": identity}}) {
		t.Errorf("config.json: %v", got)
	}
	if log, err := regCranePush(t, e, out, host+"/team/app:identity"); err != nil {
		t.Fatalf("crane push with the identity token: %v\n%s", err, log)
	}
	badTok := regSecret(t, map[string]string{"token": "not-the-identity-token"})
	r = cli(t, nil, "--catalog", regCatalog(t, host, true, badTok), "-c", "docker", "--path", t.TempDir())
	r.expectCode(t, 3)
	regNoSecret(t, r, "not-the-identity-token")

	// The registry's certificate is self-signed: without insecure it is
	// refused with the fix named.
	r = cli(t, nil, "--catalog", regCatalog(t, host, false, secretDir), "-c", "docker", "--path", t.TempDir())
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "is not trusted") || !strings.Contains(r.Stderr, "schema.insecure: true") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	if bytes.Contains([]byte(r.Stderr), []byte(password)) {
		t.Error("password in stderr")
	}
}

func regSHA256(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// TestRegistryCheckWithoutHome: with no --path, no $DOCKER_CONFIG and no
// home folder (a user with no passwd entry and HOME unset), check still
// checks: it writes nothing, and needs no place for config.json. A run
// says where to give one.
func TestRegistryCheckWithoutHome(t *testing.T) {
	reg := testenv.Load(t).Registry()
	secretDir := regSecret(t, map[string]string{"username": reg.User, "password": reg.Password})
	cat := regCatalog(t, reg.Host, true, secretDir)
	cmd := func(args ...string) (int, string) {
		t.Helper()
		c := exec.Command("env", append([]string{"-u", "HOME", "-u", "DOCKER_CONFIG", binary}, args...)...)
		c.Env = baseEnv(nil)
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := cmd("check", "--catalog", cat, "-c", "docker"); code != 0 {
		t.Errorf("check without a home folder: exit %d\n%s", code, out)
	}
	if code, out := cmd("--catalog", cat, "-c", "docker"); code != 2 || !strings.Contains(out, "no home folder to put .docker/config.json in; give --path") {
		t.Errorf("a run without a home folder: exit %d\n%s", code, out)
	}
}
