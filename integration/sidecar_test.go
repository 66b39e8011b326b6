package integration

// End-to-end tests of `initializer sidecar` against real MinIO and Azurite,
// as real processes ended by real signals.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/initializer/initializer/integration/testenv"
)

// scObject is an object read back with the provider's own SDK.
type scObject struct {
	data     []byte
	etag     string
	metadata map[string]string
}

// scTarget is a bucket of a real store the sidecar uploads to, read back
// with the provider's SDK (never through the initializer's own code).
type scTarget struct {
	kind   string
	bucket string
	entry  string   // the catalog entry, named "data"
	env    []string // environment the initializer needs
	get    func(t *testing.T, key string) (scObject, bool)
	list   func(t *testing.T, prefix string) []string
	// uploads (S3) returns the ids of the unfinished multipart uploads of
	// key (MinIO lists the uploads of one key, given whole, as the prefix).
	uploads func(t *testing.T, key string) []string
}

func scS3(t *testing.T, endpoint string) scTarget {
	st := minioStore(t, endpoint)
	s := testenv.Load(t).S3()
	if endpoint == "" {
		endpoint = s.Endpoint
	}
	client := s3Client(t, endpoint, s.AccessKeyID, s.SecretAccessKey, s.Region)
	bucket := st.newBucket(t)
	entry, env := st.connection(t, bucket, "", false)
	return scTarget{
		kind: "s3", bucket: bucket, entry: entry, env: env,
		get: func(t *testing.T, key string) (scObject, bool) {
			out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			var nsk *s3types.NoSuchKey
			if errors.As(err, &nsk) {
				return scObject{}, false
			}
			if err != nil {
				t.Fatalf("GetObject %s: %v", key, err)
			}
			defer out.Body.Close()
			data, err := io.ReadAll(out.Body)
			if err != nil {
				t.Fatalf("GetObject %s: %v", key, err)
			}
			return scObject{data: data, etag: strings.Trim(aws.ToString(out.ETag), `"`), metadata: out.Metadata}, true
		},
		list: func(t *testing.T, prefix string) []string {
			var keys []string
			p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
			for p.HasMorePages() {
				page, err := p.NextPage(context.Background())
				if err != nil {
					t.Fatalf("ListObjectsV2: %v", err)
				}
				for _, o := range page.Contents {
					keys = append(keys, aws.ToString(o.Key))
				}
			}
			sort.Strings(keys)
			return keys
		},
		uploads: func(t *testing.T, key string) []string {
			out, err := client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
			if err != nil {
				t.Fatalf("ListMultipartUploads: %v", err)
			}
			var ids []string
			for _, u := range out.Uploads {
				ids = append(ids, aws.ToString(u.UploadId))
			}
			return ids
		},
	}
}

