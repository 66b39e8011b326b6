package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recordHandler is the test handler program (integration/handlers).
func recordHandler(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("handlers/initializer-handler-record")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// handlerEnv reads the environment the record handler saw (NAME=value
// lines; the test's values are single-line).
func handlerEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "env"))
	if err != nil {
		t.Fatalf("the handler did not record its environment: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCustomHandlerProtocol(t *testing.T) {
	const password = "pg-secret-password-8d2f"
	secretDir := regSecret(t, map[string]string{
		"username":    "analyst",
		"password":    password + "\n",
		"config.json": `{"sslmode":"require"}`,
		"unlisted":    "not allowed by items",
	})
	cmDir := regSecret(t, map[string]string{"password": "configmap-loses", "mode": "read-only"})
	cat := catalog(t, fmt.Sprintf(`
connections:
  - name: warehouse
    kind: postgres
    schema:
      host: 127.0.0.1
      port: 5432
      db_name: analytics
      connectionString: postgres://127.0.0.1:5432/analytics
      options: {timeout: 5}
    secret: {name: pg-creds, mountPath: %q, items: [username, password, config.json]}
    configMap: {name: pg-settings, mountPath: %q}
    env:
      - {name: FROM_CONNECTION_ENV, value: "yes"}
`, secretDir, cmDir))
	out := filepath.Join(t.TempDir(), "target")
	r := cli(t, []string{"RECORD_RESULT=1", "RECORD_ECHO_VAR=password"},
		"--catalog", cat, "-c", "warehouse", "--path", out, "--handler", recordHandler(t), "--paths", "a:b", "--workers", "3", "--checksum")
	r.expectCode(t, 0)

	// Output relayed; the secret the handler printed is blanked.
	if !strings.Contains(r.Stdout, "record: kind=postgres name=warehouse\n") {
		t.Errorf("stdout not relayed: %q", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "record: to stderr\n") || !strings.Contains(r.Stderr, "record: password is [redacted]\n") {
		t.Errorf("stderr not relayed or not scrubbed:\n%s", r.Stderr)
	}
	regNoSecret(t, r, password)

	// The connection as JSON.
	var conn map[string]any
	if err := json.Unmarshal([]byte(readText(t, filepath.Join(out, "connection.json"))), &conn); err != nil {
		t.Fatal(err)
	}
	schema, _ := conn["schema"].(map[string]any)
	if conn["name"] != "warehouse" || conn["kind"] != "postgres" || schema["db_name"] != "analytics" || conn["secret"].(map[string]any)["name"] != "pg-creds" {
		t.Errorf("INITIALIZER_CONNECTION = %v", conn)
	}
	// Nothing on argv: no arguments, and no secret on the command line.
	if argv := readText(t, filepath.Join(out, "argv")); argv != "0\n" {
		t.Errorf("argv = %q", argv)
	}
	if cmdline := readText(t, filepath.Join(out, "cmdline")); strings.Contains(cmdline, password) || strings.Contains(cmdline, "analyst") {
		t.Errorf("a key on the command line: %q", cmdline)
	}

	env := handlerEnv(t, out)
	for k, want := range map[string]string{
		"password":                             password, // from the secret, trailing newline dropped; the configMap's loses
		"username":                             "analyst",
		"config_json":                          `{"sslmode":"require"}`,
		"mode":                                 "read-only",
		"FROM_CONNECTION_ENV":                  "yes",
		"INITIALIZER_PATH":                     out,
		"INITIALIZER_KIND":                     "postgres",
		"INITIALIZER_CONNECTION_NAME":          "warehouse",
		"INITIALIZER_PATHS":                    `[{"dst":"b","src":"a"}]`,
		"INITIALIZER_WORKERS":                  "3",
		"INITIALIZER_FORCE":                    "false",
		"INITIALIZER_CHECKSUM":                 "true",
		"INITIALIZER_SECRET_DIR":               secretDir,
		"INITIALIZER_CONFIG_MAP_DIR":           cmDir,
		"INITIALIZER_SCHEMA_HOST":              "127.0.0.1",
		"INITIALIZER_SCHEMA_PORT":              "5432",
		"INITIALIZER_SCHEMA_DB_NAME":           "analytics",
		"INITIALIZER_SCHEMA_CONNECTION_STRING": "postgres://127.0.0.1:5432/analytics",
		"INITIALIZER_SCHEMA_OPTIONS":           `{"timeout":5}`,
	} {
		if env[k] != want {
			t.Errorf("$%s = %q, want %q", k, env[k], want)
		}
	}
	if _, ok := env["unlisted"]; ok {
		t.Error("a key outside secret.items was passed")
	}

	// The handler's result becomes the run's.
	res := r.Result["result"].(map[string]any)
	if !strings.HasSuffix(res["summary"].(string), ": recorded postgres") || res["files"] != float64(3) || res["bytes"] != float64(7) || res["path"] != out {
		t.Errorf("result = %v", res)
	}
	if d := res["details"].(map[string]any); d["exitCode"] != float64(0) || d["handlerDetails"].(map[string]any)["by"] != "record" {
		t.Errorf("details = %v", d)
	}
}

// A handler has the secret's keys in its environment: whatever it writes to
// $INITIALIZER_RESULT is scrubbed, the details' nested values and keys too.
func TestCustomHandlerResultScrubbed(t *testing.T) {
	const password = "S3cretPGpass!"
	secretDir := regSecret(t, map[string]string{"password": password})
	cat := catalog(t, fmt.Sprintf(`
connections:
  - name: pg
    kind: postgres
    secret: {name: csec, mountPath: %q}
`, secretDir))
	handler := writeFile(t, t.TempDir(), "h", `#!/bin/sh
printf '{"summary":"sum %s","details":{"leak":"%s","list":[{"deep":"x %s"}],"%s":"key"}}' \
	"$password" "$password" "$password" "$password" >"$INITIALIZER_RESULT"
`)
	if err := os.Chmod(handler, 0o755); err != nil {
		t.Fatal(err)
	}
	r := cli(t, nil, "--catalog", cat, "-c", "pg", "--handler", handler)
	r.expectCode(t, 0)
	regNoSecret(t, r, password)
	res := r.Result["result"].(map[string]any)
	hd, _ := res["details"].(map[string]any)["handlerDetails"].(map[string]any)
	if !strings.HasSuffix(res["summary"].(string), "sum [redacted]") || hd["leak"] != "[redacted]" || hd["[redacted]"] != "key" {
		t.Errorf("result: %v", res)
	}
	if list, _ := hd["list"].([]any); len(list) != 1 || list[0].(map[string]any)["deep"] != "x [redacted]" {
		t.Errorf("details: %v", hd)
	}
}

// A secret that spans lines (a PEM key) is blanked whole in the relayed
// output, also when the handler prints it a line at a time.
func TestCustomHandlerMultiLineSecretRelayed(t *testing.T) {
	const body1, body2 = "MIIEpAIBAAKCAQEAx8Jd0qLrT3", "9zZ0b3rtQwErTyUiOp1aSdFg"
	key := "-----BEGIN RSA PRIVATE KEY-----\n" + body1 + "\n" + body2 + "\n-----END RSA PRIVATE KEY-----"
	secretDir := regSecret(t, map[string]string{"ssh_key": key + "\n"})
	cat := catalog(t, fmt.Sprintf(`
connections:
  - name: box
    kind: ssh
    secret: {name: ssh-creds, mountPath: %q}
`, secretDir))
	// The pauses make each line a read of its own on the relay's side.
	handler := writeFile(t, t.TempDir(), "h", `#!/bin/sh
echo "the key:"
printf '%s\n' "$ssh_key" | while IFS= read -r line; do printf '%s\n' "$line"; sleep 0.2; done
echo "done"
`)
	if err := os.Chmod(handler, 0o755); err != nil {
		t.Fatal(err)
	}
	r := cli(t, nil, "--catalog", cat, "-c", "box", "--handler", handler)
	r.expectCode(t, 0)
	regNoSecret(t, r, body1, body2)
	if r.Stdout != "the key:\n[redacted]\ndone\n" {
		t.Errorf("stdout: %q", r.Stdout)
	}
	// One line of it printed alone (as sed -n 2p of the key file does).
	handler = writeFile(t, t.TempDir(), "h", `#!/bin/sh
echo "line: $(sed -n 3p "$INITIALIZER_SECRET_DIR/ssh_key")"
`)
	if err := os.Chmod(handler, 0o755); err != nil {
		t.Fatal(err)
	}
	r = cli(t, nil, "--catalog", cat, "-c", "box", "--handler", handler)
	r.expectCode(t, 0)
	regNoSecret(t, r, body1, body2)
	if r.Stdout != "line: [redacted]\n" {
		t.Errorf("one line of the key printed alone: stdout %q", r.Stdout)
	}
}

// onPath returns a PATH holding the record handler under the given names.
func onPath(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.Symlink(recordHandler(t), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir + ":" + os.Getenv("PATH")
}

func TestCustomHandlerFromPATHAndExitCode(t *testing.T) {
	cat := catalog(t, `
connections:
  - name: alerts
    kind: slack
    schema: {channel: "#ml"}
  - name: hive
    kind: hive_cli
`)
	path := onPath(t, "initializer-handler-slack", "initializer-handler-hive-cli")
	out := t.TempDir()
	r := cli(t, []string{"PATH=" + path}, "--catalog", cat, "-c", "alerts", "--path", out)
	r.expectCode(t, 0)
	if env := handlerEnv(t, out); env["INITIALIZER_SCHEMA_CHANNEL"] != "#ml" || env["INITIALIZER_KIND"] != "slack" {
		t.Errorf("env: %v", env)
	}
	if d := r.Result["result"].(map[string]any)["details"].(map[string]any); !strings.Contains(d["handler"].(string), "initializer-handler-slack (from PATH)") {
		t.Errorf("details: %v", d)
	}

	// The exit code is the handler's.
	r = cli(t, []string{"PATH=" + path, "RECORD_EXIT=7"}, "--catalog", cat, "-c", "alerts", "--path", t.TempDir())
	r.expectCode(t, 7)
	if !strings.Contains(r.Stderr, "initializer-handler-slack exited with code 7") || r.Result["exitCode"] != float64(7) {
		t.Errorf("stderr: %s\nresult %v", r.Stderr, r.Result)
	}
	// What a failing handler reported before it failed is kept.
	r = cli(t, []string{"PATH=" + path, "RECORD_EXIT=7", "RECORD_RESULT=1"}, "--catalog", cat, "-c", "alerts", "--path", t.TempDir())
	r.expectCode(t, 7)
	if res, _ := r.Result["result"].(map[string]any); res == nil || res["files"] != float64(3) || res["bytes"] != float64(7) ||
		!strings.Contains(res["summary"].(string), "failed (exit code 7); it reported: recorded slack") {
		t.Errorf("the handler's own result is lost: %v", r.Result)
	}

	// Above 128 the code stands for a signal (the shells' 128+n): it still
	// passes through, and the log and the error name the signal.
	for _, tc := range []struct {
		code        int
		class, note string
	}{
		{143, "signal SIGTERM (terminated)", "(128 + SIGTERM: terminated)"},
		{139, "signal SIGSEGV (segmentation fault)", "(128 + SIGSEGV: segmentation fault)"},
	} {
		r = cli(t, []string{"PATH=" + path, fmt.Sprintf("RECORD_EXIT=%d", tc.code)}, "--catalog", cat, "-c", "alerts", "--path", t.TempDir())
		r.expectCode(t, tc.code)
		if !strings.Contains(r.Stderr, fmt.Sprintf("exitCode=%d class=%q", tc.code, tc.class)) || r.Result["exitCode"] != float64(tc.code) ||
			!strings.Contains(r.Result["error"].(string), fmt.Sprintf("exited with code %d %s", tc.code, tc.note)) {
			t.Errorf("exit %d: stderr: %s\nresult %v", tc.code, r.Stderr, r.Result)
		}
	}

	// hive_cli also finds initializer-handler-hive-cli.
	out = t.TempDir()
	r = cli(t, []string{"PATH=" + path}, "--catalog", cat, "-c", "hive", "--path", out)
	r.expectCode(t, 0)
	if env := handlerEnv(t, out); env["INITIALIZER_KIND"] != "hive_cli" {
		t.Errorf("env: %v", env)
	}

	// --handler wins over PATH, and may carry arguments.
	r = cli(t, []string{"PATH=" + path}, "--catalog", cat, "-c", "alerts", "--path", out, "--handler", recordHandler(t)+" one two")
	r.expectCode(t, 0)
	if argv := readText(t, filepath.Join(out, "argv")); argv != "2\none\ntwo\n" {
		t.Errorf("argv = %q", argv)
	}
	// Quotes a shell would read are refused, not passed on as part of
	// the arguments.
	for _, args := range []string{` --name 'my db'`, ` "a b"`, ` a\ b`} {
		r = cli(t, []string{"PATH=" + path}, "--catalog", cat, "-c", "alerts", "--path", t.TempDir(), "--handler", recordHandler(t)+args)
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, "quotes and backslashes are not read as a shell reads them") {
			t.Errorf("--handler ...%s:\n%s", args, r.Stderr)
		}
	}
}

func TestCustomNoHandlerExits2(t *testing.T) {
	cat := catalog(t, `
connections:
  - name: alerts
    kind: slack
`)
	r := cli(t, nil, "--catalog", cat, "-c", "alerts", "--path", t.TempDir())
	r.expectCode(t, 2)
	for _, want := range []string{"give one with --handler PROGRAM", "install an executable named initializer-handler-slack on PATH", "$INITIALIZER_CONNECTION"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	r = cli(t, nil, "--catalog", cat, "-c", "alerts", "--handler", "/no/such/handler")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "--handler /no/such/handler does not exist") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	notExec := writeFile(t, t.TempDir(), "handler.sh", "#!/bin/sh\nexit 0\n")
	r = cli(t, nil, "--catalog", cat, "-c", "alerts", "--handler", notExec)
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "is not executable; chmod +x it") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	// On PATH without its execute bits: named as such, not as missing.
	bin := t.TempDir()
	writeFile(t, bin, "initializer-handler-slack", "#!/bin/sh\nexit 0\n")
	r = cli(t, []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, "--catalog", cat, "-c", "alerts", "--path", t.TempDir())
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "initializer-handler-slack (mode -rw-r--r--) is on PATH but this user") {
		t.Errorf("not executable on PATH: %s", r.Stderr)
	}
	// A script whose interpreter the image lacks names the interpreter;
	// one with Windows line endings (the kernel looks for "/bin/sh\r") says so.
	for script, want := range map[string]string{
		"#!/no/such/interpreter -e\nexit 0\n": "its interpreter (/no/such/interpreter -e, on its #! line) is not in this image",
		"#!/bin/sh\r\nexit 0\r\n":             "it has Windows line endings (CRLF)",
	} {
		handler := writeFile(t, t.TempDir(), "handler.sh", script)
		os.Chmod(handler, 0o755)
		r = cli(t, nil, "--catalog", cat, "-c", "alerts", "--handler", handler, "--path", t.TempDir())
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("%q: stderr lacks %q: %s", script, want, r.Stderr)
		}
	}
	// check reports the missing handler without failing.
	r = cli(t, nil, "check", "--catalog", cat, "-c", "alerts")
	r.expectCode(t, 0)
	if !strings.Contains(r.Result["result"].(map[string]any)["summary"].(string), "no handler program found") {
		t.Errorf("check: %v", r.Result)
	}
}

