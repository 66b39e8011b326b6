package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestListUpstreamExample(t *testing.T) {
	r := cli(t, nil, "list", "--catalog", "../examples/catalog/upstream.yaml")
	r.expectCode(t, 0)
	for _, want := range []string{"azure", "wasb", "repo-test", "git", "docker-connection", "registry", "my-slack", "slack"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("list output lacks %q:\n%s", want, r.Stdout)
		}
	}
}

func TestCatalogMistakesAllReported(t *testing.T) {
	r := cli(t, nil, "list", "--catalog", "../examples/catalog/mistakes.yaml")
	r.expectCode(t, 2)
	for _, want := range []string{
		`connection "data"`, `field kind: unknown kind "s4"`,
		`connection "models"`, `field schema.bukket: unknown field`,
		`connection "scratch"`, `field schema.mountPath: expected an absolute path`,
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	// The same through a run, with the result file and termination log.
	tl := writeFile(t, t.TempDir(), "termination-log", "")
	r = cli(t, []string{"INITIALIZER_TERMINATION_LOG=" + tl}, "--catalog", "../examples/catalog/mistakes.yaml", "--connection", "data", "--path", t.TempDir())
	r.expectCode(t, 2)
	if r.Result["status"] != "failed" || r.Result["exitCode"] != float64(2) || !strings.Contains(r.Result["error"].(string), "bukket") {
		t.Errorf("result = %v", r.Result)
	}
	if b, _ := os.ReadFile(tl); !strings.HasPrefix(string(b), "failed (exit 2)") {
		t.Errorf("termination log = %q", b)
	}
}

func TestCatalogFromEnvironmentAndUnknownConnection(t *testing.T) {
	env := []string{`POLYAXON_CONNECTIONS_CATALOG={"connections":[{"name":"data","kind":"host_path","schema":{"hostPath":"/x","mountPath":"/x"}}]}`}
	r := cli(t, env, "list", "--json")
	r.expectCode(t, 0)
	if !strings.Contains(r.Stdout, `"handler": "built-in"`) {
		t.Errorf("list --json: %s", r.Stdout)
	}
	r = cli(t, env, "--connection", "nope")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, `connection "nope" is not in the catalog`) || !strings.Contains(r.Stderr, "it has: data") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	r = cli(t, nil, "list")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "no connection catalog") {
		t.Errorf("no catalog: %s", r.Stderr)
	}
	r = cli(t, env, "--connection", "data", "--no-such-flag")
	r.expectCode(t, 2)
}

func TestVersion(t *testing.T) {
	r := cli(t, nil, "version")
	r.expectCode(t, 0)
	if !strings.HasPrefix(r.Stdout, "initializer ") {
		t.Errorf("version: %q", r.Stdout)
	}
}

func mountCatalog(t *testing.T, mountPath string, readOnly bool) string {
	return catalog(t, fmt.Sprintf(`
connections:
  - name: data
    kind: volume_claim
    schema: {volumeClaim: datasets, mountPath: %q, readOnly: %v}
`, mountPath, readOnly))
}

func TestMountRunCopiesAndReRunSkips(t *testing.T) {
	src := t.TempDir()
	writeFile(t, src, "train/a.csv", "1,2\n")
	writeFile(t, src, "train/b.csv", "3,4\n")
	writeFile(t, src, "val/c.csv", "5,6\n")
	dst := filepath.Join(t.TempDir(), "data")
	cat := mountCatalog(t, src, false)
	tl := writeFile(t, t.TempDir(), "termination-log", "")
	env := []string{"INITIALIZER_TERMINATION_LOG=" + tl}

	r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst, "--log-format", "json")
	r.expectCode(t, 0)
	res := r.Result["result"].(map[string]any)
	if res["files"] != float64(3) || res["bytes"] != float64(12) || r.Result["kind"] != "volume_claim" {
		t.Errorf("result = %v", r.Result)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "val/c.csv")); string(b) != "5,6\n" {
		t.Errorf("copied content %q", b)
	}
	if !strings.Contains(r.Stderr, `"msg":"done"`) {
		t.Errorf("json log lacks the done line:\n%s", r.Stderr)
	}
	if b, _ := os.ReadFile(tl); !strings.HasPrefix(string(b), "ok: ") || !strings.Contains(string(b), "copied 3 files") {
		t.Errorf("termination log = %q", b)
	}

	r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst, "--paths", "train:t,val/c.csv")
	r.expectCode(t, 0)
	res = r.Result["result"].(map[string]any)
	if res["files"] != float64(2) || res["skipped"] != float64(1) {
		t.Errorf("--paths result = %v", res)
	}
	if _, err := os.Stat(filepath.Join(dst, "t/a.csv")); err != nil {
		t.Error(err)
	}

	// check writes nothing.
	empty := filepath.Join(t.TempDir(), "untouched")
	r = cli(t, nil, "check", "--catalog", cat, "--connection", "data", "--path", empty)
	r.expectCode(t, 0)
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("check created --path: %v", err)
	}
	if !strings.Contains(r.Result["result"].(map[string]any)["summary"].(string), "free of") {
		t.Errorf("check summary: %v", r.Result)
	}
}