func scAzure(t *testing.T) scTarget {
	st := azuriteStore(t, "")
	client, err := azblob.NewClientFromConnectionString(testenv.Load(t).Azure().ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	container := st.newBucket(t)
	entry, env := st.connection(t, container, "", false)
	return scTarget{
		kind: "wasb", bucket: container, entry: entry, env: env,
		get: func(t *testing.T, key string) (scObject, bool) {
			resp, err := client.DownloadStream(context.Background(), container, key, nil)
			if bloberror.HasCode(err, bloberror.BlobNotFound) {
				return scObject{}, false
			}
			if err != nil {
				t.Fatalf("DownloadStream %s: %v", key, err)
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("DownloadStream %s: %v", key, err)
			}
			md := map[string]string{}
			for k, v := range resp.Metadata {
				md[strings.ToLower(k)] = *v
			}
			return scObject{data: data, etag: string(*resp.ETag), metadata: md}, true
		},
		list: func(t *testing.T, prefix string) []string {
			var keys []string
			p := client.NewListBlobsFlatPager(container, &azblob.ListBlobsFlatOptions{Prefix: &prefix})
			for p.More() {
				page, err := p.NextPage(context.Background())
				if err != nil {
					t.Fatalf("ListBlobsFlat: %v", err)
				}
				for _, b := range page.Segment.BlobItems {
					keys = append(keys, *b.Name)
				}
			}
			sort.Strings(keys)
			return keys
		},
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scProc is a running sidecar.
type scProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	result string
	done   chan struct{}
	err    error
}

// startSidecar starts `initializer sidecar` with args (plus --catalog and
// --result) in the background.
func startSidecar(t *testing.T, cat string, env []string, args ...string) *scProc {
	t.Helper()
	p := &scProc{stderr: &syncBuffer{}, result: filepath.Join(t.TempDir(), "result.json"), done: make(chan struct{})}
	args = append([]string{"sidecar", "--catalog", cat, "--result", p.result}, args...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = baseEnv(env)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *scProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits (generously) for the process to exit and returns its exit
// code and --result document.
func (p *scProc) wait(t *testing.T) (int, map[string]any) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(3 * time.Minute):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("the sidecar did not exit; its log:\n%s", p.stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		code = ee.ExitCode()
	} else if p.err != nil {
		t.Fatal(p.err)
	}
	var res map[string]any
	b, err := os.ReadFile(p.result)
	if err != nil {
		t.Fatalf("no --result (exit %d): %v\n%s", code, err, p.stderr.String())
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return code, res
}

func (p *scProc) term(t *testing.T) (int, map[string]any) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return p.wait(t)
}

func scDetails(t *testing.T, res map[string]any) map[string]any {
	t.Helper()
	r, ok := res["result"].(map[string]any)
	if !ok {
		t.Fatalf("no result in %v", res)
	}
	d, _ := r["details"].(map[string]any)
	return d
}

func uploads(t *testing.T, res map[string]any) int {
	t.Helper()
	return int(res["result"].(map[string]any)["files"].(float64))
}

func notUploaded(t *testing.T, res map[string]any) []string {
	t.Helper()
	var out []string
	for _, f := range scDetails(t, res)["notUploaded"].([]any) {
		out = append(out, f.(map[string]any)["path"].(string))
	}
	return out
}

// TestSidecar runs the sidecar's life against MinIO and Azurite: a file
// reaches the bucket while the job runs, 200 files written just before
// SIGTERM all arrive, byte-identical, before the process exits, and a
// restart uploads nothing again.
func TestSidecar(t *testing.T) {
	for _, mk := range []func(*testing.T) scTarget{func(t *testing.T) scTarget { return scS3(t, "") }, scAzure} {
		tg := mk(t)
		t.Run(tg.kind, func(t *testing.T) {
			cat := storeCatalog(t, tg.entry)
			dir := filepath.Join(t.TempDir(), "outputs")
			writeFile(t, dir, "early.txt", "written before the sidecar started\n")
			writeFile(t, dir, ".git/HEAD", "ref: refs/heads/main\n")
			writeFile(t, dir, "skip.tmp", "excluded by --exclude\n")
			env := append(tg.env, "POLYAXON_RUN_INSTANCE=acme.vision.runs.0c0ffee")
			p := startSidecar(t, cat, env, "--connection", "data", "--path", dir, "--interval", "1s", "--exclude", "*.tmp")

			waitFor(t, time.Minute, "early.txt in the bucket", func() bool { _, ok := tg.get(t, "0c0ffee/early.txt"); return ok })
			mtime := time.Date(2025, 1, 2, 3, 4, 5, 600000000, time.UTC)
			p1 := writeFile(t, dir, "metrics/step-1.json", `{"loss": 0.5}`)
			os.Chtimes(p1, mtime, mtime)
			waitFor(t, time.Minute, "a file written while the job runs", func() bool {
				_, ok := tg.get(t, "0c0ffee/metrics/step-1.json")
				return ok
			})
			if !p.running() {
				t.Fatalf("the sidecar exited early:\n%s", p.stderr.String())
			}
			obj, _ := tg.get(t, "0c0ffee/metrics/step-1.json")
			if got := obj.metadata["mtime"]; got != mtime.Format(time.RFC3339Nano) {
				t.Errorf("metadata mtime = %q, want %q (all: %v)", got, mtime.Format(time.RFC3339Nano), obj.metadata)
			}

			// 200 files, then SIGTERM at once.
			want := map[string][]byte{}
			for i := range 200 {
				name := fmt.Sprintf("outputs/file-%03d.bin", i)
				data := bytes.Repeat([]byte{byte(i)}, 1000+i*37)
				writeFile(t, dir, name, string(data))
				want[name] = data
			}
			code, res := p.term(t)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, p.stderr.String())
			}
			for name, data := range want {
				obj, ok := tg.get(t, "0c0ffee/"+name)
				if !ok || !bytes.Equal(obj.data, data) {
					t.Errorf("%s: in the bucket %v, identical %v", name, ok, bytes.Equal(obj.data, data))
				}
			}
			if d := scDetails(t, res); d["flushComplete"] != true || len(notUploaded(t, res)) != 0 || !strings.Contains(d["endReason"].(string), "signal") {
				t.Errorf("result details: %v", d)
			}
			keys := tg.list(t, "")
			for _, k := range keys {
				if strings.Contains(k, ".git/") || strings.HasSuffix(k, ".tmp") {
					t.Errorf("%s was uploaded", k)
				}
			}
			if len(keys) != 202 {
				t.Errorf("%d objects in the bucket, want 202: %v", len(keys), keys[:min(len(keys), 10)])
			}

			// A restart uploads nothing again; a changed file goes up alone.
			until := filepath.Join(t.TempDir(), "done")
			writeFile(t, filepath.Dir(until), "done", "")
			again := []string{"--connection", "data", "--path", dir, "--exclude", "*.tmp", "--until-file", until, "--check-interval", "100ms"}
			p = startSidecar(t, cat, env, again...)
			code, res = p.wait(t)
			if code != 0 || uploads(t, res) != 0 || scDetails(t, res)["restored"] != "state file" {
				t.Fatalf("restart: exit %d, %d uploads, details %v\n%s", code, uploads(t, res), scDetails(t, res), p.stderr.String())
			}
			writeFile(t, dir, "outputs/file-007.bin", "changed")
			p = startSidecar(t, cat, env, again...)
			code, res = p.wait(t)
			if code != 0 || uploads(t, res) != 1 {
				t.Fatalf("after a change: exit %d, %d uploads\n%s", code, uploads(t, res), p.stderr.String())
			}
			if obj, _ := tg.get(t, "0c0ffee/outputs/file-007.bin"); string(obj.data) != "changed" {
				t.Errorf("file-007.bin = %q", obj.data)
			}

			// Without the state file, one listing of the store spares the
			// upload of files last changed before their objects were
			// stored. (These were uploaded within the second they were
			// written, which Azure's whole-second times cannot tell apart
			// from a change after the upload: they are dated earlier, as
			// a job's outputs written before a restart are.)
			state := filepath.Join(filepath.Dir(dir), ".initializer-sidecar-outputs.state")
			if err := os.Remove(state); err != nil {
				t.Fatalf("the state file is not beside the folder: %v", err)
			}
			earlier := time.Now().Add(-time.Hour)
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					os.Chtimes(p, earlier, earlier)
				}
				return nil
			})
			p = startSidecar(t, cat, env, again...)
			code, res = p.wait(t)
			if code != 0 || uploads(t, res) != 0 || scDetails(t, res)["restored"] != "store listing" {
				t.Fatalf("without state: exit %d, %d uploads, %v\n%s", code, uploads(t, res), scDetails(t, res), p.stderr.String())
			}
		})
	}
}