// startHandlerRun starts a run of the record handler that waits for a
// signal, and returns it once the handler is ready.
func startHandlerRun(t *testing.T, env ...string) (*exec.Cmd, *strings.Builder, string) {
	t.Helper()
	out := t.TempDir()
	cat := catalog(t, `
connections:
  - name: job
    kind: custom
`)
	cmd := exec.Command(binary, "--catalog", cat, "-c", "job", "--path", out, "--handler", recordHandler(t))
	cmd.Env = baseEnv(append([]string{"RECORD_WAIT=1"}, env...))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, 20*time.Second, "the handler to be ready", func() bool {
		b, err := os.ReadFile(filepath.Join(out, "ready"))
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err == nil && pid > 0
	})
	// Should the test fail half-way, leave no handler (nor its sleep) behind.
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	return cmd, &stderr, out
}

// waitOrKill waits for cmd; if it has not ended after limit, it kills it
// and fails the test (a hang must fail, not block the suite).
func waitOrKill(t *testing.T, cmd *exec.Cmd, limit time.Duration, what string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("timed out after %v waiting for %s", limit, what)
		return nil
	}
}

func TestCustomHandlerSignalsForwarded(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{{syscall.SIGTERM, 42, "TERM"}, {syscall.SIGINT, 43, "INT"}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, stderr, out := startHandlerRun(t)
			// Only the initializer is signalled (the handler runs in its own
			// process group): it must forward the signal.
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			err := waitOrKill(t, cmd, 60*time.Second, "the initializer to end after the signal (was it forwarded?)")
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != tc.code {
				t.Fatalf("wait: %v, want exit code %d\n%s", err, tc.code, stderr)
			}
			// Exactly once: the signal, not also a SIGTERM of its own.
			if got := readText(t, filepath.Join(out, "signal")); got != tc.name+"\n" {
				t.Errorf("the handler got %q, want %s once", got, tc.name)
			}
			if !strings.Contains(stderr.String(), "forwarding signal to the handler") || !strings.Contains(stderr.String(), fmt.Sprintf("exited with code %d after", tc.code)) {
				t.Errorf("stderr:\n%s", stderr)
			}
		})
	}
	// A handler that ends with 128 + the forwarded signal (a shell's trap
	// that exits 143, a shell whose child the signal killed) was stopped by
	// it: the run exits 130, as any run a signal stops.
	cmd, stderr, _ := startHandlerRun(t, "RECORD_TERM_EXIT=143")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := waitOrKill(t, cmd, 60*time.Second, "the initializer to end after SIGTERM")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("wait: %v, want exit code 130\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "exited with code 143 (128 + SIGTERM) after SIGTERM was forwarded to it") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestCustomHandlerParentKilled: a run killed outright (SIGKILL, the OOM
// killer) cannot forward anything; the kernel sends the handler SIGTERM in
// its place, so that it does not run on, orphaned.
func TestCustomHandlerParentKilled(t *testing.T) {
	cmd, stderr, out := startHandlerRun(t)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	signalFile := filepath.Join(out, "signal")
	waitFor(t, 20*time.Second, "the handler to get a signal once the run was killed", func() bool {
		b, err := os.ReadFile(signalFile)
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	// The kernel signals it as each of the killed process's threads ends:
	// once or more, SIGTERM only.
	if got := readText(t, signalFile); strings.Trim(strings.ReplaceAll(got, "TERM\n", ""), "\n") != "" {
		t.Errorf("the handler got %q, want TERM\n%s", got, stderr)
	}
}

func TestCustomCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open := l.Addr().(*net.TCPAddr).Port
	closed := regFreePort(t)
	secretDir := regSecret(t, map[string]string{"username": "u", "password": "p"})
	missing := filepath.Join(t.TempDir(), "not-mounted")
	cat := catalog(t, fmt.Sprintf(`
connections:
  - name: db
    kind: postgres
    schema: {host: 127.0.0.1, port: %[1]d}
    secret: {name: pg, mountPath: %[3]q, items: [username, password]}
  - name: db-down
    kind: mysql
    schema: {host: "127.0.0.1:%[2]d"}
  - name: api
    kind: http
    schema: {url: "http://127.0.0.1:%[1]d/v1/data"}
  - name: no-mount
    kind: ssh
    secret: {name: ssh-key, mountPath: %[4]q}
  - name: no-key
    kind: redis
    secret: {name: pg, mountPath: %[3]q, items: [username, token]}
  - name: env-keys
    kind: mongo
    secret: {name: mongo, items: [MONGO_PASSWORD]}
  - name: url-no-port
    kind: custom
    schema: {endpoint: "weird://127.0.0.1/x"}
`, open, closed, secretDir, missing))
	marker := filepath.Join(t.TempDir(), "ran")

	r := cli(t, []string{"INITIALIZER_PATH=" + marker}, "check", "--catalog", cat, "-c", "db", "--handler", recordHandler(t))
	r.expectCode(t, 0)
	sum := r.Result["result"].(map[string]any)["summary"].(string)
	for _, want := range []string{`secret "pg" mounted at ` + secretDir + " with keys username, password", fmt.Sprintf("127.0.0.1:%d accepts TCP connections", open), "handler " + recordHandler(t)} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q: %s", want, sum)
		}
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Error("check ran the handler")
	}

	r = cli(t, nil, "check", "--catalog", cat, "-c", "db-down")
	r.expectCode(t, 5)
	if !strings.Contains(r.Stderr, fmt.Sprintf("127.0.0.1:%d (schema.host) does not accept TCP connections", closed)) {
		t.Errorf("stderr: %s", r.Stderr)
	}

	r = cli(t, nil, "check", "--catalog", cat, "-c", "api")
	r.expectCode(t, 0)
	if d := r.Result["result"].(map[string]any)["details"].(map[string]any); d["address"] != fmt.Sprintf("127.0.0.1:%d", open) {
		t.Errorf("details: %v", d)
	}

	r = cli(t, nil, "check", "--catalog", cat, "-c", "no-mount")
	r.expectCode(t, 4)
	if !strings.Contains(r.Stderr, `secret "ssh-key" is not mounted at `+missing) {
		t.Errorf("stderr: %s", r.Stderr)
	}
	// A run fails the same way before starting any handler.
	r = cli(t, []string{"PATH=" + onPath(t, "initializer-handler-ssh")}, "--catalog", cat, "-c", "no-mount", "--path", marker)
	r.expectCode(t, 4)
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Error("the handler ran despite the missing mount")
	}

	r = cli(t, nil, "check", "--catalog", cat, "-c", "no-key")
	r.expectCode(t, 4)
	if !strings.Contains(r.Stderr, `has no key "token" (listed in secret.items)`) {
		t.Errorf("stderr: %s", r.Stderr)
	}

	r = cli(t, nil, "check", "--catalog", cat, "-c", "env-keys")
	r.expectCode(t, 4)
	if !strings.Contains(r.Stderr, `key "MONGO_PASSWORD" is not in the environment`) {
		t.Errorf("stderr: %s", r.Stderr)
	}
	r = cli(t, []string{"MONGO_PASSWORD=x"}, "check", "--catalog", cat, "-c", "env-keys")
	r.expectCode(t, 0)

	r = cli(t, nil, "check", "--catalog", cat, "-c", "url-no-port")
	r.expectCode(t, 0)
	if d := r.Result["result"].(map[string]any)["details"].(map[string]any); !strings.Contains(fmt.Sprint(d["addressNote"]), `scheme "weird" has no well-known one`) {
		t.Errorf("details: %v", d)
	}
}

