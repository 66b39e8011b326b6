package integration

// End-to-end tests of `initializer sidecar`: --exclude with "**", a state
// file inside --path, mount stores (names the storage library escapes, a
// killed upload, --grace during a long copy), and $POLYAXON_RUN_INSTANCE.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/initializer/initializer/integration/testenv"
)

// --exclude "**" globs leave out what they name at any depth, against MinIO.
func TestSidecarExcludeDoubleStar(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "outputs")
	for _, name := range []string{"keep.txt", "x.tmp", "a/b/y.tmp", "run/ckpt/w.bin", "run/ckpt.txt", "logs/debug.log", "logs/r/s/debug.log", "logs/r/info.log"} {
		writeFile(t, dir, name, name)
	}
	until := filepath.Join(t.TempDir(), "done")
	writeFile(t, filepath.Dir(until), "done", "")
	p := startSidecar(t, cat, append(tg.env, "POLYAXON_RUN_INSTANCE=acme.vision.runs.r1"), "--connection", "data", "--path", dir,
		"--exclude", "**/*.tmp", "--exclude", "**/ckpt/", "--exclude", "logs/**/debug.log", "--until-file", until, "--check-interval", "100ms")
	code, res := p.wait(t)
	if code != 0 || len(notUploaded(t, res)) != 0 {
		t.Fatalf("exit %d, %v\n%s", code, scDetails(t, res), p.stderr.String())
	}
	if got, want := tg.list(t, ""), []string{"r1/keep.txt", "r1/logs/r/info.log", "r1/run/ckpt.txt"}; !slices.Equal(got, want) {
		t.Errorf("in the bucket %v, want %v", got, want)
	}
	r := cli(t, tg.env, "sidecar", "--catalog", cat, "--connection", "data", "--path", dir, "--prefix", "r1", "--exclude", "logs/**/[debug.log")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, `--exclude "logs/**/[debug.log" is not a valid glob`) {
		t.Errorf("stderr: %s", r.Stderr)
	}
}

// A --state file inside --path is not uploaded, and the final flush ends
// at once instead of chasing it (each upload rewrote it) for the whole
// --grace and then naming it not uploaded.
func TestSidecarStateInsidePath(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "outputs")
	writeFile(t, dir, "a.txt", "a")
	p := startSidecar(t, cat, append(tg.env, "POLYAXON_RUN_INSTANCE=acme.vision.runs.r2"), "--connection", "data", "--path", dir,
		"--state", filepath.Join(dir, "meta", "sidecar.state"), "--interval", "300ms", "--grace", "8s")
	waitFor(t, time.Minute, "a.txt in the bucket", func() bool { _, ok := tg.get(t, "r2/a.txt"); return ok })
	writeFile(t, dir, "b.txt", "b")
	start := time.Now()
	code, res := p.term(t)
	took := time.Since(start)
	d := scDetails(t, res)
	if code != 0 || d["flushComplete"] != true || len(notUploaded(t, res)) != 0 || took > 4*time.Second {
		t.Fatalf("exit %d after %v, %v\n%s", code, took, d, p.stderr.String())
	}
	if got, want := tg.list(t, ""), []string{"r2/a.txt", "r2/b.txt"}; !slices.Equal(got, want) {
		t.Errorf("in the bucket %v, want %v", got, want)
	}
	if !strings.Contains(p.stderr.String(), "the state file is inside --path: it is not uploaded") {
		t.Errorf("not logged:\n%s", p.stderr.String())
	}
}

// A malformed $POLYAXON_RUN_INSTANCE is named as such, quoted, with the
// form expected; one with space around it gives the uuid without it.
func TestSidecarRunInstance(t *testing.T) {
	mount := t.TempDir()
	cat := catalog(t, fmt.Sprintf("artifactsStore:\n  name: store\n  kind: host_path\n  schema: {hostPath: %s, mountPath: %s}\n", mount, mount))
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "a.txt", "a")
	until := filepath.Join(t.TempDir(), "done")
	writeFile(t, filepath.Dir(until), "done", "")
	for _, bad := range []string{"acme.proj.jobs.abc", "acme.proj.runs.", "abc", "acme.proj.runs.a/b"} {
		r := cli(t, []string{"POLYAXON_RUN_INSTANCE=" + bad}, "sidecar", "--catalog", cat, "--path", dir, "--until-file", until)
		r.expectCode(t, 2)
		if want := fmt.Sprintf("$POLYAXON_RUN_INSTANCE is set but malformed: %q; the expected form is owner.project.runs.<uuid>", bad); !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "give --prefix") {
			t.Errorf("%q: stderr lacks %q:\n%s", bad, want, r.Stderr)
		}
		r = cli(t, []string{"POLYAXON_RUN_INSTANCE=" + bad}, "sidecar", "--catalog", cat, "--prefix", "p", "--until-file", until)
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, "set but malformed") || !strings.Contains(r.Stderr, "give --path") {
			t.Errorf("%q without --path: %s", bad, r.Stderr)
		}
	}
	r := cli(t, []string{"POLYAXON_RUN_INSTANCE=a.b.runs.abc "}, "sidecar", "--catalog", cat, "--path", dir, "--until-file", until, "--check-interval", "50ms")
	r.expectCode(t, 0)
	if _, err := os.Stat(filepath.Join(mount, "abc", "a.txt")); err != nil {
		t.Errorf("not uploaded under abc/: %v", err)
	}
	if d := r.Result["result"].(map[string]any)["details"].(map[string]any); d["prefix"] != "abc" {
		t.Errorf("prefix %q", d["prefix"])
	}
}