func TestMountMissingExitsNotFound(t *testing.T) {
	cat := mountCatalog(t, filepath.Join(t.TempDir(), "not-mounted"), false)
	r := cli(t, nil, "--catalog", cat, "--connection", "data", "--path", t.TempDir())
	r.expectCode(t, 4)
	if !strings.Contains(r.Stderr, `mount the volume claim "datasets" there`) {
		t.Errorf("stderr: %s", r.Stderr)
	}
	r = cli(t, nil, "--catalog", cat, "--connection", "data", "--path", t.TempDir(), "--paths", "../../etc")
	r.expectCode(t, 2)
}

// TestMountReadOnlyButWritableAsked mounts a folder read-only in a private
// mount namespace (as the kubelet would) and asks for it writable.
func TestMountReadOnlyButWritableAsked(t *testing.T) {
	src := t.TempDir()
	writeFile(t, src, "f", "x")
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	wrap := fmt.Sprintf("mount --bind %q %q && mount -o remount,bind,ro %q && exec {}", src, mnt, mnt)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed for this test: %v", err)
	}
	wrapper := "unshare -m sh -c " + shellQuote(wrap)

	r := cliCmd(t, nil, wrapper, "--catalog", mountCatalog(t, mnt, false), "--connection", "data")
	r.expectCode(t, 7)
	if !strings.Contains(r.Stderr, "is mounted read-only but schema.readOnly is false; set readOnly: true") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	// Declared read-only, the same mount checks fine and copies out.
	dst := t.TempDir()
	r = cliCmd(t, nil, wrapper, "--catalog", mountCatalog(t, mnt, true), "--connection", "data", "--path", dst)
	r.expectCode(t, 0)
	if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != "x" {
		t.Errorf("copied %q", b)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestMountSIGTERMLeavesNoTemporaryFiles stops a large copy with SIGTERM.
func TestMountSIGTERMLeavesNoTemporaryFiles(t *testing.T) {
	src := t.TempDir()
	big := make([]byte, 1<<20)
	for i := range 300 {
		writeFile(t, src, fmt.Sprintf("d%02d/f%03d", i%10, i), string(big))
	}
	dst := t.TempDir()
	cmd := exec.Command(binary, "--catalog", mountCatalog(t, src, true), "--connection", "data", "--path", dst, "--workers", "2")
	cmd.Env = baseEnv(nil)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Signal as soon as the first file has landed.
	waitFor(t, 20*time.Second, "a first copied file", func() bool {
		found := false
		filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				found = true
			}
			return nil
		})
		return found
	})
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("wait: %v (the copy finished before SIGTERM?)\n%s", err, stderr.String())
	}
	if ee.ExitCode() != 130 {
		t.Errorf("exit code %d, want 130\n%s", ee.ExitCode(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped by a signal (SIGTERM or SIGINT)") || strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("the error does not say a signal stopped the copy:\n%s", stderr.String())
	}
	copied := 0
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".initializer-tmp-") {
			t.Errorf("temporary file left: %s", p)
		} else if fi, _ := d.Info(); fi.Size() != 1<<20 {
			t.Errorf("half-written file: %s", p)
		}
		copied++
		return nil
	})
	if copied == 300 {
		t.Errorf("all files copied: SIGTERM came too late to test anything")
	}
}

// --workers out of range is a usage error, not a silent default or a
// crash allocating for millions of workers.
func TestWorkersOutOfRange(t *testing.T) {
	cat := mountCatalog(t, t.TempDir(), false)
	for _, n := range []string{"-1", "100000000"} {
		r := cli(t, nil, "--catalog", cat, "--connection", "data", "--path", t.TempDir(), "--workers", n)
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, "--workers") {
			t.Errorf("--workers %s: %s", n, r.Stderr)
		}
		// The sidecar takes the same range.
		r = cli(t, nil, "sidecar", "--catalog", cat, "--connection", "data", "--path", t.TempDir(), "--workers", n)
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, "--workers "+n+": give a number from 1 to 1024") {
			t.Errorf("sidecar --workers %s: %s", n, r.Stderr)
		}
	}
}

