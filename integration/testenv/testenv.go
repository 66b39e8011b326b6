// Package testenv gives tests the addresses and credentials of the real test
// servers started by integration/servers.sh, read from the env file that the
// script writes.
//
// A missing env file, a missing key or a stopped server fails the test: the
// integration tests never skip, because a skipped test proves nothing.
package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// DefaultState is the state directory servers.sh uses when
// INITIALIZER_STATE is unset.
const DefaultState = "/tmp/initializer-servers"

const hint = "run `integration/servers.sh start` (or `make test`) first"

// Env is the parsed env file. Its accessors fail the test on a missing key.
type Env struct {
	t    testing.TB
	path string
	vars map[string]string
}

// Path returns where the env file is looked for: $INITIALIZER_SERVERS_ENV,
// else $INITIALIZER_STATE/env, else /tmp/initializer-servers/env.
func Path() string {
	if p := os.Getenv("INITIALIZER_SERVERS_ENV"); p != "" {
		return p
	}
	state := os.Getenv("INITIALIZER_STATE")
	if state == "" {
		state = DefaultState
	}
	return filepath.Join(state, "env")
}

// Load reads the env file and checks that the servers it lists still run.
func Load(t testing.TB) Env {
	t.Helper()
	path := Path()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("test servers env file %s not found: %s", path, hint)
	}
	if err != nil {
		t.Fatalf("test servers env file: %v", err)
	}
	defer f.Close()
	vars, err := Parse(f)
	if err != nil {
		t.Fatalf("test servers env file %s: %v", path, err)
	}
	e := Env{t: t, path: path, vars: vars}
	e.checkServers()
	return e
}

// checkServers fails the test when a server recorded in SERVER_PIDS
// ("name:pid ...") is gone, which is clearer than a connection refused later.
func (e Env) checkServers() {
	e.t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return
	}
	for _, entry := range strings.Fields(e.vars["SERVER_PIDS"]) {
		name, pidText, ok := strings.Cut(entry, ":")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil {
			e.t.Fatalf("%s: bad SERVER_PIDS entry %q", e.path, entry)
		}
		if !processAlive(pid) {
			e.t.Fatalf("test server %s (pid %d, from %s) is not running: %s", name, pid, e.path, hint)
		}
	}
}

func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	state := data[i+2]
	return state != 'Z' && state != 'X'
}

// File returns the path of the env file that was loaded.
func (e Env) File() string { return e.path }

// Lookup returns the value of key and whether it is set.
func (e Env) Lookup(key string) (string, bool) {
	v, ok := e.vars[key]
	return v, ok
}

// Get returns the value of key, failing the test when it is missing or empty.
func (e Env) Get(key string) string {
	e.t.Helper()
	v, ok := e.vars[key]
	if !ok || v == "" {
		e.t.Fatalf("test servers env file %s has no %s: %s", e.path, key, hint)
	}
	return v
}

// Setenv sets each key, as read from the env file, in the test's process
// environment (with t.Setenv, so it is restored when the test ends).
func (e Env) Setenv(t testing.TB, keys ...string) {
	t.Helper()
	for _, k := range keys {
		t.Setenv(k, e.Get(k))
	}
}

// Environ returns KEY=value pairs for keys, for a child process's environment.
func (e Env) Environ(keys ...string) []string {
	e.t.Helper()
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+e.Get(k))
	}
	return out
}

// Tool returns the path of a tool installed by servers.sh (crane, minio, ...).
func (e Env) Tool(name string) string {
	e.t.Helper()
	p := filepath.Join(e.Get("TOOLS_BIN"), name)
	if _, err := os.Stat(p); err != nil {
		e.t.Fatalf("tool %s: %v: %s", name, err, hint)
	}
	return p
}

// S3 describes the MinIO server.
type S3 struct {
	Endpoint, AccessKeyID, SecretAccessKey, Region string
}