// On a mount store, a file whose name the storage library escapes (a
// newline, text that reads as an escape) gets its modification time too.
func TestSidecarMountEscapedNamesMtime(t *testing.T) {
	mount := t.TempDir()
	cat := catalog(t, fmt.Sprintf("artifactsStore:\n  name: store\n  kind: host_path\n  schema: {hostPath: %s, mountPath: %s}\n", mount, mount))
	dir := filepath.Join(t.TempDir(), "out")
	mtime := time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC)
	stored := map[string]string{ // file → where the store keeps it
		"plain.txt":          "r7/plain.txt",
		"x\ny.txt":           "r7/x__0xa__y.txt",
		"d\x01/__0x41__.txt": "r7/d__0x1__/__0x5f___0x41__.txt",
	}
	for name := range stored {
		p := writeFile(t, dir, name, name)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	until := filepath.Join(t.TempDir(), "done")
	writeFile(t, filepath.Dir(until), "done", "")
	r := cli(t, []string{"POLYAXON_RUN_INSTANCE=o.p.runs.r7"}, "sidecar", "--catalog", cat, "--path", dir, "--until-file", until, "--check-interval", "50ms")
	r.expectCode(t, 0)
	for name, rel := range stored {
		st, err := os.Stat(filepath.Join(mount, rel))
		if err != nil {
			t.Errorf("%q: %v", name, err)
			continue
		}
		if !st.ModTime().Equal(mtime) {
			t.Errorf("%q stored as %s with mtime %v, want %v", name, rel, st.ModTime(), mtime)
		}
	}
	if strings.Contains(r.Stderr, "level=WARN") {
		t.Errorf("warnings:\n%s", r.Stderr)
	}
}

// An upload to a mount store killed (SIGKILL) in the middle leaves no
// temporary file among the run's files, where a download would take it
// for one; the next start removes what it left, and what an older version
// left beside the files.
func TestSidecarMountKilledUpload(t *testing.T) {
	mount := t.TempDir()
	cat := catalog(t, fmt.Sprintf("artifactsStore:\n  name: store\n  kind: host_path\n  schema: {hostPath: %s, mountPath: %s}\n", mount, mount))
	dir := filepath.Join(t.TempDir(), "out")
	big := writeFile(t, dir, "big.bin", "")
	if err := os.Truncate(big, 3<<30); err != nil { // sparse: long to copy, nothing to read
		t.Fatal(err)
	}
	env := []string{"POLYAXON_RUN_INSTANCE=o.p.runs.r9"}
	p := startSidecar(t, cat, env, "--path", dir, "--state", "none")
	var temp string
	waitFor(t, time.Minute, "the upload's temporary file", func() bool {
		filepath.WalkDir(mount, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".tmp") && filepath.Base(filepath.Dir(path)) == ".initializer-tmp-sidecar" {
				temp = path
			}
			return nil
		})
		return temp != ""
	})
	p.cmd.Process.Kill()
	<-p.done
	var visible []string
	filepath.WalkDir(filepath.Join(mount, "r9"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			visible = append(visible, path)
		}
		return nil
	})
	if len(visible) > 0 {
		t.Fatalf("a killed upload left among the run's files: %v", visible)
	}

	// A download of the store (a later job's host_path init container)
	// leaves the hidden folder and its partial file out.
	dl := t.TempDir()
	dlCat := catalog(t, fmt.Sprintf("connections:\n- name: outputs\n  kind: host_path\n  schema: {hostPath: %s, mountPath: %s}\n", mount, mount))
	r := cli(t, nil, "--catalog", dlCat, "--connection", "outputs", "--path", dl)
	r.expectCode(t, 0)
	filepath.WalkDir(dl, func(path string, d fs.DirEntry, err error) error {
		if err == nil && (!d.IsDir() || strings.HasPrefix(d.Name(), ".initializer-tmp-")) {
			t.Errorf("the download copied %s", path)
		}
		return nil
	})

	// The next start: the leftover, once untouched for an hour (as if
	// the kill was two hours ago), is gone. A file named like a
	// temporary file among the run's files is left alone: it may be the
	// job's own output.
	old := time.Now().Add(-2 * time.Hour)
	if filepath.Base(filepath.Dir(temp)) == ".initializer-tmp-sidecar" {
		aged := filepath.Join(filepath.Dir(temp), fmt.Sprintf("big.bin.%x.tmp", old.UnixNano()))
		if err := os.Rename(temp, aged); err != nil {
			t.Fatal(err)
		}
		temp = aged
	} else {
		t.Fatalf("the upload's temporary file %s is not in the hidden folder", temp)
	}
	os.Chtimes(temp, old, old)
	lookalike := writeFile(t, mount, fmt.Sprintf("r9/sub/m.bin.%x.tmp", old.UnixNano()), "the job's output")
	os.Chtimes(lookalike, old, old)
	os.Truncate(big, 1<<20)
	until := filepath.Join(t.TempDir(), "done")
	writeFile(t, filepath.Dir(until), "done", "")
	r = cli(t, env, "sidecar", "--catalog", cat, "--path", dir, "--state", "none", "--until-file", until, "--check-interval", "50ms")
	r.expectCode(t, 0)
	if _, err := os.Stat(temp); !os.IsNotExist(err) {
		t.Errorf("%s is left: %v", temp, err)
	}
	if _, err := os.Stat(lookalike); err != nil {
		t.Errorf("a file of the store named like a temporary file was removed: %v", err)
	}
	if st, err := os.Stat(filepath.Join(mount, "r9/big.bin")); err != nil || st.Size() != 1<<20 {
		t.Errorf("big.bin: %v", err)
	}
	if !strings.Contains(r.Stderr, "removed the temporary file of an upload that was killed") {
		t.Errorf("not logged:\n%s", r.Stderr)
	}
}