// A secret mount that is not there is warned about, and named in the
// error when the credentials are then refused or missing.
func TestMissingSecretMount(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not-mounted")
	for _, c := range []struct {
		entry string
		code  int
	}{
		{`{name: data, kind: gcs, schema: {bucket: "gs://b/p"}, secret: {name: gcs-key, mountPath: ` + missing + `}}`, 2},
		{`{name: data, kind: wasb, schema: {bucket: "az://c/p"}, secret: {name: az-key, mountPath: ` + missing + `}}`, 2},
	} {
		cat := catalog(t, "connections:\n- "+c.entry+"\n")
		r := cli(t, []string{"GOOGLE_APPLICATION_CREDENTIALS=", "HOME=" + t.TempDir()}, "check", "--catalog", cat, "--connection", "data")
		r.expectCode(t, c.code)
		for _, want := range []string{"mountPath " + missing + " does not exist in this container", "level=WARN"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.entry, want, r.Stderr)
			}
		}
		if !strings.Contains(r.Result["error"].(string), "(note: secret "+strings.Split(strings.Split(c.entry, "name: ")[2], ",")[0]) {
			t.Errorf("%s: the error does not name the mount: %v", c.entry, r.Result["error"])
		}
	}

	// A mountPath that names a file (a key's file, not the folder): the
	// keys are missing (exit 2), not unreadable (exit 3), and the mount
	// is named for what it is.
	file := writeFile(t, t.TempDir(), "GC_KEY_PATH", "/nonexistent.json")
	cat := catalog(t, "connections:\n- {name: data, kind: gcs, schema: {bucket: \"gs://b/p\"}, secret: {name: gcs-key, mountPath: "+file+"}}\n")
	r := cli(t, []string{"GOOGLE_APPLICATION_CREDENTIALS=", "HOME=" + t.TempDir()}, "check", "--catalog", cat, "--connection", "data")
	r.expectCode(t, 2)
	if want := "mountPath " + file + " is a file, not the folder the volume is mounted on"; !strings.Contains(r.Stderr, want) {
		t.Errorf("a file as mountPath: stderr lacks %q:\n%s", want, r.Stderr)
	}

	// A mount whose files are named otherwise than the keys: the error
	// lists them (names only), with the keys looked up.
	dir := t.TempDir()
	writeFile(t, dir, "service-account.json", `{"type": "service_account"}`)
	cat = catalog(t, "connections:\n- {name: data, kind: gcs, schema: {bucket: \"gs://b/p\"}, secret: {name: gcs-key, mountPath: "+dir+"}}\n")
	r = cli(t, []string{"GOOGLE_APPLICATION_CREDENTIALS=", "HOME=" + t.TempDir()}, "check", "--catalog", cat, "--connection", "data")
	r.expectCode(t, 2)
	if want := "secret gcs-key: mountPath " + dir + " holds service-account.json, but none is a key looked up ("; !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "GC_KEYFILE_DICT") {
		t.Errorf("misnamed files: stderr lacks %q:\n%s", want, r.Stderr)
	}
	if strings.Contains(r.Stderr, "service_account") {
		t.Errorf("a file's content is shown:\n%s", r.Stderr)
	}
	// A configMap's files are not told about (a CA bundle is read by path).
	cm := t.TempDir()
	writeFile(t, cm, "ca.crt", "-----BEGIN CERTIFICATE-----")
	cat = catalog(t, "connections:\n- {name: data, kind: gcs, schema: {bucket: \"gs://b/p\"}, configMap: {name: ca, mountPath: "+cm+"}}\n")
	r = cli(t, []string{"GOOGLE_APPLICATION_CREDENTIALS=", "HOME=" + t.TempDir()}, "check", "--catalog", cat, "--connection", "data")
	r.expectCode(t, 2)
	if strings.Contains(r.Stderr, "holds ca.crt") {
		t.Errorf("a configMap's files are blamed:\n%s", r.Stderr)
	}
}

// TestUnreadableSecretFile: a secret's key file this user may not read
// says to let it read it, and does not blame the files' names.
func TestUnreadableSecretFile(t *testing.T) {
	base := sharedDir(t, 0o755)
	sec := filepath.Join(base, "sec")
	os.Mkdir(sec, 0o755)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		os.WriteFile(filepath.Join(sec, k), []byte("x"), 0o600) // root's
	}
	cat := filepath.Join(base, "catalog.yaml")
	os.WriteFile(cat, []byte("connections:\n- {name: data, kind: s3, schema: {bucket: \"s3://b/p\"}, secret: {name: creds, mountPath: "+sec+"}}\n"), 0o644)
	code, out := runCmd(t, []string{"HOME=" + base}, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", binary, "check", "--catalog", cat, "--connection", "data")
	if code != 3 || !strings.Contains(out, "let this container's user (uid 65534) read it") ||
		strings.Contains(out, "none is a key looked up") || strings.Contains(out, "write there") {
		t.Errorf("exit %d\n%s", code, out)
	}
}