// TestSidecarStoreDown stops a private MinIO for a few cycles and starts it
// again (same data): nothing is lost. Then it stops it for good before the
// end: the sidecar still exits 0 and names each file it could not upload,
// and --strict turns that into exit code 5.
func TestSidecarStoreDown(t *testing.T) {
	srv := newPrivateServer(t, "s3")
	tg := scS3(t, srv.endpoint())
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "a.txt", "before the outage")
	p := startSidecar(t, cat, tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--interval", "500ms")
	waitFor(t, time.Minute, "a.txt uploaded", func() bool { _, ok := tg.get(t, "run/a.txt"); return ok })

	srv.stop(t)
	writeFile(t, dir, "b.txt", "during the outage")
	waitFor(t, time.Minute, "a failed cycle", func() bool { return strings.Contains(p.stderr.String(), "not uploaded") })
	srv.start(t)
	waitFor(t, 2*time.Minute, "b.txt uploaded after the store came back", func() bool { _, ok := tg.get(t, "run/b.txt"); return ok })
	writeFile(t, dir, "c.txt", "after the outage")
	code, res := p.term(t)
	if code != 0 || len(notUploaded(t, res)) != 0 {
		t.Fatalf("exit %d, not uploaded %v\n%s", code, notUploaded(t, res), p.stderr.String())
	}
	for k, v := range map[string]string{"run/a.txt": "before the outage", "run/b.txt": "during the outage", "run/c.txt": "after the outage"} {
		if obj, ok := tg.get(t, k); !ok || string(obj.data) != v {
			t.Errorf("%s: %q %v", k, obj.data, ok)
		}
	}

	// The store is down at the end: exit 0, the files are named.
	for _, strict := range []bool{false, true} {
		srv.stop(t)
		name := fmt.Sprintf("lost-%v.txt", strict)
		writeFile(t, dir, name, "the store is down")
		args := []string{"-c", "data", "--path", dir, "--prefix", "run", "--interval", "500ms", "--grace", "3s"}
		if strict {
			args = append(args, "--strict")
		}
		p = startSidecar(t, cat, tg.env, args...)
		waitFor(t, time.Minute, "a cycle", func() bool { return strings.Contains(p.stderr.String(), "not uploaded") })
		// Written after that cycle, while the next one retries: named too,
		// even when the grace runs out before another cycle.
		late := fmt.Sprintf("late-%v.txt", strict)
		writeFile(t, dir, late, "written at the end")
		code, res = p.term(t)
		want := 0
		if strict {
			want = 5
		}
		if code != want {
			t.Errorf("strict=%v: exit %d, want %d\n%s", strict, code, want, p.stderr.String())
		}
		if got := notUploaded(t, res); len(got) != 2 || got[0] != late || got[1] != name {
			t.Errorf("strict=%v: not uploaded %v, want [%s %s]", strict, got, late, name)
		}
		for _, f := range scDetails(t, res)["notUploaded"].([]any) {
			if e := f.(map[string]any)["error"].(string); !strings.Contains(e, "connection refused") {
				t.Errorf("strict=%v: the cause is lost: %s", strict, e)
			}
		}
		if !strings.Contains(p.stderr.String(), name) {
			t.Errorf("the log does not name %s", name)
		}
		srv.start(t)
		os.Remove(filepath.Join(dir, name))
		os.Remove(filepath.Join(dir, late))
	}
}