// sidecarWithBindMount runs the sidecar once (a final flush of dir, with
// --strict) to a host_path store at mount, in a mount namespace where vol
// is bind-mounted at mount/sub; it expects exit 0.
func sidecarWithBindMount(t *testing.T, mount, sub, vol, dir string, prefix ...string) run {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed for this test: %v", err)
	}
	os.MkdirAll(filepath.Join(mount, sub), 0o755)
	cat := catalog(t, fmt.Sprintf("artifactsStore:\n  name: store\n  kind: host_path\n  schema: {hostPath: %s, mountPath: %s}\n", mount, mount))
	until := writeFile(t, t.TempDir(), "done", "")
	wrapper := "unshare -m sh -c " + shellQuote(fmt.Sprintf("mount --bind %q %q && exec {}", vol, filepath.Join(mount, sub)))
	args := append([]string{"sidecar", "--catalog", cat, "--path", dir}, prefix...)
	r := cliCmd(t, nil, wrapper, append(args, "--state", "none", "--until-file", until, "--grace", "20s", "--strict")...)
	r.expectCode(t, 0)
	return r
}

// TestSidecarMountWithAMountBelow: a host_path store with another volume
// mounted below the run's folder (a rename into it would cross file
// systems): uploads go there, written beside their files.
func TestSidecarMountWithAMountBelow(t *testing.T) {
	mount, vol := t.TempDir(), t.TempDir()
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "sub/x.txt", "into the other volume")
	writeFile(t, dir, "y.txt", "into the store")
	r := sidecarWithBindMount(t, mount, "sub", vol, dir, "--prefix=")
	if got, _ := os.ReadFile(filepath.Join(vol, "x.txt")); string(got) != "into the other volume" {
		t.Errorf("sub/x.txt in the mounted volume: %q\n%s", got, r.Stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(mount, "y.txt")); string(got) != "into the store" {
		t.Errorf("y.txt: %q", got)
	}
}

// TestSidecarMountWithABindMountAtThePrefix: the run's folder of a host_path
// store is itself a bind mount of the same file system (a rename into it
// fails all the same): uploads are written beside their files, and land.
func TestSidecarMountWithABindMountAtThePrefix(t *testing.T) {
	mount, vol := t.TempDir(), t.TempDir()
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "a.txt", "a")
	writeFile(t, dir, "sub/b.txt", "b")
	r := sidecarWithBindMount(t, mount, "r1", vol, dir, "--prefix", "r1")
	for rel, want := range map[string]string{"a.txt": "a", "sub/b.txt": "b"} {
		if got, _ := os.ReadFile(filepath.Join(vol, rel)); string(got) != want {
			t.Errorf("%s in the bind-mounted folder: %q\n%s", rel, got, r.Stderr)
		}
	}
}