// A flag refused before the command runs is in the termination log too;
// a --result that is a folder is a usage error, not an internal one.
func TestFlagErrorsReported(t *testing.T) {
	tl := writeFile(t, t.TempDir(), "termination-log", "")
	r := cli(t, []string{"INITIALIZER_TERMINATION_LOG=" + tl}, "--connection", "x", "--workers", "abc")
	r.expectCode(t, 2)
	if b, _ := os.ReadFile(tl); !strings.HasPrefix(string(b), "failed (exit 2)") || !strings.Contains(string(b), "--workers") {
		t.Errorf("termination log = %q", b)
	}
	dir := t.TempDir()
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %s, mountPath: %s}}\n", dir, dir))
	for _, args := range [][]string{
		{"--catalog", cat, "--connection", "data"},
		{"sidecar", "--catalog", cat, "--connection", "data", "--path", t.TempDir(), "--prefix", "p", "--until-file", "/"},
	} {
		os.WriteFile(tl, nil, 0o644)
		cmd := exec.Command(binary, append(args, "--result", t.TempDir())...)
		cmd.Env = baseEnv([]string{"INITIALIZER_TERMINATION_LOG=" + tl})
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "--result") {
			t.Errorf("%s --result on a folder: %v\n%s", args[0], err, out)
		}
		if b, _ := os.ReadFile(tl); !strings.Contains(string(b), "--result") {
			t.Errorf("%s: termination log = %q", args[0], b)
		}
	}
}

// TestFlagsOfOtherKindsRefused: a flag the connection's handler would
// ignore is refused (exit 2), before anything is done: another kind's own
// flag, or a common one the handler does not use.
func TestFlagsOfOtherKindsRefused(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeFile(t, src, "a.txt", "a")
	cat := catalog(t, fmt.Sprintf(`connections:
- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}
- {name: repo, kind: git, schema: {url: "http://127.0.0.1:1/r.git"}}
- {name: docker, kind: registry, schema: {url: "127.0.0.1:1"}}
- {name: bucket, kind: s3, schema: {bucket: "s3://b/p"}}
`, src))
	for _, c := range []struct {
		conn string
		args []string
		want string
	}{
		{"data", []string{"--files", "a.txt"}, "--files is a flag of gcs, s3, wasb connections, not of host_path ones"},
		{"data", []string{"--dirs", "x"}, "--dirs is a flag of gcs, s3, wasb connections"},
		{"data", []string{"--revision", "main"}, "--revision is a flag of git connections"},
		{"repo", []string{"--paths", "README"}, "--paths does not apply to git connections"},
		{"repo", []string{"--checksum"}, "--checksum does not apply to git connections"},
		{"repo", []string{"--workers", "4"}, "--workers does not apply to git connections"},
		{"docker", []string{"--paths", "x"}, "--paths does not apply to registry connections"},
		{"bucket", []string{"--handler", "/bin/true"}, "--handler is a flag of custom (no built-in handler) connections"},
	} {
		for _, cmd := range [][]string{{}, {"check"}} {
			args := append(append(cmd, "--catalog", cat, "--connection", c.conn, "--path", dst), c.args...)
			r := cli(t, nil, args...)
			r.expectCode(t, 2)
			if !strings.Contains(r.Stderr, c.want) || !strings.Contains(r.Stderr, c.conn) {
				t.Errorf("%v: stderr does not say %q:\n%s", args, c.want, r.Stderr)
			}
		}
	}
	// The copy's flags on a mount connection without --path: only a check.
	// And check writes nothing: those flags never apply to it.
	for _, flag := range [][]string{{"--checksum"}, {"--force"}, {"--workers", "3"}} {
		for _, args := range [][]string{
			{"--catalog", cat, "--connection", "data"},
			{"check", "--catalog", cat, "--connection", "data"},
			{"check", "--catalog", cat, "--connection", "data", "--path", dst},
			{"check", "--catalog", cat, "--connection", "bucket"},
		} {
			args = append(args, flag...)
			r := cli(t, nil, args...)
			r.expectCode(t, 2)
			want := flag[0] + " applies to the copy into --path, and no --path is given"
			if args[0] == "check" {
				want = "check writes nothing, so " + flag[0] + " does not apply"
			}
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("%v: stderr does not say %q:\n%s", args, want, r.Stderr)
			}
		}
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a refused run wrote --path")
	}
	// The flags a handler uses still work.
	r := cli(t, nil, "--catalog", cat, "--connection", "data", "--path", dst, "--paths", "a.txt", "--checksum", "--workers", "2", "--force")
	r.expectCode(t, 0)
}