// TestSidecarDeleteSafety: with --delete, a file deleted while the store is
// down and created again before it comes back is in the store at the end;
// a file excluded after a restart keeps its object.
func TestSidecarDeleteSafety(t *testing.T) {
	srv := newPrivateServer(t, "s3")
	tg := scS3(t, srv.endpoint())
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	state := filepath.Join(t.TempDir(), "state")
	writeFile(t, dir, "a.txt", "first")
	writeFile(t, dir, "b.ckpt", "checkpoint")
	args := []string{"-c", "data", "--path", dir, "--prefix", "run", "--interval", "300ms", "--delete", "--state", state}
	p := startSidecar(t, cat, tg.env, args...)
	waitFor(t, time.Minute, "a.txt uploaded", func() bool { _, ok := tg.get(t, "run/a.txt"); return ok })
	waitFor(t, time.Minute, "b.ckpt uploaded", func() bool { _, ok := tg.get(t, "run/b.ckpt"); return ok })

	srv.stop(t)
	os.Remove(filepath.Join(dir, "a.txt"))
	waitFor(t, time.Minute, "a failed deletion", func() bool {
		return strings.Contains(p.stderr.String(), "cannot delete the object of a deleted file")
	})
	writeFile(t, dir, "a.txt", "second")
	srv.start(t)
	waitFor(t, time.Minute, "a.txt uploaded again", func() bool {
		obj, ok := tg.get(t, "run/a.txt")
		return ok && string(obj.data) == "second"
	})
	time.Sleep(time.Second) // a few more cycles: the stale deletion must not run
	code, res := p.term(t)
	if code != 0 || len(notUploaded(t, res)) != 0 {
		t.Fatalf("exit %d, not uploaded %v\n%s", code, notUploaded(t, res), p.stderr.String())
	}
	if obj, ok := tg.get(t, "run/a.txt"); !ok || string(obj.data) != "second" {
		t.Fatalf("a.txt in the store: %q %v\n%s", obj.data, ok, p.stderr.String())
	}

	// Restarted with *.ckpt excluded: b.ckpt is still there, so its object stays.
	until := writeFile(t, t.TempDir(), "done", "")
	p = startSidecar(t, cat, tg.env, append(args, "--exclude", "*.ckpt", "--until-file", until)...)
	if code, _ := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	if _, ok := tg.get(t, "run/b.ckpt"); !ok {
		t.Errorf("the object of an excluded file that still exists was deleted\n%s", p.stderr.String())
	}
}

// TestSidecarAzureRefused: Azure refuses the sidecar's key. Every upload
// fails (small files sent whole, a medium file through the blob writer);
// the sidecar keeps them pending and exits 0 naming them, or non-zero with
// --strict, and never panics.
func TestSidecarAzureRefused(t *testing.T) {
	st := azuriteStore(t, "")
	entry, env := st.connection(t, st.newBucket(t), "", true)
	cat := storeCatalog(t, entry)
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "a.txt", "small")
	writeFile(t, dir, "m.bin", strings.Repeat("medium ", 150_000))
	for i := range 10 {
		writeFile(t, dir, fmt.Sprintf("more/%d.txt", i), "small")
	}
	for _, strict := range []bool{false, true} {
		args := []string{"-c", "data", "--path", dir, "--prefix", "run", "--interval", "500ms", "--grace", "20s"}
		if strict {
			args = append(args, "--strict")
		}
		p := startSidecar(t, cat, env, args...)
		// A failed cycle, and the first look at the store (which runs
		// beside the cycles and a signal cuts short) saying it refused.
		waitFor(t, time.Minute, "a failed cycle and the first look's message", func() bool {
			s := p.stderr.String()
			return strings.Contains(s, "not uploaded") && strings.Contains(s, "the store refuses this connection's settings")
		})
		code, res := p.term(t)
		if strings.Contains(p.stderr.String(), "panic") {
			t.Fatalf("strict=%v: panicked:\n%s", strict, p.stderr.String())
		}
		// The uploads' refusals name the credentials used, as a download's do.
		if !regexp.MustCompile(`access denied with the connection string from \S+/AZURE_CONNECTION_STRING: `).MatchString(p.stderr.String()) {
			t.Errorf("strict=%v: the refusals do not name the credentials:\n%s", strict, p.stderr.String())
		}
		// The first look says the store refused, not that it is down.
		if strings.Contains(p.stderr.String(), "not reachable yet") {
			t.Errorf("strict=%v: the first look's message:\n%s", strict, p.stderr.String())
		}
		if want := map[bool]int{false: 0, true: 3}[strict]; code != want {
			t.Errorf("strict=%v: exit %d, want %d\n%s", strict, code, want, p.stderr.String())
		}
		if got := notUploaded(t, res); len(got) != 12 {
			t.Errorf("strict=%v: not uploaded %v, want all 12 files", strict, got)
		}
		if sec := scDetails(t, res)["flushSeconds"].(float64); sec > 10 {
			t.Errorf("strict=%v: refused credentials held the final flush %.1f s of its 20 s grace", strict, sec)
		}
		for _, f := range scDetails(t, res)["notUploaded"].([]any) {
			if m := f.(map[string]any); m["class"] != "auth" || strings.Contains(m["error"].(string), "lost the store") {
				t.Errorf("strict=%v: %s: class %v: %s", strict, m["path"], m["class"], m["error"])
			}
		}
	}
}