// s3Front is a front of the test MinIO: intercept sees each request first,
// and answers it itself when it returns true; the others go through.
func s3Front(t *testing.T, intercept func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	target, err := url.Parse(testenv.Load(t).S3().Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !intercept(w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)
	return front.URL
}

// sidecarToTheEnd runs a sidecar over dir whose job has ended already (an
// until file there at the start), with a state file and a long grace, and
// fails the test unless it exits 0.
func sidecarToTheEnd(t *testing.T, tg scTarget, dir string) *scProc {
	t.Helper()
	until := writeFile(t, t.TempDir(), "done", "")
	p := startSidecar(t, storeCatalog(t, tg.entry), tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--state", filepath.Join(t.TempDir(), "state"),
		"--until-file", until, "--grace", "2m")
	if code, _ := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	return p
}

// TestSidecarSIGTERMDuringStartListing: without a state file, the sidecar
// learns what the store holds from a listing. A SIGTERM that comes while
// the listing is slow does not cut it short: the files already in the
// store are not uploaded again in the flush.
func TestSidecarSIGTERMDuringStartListing(t *testing.T) {
	var slow atomic.Bool
	tg := scS3(t, s3Front(t, func(w http.ResponseWriter, r *http.Request) bool {
		if slow.Load() && r.URL.Query().Has("list-type") {
			time.Sleep(2 * time.Second)
		}
		return false
	}))
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	for i := range 30 {
		writeFile(t, dir, fmt.Sprintf("f%02d.txt", i), fmt.Sprintf("file %d", i))
	}
	sidecarOnce(t, tg.env, cat, dir, "run")

	slow.Store(true)
	p := startSidecar(t, cat, tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--state", "none", "--grace", "20s")
	time.Sleep(500 * time.Millisecond)
	code, res := p.term(t)
	if code != 0 || uploads(t, res) != 0 || scDetails(t, res)["restored"] != "store listing" || res["result"].(map[string]any)["skipped"] != float64(30) {
		t.Errorf("exit %d, %d uploads, result %v\n%s", code, uploads(t, res), res["result"], p.stderr.String())
	}
}

// TestResultNotWritable: a --result that cannot be written fails a run
// (exit 2 for a path through a file), but not the sidecar, which never
// fails the pod for its report (unless --strict).
func TestResultNotWritable(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "a.txt", "a")
	bad := filepath.Join(writeFile(t, t.TempDir(), "file", "x"), "result.json")
	until := writeFile(t, t.TempDir(), "done", "")
	// Not through cli, which gives its own --result.
	bare := func(want int, args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, append(args, "--result", bad)...)
		cmd.Env = baseEnv(tg.env)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want || !strings.Contains(string(out), "cannot write --result") {
			t.Errorf("%v: exit %d, want %d, saying it could not write --result\n%s", args, code, want, out)
		}
		return string(out)
	}
	sidecar := []string{"sidecar", "--catalog", cat, "--connection", "data", "--path", dir, "--prefix", "res", "--state", "none", "--until-file", until}
	bare(0, sidecar...)
	if _, ok := tg.get(t, "res/a.txt"); !ok {
		t.Error("a.txt not uploaded")
	}
	bare(2, append(sidecar, "--strict")...)
	bare(2, "--catalog", cat, "--connection", "data", "--path", t.TempDir())
}

// TestSidecarKMSBucket: a bucket whose default encryption is SSE-KMS gives
// every object an ETag that is no MD5 of its content; the sidecar's
// uploads are verified all the same (by size), not sent again and again
// until reported not uploaded.
func TestSidecarKMSBucket(t *testing.T) {
	srv := newPrivateServer(t, "s3")
	s := testenv.Load(t).S3()
	tg := scS3(t, srv.endpoint())
	client := s3Client(t, srv.endpoint(), s.AccessKeyID, s.SecretAccessKey, s.Region)
	if _, err := client.PutBucketEncryption(context.Background(), &s3.PutBucketEncryptionInput{Bucket: aws.String(tg.bucket),
		ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{Rules: []s3types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(kmsKeyName)}}}}}); err != nil {
		t.Fatalf("PutBucketEncryption: %v", err)
	}
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	sizes := map[string]int{"empty": 0, "small": 1000, "medium": 300 << 10, "large": 3 << 20}
	for name, n := range sizes {
		writeFile(t, dir, name, strings.Repeat("k", n))
	}
	// Credentials that may write and list, not read back: the store's
	// answers are all there is to check.
	writeOnly := scopedCredentials(t, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s"]},
		{"Effect":"Allow","Action":["s3:PutObject"],"Resource":["arn:aws:s3:::%[1]s/*"]}]}`, tg.bucket), srv.endpoint())
	woCat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s"}, secret: {name: s3-creds, mountPath: %q}}`, tg.bucket, writeOnly))
	for _, cs := range []string{"when_required", "when_supported", "write-only"} {
		until := writeFile(t, t.TempDir(), "done", "")
		useCat, env := cat, append(tg.env, "AWS_REQUEST_CHECKSUM_CALCULATION="+cs)
		if cs == "write-only" {
			useCat, env = woCat, tg.env
		}
		r := cli(t, env, "sidecar", "--catalog", useCat, "--connection", "data", "--path", dir,
			"--prefix", cs, "--state", "none", "--until-file", until, "--strict")
		r.expectCode(t, 0)
		if res := r.Result["result"].(map[string]any); res["files"] != float64(len(sizes)) {
			t.Errorf("%s: %v uploads, want %d\n%s", cs, res["files"], len(sizes), r.Stderr)
		}
		for name, n := range sizes {
			if obj, ok := tg.get(t, cs+"/"+name); !ok || len(obj.data) != n {
				t.Errorf("%s: %s: %d bytes, %v", cs, name, len(obj.data), ok)
			}
		}
	}
}