// TestResultWrittenInPlace: a --result that is a file mounted on its own
// (its folder read-only, the file writable, as a subPath mount is) is
// written into; one that cannot be written at all fails the run, and the
// termination log says so, not "ok".
func TestResultWrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", "a")
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %s, mountPath: %s}}\n", dir, dir))
	ro := t.TempDir()
	result := writeFile(t, ro, "result.json", "")
	tl := writeFile(t, t.TempDir(), "termination-log", "")
	script := `mount --bind "$1" "$1" && mount --bind "$2" "$2" && mount -o remount,bind,ro "$1" && shift 2 && exec "$@"`
	env := []string{"INITIALIZER_TERMINATION_LOG=" + tl}
	if code, out := runCmd(t, env, "unshare", "-m", "sh", "-c", script, "sh", ro, result, binary, "--catalog", cat, "--connection", "data", "--result", result); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(result); !strings.Contains(string(b), `"status": "ok"`) {
		t.Errorf("result = %q", b)
	}

	// In a read-only folder, not there yet: exit 7, and the termination
	// log says why.
	missing := filepath.Join(ro, "new.json")
	code, out := runCmd(t, env, "unshare", "-m", "sh", "-c", readOnlyThen, "sh", ro, binary, "--catalog", cat, "--connection", "data", "--result", missing)
	if code != 7 || !strings.Contains(out, "error: cannot write --result") {
		t.Errorf("a read-only folder: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(tl); !strings.HasPrefix(string(b), "failed (exit 7): cannot write --result") {
		t.Errorf("termination log = %q", b)
	}
}

// TestSidecarFlagRanges: each out-of-range sidecar flag is named alone,
// with what to give (exit 2).
func TestSidecarFlagRanges(t *testing.T) {
	cat := catalog(t, "connections:\n- {name: b, kind: s3, schema: {bucket: \"s3://b\"}}\n")
	for flag, want := range map[string]string{
		"--part-size=3": "--part-size 3: give 5 or more", "--memory-budget=0": "--memory-budget 0: give a positive number",
		"--part-concurrency=-1": "--part-concurrency -1: give a positive number", "--grace=0s": "--grace 0s: give a positive duration",
		"--interval=-1s": "--interval -1s: give a positive duration",
	} {
		r := cli(t, nil, "sidecar", "--catalog", cat, "-c", "b", "--path", t.TempDir(), "--prefix", "p", flag)
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("%s: stderr lacks %q:\n%s", flag, want, r.Stderr)
		}
	}
}

// TestMappingMistakes: an entry given twice is named as such, and --paths
// without --path names the connection.
func TestMappingMistakes(t *testing.T) {
	src := t.TempDir()
	writeFile(t, src, "a.txt", "a")
	writeFile(t, src, "b.txt", "b")
	writeFile(t, src, "b.txt:x", "bx")
	writeFile(t, src, "t10:00.txt", "ten")
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--path", t.TempDir(), "--paths", "a.txt,a.txt"}, 2, `connection "data" (host_path): --paths "a.txt" is given twice; give it once`},
		{[]string{"--paths", "a.txt"}, 2, `connection "data" (host_path): --paths needs --path`},
		{[]string{"--path", t.TempDir(), "--paths", "a.txt:../up"}, 2, "a destination relative to --path"},
		{[]string{"--path", t.TempDir(), "--paths", ""}, 2, `--paths is given an empty value`},
		{[]string{"--path", t.TempDir(), "--paths", "a.txt/"}, 2, `--paths "a.txt/": ` + src + `/a.txt is a file, and a name ending with a slash is a folder`},
		{[]string{"--path", t.TempDir(), "--paths", "b.txt:x"}, 2, `--paths "b.txt:x" is read as source "b.txt" to destination "x", and a path "b.txt:x" exists: say which is meant; write \: for a colon`},
		{[]string{"--path", t.TempDir(), "--paths", "t10:00.txt"}, 2, `--paths "t10:00.txt" is read as source "t10" to destination "00.txt", and a path "t10:00.txt" exists`},
		{[]string{"--path", t.TempDir(), "--paths", "t11:00.txt"}, 4, `the entry was read as src:dst at a colon, source "t11"`},
	} {
		r := cli(t, nil, append([]string{"--catalog", cat, "--connection", "data"}, c.args...)...)
		r.expectCode(t, c.code)
		if !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", c.args, c.want, r.Stderr)
		}
	}
	// A colon in a name, after a backslash; ./ keeps src:dst.
	dst := t.TempDir()
	cli(t, nil, "--catalog", cat, "--connection", "data", "--path", dst, "--paths", `t10\:00.txt,b.txt:./y`).expectCode(t, 0)
	for name, want := range map[string]string{"t10:00.txt": "ten", "y": "b"} {
		if got := readText(t, filepath.Join(dst, name)); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// TestReadOnlyTargetNamesTheFix: a --path on a read-only file system
// fails with the local-disk code and says what to give.
func TestReadOnlyTargetNamesTheFix(t *testing.T) {
	src := t.TempDir()
	writeFile(t, src, "a.txt", "a")
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src))
	ro := t.TempDir()
	code, out := runCmd(t, nil, "unshare", "-m", "sh", "-c", readOnlyThen, "sh", ro, binary, "--catalog", cat, "--connection", "data", "--path", filepath.Join(ro, "out"))
	if code != 7 || !strings.Contains(out, "that file system is read-only: give a folder on a writable volume") {
		t.Errorf("exit %d\n%s", code, out)
	}
}