// TestSidecarUnreadableFiles runs the sidecar as an unprivileged user over
// a folder holding a file and a subfolder it cannot read: every other file
// is uploaded, both are named in the result with the auth class, the final
// flush does not spend its whole grace on them, and --strict exits 3.
func TestSidecarUnreadableFiles(t *testing.T) {
	tg := scS3(t, "")
	s := testenv.Load(t).S3()
	base := sharedDir(t, 0o777)
	cat := writeFile(t, base, "catalog.yaml", fmt.Sprintf("connections:\n  - {name: data, kind: s3, schema: {bucket: \"s3://%s\"}}\n", tg.bucket))
	os.Chmod(cat, 0o644)
	dir := filepath.Join(base, "out")
	for i := range 20 {
		writeFile(t, dir, fmt.Sprintf("f%02d.txt", i), "readable")
	}
	os.Chmod(writeFile(t, dir, "secret.bin", "root only"), 0o600)
	writeFile(t, dir, "locked/b.txt", "root only")
	os.Chmod(filepath.Join(dir, "locked"), 0o700)
	until := writeFile(t, base, "done", "")
	for _, strict := range []bool{false, true} {
		result := filepath.Join(base, fmt.Sprintf("result-%v.json", strict))
		args := []string{"--reuid", "65534", "--regid", "65534", "--clear-groups", binary, "sidecar", "--catalog", cat, "-c", "data",
			"--path", dir, "--prefix", fmt.Sprintf("run-%v", strict), "--state", "none", "--until-file", until, "--grace", "20s", "--result", result}
		if strict {
			args = append(args, "--strict")
		}
		code, out := runCmd(t, []string{"AWS_ACCESS_KEY_ID=" + s.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s.SecretAccessKey,
			"AWS_ENDPOINT_URL=" + s.Endpoint, "AWS_REGION=" + s.Region, "AWS_EC2_METADATA_DISABLED=true"}, "setpriv", args...)
		if want := map[bool]int{false: 0, true: 3}[strict]; code != want {
			t.Fatalf("strict=%v: exit %d, want %d\n%s", strict, code, want, out)
		}
		var res map[string]any
		b, err := os.ReadFile(result)
		if err != nil || json.Unmarshal(b, &res) != nil {
			t.Fatalf("no result: %v\n%s", err, out)
		}
		d := scDetails(t, res)
		var failed []string
		for _, f := range d["notUploaded"].([]any) {
			m := f.(map[string]any)
			failed = append(failed, m["path"].(string)+" "+m["class"].(string))
			if m["path"] == "locked/" && !strings.Contains(m["error"].(string), "let this container's user read it") {
				t.Errorf("strict=%v: locked/: %v", strict, m["error"])
			}
		}
		if want := []string{"secret.bin auth", "locked/ auth"}; !slices.Equal(failed, want) {
			t.Errorf("strict=%v: not uploaded %q, want %q\n%s", strict, failed, want, out)
		}
		if n := len(tg.list(t, fmt.Sprintf("run-%v/", strict))); n != 20 {
			t.Errorf("strict=%v: %d objects in the store, want the 20 readable files", strict, n)
		}
		if sec := d["flushSeconds"].(float64); sec > 10 {
			t.Errorf("strict=%v: the final flush took %.1f s of its 20 s grace on failures that cannot mend", strict, sec)
		}
	}
}

// TestSidecarFlushWaitsForAGrowingLog: the job ends while a log is still
// being written for a while: the final flush goes on uploading it, beyond
// the first upload of a part of it, instead of stopping there.
func TestSidecarFlushWaitsForAGrowingLog(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	logPath := writeFile(t, dir, "train.log", "")
	until := filepath.Join(t.TempDir(), "ended")
	p := startSidecar(t, cat, tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--interval", "60s",
		"--until-file", until, "--check-interval", "100ms", "--grace", "20s")
	g, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	atFlush, stop := -1, time.Time{}
	for i := 0; stop.IsZero() || time.Now().Before(stop); i++ {
		if i == 100 {
			writeFile(t, filepath.Dir(until), "ended", "") // the job has ended; the log goes on a little
		}
		if atFlush < 0 && strings.Contains(p.stderr.String(), "final flush") {
			atFlush, stop = len(all), time.Now().Add(2*time.Second)
		}
		line := []byte(fmt.Sprintf("step %d loss 0.%04d\n", i, i))
		g.Write(line)
		all = append(all, line...)
		time.Sleep(2 * time.Millisecond)
	}
	g.Close()
	if code, _ := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	obj, _ := tg.get(t, "run/train.log")
	if !bytes.HasPrefix(all, obj.data) || len(obj.data) < atFlush+(len(all)-atFlush)/2 {
		t.Errorf("the store has %d bytes of the log: %d were written when the flush began, %d in all", len(obj.data), atFlush, len(all))
	}
}

// TestSidecarHealthWhileStoreHangs: a store that accepts connections and
// never answers keeps neither /healthz nor the sidecar's start waiting.
func TestSidecarHealthWhileStoreHangs(t *testing.T) {
	hanging, _ := silentServer(t)
	s := testenv.Load(t).S3()
	cat := storeCatalog(t, `{name: data, kind: s3, schema: {bucket: "s3://hanging"}}`)
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "a.txt", "a")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startSidecar(t, cat, []string{"AWS_ACCESS_KEY_ID=" + s.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s.SecretAccessKey,
		"AWS_ENDPOINT_URL=" + hanging, "AWS_REGION=" + s.Region, "AWS_EC2_METADATA_DISABLED=true"},
		"-c", "data", "--path", dir, "--prefix", "run", "--metrics-addr", addr, "--grace", "1s")
	start := time.Now()
	waitFor(t, 5*time.Second, "/healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	t.Logf("/healthz answered after %v", time.Since(start).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "the sidecar's start", func() bool { return strings.Contains(p.stderr.String(), "sidecar started") })
	code, _ := p.term(t)
	if code != 0 {
		t.Errorf("exit %d\n%s", code, p.stderr.String())
	}
}