// TestCustomExampleHTTPHandler runs the README's example handler
// (examples/custom-handler) against a real HTTP server that wants the
// secret's token.
func TestCustomExampleHTTPHandler(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the example handler needs curl: %v", err)
	}
	const token = "example-bearer-token-61be"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "label,count\ncat,3\n")
	}))
	defer srv.Close()
	examples, err := filepath.Abs("../examples/custom-handler")
	if err != nil {
		t.Fatal(err)
	}
	secretDir := regSecret(t, map[string]string{"token": token})
	cat := catalog(t, fmt.Sprintf(`
connections:
  - name: labels
    kind: http
    schema: {url: %q}
    secret: {name: labels-token, mountPath: %q}
`, srv.URL+"/files/labels.csv", secretDir))
	env := []string{"PATH=" + examples + ":" + os.Getenv("PATH")}
	out := t.TempDir()
	r := cli(t, env, "--catalog", cat, "-c", "labels", "--path", out)
	r.expectCode(t, 0)
	regNoSecret(t, r, token)
	if got := readText(t, filepath.Join(out, "labels.csv")); got != "label,count\ncat,3\n" {
		t.Errorf("downloaded %q", got)
	}
	res := r.Result["result"].(map[string]any)
	if !strings.Contains(res["summary"].(string), "downloaded "+srv.URL) || res["bytes"] != float64(18) {
		t.Errorf("result: %v", res)
	}
	// A wrong token: curl fails, and so does the run, with curl's exit code.
	wrong := regSecret(t, map[string]string{"token": "wrong-token-0000"})
	cat = catalog(t, fmt.Sprintf(`
connections:
  - name: labels
    kind: http
    schema: {url: %q}
    secret: {name: labels-token, mountPath: %q}
`, srv.URL+"/files/labels.csv", wrong))
	r = cli(t, env, "--catalog", cat, "-c", "labels", "--path", t.TempDir())
	r.expectCode(t, 22) // curl -f on an HTTP error
	regNoSecret(t, r, "wrong-token-0000")
}