// readOnlyThen, run by sh -c with a folder and a command, makes the folder
// read-only in a private mount namespace (unshare -m), then runs the
// command there.
const readOnlyThen = `mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"`

// TestUnreadableCatalog: a catalog this user may not read is a permission
// fault (exit 3, like any mount it may not read) that says what to give,
// whether it is a file, a folder's file or behind a folder it may not enter.
func TestUnreadableCatalog(t *testing.T) {
	base := sharedDir(t, 0o755)
	file := filepath.Join(base, "catalog.yaml")
	os.WriteFile(file, []byte("connections:\n- {name: data, kind: host_path, schema: {mountPath: /tmp}}\n"), 0o600) // root's
	folder := filepath.Join(base, "cm")
	os.Mkdir(folder, 0o755)
	os.WriteFile(filepath.Join(folder, "c.yaml"), []byte("connections: []\n"), 0o600)
	closed := filepath.Join(base, "closed")
	os.Mkdir(closed, 0o700)
	os.WriteFile(filepath.Join(closed, "c.yaml"), []byte("connections: []\n"), 0o644)
	for _, cat := range []string{file, folder, filepath.Join(closed, "c.yaml")} {
		code, out := runCmd(t, []string{"HOME=" + base}, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", binary, "check", "--catalog", cat, "--connection", "data")
		if code != 3 || !strings.Contains(out, "cannot read the connection catalog") || !strings.Contains(out, "let this container's user (uid 65534) read it") {
			t.Errorf("%s: exit %d\n%s", cat, code, out)
		}
	}
}

// TestMountCopyRerunIntoReadOnlyFolders: as a user other than root, a
// re-run updates a copy whose folders the first run gave the source's
// read-only mode (it makes them writable while it fills them).
func TestMountCopyRerunIntoReadOnlyFolders(t *testing.T) {
	base := sharedDir(t, 0o755)
	src := filepath.Join(base, "src")
	os.MkdirAll(filepath.Join(src, "ro"), 0o755)
	os.WriteFile(filepath.Join(src, "ro", "a"), []byte("one"), 0o644)
	os.Chmod(filepath.Join(src, "ro"), 0o555)
	dst := filepath.Join(base, "dst")
	os.Mkdir(dst, 0o755)
	os.Chown(dst, 65534, 65534)
	cat := filepath.Join(base, "catalog.yaml")
	os.WriteFile(cat, []byte(fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s, readOnly: true}}\n", src)), 0o644)
	for run, content := range []string{"one", "two, longer"} {
		os.WriteFile(filepath.Join(src, "ro", "a"), []byte(content), 0o644)
		code, out := runCmd(t, []string{"HOME=" + base}, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", binary, "--catalog", cat, "--connection", "data", "--path", dst)
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s", run+1, code, out)
		}
		if b, _ := os.ReadFile(filepath.Join(dst, "ro", "a")); string(b) != content {
			t.Fatalf("run %d: copy holds %q", run+1, b)
		}
		if st, _ := os.Stat(filepath.Join(dst, "ro")); st.Mode().Perm() != 0o555 {
			t.Errorf("run %d: folder mode %v", run+1, st.Mode().Perm())
		}
	}
}

// TestResultToDevice: a --result that is a device (/dev/null, /dev/stdout)
// is written to, not replaced by a file.
func TestResultToDevice(t *testing.T) {
	dir := t.TempDir()
	null := filepath.Join(dir, "null")
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	src := t.TempDir()
	writeFile(t, src, "a.txt", "x")
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src))
	code, out := runCmd(t, nil, binary, "--catalog", cat, "--connection", "data", "--result", null)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if st, err := os.Lstat(null); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("the device was replaced: %v %v", st.Mode(), err)
	}
}