// TestSidecarLargeAndGrowingFiles: a 512 MiB file goes up as a multipart
// upload intact, and a file appended to while it is uploaded ends up in the
// store with its final content.
func TestSidecarLargeAndGrowingFiles(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const big = 512<<20 + 4321
	f, err := os.Create(filepath.Join(dir, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, randomReader(big, 42)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// The growing file: appended in 1 MiB chunks while the sidecar runs with
	// a short interval, so its uploads overlap the appends.
	growing := filepath.Join(dir, "train.log")
	writeFile(t, dir, "train.log", "")
	p := startSidecar(t, cat, tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--interval", "200ms", "--part-size", "16")
	h := sha256.New()
	g, err := os.OpenFile(growing, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var uploadsSeen atomic.Int32
	for i := range 48 {
		chunk := bytes.Repeat([]byte(fmt.Sprintf("step %05d ", i)), 1<<20/11)
		g.Write(chunk)
		h.Write(chunk)
		if _, ok := tg.get(t, "run/train.log"); ok {
			uploadsSeen.Add(1)
		}
	}
	g.Close()
	code, res := p.term(t)
	if code != 0 || len(notUploaded(t, res)) != 0 {
		t.Fatalf("exit %d, not uploaded %v\n%s", code, notUploaded(t, res), p.stderr.String())
	}
	obj, ok := tg.get(t, "run/train.log")
	if !ok || sha256.Sum256(obj.data) != [32]byte(h.Sum(nil)) {
		t.Errorf("train.log in the store (%d bytes) is not the final file", len(obj.data))
	}
	obj, ok = tg.get(t, "run/model.bin")
	if !ok || int64(len(obj.data)) != big || sha256.Sum256(obj.data) != sha(randomReader(big, 42)) {
		t.Fatalf("model.bin differs: %d bytes", len(obj.data))
	}
	// A multipart upload's ETag is "<md5 of the part MD5s>-<parts>".
	if !strings.Contains(obj.etag, "-") {
		t.Errorf("model.bin ETag %q: not a multipart upload", obj.etag)
	}
}

// TestSidecarLogThatNeverStops: a log appended to every few milliseconds
// never holds still for a whole upload; it still reaches the store while
// it grows (as a prefix of what was written), and whole at the end.
func TestSidecarLogThatNeverStops(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "live.log", strings.Repeat("header\n", 3_000_000))
	p := startSidecar(t, cat, tg.env, "-c", "data", "--path", dir, "--prefix", "run", "--interval", "200ms")
	stop := make(chan struct{})
	done := make(chan []byte)
	go func() {
		all, _ := os.ReadFile(filepath.Join(dir, "live.log"))
		g, err := os.OpenFile(filepath.Join(dir, "live.log"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			panic(err)
		}
		defer g.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- all
				return
			case <-time.After(2 * time.Millisecond):
			}
			line := []byte(fmt.Sprintf("step %d\n", i))
			g.Write(line)
			all = append(all, line...)
		}
	}()
	waitFor(t, time.Minute, "the growing log in the store", func() bool {
		obj, ok := tg.get(t, "run/live.log")
		return ok && len(obj.data) >= 21_000_000
	})
	close(stop)
	all := <-done
	obj, _ := tg.get(t, "run/live.log")
	if !bytes.HasPrefix(all, obj.data) {
		t.Errorf("the object uploaded while the log grew (%d bytes) is not a prefix of it", len(obj.data))
	}
	code, res := p.term(t)
	if code != 0 || len(notUploaded(t, res)) != 0 {
		t.Fatalf("exit %d, not uploaded %v\n%s", code, notUploaded(t, res), p.stderr.String())
	}
	if obj, _ := tg.get(t, "run/live.log"); !bytes.Equal(obj.data, all) {
		t.Errorf("the final object has %d bytes, the log %d", len(obj.data), len(all))
	}
}

// TestSidecarWatchContainer serves real Pod JSON over TLS (the main
// container running, failed under restartPolicy OnFailure, running again,
// then completed): the sidecar keeps going through the restart and ends by
// itself with a final flush once the container completes, authenticating
// with the service account token.
func TestSidecarWatchContainer(t *testing.T) {
	tg := scAzure(t)
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "first.txt", "1")

	var state atomic.Value
	state.Store(`{"running":{"startedAt":"2026-01-01T00:00:00Z"}}`)
	var requests atomic.Int32
	var badAuth atomic.Int32
	pod := func(state string) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"job-abc","namespace":"ml"},
 "spec":{"restartPolicy":"OnFailure","containers":[{"name":"main","image":"python:3.12"}],
         "initContainers":[{"name":"sidecar","image":"initializer","restartPolicy":"Always"}]},
 "status":{"phase":"Running","containerStatuses":[{"name":"main","ready":false,"restartCount":0,"image":"python:3.12","imageID":"","state":` + state + `}]}}`
	}
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Authorization") != "Bearer sa-token" {
			badAuth.Add(1)
			http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v1/namespaces/ml/pods/job-abc" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, pod(state.Load().(string)))
	}))
	defer api.Close()
	sa := t.TempDir()
	writeFile(t, sa, "token", "sa-token\n")
	writeFile(t, sa, "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})))

	port := freePort(t)
	p := startSidecar(t, cat, append(tg.env, "POD_NAME=job-abc", "POD_NAMESPACE=ml"),
		"-c", "data", "--path", dir, "--prefix", "run", "--interval", "500ms", "--check-interval", "100ms",
		"--watch-container", "main", "--kube-api", api.URL, "--kube-token-file", filepath.Join(sa, "token"),
		"--kube-ca-file", filepath.Join(sa, "ca.crt"), "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port))
	waitFor(t, time.Minute, "first.txt uploaded", func() bool { _, ok := tg.get(t, "run/first.txt"); return ok })
	waitFor(t, time.Minute, "pod reads", func() bool { return requests.Load() >= 3 })
	if !p.running() {
		t.Fatalf("the sidecar ended while the container runs:\n%s", p.stderr.String())
	}
	// Metrics and health while it runs.
	body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	for _, m := range []string{"initializer_sidecar_uploaded_files_total 1", "initializer_sidecar_pending_files 0", "initializer_sidecar_last_success_timestamp_seconds", "initializer_sidecar_upload_errors_total 0", "initializer_sidecar_uploaded_bytes_total 1"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	if h := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", port)); !strings.Contains(h, `"status":"ok"`) {
		t.Errorf("/healthz: %s", h)
	}

	// A failure the kubelet restarts the container after is not the end.
	state.Store(`{"terminated":{"exitCode":1,"reason":"Error","startedAt":"2026-01-01T00:00:00Z","finishedAt":"2026-01-01T00:01:00Z"}}`)
	seen := requests.Load()
	waitFor(t, time.Minute, "pod reads", func() bool { return requests.Load() >= seen+5 || !p.running() })
	if !p.running() {
		t.Fatalf("the sidecar ended when the container failed under restartPolicy OnFailure:\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "will be restarted (restartPolicy OnFailure, exit code 1): still watching") {
		t.Errorf("the restart is not logged:\n%s", p.stderr.String())
	}
	state.Store(`{"running":{"startedAt":"2026-01-01T00:01:10Z"}}`)
	writeFile(t, dir, "retry.txt", "written by the second attempt")
	waitFor(t, time.Minute, "retry.txt uploaded", func() bool { _, ok := tg.get(t, "run/retry.txt"); return ok })

	writeFile(t, dir, "last.txt", "written as the container ends")
	state.Store(`{"terminated":{"exitCode":0,"reason":"Completed","startedAt":"2026-01-01T00:01:10Z","finishedAt":"2026-01-01T00:02:00Z"}}`)
	code, res := p.wait(t)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	if reason := scDetails(t, res)["endReason"].(string); !strings.Contains(reason, "container main terminated") {
		t.Errorf("end reason %q", reason)
	}
	if obj, ok := tg.get(t, "run/last.txt"); !ok || string(obj.data) != "written as the container ends" {
		t.Errorf("last.txt: %q %v", obj.data, ok)
	}
	if badAuth.Load() != 0 {
		t.Errorf("%d requests without the service account token", badAuth.Load())
	}

	// A container the pod does not have (exit 2), a token the API refuses
	// (exit 3): the end could never be seen, and the pod would never
	// complete. The run stops with what is there uploaded.
	for _, c := range []struct {
		container, token string
		code             int
		want             string
	}{
		{"mian", "sa-token", 2, `has no container "mian" (it has main)`},
		{"main", "expired", 3, "the API does not accept the token"},
	} {
		writeFile(t, sa, "token", c.token+"\n")
		name := "stopped-" + c.container + ".txt"
		writeFile(t, dir, name, "there when the watch fails")
		p := startSidecar(t, cat, append(tg.env, "POD_NAME=job-abc", "POD_NAMESPACE=ml"),
			"-c", "data", "--path", dir, "--prefix", "run", "--check-interval", "100ms",
			"--watch-container", c.container, "--kube-api", api.URL, "--kube-token-file", filepath.Join(sa, "token"),
			"--kube-ca-file", filepath.Join(sa, "ca.crt"))
		code, _ := p.wait(t)
		if code != c.code || !strings.Contains(p.stderr.String(), c.want) {
			t.Errorf("--watch-container %s, token %s: exit %d, want %d saying %q\n%s", c.container, c.token, code, c.code, c.want, p.stderr.String())
		}
		if _, ok := tg.get(t, "run/"+name); !ok {
			t.Errorf("%s not uploaded before the stop", name)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// TestSidecarMountStore uploads to a host_path connection: the files land
// under <mountPath>/<run uuid>/ with their modification times, no attribute
// files are written, and --delete mirrors a deletion.
func TestSidecarMountStore(t *testing.T) {
	mount := t.TempDir()
	cat := catalog(t, fmt.Sprintf("artifactsStore:\n  name: store\n  kind: host_path\n  schema: {hostPath: %s, mountPath: %s}\n", mount, mount))
	dir := filepath.Join(t.TempDir(), "out")
	p1 := writeFile(t, dir, "keep/a.txt", "a")
	writeFile(t, dir, "gone.txt", "deleted later")
	long := "keep/" + strings.Repeat("n", 251) + ".txt" // a name of 255 bytes
	p2 := writeFile(t, dir, long, "a long name")
	mtime := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	os.Chtimes(p1, mtime, mtime)
	os.Chtimes(p2, mtime, mtime)
	p := startSidecar(t, cat, []string{"POLYAXON_RUN_INSTANCE=o.p.runs.r42", "POLYAXON_ARTIFACTS_STORE_NAME=store"},
		"--path", dir, "--interval", "300ms", "--delete")
	waitFor(t, time.Minute, "gone.txt uploaded", func() bool { _, err := os.Stat(filepath.Join(mount, "r42/gone.txt")); return err == nil })
	os.Remove(filepath.Join(dir, "gone.txt"))
	waitFor(t, time.Minute, "gone.txt deleted from the store", func() bool {
		_, err := os.Stat(filepath.Join(mount, "r42/gone.txt"))
		return os.IsNotExist(err)
	})
	// A file replaced by a folder of that name, and a folder by a file.
	writeFile(t, dir, "y/z.txt", "in a folder")
	writeFile(t, dir, "w", "a file")
	waitFor(t, time.Minute, "y/z.txt and w uploaded", func() bool {
		_, e1 := os.Stat(filepath.Join(mount, "r42/y/z.txt"))
		_, e2 := os.Stat(filepath.Join(mount, "r42/w"))
		return e1 == nil && e2 == nil
	})
	os.RemoveAll(filepath.Join(dir, "y"))
	writeFile(t, dir, "y", "now a file")
	os.Remove(filepath.Join(dir, "w"))
	writeFile(t, dir, "w/v.txt", "now in a folder")
	waitFor(t, time.Minute, "y and w/v.txt in the store", func() bool {
		y, e1 := os.ReadFile(filepath.Join(mount, "r42/y"))
		v, e2 := os.ReadFile(filepath.Join(mount, "r42/w/v.txt"))
		return e1 == nil && e2 == nil && string(y) == "now a file" && string(v) == "now in a folder"
	})
	os.Remove(filepath.Join(dir, "y"))
	os.RemoveAll(filepath.Join(dir, "w"))

	code, res := p.term(t)
	if code != 0 || scDetails(t, res)["deleted"] != float64(5) {
		t.Fatalf("exit %d, %v\n%s", code, scDetails(t, res), p.stderr.String())
	}
	for _, gone := range []string{"r42/y", "r42/w"} {
		if _, err := os.Stat(filepath.Join(mount, gone)); !os.IsNotExist(err) {
			t.Errorf("%s is still in the mount: %v", gone, err)
		}
	}
	for _, rel := range []string{"keep/a.txt", long} {
		if st, err := os.Stat(filepath.Join(mount, "r42", rel)); err != nil {
			t.Errorf("%.30s… is not in the mount: %v", rel, err)
		} else if !st.ModTime().Equal(mtime) {
			t.Errorf("%.30s… in the mount has mtime %v", rel, st.ModTime())
		}
	}
	filepath.Walk(mount, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && p != filepath.Join(mount, "r42/keep/a.txt") && p != filepath.Join(mount, "r42", long) {
			t.Errorf("unexpected file in the mount: %s", p)
		}
		return nil
	})
}

// TestSidecarTLSGivenAsHTTP: an https endpoint given as http://. The
// uploads' own errors say so, not only the first look at the store.
func TestSidecarTLSGivenAsHTTP(t *testing.T) {
	s := testenv.Load(t).S3()
	bucket := minioStore(t, "").newBucket(t)
	frontURL, _ := tlsFront(t, s.Endpoint)
	cat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/run"}}`, bucket))
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "a.txt", "a")
	until := writeFile(t, t.TempDir(), "done", "")
	p := startSidecar(t, cat, []string{"AWS_ACCESS_KEY_ID=" + s.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s.SecretAccessKey,
		"AWS_ENDPOINT_URL=" + strings.Replace(frontURL, "https://", "http://", 1), "AWS_REGION=" + s.Region, "AWS_EC2_METADATA_DISABLED=true"},
		"-c", "data", "--path", dir, "--prefix", "p", "--state", "none", "--until-file", until, "--grace", "10s", "--strict")
	code, _ := p.wait(t)
	if code == 0 {
		t.Fatalf("exit 0:\n%s", p.stderr.String())
	}
	found := false
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, "a.txt") && strings.Contains(line, "the endpoint speaks TLS, not plain http: give it as https://") {
			found = true
		}
	}
	if !found {
		t.Errorf("no upload error says the endpoint speaks TLS:\n%s", p.stderr.String())
	}
	// The final error (--strict) says why, not only what.
	if !strings.Contains(p.stderr.String(), `error: connection "data" (s3): 1 file was not uploaded to s3://`+bucket+"/run (--strict); a.txt: upload of a.txt") ||
		!strings.Contains(p.stderr.String(), "give it as https://; sidecar: 0 uploads") {
		t.Errorf("the final error lacks the cause:\n%s", p.stderr.String())
	}
}