// TestCustomHandlerKeysOfOneVariable: two keys of a secret that map to one
// variable name (a-b and a_b): the first (in name order) is passed, the
// other is named in a warning with the file to read, not lost silently.
func TestCustomHandlerKeysOfOneVariable(t *testing.T) {
	secretDir := regSecret(t, map[string]string{"a-b": "dashed-value", "a_b": "underscored-value"})
	cat := catalog(t, fmt.Sprintf(`
connections:
  - name: db
    kind: postgres
    secret: {name: db-creds, mountPath: %q}
`, secretDir))
	out := t.TempDir()
	r := cli(t, nil, "--catalog", cat, "-c", "db", "--path", out, "--handler", recordHandler(t))
	r.expectCode(t, 0)
	if env := handlerEnv(t, out); env["a_b"] != "dashed-value" {
		t.Errorf("a_b = %q, want the value of the key a-b", env["a_b"])
	}
	if !strings.Contains(r.Stderr, "key not passed as an environment variable") || !strings.Contains(r.Stderr, "a_b (its variable a_b is the key a-b's; read the file "+filepath.Join(secretDir, "a_b")) {
		t.Errorf("no warning names the key left out:\n%s", r.Stderr)
	}
	// A key not passed itself (binary) leaves its variable to the other.
	secretDir = regSecret(t, map[string]string{"db-cert": "bin\x00ary", "db_cert": "textvalue123"})
	cat = catalog(t, fmt.Sprintf(`
connections:
  - name: db
    kind: postgres
    secret: {name: db-creds, mountPath: %q}
`, secretDir))
	out = t.TempDir()
	r = cli(t, nil, "--catalog", cat, "-c", "db", "--path", out, "--handler", recordHandler(t))
	r.expectCode(t, 0)
	if env := handlerEnv(t, out); env["db_cert"] != "textvalue123" {
		t.Errorf("db_cert = %q, want the value of the key db_cert (db-cert is binary)\n%s", env["db_cert"], r.Stderr)
	}
}