// TestResultToStdoutLink: a --result that leads to this process's output
// (/dev/stdout, or a link to /proc/self/fd/1) with stdout sent to a file
// is written there, and the link stays a link; a named pipe no process
// reads is a usage error that says so.
func TestResultToStdoutLink(t *testing.T) {
	dir := t.TempDir()
	src := t.TempDir()
	writeFile(t, src, "a.txt", "x")
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src))
	link := filepath.Join(dir, "out")
	os.Symlink("/proc/self/fd/1", link)
	for _, result := range []string{link, "/dev/stdout"} {
		outFile := filepath.Join(dir, "stdout.txt")
		f, _ := os.Create(outFile)
		cmd := exec.Command(binary, "--catalog", cat, "--connection", "data", "--result", result)
		cmd.Env, cmd.Stdout = baseEnv(nil), f
		err := cmd.Run()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", result, err)
		}
		if b, _ := os.ReadFile(outFile); !strings.Contains(string(b), `"status": "ok"`) {
			t.Errorf("%s: stdout holds %q", result, b)
		}
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the link was replaced: %v %v", st, err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCmd(t, nil, binary, "--catalog", cat, "--connection", "data", "--result", fifo)
	if code != 2 || !strings.Contains(out, "no process reads that pipe") {
		t.Errorf("exit %d\n%s", code, out)
	}
}

// TestResultInMissingFolder: a --result in a folder that does not exist is
// a usage error (exit 2) that names it, and makes no folder.
func TestResultInMissingFolder(t *testing.T) {
	src := t.TempDir()
	writeFile(t, src, "a.txt", "x")
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src))
	base := t.TempDir()
	for _, args := range [][]string{{"check"}, {"--path", filepath.Join(t.TempDir(), "code")}} {
		res := filepath.Join(base, "typo", "sub", "result.json")
		code, out := runCmd(t, nil, binary, append([]string{"--catalog", cat, "--connection", "data", "--result", res}, args...)...)
		if code != 2 || !strings.Contains(out, "cannot write --result "+res) || !strings.Contains(out, "existing folder") {
			t.Errorf("%v: exit %d, want 2 naming --result and the missing folder\n%s", args, code, out)
		}
		if _, err := os.Stat(filepath.Join(base, "typo")); err == nil {
			t.Errorf("%v: the run made the folder of --result", args)
		}
	}
}

// TestResultOfRefusedFlags: a flag the command line refuses fails the run
// (exit 2) with --result written wherever --result stands, before the bad
// flag or after it.
func TestResultOfRefusedFlags(t *testing.T) {
	src := t.TempDir()
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src))
	for _, args := range [][]string{
		{"--bogus", "--result", "RES"},
		{"--result", "RES", "--bogus"},
		{"--workers", "abc", "--result=RES"},
	} {
		res := filepath.Join(t.TempDir(), "result.json")
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "RES", res)
		}
		code, out := runCmd(t, nil, binary, append([]string{"--catalog", cat, "--connection", "data"}, args...)...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, out)
		}
		b, err := os.ReadFile(res)
		var doc map[string]any
		if err != nil || json.Unmarshal(b, &doc) != nil || doc["exitCode"] != float64(2) || doc["status"] != "failed" {
			t.Errorf("%v: --result %q, %v", args, b, err)
		}
		if r, ok := doc["result"].(map[string]any); !ok || r["files"] != float64(0) {
			t.Errorf("%v: --result holds no result: %q", args, b)
		}
	}
}