// TestSidecarS3CheckpointRewrittenInPlace: a checkpoint large enough for a
// multipart upload (parts read twice over plain http: for the signature's
// hash, then to send) is rewritten in place, same size, while the sidecar
// uploads it, as a memory-mapped or HDF5 file is. A part that changed
// between the two reads is refused by the store: the file changed, and is
// uploaded again once it is stable, not given up as a usage error.
func TestSidecarS3CheckpointRewrittenInPlace(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	const size = 96 << 20
	ckpt := writeFile(t, dir, "ckpt.bin", strings.Repeat("\xaa", size))
	until := filepath.Join(t.TempDir(), "done")
	p := startSidecar(t, cat, tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--state", "none",
		"--interval", "200ms", "--grace", "90s", "--until-file", until, "--strict")
	// Rewrite it in place, pass after pass, for two seconds, then once
	// more with its final content.
	f, err := os.OpenFile(ckpt, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	rewrite := func(v byte) {
		for i := range chunk {
			chunk[i] = v
		}
		for off := int64(0); off < size; off += int64(len(chunk)) {
			if _, err := f.WriteAt(chunk, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	for v, end := byte(0), time.Now().Add(2*time.Second); time.Now().Before(end); v++ {
		rewrite(v)
	}
	rewrite(0xcc)
	f.Close()
	if err := os.WriteFile(until, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, res := p.wait(t)
	if code != 0 {
		t.Fatalf("exit %d, want 0 (every file in the store)\n%s", code, p.stderr.String())
	}
	if strings.Contains(p.stderr.String(), "XAmzContentSHA256Mismatch") && !strings.Contains(p.stderr.String(), "file changed while it was uploaded") {
		t.Errorf("a refused part is not taken for a change of the file:\n%s", p.stderr.String())
	}
	obj, ok := tg.get(t, "run/ckpt.bin")
	if !ok || len(obj.data) != size || bytes.Count(obj.data, []byte{0xcc}) != size {
		t.Errorf("the object is not the checkpoint's final content (%d bytes, found %v)\nresult %v", len(obj.data), ok, res["result"])
	}
}

// storeFront forwards TCP connections to target, in one of three modes
// the test switches between: frontStall stops forwarding a connection's
// requests past limit bytes (an upload's body) and keeps it open, as a
// peer that stopped reading; frontPass forwards everything; frontDown
// closes every new connection at once, as a store that is down;
// frontSilent keeps new connections open and never answers.
type storeFront struct {
	url  string
	mode atomic.Int32
}

const (
	frontStall = iota
	frontPass
	frontDown
	frontSilent
)

func newStoreFront(t *testing.T, target string, limit int64) *storeFront {
	t.Helper()
	ln, track := trackedListener(t)
	f := &storeFront{url: "http://" + ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			switch f.mode.Load() {
			case frontDown:
				c.Close()
				continue
			case frontSilent:
				track(c)
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			track(c, s)
			stall := f.mode.Load() == frontStall
			go func() {
				if !stall {
					io.Copy(s, c)
					s.Close()
					return
				}
				if n, _ := io.CopyN(s, c, limit); n < limit {
					s.Close()
				}
			}()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return f
}

// TestSidecarS3AbortsKilledMultipartUpload: a sidecar killed (SIGKILL, an
// OOM kill) while it sends a large file's parts leaves an unfinished
// multipart upload, invisible in listings but billed; the next sidecar
// aborts it when it uploads that file again.
func TestSidecarS3AbortsKilledMultipartUpload(t *testing.T) {
	tg := scS3(t, "")
	s := testenv.Load(t).S3()
	client := s3Client(t, s.Endpoint, s.AccessKeyID, s.SecretAccessKey, s.Region)
	dir := filepath.Join(t.TempDir(), "out")
	data := bytes.Repeat([]byte("checkpoint "), 80<<20/11)
	writeFile(t, dir, "big.bin", string(data))
	const key = "run/big.bin"
	uploads := func() []string { return tg.uploads(t, key) }
	unfinished := func() int { return len(uploads()) }
	state := filepath.Join(t.TempDir(), "sidecar.state")
	// The sidecars reach the store through a front. The first one's parts
	// stop there: it is killed with its upload begun.
	u := sharedEndpoint(t, "s3")
	front := newStoreFront(t, u.Host, 4<<20)
	entry, fenv := minioStore(t, front.url).connection(t, tg.bucket, "", false)
	cat := storeCatalog(t, entry)
	p := startSidecar(t, cat, fenv, "-c", "data", "--path", dir, "--prefix", "run", "--state", state, "--interval", "1h")
	deadline := time.Now().Add(time.Minute)
	for unfinished() == 0 {
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("no multipart upload seen while the sidecar ran:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	<-p.done
	// Another process's upload of the same key, alive: not this
	// sidecar's to abort.
	other, err := client.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String(tg.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.AbortMultipartUpload(context.Background(), &s3.AbortMultipartUploadInput{Bucket: aws.String(tg.bucket), Key: aws.String(key), UploadId: other.UploadId})
	})

	records := func() []string {
		m, _ := filepath.Glob(state + ".*.uploads")
		return m
	}
	if len(records()) != 1 {
		t.Fatalf("no record of the killed sidecar's upload beside its state: %v", records())
	}
	// A store that does not answer holds up neither the end nor the
	// grace: the abort stops with the work, and the record is kept.
	front.mode.Store(frontSilent)
	p = startSidecar(t, cat, fenv, "-c", "data", "--path", dir, "--prefix", "run", "--state", state, "--grace", "2s", "--interval", "1h")
	time.Sleep(time.Second)
	p.cmd.Process.Signal(syscall.SIGTERM)
	termAt := time.Now()
	p.wait(t)
	if d := time.Since(termAt); d > 15*time.Second {
		t.Errorf("the sidecar took %v to stop after SIGTERM with --grace 2s, its store not answering\n%s", d, p.stderr.String())
	}
	if len(records()) != 1 {
		t.Fatalf("a sidecar stopped while it aborted the upload dropped its record: %v\n%s", records(), p.stderr.String())
	}
	until := writeFile(t, t.TempDir(), "done", "")
	// A sidecar that cannot reach the store keeps the record, for the
	// next one.
	front.mode.Store(frontDown)
	p = startSidecar(t, cat, fenv, "-c", "data", "--path", dir, "--prefix", "run", "--state", state, "--until-file", until, "--grace", "1s")
	p.wait(t)
	if len(records()) != 1 || !strings.Contains(p.stderr.String(), "not aborted yet; the next sidecar tries again") {
		t.Fatalf("a sidecar that could not abort the upload dropped its record: %v\n%s", records(), p.stderr.String())
	}

	front.mode.Store(frontPass)
	p = startSidecar(t, cat, fenv, "-c", "data", "--path", dir, "--prefix", "run", "--state", state, "--until-file", until, "--strict")
	if code, _ := p.wait(t); code != 0 {
		t.Fatalf("restart: exit %d\n%s", code, p.stderr.String())
	}
	if obj, ok := tg.get(t, key); !ok || !bytes.Equal(obj.data, data) {
		t.Errorf("the object is not the file (%d bytes, found %v)", len(obj.data), ok)
	}
	if left := uploads(); len(left) != 1 || left[0] != aws.ToString(other.UploadId) {
		t.Errorf("unfinished multipart uploads of %s: %v, want only the other process's %s\n%s", key, left, aws.ToString(other.UploadId), p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "aborted the unfinished multipart uploads a killed sidecar left") {
		t.Errorf("the abort is not logged:\n%s", p.stderr.String())
	}
	if left := records(); len(left) != 0 {
		t.Errorf("the record of unfinished uploads is left though none is: %v", left)
	}
}

// TestSidecarS3JournalsWriterUploads: the multipart uploads gocloud's
// writer makes (files from 16 to 64 MiB; large files whose names the
// storage library escapes) are recorded too, and aborted by the next
// sidecar once a killed one left them.
func TestSidecarS3JournalsWriterUploads(t *testing.T) {
	tg := scS3(t, "")
	u := sharedEndpoint(t, "s3")
	for _, c := range []struct{ name, file, key string }{
		{"mid-size", "mid.bin", "run/mid.bin"},
		{"escaped-name", "x__0x41__.bin", "run/x__0x5f___0x41__.bin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			size := 30 << 20
			if c.name == "escaped-name" {
				size = 70 << 20
			}
			data := bytes.Repeat([]byte("checkpoint "), size/11)
			writeFile(t, dir, c.file, string(data))
			unfinished := func() int { return len(tg.uploads(t, c.key)) }
			state := filepath.Join(t.TempDir(), "sidecar.state")
			front := newStoreFront(t, u.Host, 4<<20)
			entry, fenv := minioStore(t, front.url).connection(t, tg.bucket, "", false)
			cat := storeCatalog(t, entry)
			p := startSidecar(t, cat, fenv, "-c", "data", "--path", dir, "--prefix", "run", "--state", state, "--interval", "1h")
			deadline := time.Now().Add(time.Minute)
			for unfinished() == 0 {
				if !p.running() || time.Now().After(deadline) {
					t.Fatalf("no multipart upload seen while the sidecar ran:\n%s", p.stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			p.cmd.Process.Kill()
			<-p.done
			if m, _ := filepath.Glob(state + ".*.uploads"); len(m) != 1 {
				t.Fatalf("no record of the killed sidecar's upload beside its state: %v", m)
			}
			front.mode.Store(frontPass)
			until := writeFile(t, t.TempDir(), "done", "")
			p = startSidecar(t, cat, fenv, "-c", "data", "--path", dir, "--prefix", "run", "--state", state, "--until-file", until, "--strict")
			if code, _ := p.wait(t); code != 0 {
				t.Fatalf("restart: exit %d\n%s", code, p.stderr.String())
			}
			if obj, ok := tg.get(t, c.key); !ok || !bytes.Equal(obj.data, data) {
				t.Errorf("the object is not the file (%d bytes, found %v)", len(obj.data), ok)
			}
			if n := unfinished(); n != 0 {
				t.Errorf("%d unfinished multipart uploads of %s left\n%s", n, c.key, p.stderr.String())
			}
			if m, _ := filepath.Glob(state + ".*.uploads"); len(m) != 0 {
				t.Errorf("the record of unfinished uploads is left though none is: %v", m)
			}
		})
	}
}

// TestSidecarNoTornObject: a checkpoint rewritten in place slowly (a save
// that takes seconds), while the sidecar uploads it every 100 ms: every
// object the store holds meanwhile is one whole version of the file (all
// its bytes one version's), never a mix of the two, and the final flush
// leaves the new version, on S3 (multipart parts read from the file) and
// Azure (blocks streamed from it).
func TestSidecarNoTornObject(t *testing.T) {
	for _, mk := range []func(*testing.T) scTarget{func(t *testing.T) scTarget { return scS3(t, "") }, scAzure} {
		tg := mk(t)
		t.Run(tg.kind, func(t *testing.T) {
			cat := storeCatalog(t, tg.entry)
			dir := filepath.Join(t.TempDir(), "out")
			const size = 80 << 20
			ckpt := writeFile(t, dir, "ckpt.bin", strings.Repeat("\x01", size))
			p := startSidecar(t, cat, tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--state", "none", "--interval", "100ms", "--grace", "30s")
			waitFor(t, time.Minute, "the first version in the store", func() bool { _, ok := tg.get(t, "run/ckpt.bin"); return ok })
			whole := func(when string) byte {
				obj, ok := tg.get(t, "run/ckpt.bin")
				if !ok || len(obj.data) != size || bytes.Count(obj.data, obj.data[:1]) != size {
					t.Errorf("%s: the object is no whole version of the file (%d bytes, found %v)", when, len(obj.data), ok)
					return 0
				}
				return obj.data[0]
			}
			// The store, looked at all along the save.
			done := make(chan struct{})
			watched := make(chan int)
			go func() {
				n := 0
				defer func() { watched <- n }()
				for {
					select {
					case <-done:
						return
					case <-time.After(100 * time.Millisecond):
						whole("during the save")
						n++
					}
				}
			}()
			f, err := os.OpenFile(ckpt, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			chunk := bytes.Repeat([]byte{0x02}, 1<<20)
			for off := int64(0); off < size; off += int64(len(chunk)) {
				if _, err := f.WriteAt(chunk, off); err != nil {
					t.Fatal(err)
				}
				time.Sleep(40 * time.Millisecond)
			}
			f.Close()
			close(done)
			if n := <-watched; n < 2 {
				t.Errorf("the store was looked at only %d times during the save", n)
			}
			p.term(t)
			if v := whole("after the final flush"); v != 0x02 {
				t.Errorf("after the final flush the object is version %d, want the new one", v)
			}
		})
	}
}

// TestSidecarS3AbandonedUploadsAborted: a file of a few parts (sent
// through the storage library's writer) that changes again and again while
// it is uploaded: each upload abandoned for it is aborted, none is left
// unfinished (billed) in the bucket, and the final one is the file.
func TestSidecarS3AbandonedUploadsAborted(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	data := bytes.Repeat([]byte("a checkpoint "), 30<<20/13)
	ckpt := writeFile(t, dir, "ck.bin", string(data))
	p := startSidecar(t, cat, tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--state", "none", "--interval", "100ms", "--grace", "30s")
	for i := range 30 {
		now := time.Now().Add(time.Duration(i) * time.Millisecond)
		if err := os.Chtimes(ckpt, now, now); err != nil {
			t.Fatal(err)
		}
		time.Sleep(80 * time.Millisecond)
	}
	code, _ := p.term(t)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	if obj, ok := tg.get(t, "run/ck.bin"); !ok || !bytes.Equal(obj.data, data) {
		t.Errorf("the object is not the file (%d bytes, found %v)", len(obj.data), ok)
	}
	if n := len(tg.uploads(t, "run/ck.bin")); n != 0 {
		t.Errorf("%d abandoned multipart uploads left unfinished in the bucket\n%s", n, p.stderr.String())
	}
}

// TestSidecarS3WriterAbortTakesItsTime: an upload through the storage
// library's writer (a 30 MiB file) that fails midway is aborted with the
// time an abort needs while the sidecar runs (its parts were left billed
// when the abort was cut after 3 s, as it is once the grace has run out).
func TestSidecarS3WriterAbortTakesItsTime(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var aborts atomic.Int32
	tg := scS3(t, s3Front(t, func(w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		switch {
		case failing.Load() && r.Method == http.MethodPut && q.Get("partNumber") == "2":
			io.Copy(io.Discard, r.Body)
			http.Error(w, "injected", http.StatusInternalServerError)
			return true
		case r.Method == http.MethodDelete && q.Has("uploadId"):
			aborts.Add(1)
			time.Sleep(5 * time.Second) // a slow store
			failing.Store(false)
		}
		return false
	}))
	dir := filepath.Join(t.TempDir(), "out")
	data := bytes.Repeat([]byte("checkpoint "), (30<<20)/11)
	writeFile(t, dir, "mid.bin", string(data))
	p := sidecarToTheEnd(t, tg, dir)
	if aborts.Load() == 0 {
		t.Fatalf("no upload failed and was aborted\n%s", p.stderr.String())
	}
	if obj, ok := tg.get(t, "run/mid.bin"); !ok || !bytes.Equal(obj.data, data) {
		t.Errorf("the object is not the file (%d bytes, found %v)", len(obj.data), ok)
	}
	if n := len(tg.uploads(t, "run/mid.bin")); n != 0 {
		t.Errorf("%d unfinished multipart uploads left by the failed upload\n%s", n, p.stderr.String())
	}
}

// TestSidecarS3WriterAbortAfterChange: an upload through the storage
// library's writer abandoned because the file changed while it was read
// is aborted with the time an abort needs (it was cut after 3 s, its parts
// left billed: the writer's context, which the change ends, bounded it).
func TestSidecarS3WriterAbortAfterChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	data := bytes.Repeat([]byte("checkpoint "), (40<<20)/11)
	file := writeFile(t, dir, "mid.bin", string(data))
	var changed atomic.Bool
	tg := scS3(t, s3Front(t, func(w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		switch {
		case r.Method == http.MethodPut && q.Get("partNumber") == "1" && changed.CompareAndSwap(false, true):
			// The file is written to while its parts go up.
			f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				f.WriteString("more")
				f.Close()
			}
		case r.Method == http.MethodDelete && q.Has("uploadId"):
			time.Sleep(5 * time.Second) // a slow store
		}
		return false
	}))
	p := sidecarToTheEnd(t, tg, dir)
	if !changed.Load() {
		t.Fatalf("the file was not changed during its upload\n%s", p.stderr.String())
	}
	want := append(data, "more"...)
	if obj, ok := tg.get(t, "run/mid.bin"); !ok || !bytes.Equal(obj.data, want) {
		t.Errorf("the object is not the file (%d bytes, found %v)", len(obj.data), ok)
	}
	if n := len(tg.uploads(t, "run/mid.bin")); n != 0 {
		t.Errorf("%d unfinished multipart uploads left by the abandoned upload\n%s", n, p.stderr.String())
	}
}

// TestSidecarRetriesFailedAbortAtEnd: an upload whose abort failed (the
// store refused it then) is aborted once more when the sidecar ends, since
// a job's last sidecar has no successor to do it.
func TestSidecarRetriesFailedAbortAtEnd(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var deletes atomic.Int32
	tg := scS3(t, s3Front(t, func(w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		switch {
		case failing.Load() && r.Method == http.MethodPut && q.Get("partNumber") == "2":
			io.Copy(io.Discard, r.Body)
			http.Error(w, "injected", http.StatusInternalServerError)
			return true
		case r.Method == http.MethodDelete && q.Has("uploadId") && failing.Load():
			// The first abort is refused, whatever the SDK's retries.
			deletes.Add(1)
			http.Error(w, "injected", http.StatusForbidden)
			return true
		case r.Method == http.MethodDelete && q.Has("uploadId"):
			deletes.Add(1)
		}
		return false
	}))
	dir := filepath.Join(t.TempDir(), "out")
	data := bytes.Repeat([]byte("checkpoint "), (30<<20)/11)
	writeFile(t, dir, "mid.bin", string(data))
	go func() {
		// Once the first abort was refused, the store mends.
		for deletes.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		failing.Store(false)
	}()
	p := sidecarToTheEnd(t, tg, dir)
	if obj, ok := tg.get(t, "run/mid.bin"); !ok || !bytes.Equal(obj.data, data) {
		t.Errorf("the object is not the file (%d bytes, found %v)", len(obj.data), ok)
	}
	if n := len(tg.uploads(t, "run/mid.bin")); n != 0 {
		t.Errorf("%d unfinished multipart uploads left: the failed abort was not tried again\n%s", n, p.stderr.String())
	}
}
