package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// binary is the initializer built once for the whole package, as a user runs it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "initializer-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Every user may run it: some tests run it as another user (setpriv).
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "initializer")
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", binary, "./cmd/initializer")
	build.Dir = filepath.Dir(filepath.Dir(self))
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the initializer: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run is one invocation of the binary.
type run struct {
	Stdout, Stderr string
	Code           int
	Result         map[string]any // the --result document, when one was written
}

// cli runs the initializer with args and extra environment (KEY=VALUE), from
// a clean environment that keeps PATH, HOME and the CA settings only, so no
// developer variable leaks in. A --result file is always requested.
func cli(t *testing.T, env []string, args ...string) run {
	t.Helper()
	return cliCmd(t, env, "", args...)
}

// cliCmd is cli, optionally wrapped in a shell command line where "{}" stands
// for the initializer's argv (used to run inside a private mount namespace).
func cliCmd(t *testing.T, env []string, wrapper string, args ...string) run {
	t.Helper()
	resultFile := filepath.Join(t.TempDir(), "result.json")
	args = append(args, "--result", resultFile)
	var cmd *exec.Cmd
	if wrapper != "" {
		quoted := make([]string, 0, len(args)+1)
		for _, a := range append([]string{binary}, args...) {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		cmd = exec.Command("sh", "-c", strings.ReplaceAll(wrapper, "{}", strings.Join(quoted, " ")))
	} else {
		cmd = exec.Command(binary, args...)
	}
	cmd.Env = baseEnv(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running initializer: %v", err)
	}
	if b, err := os.ReadFile(resultFile); err == nil {
		if err := json.Unmarshal(b, &r.Result); err != nil {
			t.Fatalf("--result is not JSON: %v\n%s", err, b)
		}
	}
	return r
}

// sharedDir returns a new folder of mode perm that every user may enter
// (t.TempDir's parent is the test's own), for tests that run the binary as
// another user; it is removed at the end.
func sharedDir(t *testing.T, perm os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "initializer-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, perm)
	return dir
}

// runCmd runs name with args (the binary behind setpriv or unshare), with
// baseEnv(env), and returns its exit code and its combined output.
func runCmd(t *testing.T, env []string, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = baseEnv(env)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		t.Fatalf("running %s: %v", name, err)
	}
	return 0, string(out)
}

func baseEnv(extra []string) []string {
	env := []string{"TERM=dumb"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "AWS_CA_BUNDLE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}

// expectCode fails the test unless the run exited with code, showing its output.
func (r run) expectCode(t *testing.T, code int) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.Code, code, r.Stdout, r.Stderr)
	}
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// catalog writes a catalog file and returns its path.
func catalog(t *testing.T, content string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "catalog.yaml", content)
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