// TestLogFormatJSONOnly: with --log-format json, everything the run writes
// on stderr is JSON, one document per line: a failed run, a refused flag
// (before or after --log-format), a catalog list that fails.
func TestLogFormatJSONOnly(t *testing.T) {
	src := t.TempDir()
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src))
	for _, args := range [][]string{
		{"--catalog", cat, "--connection", "nope", "--log-format", "json"},
		{"--catalog", cat, "--connection", "data", "--log-format", "json", "--bogus"},
		{"--catalog", cat, "--connection", "data", "--bogus", "--log-format=json"},
		{"list", "--catalog", filepath.Join(src, "missing.yaml"), "--log-format", "json"},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Env = baseEnv(nil)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit 2\n%s", args, err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		sawError := false
		for _, line := range lines {
			var doc map[string]any
			if err := json.Unmarshal([]byte(line), &doc); err != nil {
				t.Errorf("%v: a line of stderr is not JSON: %q", args, line)
				continue
			}
			sawError = sawError || doc["level"] == "ERROR" && doc["error"] != nil
		}
		if !sawError {
			t.Errorf("%v: no JSON line carries the error:\n%s", args, stderr.String())
		}
	}
	// A custom handler's stderr is relayed as log lines, whatever the level.
	hcat := catalog(t, "connections:\n- {name: job, kind: custom}\n")
	cmd := exec.Command(binary, "--catalog", hcat, "-c", "job", "--path", t.TempDir(), "--handler", recordHandler(t), "--log-format", "json", "--log-level", "error")
	cmd.Env = baseEnv(nil)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("handler run: %v\n%s", err, stderr.String())
	}
	relayed := false
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Errorf("handler run: a line of stderr is not JSON: %q", line)
			continue
		}
		relayed = relayed || doc["line"] == "record: to stderr"
	}
	if !relayed {
		t.Errorf("the handler's stderr line is not in the log:\n%s", stderr.String())
	}
}

// TestTerminalProgress: on a terminal, a copy draws its bar among text
// logs, counting every file to copy; with --log-format json, stderr holds
// JSON lines only, so there is no bar.
func TestTerminalProgress(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("script (util-linux) gives the run a terminal: %v", err)
	}
	src := t.TempDir()
	for i := range 40 {
		writeFile(t, src, fmt.Sprintf("f%02d", i), "data")
	}
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src))
	onTTY := func(args ...string) string {
		line := shellQuote(binary)
		for _, a := range append([]string{"--catalog", cat, "--connection", "data", "--path", t.TempDir()}, args...) {
			line += " " + shellQuote(a)
		}
		code, out := runCmd(t, nil, "script", "-qec", line, "/dev/null")
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", line, code, out)
		}
		return strings.ReplaceAll(out, "\r", "\n")
	}
	if out := onTTY(); !strings.Contains(out, "] 40/40 files · 40 files, 0 up to date, 160 B") {
		t.Errorf("no bar, or not counting the files to copy:\n%s", out)
	}
	for _, line := range strings.Split(onTTY("--log-format", "json"), "\n") {
		if line = strings.TrimSpace(line); line != "" && !json.Valid([]byte(line)) {
			t.Errorf("a line that is no JSON on stderr with --log-format json: %q", line)
		}
	}
}

// TestResultOnEveryFailure: --result holds a result, with zero counts,
// also for a run that fails before its handler reports one.
func TestResultOnEveryFailure(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not-mounted")
	cat := catalog(t, fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", missing))
	for _, args := range [][]string{{"--connection", "data", "--path", t.TempDir()}, {"--connection", "nosuch", "--path", t.TempDir()}, {"check", "--connection", "data"}} {
		r := cli(t, nil, append([]string{"--catalog", cat}, args...)...)
		if r.Code == 0 {
			t.Fatalf("%v: exit 0", args)
		}
		res, ok := r.Result["result"].(map[string]any)
		if !ok || res["files"] != float64(0) || res["bytes"] != float64(0) || !strings.Contains(fmt.Sprint(res["summary"]), "no result (the run failed before its handler reported one)") {
			t.Errorf("%v: result %v", args, r.Result)
		}
	}
}

// TestTerminationLogCapped: a long failure (every connection of a large
// catalog misspelt) is cut to what the kubelet keeps for each of a pod's
// containers, with the mark of the cut.
func TestTerminationLogCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("connections:\n")
	for i := range 40 {
		fmt.Fprintf(&b, "- {name: dataset-number-%d, kind: s3, schema: {bukket: \"s3://b/p\"}}\n", i)
	}
	cat := catalog(t, b.String())
	tl := writeFile(t, t.TempDir(), "termination-log", "")
	r := cli(t, []string{"INITIALIZER_TERMINATION_LOG=" + tl}, "--catalog", cat, "--connection", "dataset-number-1", "--path", t.TempDir())
	r.expectCode(t, 2)
	got, _ := os.ReadFile(tl)
	if len(got) > 2000 || !strings.HasSuffix(string(got), "…\n") || !strings.HasPrefix(string(got), "failed (exit 2)") {
		t.Errorf("termination log of %d bytes: %q", len(got), got)
	}
}