// S3 returns MinIO's endpoint and credentials.
func (e Env) S3() S3 {
	e.t.Helper()
	return S3{
		Endpoint:        e.Get("S3_ENDPOINT"),
		AccessKeyID:     e.Get("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: e.Get("AWS_SECRET_ACCESS_KEY"),
		Region:          e.Get("AWS_REGION"),
	}
}

// Azure describes the Azurite blob server.
type Azure struct {
	ConnectionString, Endpoint, AccountName, AccountKey string
}

// Azure returns Azurite's connection string, endpoint and account.
func (e Env) Azure() Azure {
	e.t.Helper()
	return Azure{
		ConnectionString: e.Get("AZURE_STORAGE_CONNECTION_STRING"),
		Endpoint:         e.Get("AZURE_BLOB_ENDPOINT"),
		AccountName:      e.Get("AZURE_ACCOUNT_NAME"),
		AccountKey:       e.Get("AZURE_ACCOUNT_KEY"),
	}
}

// GCS describes fake-gcs-server.
type GCS struct {
	// EmulatorHost is host:port without a scheme, for STORAGE_EMULATOR_HOST.
	EmulatorHost string
	// Endpoint is the same address with the http scheme.
	Endpoint string
}

// GCS returns fake-gcs-server's address.
func (e Env) GCS() GCS {
	e.t.Helper()
	return GCS{EmulatorHost: e.Get("STORAGE_EMULATOR_HOST"), Endpoint: e.Get("GCS_ENDPOINT")}
}

// Git describes the three git servers, which share one repository root.
type Git struct {
	Root                            string // directory of the bare repositories
	SmokeRepo                       string // name of the seeded repository, "smoke.git"
	HTTPURL, HTTPUser, HTTPPassword string
	DaemonURL                       string
	SSHURL, SSHKey, SSHKnownHosts   string
}

// Git returns the git servers' URLs and credentials.
func (e Env) Git() Git {
	e.t.Helper()
	return Git{
		Root:          e.Get("GIT_ROOT"),
		SmokeRepo:     e.Get("GIT_SMOKE_REPO"),
		HTTPURL:       e.Get("GIT_HTTP_URL"),
		HTTPUser:      e.Get("GIT_HTTP_USER"),
		HTTPPassword:  e.Get("GIT_HTTP_PASSWORD"),
		DaemonURL:     e.Get("GIT_DAEMON_URL"),
		SSHURL:        e.Get("GIT_SSH_URL"),
		SSHKey:        e.Get("GIT_SSH_KEY"),
		SSHKnownHosts: e.Get("GIT_SSH_KNOWN_HOSTS"),
	}
}

// SSHCommand returns a GIT_SSH_COMMAND value that uses only the test key and
// the test known_hosts, with strict host key checking and no prompts.
func (g Git) SSHCommand() string {
	return "ssh -F /dev/null -i " + shellQuote(g.SSHKey) +
		" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes" +
		" -o UserKnownHostsFile=" + shellQuote(g.SSHKnownHosts)
}

// Registry describes the distribution registry.
type Registry struct {
	URL, Host, User, Password string
}

// Registry returns the registry's URL, host:port and credentials.
func (e Env) Registry() Registry {
	e.t.Helper()
	return Registry{
		URL:      e.Get("REGISTRY_URL"),
		Host:     e.Get("REGISTRY_HOST"),
		User:     e.Get("REGISTRY_USER"),
		Password: e.Get("REGISTRY_PASSWORD"),
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Parse reads KEY=value lines as written by servers.sh. Values may be bare,
// single-quoted (a quote inside written the shell's way: close, backslash
// quote, reopen) or double-quoted. Blank lines, comments and an "export "
// prefix are allowed.
func Parse(r io.Reader) (map[string]string, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, raw, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("line %d: not KEY=value", n)
		}
		value, err := unquote(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, key, err)
		}
		vars[key] = value
	}
	return vars, sc.Err()
}

// unquote undoes the shell quoting servers.sh writes.
func unquote(raw string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case '\'':
			j := strings.IndexByte(raw[i+1:], '\'')
			if j < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(raw[i+1 : i+1+j])
			i += j + 2
		case '"':
			i++
			for ; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' && i+1 < len(raw) && strings.IndexByte(`"\$`+"`", raw[i+1]) >= 0 {
					i++
				}
				b.WriteByte(raw[i])
			}
			if i >= len(raw) {
				return "", errors.New("unterminated double quote")
			}
			i++
		case '\\':
			if i+1 < len(raw) {
				b.WriteByte(raw[i+1])
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}
