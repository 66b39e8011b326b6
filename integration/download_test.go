package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/integration/testenv"
)

var storeKinds = []struct {
	kind string
	open func(t *testing.T, endpoint string) objectStore
}{
	{"s3", minioStore},
	{"gcs", func(t *testing.T, endpoint string) objectStore {
		return fakeGCSStore(t, strings.TrimPrefix(endpoint, "http://"))
	}},
	{"wasb", azuriteStore},
}

func storeCatalog(t *testing.T, entry string) string {
	return catalog(t, "connections:\n  - "+entry+"\n")
}

// randomReader yields n pseudo-random bytes, the same for the same seed.
func randomReader(n int64, seed uint64) io.Reader {
	return io.LimitReader(rand.NewChaCha8(seedBytes(seed)), n)
}

func seedBytes(seed uint64) (b [32]byte) {
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return b
}

func sha(r io.Reader) [32]byte {
	h := sha256.New()
	io.Copy(h, r)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func fileSHA(t *testing.T, p string) [32]byte {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return sha(f)
}

func TestDownloadFromObjectStores(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			st := sk.open(t, "")
			bucket := st.newBucket(t)
			small := map[string]string{
				"ds/train/a.csv":                   "1,2,3\n",
				"ds/train/nested/deeper/b.csv":     "4,5,6\n",
				"ds/ünïcødé/データ.txt":               "unicode key\n",
				"ds/with space/and more space.txt": "spaces\n",
				"ds/empty.txt":                     "",
			}
			for k, v := range small {
				st.put(t, bucket, k, strings.NewReader(v), int64(len(v)))
			}
			for i := range 1000 {
				v := fmt.Sprintf("small object %d\n", i)
				st.put(t, bucket, fmt.Sprintf("ds/many/%04d.txt", i), strings.NewReader(v), int64(len(v)))
			}
			const bigSize = 256<<20 + 12345
			st.put(t, bucket, "ds/big/model.bin", randomReader(bigSize, 7), bigSize)
			st.put(t, bucket, "elsewhere/not-selected.txt", strings.NewReader("no"), 2)

			entry, env := st.connection(t, bucket, "ds", false)
			cat := storeCatalog(t, entry)
			dst := filepath.Join(t.TempDir(), "data")

			r := cli(t, env, "check", "--catalog", cat, "--connection", "data")
			r.expectCode(t, 0)

			r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst, "--part-size", "32")
			r.expectCode(t, 0)
			res := r.Result["result"].(map[string]any)
			if res["files"] != float64(1006) || res["skipped"] != float64(0) {
				t.Errorf("result: %v", res)
			}
			for k, v := range small {
				got, err := os.ReadFile(filepath.Join(dst, strings.TrimPrefix(k, "ds/")))
				if err != nil || string(got) != v {
					t.Errorf("%s: %q, %v", k, got, err)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(dst, "many/0999.txt")); string(got) != "small object 999\n" {
				t.Errorf("many/0999.txt = %q", got)
			}
			if fileSHA(t, filepath.Join(dst, "big/model.bin")) != sha(randomReader(bigSize, 7)) {
				t.Error("the large object differs (SHA-256)")
			}
			if _, err := os.Stat(filepath.Join(dst, "not-selected.txt")); err == nil {
				t.Error("an object outside the prefix was downloaded")
			}

			// A re-run downloads nothing.
			r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst)
			r.expectCode(t, 0)
			if res := r.Result["result"].(map[string]any); res["files"] != float64(0) || res["skipped"] != float64(1006) {
				t.Errorf("re-run result: %v", res)
			}

			// A changed object is downloaded again, and only it.
			time.Sleep(1100 * time.Millisecond) // modification times have a one-second grain
			st.put(t, bucket, "ds/train/a.csv", strings.NewReader("changed\n"), 8)
			r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst)
			r.expectCode(t, 0)
			if res := r.Result["result"].(map[string]any); res["files"] != float64(1) {
				t.Errorf("changed-object result: %v", res)
			}
			if got, _ := os.ReadFile(filepath.Join(dst, "train/a.csv")); string(got) != "changed\n" {
				t.Errorf("changed object: %q", got)
			}
			// Replaced again at once, by one of the same size: GCS and
			// MinIO list times finer than a second, and the file got that
			// time, so the change is seen (Azurite lists whole seconds).
			if sk.kind != "wasb" {
				st.put(t, bucket, "ds/train/a.csv", strings.NewReader("again!!\n"), 8)
				r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst)
				r.expectCode(t, 0)
				if got, _ := os.ReadFile(filepath.Join(dst, "train/a.csv")); string(got) != "again!!\n" {
					t.Errorf("object replaced within the second: %q", got)
				}
			}

			// Selections: --files and --dirs with renames, --paths deciding by itself.
			sel := t.TempDir()
			r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", sel,
				"--files", "train/a.csv:first.csv", "--dirs", "train/nested:nested", "--paths", "empty.txt,many")
			r.expectCode(t, 0)
			for _, p := range []string{"first.csv", "nested/deeper/b.csv", "empty.txt", "many/0000.txt"} {
				if _, err := os.Stat(filepath.Join(sel, p)); err != nil {
					t.Errorf("selection: %v", err)
				}
			}
			assertNoTemporaryFiles(t, dst)
		})
	}
}

func TestDownloadSingleObjectAndErrors(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			st := sk.open(t, "")
			bucket := st.newBucket(t)
			st.put(t, bucket, "models/v1/weights.bin", strings.NewReader("weights"), 7)

			// A prefix that names one object downloads that object.
			entry, env := st.connection(t, bucket, "models/v1/weights.bin", false)
			target := filepath.Join(t.TempDir(), "w.bin")
			r := cli(t, env, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", target)
			r.expectCode(t, 0)
			if got, _ := os.ReadFile(target); string(got) != "weights" {
				t.Errorf("single object: %q", got)
			}

			// A missing bucket exits 4, and leaves no folder of --path it
			// would have created.
			entry, env = st.connection(t, bucket+"-missing", "", false)
			parent := t.TempDir()
			r = cli(t, env, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", filepath.Join(parent, "new", "deep"))
			r.expectCode(t, 4)
			if !strings.Contains(r.Stderr, fmt.Sprintf("%q does not exist", bucket+"-missing")) {
				t.Errorf("a missing bucket is not named as such:\n%s", r.Stderr)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("a failed download left folders behind: %v", entries)
			}
			r = cli(t, env, "check", "--catalog", storeCatalog(t, entry), "--connection", "data")
			r.expectCode(t, 4)
			// Named as missing with selection flags too, not as a missing
			// object.
			for _, args := range [][]string{{"--files", "x"}, {"--dirs", "x"}, {"--paths", "x"}} {
				r = cli(t, env, append([]string{"--catalog", storeCatalog(t, entry), "--connection", "data", "--path", t.TempDir()}, args...)...)
				r.expectCode(t, 4)
				if !strings.Contains(r.Stderr, fmt.Sprintf("%q does not exist", bucket+"-missing")) {
					t.Errorf("%v: a missing bucket is not named as such:\n%s", args, r.Stderr)
				}
			}

			// Wrong credentials exit 3 (the GCS emulator does not check them).
			if sk.kind != "gcs" {
				entry, env = st.connection(t, bucket, "", true)
				for _, args := range [][]string{{"check"}, {"--path", t.TempDir()}} {
					r = cli(t, env, append(args, "--catalog", storeCatalog(t, entry), "--connection", "data")...)
					r.expectCode(t, 3)
					if strings.Contains(r.Stderr, "wrong-") || strings.Contains(r.Stderr, "d3JvbmcgYWNjb3VudCBrZXk") {
						t.Errorf("the secret leaked into stderr:\n%s", r.Stderr)
					}
					// The download's own listing meets the refusal (no
					// prefix to look up first): it names the credentials'
					// source and the settings to check, as check does.
					fix := map[string]string{"s3": "check AWS_ACCESS_KEY_ID", "wasb": "check AZURE_ACCOUNT_NAME"}[sk.kind]
					if !strings.Contains(r.Stderr, "was refused with ") || !strings.Contains(r.Stderr, fix) {
						t.Errorf("%v: the refusal does not name the credentials and %q:\n%s", args, fix, r.Stderr)
					}
				}
			}
		})
	}
}

// TestDownloadRefusesTraversalKey stores keys that would climb out of the
// prefix or be absolute, as far as each server accepts them (MinIO refuses
// ".." in keys, so it gets only a backslash key; the GCS emulator keeps
// them in memory), and checks that the
// download refuses them and writes nothing outside --path.
func TestDownloadRefusesTraversalKey(t *testing.T) {
	hostile := []string{"p/../../evil.txt", "p//abs/evil.txt", `p/..\..\evil.txt`, `p/sub\evil.txt`, "p/./evil.txt", "p/sub//evil.txt"}
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			st := sk.open(t, "")
			stored := 0
			for _, key := range hostile {
				bucket := st.newBucket(t)
				st.put(t, bucket, "p/good.txt", strings.NewReader("good"), 4)
				if err := st.tryPut(bucket, key, strings.NewReader("evil"), 4); err != nil {
					t.Logf("%s refuses the key %q: %v", sk.kind, key, err)
					continue
				}
				entry, env := st.connection(t, bucket, "p", false)
				base := t.TempDir()
				dst := filepath.Join(base, "a", "b")
				r := cli(t, env, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", dst)
				if r.Code == 0 {
					// The server normalised the key on upload (Azure turns
					// backslashes into slashes): it must have landed inside --path.
					t.Logf("%s stored %q normalised", sk.kind, key)
				} else {
					r.expectCode(t, 2)
					stored++
					if !strings.Contains(r.Stderr, "is refused") {
						t.Errorf("key %q: the error does not say it is refused:\n%s", key, r.Stderr)
					}
					if strings.Contains(key, "//") && (!strings.Contains(r.Stderr, `it has an empty or "." part`) || strings.Contains(r.Stderr, "absolute")) {
						t.Errorf("key %q: the error does not name its empty part:\n%s", key, r.Stderr)
					}
					// --result says what was done before the failure.
					if res, ok := r.Result["result"].(map[string]any); !ok || res["files"] == nil && res["skipped"] == nil || res["path"] != dst {
						t.Errorf("key %q: no counts in the result of a failed run: %v", key, r.Result)
					}
				}
				filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
					if err == nil && strings.Contains(d.Name(), "evil") && (r.Code != 0 || !strings.HasPrefix(p, dst+"/")) {
						t.Errorf("key %q: written: %s", key, p)
					}
					return nil
				})
			}
			if stored == 0 {
				t.Fatalf("%s stored none of the hostile keys %q as given: nothing was tested", sk.kind, hostile)
			}
		})
	}
}

// TestDownloadKeysTheBlobAPIEscapes stores, with each store's own SDK,
// keys that the blob API escapes on every request ("%", "#", "?", '"' on
// Azure; "../" inside a name and "__0x41__" everywhere): a download must read
// them under their real names and write them under those names.
func TestDownloadKeysTheBlobAPIEscapes(t *testing.T) {
	// A control character cannot be carried by XML 1.0: S3 listings must
	// come URL-encoded for it.
	keys := []string{"ds/pct%20x+y.txt", "ds/hash#x.txt", "ds/q?x.txt", `ds/quote"x.txt`, "ds/esc__0x41__b.txt", "ds/v1../file.txt", "ds/plain.txt",
		"ds/ctl\x01.txt", "ds/sp ace+plus%25.txt"}
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			st := sk.open(t, "")
			bucket := st.newBucket(t)
			var stored []string
			for _, k := range keys {
				if sk.kind == "wasb" && strings.Contains(k, "\x01") {
					continue // Azurite stores it, then answers every listing with a 500
				}
				if err := st.tryPut(bucket, k, strings.NewReader("content of "+k), int64(len("content of "+k))); err != nil {
					t.Logf("%s refuses the key %q: %v", sk.kind, k, err)
					continue
				}
				stored = append(stored, k)
			}
			if len(stored) < 4 {
				t.Fatalf("%s stored only %q: too little tested", sk.kind, stored)
			}
			entry, env := st.connection(t, bucket, "ds", false)
			cat := storeCatalog(t, entry)
			dst := t.TempDir()
			r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst)
			r.expectCode(t, 0)
			for _, k := range stored {
				got, err := os.ReadFile(filepath.Join(dst, strings.TrimPrefix(k, "ds/")))
				if err != nil || string(got) != "content of "+k {
					t.Errorf("%s: %q, %v", k, got, err)
				}
			}
			if n := countFiles(dst); n != len(stored) {
				t.Errorf("%d files written for %d objects", n, len(stored))
			}
			r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst)
			r.expectCode(t, 0)
			if res := r.Result["result"].(map[string]any); res["files"] != float64(0) || res["skipped"] != float64(len(stored)) {
				t.Errorf("re-run: %v", res)
			}
			// Each named alone with --files: downloaded, or, a name the
			// library escapes on this store, refused with that reason (not
			// "check the name": the object is there).
			for _, k := range stored {
				name := strings.TrimPrefix(k, "ds/")
				one := t.TempDir()
				// A comma or a colon in a name takes a backslash.
				flag := strings.NewReplacer(`,`, `\,`, `:`, `\:`).Replace(name)
				r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", one, "--files", flag)
				switch r.Code {
				case 0:
					if got, err := os.ReadFile(filepath.Join(one, name)); err != nil || string(got) != "content of "+k {
						t.Errorf("--files %q: %q, %v", name, got, err)
					}
				case 4:
					if !strings.Contains(r.Stderr, "escapes on this store") {
						t.Errorf("--files %q: refused without the reason:\n%s", name, r.Stderr)
					}
				default:
					t.Errorf("--files %q: exit %d\n%s", name, r.Code, r.Stderr)
				}
			}

			// The same names uploaded by this tool's sidecar come back as they were.
			src := t.TempDir()
			names := []string{"loss%.png", "run#3?.txt", `say "hi".txt`, "v1../x.txt", "esc__0x41__b.txt", "plain.txt"}
			for _, n := range names {
				writeFile(t, src, n, "local "+n)
			}
			sidecarOnce(t, env, cat, src, "up")
			back := t.TempDir()
			downloadPrefix(t, st, bucket, "ds/up", back).expectCode(t, 0)
			for _, n := range names {
				if got, err := os.ReadFile(filepath.Join(back, n)); err != nil || string(got) != "local "+n {
					t.Errorf("uploaded %s: %q, %v", n, got, err)
				}
			}
			if n := countFiles(back); n != len(names) {
				t.Errorf("%d files came back for %d uploaded", n, len(names))
			}

			// Under a prefix the library escapes, objects of both kinds.
			pre := t.TempDir()
			writeFile(t, pre, "f.txt", "by the sidecar")
			sidecarOnce(t, env, cat, pre, "p__0x41__")
			st.put(t, bucket, "ds/p__0x5f___0x41__/x__0x42__", strings.NewReader("native"), 6)
			got := t.TempDir()
			downloadPrefix(t, st, bucket, "ds/p__0x41__", got).expectCode(t, 0)
			for name, want := range map[string]string{"f.txt": "by the sidecar", "x__0x42__": "native"} {
				if b, err := os.ReadFile(filepath.Join(got, name)); err != nil || string(b) != want {
					t.Errorf("escaped prefix, %s: %q, %v", name, b, err)
				}
			}

			// Twins: one name stored as it is by another tool and escaped by
			// this one's sidecar cannot both be written: refused.
			twin := t.TempDir()
			writeFile(t, twin, "x__0x41__y", "by the sidecar")
			sidecarOnce(t, env, cat, twin, "tw")
			st.put(t, bucket, "ds/tw/x__0x41__y", strings.NewReader("native"), 6)
			r = downloadPrefix(t, st, bucket, "ds/tw", t.TempDir())
			r.expectCode(t, 2)
			if !strings.Contains(r.Stderr, "would both be written") {
				t.Errorf("twins:\n%s", r.Stderr)
			}
		})
	}
}

// TestDownloadGzipEncodedObjects: objects stored with Content-Encoding gzip
// (small ones read whole, a large one in ranges) arrive as stored, as the
// listed size and MD5 describe them: neither GCS nor the HTTP client
// decompresses them on the way.
func TestDownloadGzipEncodedObjects(t *testing.T) {
	var small, large bytes.Buffer
	for _, tc := range []struct {
		buf  *bytes.Buffer
		size int64
	}{{&small, 200_000}, {&large, 70 << 20}} {
		zw := gzip.NewWriter(tc.buf)
		io.Copy(zw, io.LimitReader(strings.NewReader(strings.Repeat("compressible text line\n", int(tc.size/23)+1)), tc.size))
		zw.Close()
	}
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			st := sk.open(t, "")
			bucket := st.newBucket(t)
			for k, data := range map[string][]byte{"g/small.txt.gz": small.Bytes(), "g/large.txt.gz": large.Bytes()} {
				if err := st.putGzip(bucket, k, data); err != nil {
					t.Fatal(err)
				}
			}
			entry, env := st.connection(t, bucket, "g", false)
			dst := t.TempDir()
			r := cli(t, env, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", dst, "--part-size", "16")
			r.expectCode(t, 0)
			for name, want := range map[string][]byte{"small.txt.gz": small.Bytes(), "large.txt.gz": large.Bytes()} {
				if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes (%v), want the %d stored", name, len(got), err, len(want))
				}
			}
		})
	}
}

// sidecarOnce uploads dir with the sidecar of connection "data" in cat
// under prefix, one final flush.
func sidecarOnce(t *testing.T, env []string, cat, dir, prefix string) {
	t.Helper()
	until := writeFile(t, t.TempDir(), "done", "")
	cli(t, env, "sidecar", "--catalog", cat, "--connection", "data", "--path", dir, "--prefix", prefix, "--state", "none", "--until-file", until).expectCode(t, 0)
}

// downloadPrefix downloads bucket/prefix of st into dst.
func downloadPrefix(t *testing.T, st objectStore, bucket, prefix, dst string) run {
	t.Helper()
	entry, env := st.connection(t, bucket, prefix, false)
	return cli(t, env, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", dst)
}

// TestDownloadSelectionErrors: selections that name nothing fail with exit
// 4 and say which flag; an empty prefix is only a warning; a --path that is
// a file is a usage error; a single object's download leaves the
// temporary files of other folders alone.
func TestDownloadSelectionErrors(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			st := sk.open(t, "")
			bucket := st.newBucket(t)
			st.put(t, bucket, "ds/sub/a.txt", strings.NewReader("a"), 1)
			st.put(t, bucket, "ds/model.txt", strings.NewReader("model"), 5)
			entry, env := st.connection(t, bucket, "ds", false)
			cat := storeCatalog(t, entry)

			for i := range 40 {
				st.put(t, bucket, fmt.Sprintf("ds/many/%02d", i), strings.NewReader("m"), 1)
			}
			for _, args := range [][]string{{"--dirs", "nosuch"}, {"--paths", "nosuch"}, {"--dirs", "sub", "--files", "nosuch.txt"},
				{"--dirs", "many,sub,nosuch"}, {"--files", "model.txt", "--dirs", "many", "--paths", "nosuch"}} {
				dst := t.TempDir()
				r := cli(t, env, append([]string{"--catalog", cat, "--connection", "data", "--path", dst}, args...)...)
				r.expectCode(t, 4)
				if !strings.Contains(r.Stderr, args[len(args)-2]) || !strings.Contains(r.Stderr, "data") {
					t.Errorf("%v: the error names neither the flag nor the connection:\n%s", args, r.Stderr)
				}
				// Every selection is found before anything is written.
				if n := countFiles(dst); n != 0 {
					t.Errorf("%v: %d files written by a run that failed on a selection", args, n)
				}
				// check says what the run would.
				r = cli(t, env, append([]string{"check", "--catalog", cat, "--connection", "data"}, args...)...)
				r.expectCode(t, 4)
				if !strings.Contains(r.Stderr, args[len(args)-2]) {
					t.Errorf("check %v: the error does not name the flag:\n%s", args, r.Stderr)
				}
			}
			// An object given to --dirs, a folder to --files: the flag to
			// use is named, by a run and by check.
			for _, c := range []struct{ args, want string }{
				{"--dirs=model.txt", `"ds/model.txt" is an object, not a folder; give it with --files`},
				{"--files=sub", `"ds/sub" is a folder, not an object; give it with --dirs`},
			} {
				for _, cmd := range [][]string{{"--path", t.TempDir()}, {"check"}} {
					args := append([]string{"--catalog", cat, "--connection", "data", c.args}, cmd...)
					if cmd[0] == "check" {
						args = append([]string{"check"}, args[:len(args)-1]...)
					}
					r := cli(t, env, args...)
					r.expectCode(t, 4)
					if !strings.Contains(r.Stderr, c.want) {
						t.Errorf("%v: stderr lacks %q:\n%s", args, c.want, r.Stderr)
					}
				}
			}
			for _, c := range []struct {
				args []string
				code int
			}{
				{[]string{"--files", "model.txt", "--dirs", "sub", "--paths", "sub/a.txt:b.txt"}, 0},
				{[]string{"--files", "../x"}, 2},
				{[]string{"--paths", "model.txt:"}, 2},
			} {
				r := cli(t, env, append([]string{"check", "--catalog", cat, "--connection", "data"}, c.args...)...)
				r.expectCode(t, c.code)
			}
			r0 := cli(t, env, "--catalog", cat, "--connection", "data", "--path", t.TempDir(), "--paths", "model.txt:")
			r0.expectCode(t, 2)
			if !strings.Contains(r0.Stderr, "the destination is empty") {
				t.Errorf("--paths model.txt: with an empty destination:\n%s", r0.Stderr)
			}

			// Two selections to one place: refused before anything is written.
			for _, args := range [][]string{{"--files", "sub/a.txt:x,model.txt:x"}, {"--dirs", "sub:q", "--files", "model.txt:q/m.txt"}} {
				dst := t.TempDir()
				r := cli(t, env, append([]string{"--catalog", cat, "--connection", "data", "--path", dst}, args...)...)
				r.expectCode(t, 2)
				if !strings.Contains(r.Stderr, "write to the same place") || countFiles(dst) != 0 {
					t.Errorf("%v: %d files written\n%s", args, countFiles(dst), r.Stderr)
				}
			}
			// A destination ending with a slash is a folder.
			into := t.TempDir()
			r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", into, "--files", "model.txt:in/")
			r.expectCode(t, 0)
			if got, _ := os.ReadFile(filepath.Join(into, "in", "model.txt")); string(got) != "model" {
				t.Errorf("--files model.txt:in/ wrote %q", got)
			}

			// A folder that only a zero-byte marker stands for.
			if err := st.tryPut(bucket, "ds/markeronly/", strings.NewReader(""), 0); err != nil {
				t.Logf("%s refuses folder markers: %v", sk.kind, err)
			} else {
				dst := t.TempDir()
				r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst, "--dirs", "markeronly:m2")
				r.expectCode(t, 0)
				if st, err := os.Stat(filepath.Join(dst, "m2")); err != nil || !st.IsDir() {
					t.Errorf("--dirs of a folder marker: %v", err)
				}
				// A local file where the marker puts its folder: refused,
				// then removed with --force (on Azure too, whose library
				// escapes a marker's trailing slash).
				st.put(t, bucket, "ds/mk/sub/", strings.NewReader(""), 0)
				dst3 := t.TempDir()
				os.WriteFile(filepath.Join(dst3, "mk"), []byte("local"), 0o644)
				for _, force := range []bool{false, true} {
					args := []string{"--catalog", cat, "--connection", "data", "--path", dst3, "--dirs", "markeronly:m3,mk"}
					if force {
						args = append(args, "--force")
					}
					r := cli(t, env, args...)
					if !force {
						r.expectCode(t, 2)
						continue
					}
					r.expectCode(t, 0)
					if st, err := os.Stat(filepath.Join(dst3, "mk", "sub")); err != nil || !st.IsDir() {
						t.Errorf("--force over a file where a marker puts a folder: %v\n%s", err, r.Stderr)
					}
				}
			}

			empty, env2 := st.connection(t, bucket, "nothing/here", false)
			r = cli(t, env2, "check", "--catalog", storeCatalog(t, empty), "--connection", "data")
			r.expectCode(t, 0)
			if !strings.Contains(fmt.Sprint(r.Result["result"]), "holds no object") {
				t.Errorf("check of an empty prefix: %v", r.Result)
			}
			dst := t.TempDir()
			r = cli(t, env2, "--catalog", storeCatalog(t, empty), "--connection", "data", "--path", dst)
			r.expectCode(t, 0)
			if !strings.Contains(r.Stderr, "nothing to download") {
				t.Errorf("an empty prefix is not reported:\n%s", r.Stderr)
			}

			file := writeFile(t, t.TempDir(), "file", "x")
			r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", file)
			r.expectCode(t, 2)
			if !strings.Contains(r.Stderr, "is a file") {
				t.Errorf("--path on a file:\n%s", r.Stderr)
			}

			one, env3 := st.connection(t, bucket, "ds/model.txt", false)
			par := t.TempDir()
			other := writeFile(t, par, "otherjob/deep/"+fsutil.TempPrefix+"abc", "another run's")
			stale := writeFile(t, par, fsutil.TempPrefix+"def", "left by a killed run")
			old := time.Now().Add(-time.Hour)
			os.Chtimes(stale, old, old)
			r = cli(t, env3, "--catalog", storeCatalog(t, one), "--connection", "data", "--path", filepath.Join(par, "model.txt"))
			r.expectCode(t, 0)
			if _, err := os.Stat(other); err != nil {
				t.Errorf("a temporary file in another folder was removed: %v", err)
			}
			if _, err := os.Stat(stale); err == nil {
				t.Error("a temporary file beside the object was left")
			}
		})
	}
}

// TestDownloadSelectionNames: names holding a colon, a comma or a quote
// are taken with --files, --dirs and --paths (a backslash before a colon or
// a comma), an entry that src:dst makes ambiguous is refused, a name ending
// with a slash is a folder, and an empty value is refused.
func TestDownloadSelectionNames(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			st := sk.open(t, "")
			bucket := st.newBucket(t)
			for key, body := range map[string]string{
				"ds/ck/model": "OLD", "ds/ck/model:v2": "NEW", "ds/col/t10:00.txt": "ten", "ds/q/a,b.txt": "comma",
				`ds/q/say "hi".txt`: "quote", "ds/sub/a.txt": "a", "ds/model.txt": "model", "ds/e:1.log": "drive",
			} {
				st.put(t, bucket, key, strings.NewReader(body), int64(len(body)))
			}
			entry, env := st.connection(t, bucket, "ds", false)
			cat := storeCatalog(t, entry)
			get := func(args ...string) (run, string) {
				dst := t.TempDir()
				return cli(t, env, append([]string{"--catalog", cat, "--connection", "data", "--path", dst}, args...)...), dst
			}
			for _, c := range []struct {
				args      []string
				file, got string
			}{
				{[]string{"--files", `ck/model\:v2`}, "ck/model:v2", "NEW"},
				{[]string{"--files", `ck/model\:v2:latest`}, "latest", "NEW"},
				{[]string{"--files", "ck/model:./v1"}, "v1", "OLD"},
				{[]string{"--paths", `col/t10\:00.txt`}, "col/t10:00.txt", "ten"},
				{[]string{"--files", `q/a\,b.txt,model.txt`}, "q/a,b.txt", "comma"},
				{[]string{"--files", `q/say "hi".txt`}, `q/say "hi".txt`, "quote"},
				{[]string{"--paths", "sub/:s"}, "s/a.txt", "a"},
				// A name with one letter before a colon is a plain name.
				{[]string{"--files", `e\:1.log`}, "e:1.log", "drive"},
				{[]string{"--files", "model.txt:./c:x"}, "c:x", "model"},
				{nil, "e:1.log", "drive"},
			} {
				if strings.Contains(c.file, `"`) && sk.kind == "wasb" {
					continue // gocloud.dev escapes a quote on Azure: such a name is not taken alone
				}
				r, dst := get(c.args...)
				r.expectCode(t, 0)
				if got, err := os.ReadFile(filepath.Join(dst, c.file)); string(got) != c.got {
					t.Errorf("%v: %s holds %q (%v), want %q\n%s", c.args, c.file, got, err, c.got, r.Stderr)
				}
			}
			for _, c := range []struct {
				args []string
				code int
				want string
			}{
				// Both the source before the colon and the whole entry exist.
				{[]string{"--files", "ck/model:v2"}, 2, `--files "ck/model:v2" is read as source "ck/model" to destination "v2", and an object "ck/model:v2" exists: say which is meant`},
				{[]string{"--paths", "col/t10:00.txt"}, 2, `--paths "col/t10:00.txt" is read as source "col/t10" to destination "00.txt", and an object "col/t10:00.txt" exists`},
				{[]string{"--dirs", "ck:model:v2"}, 2, ""}, // the destination "model:v2" is fine; "ck:model:v2" is no folder: taken
				{[]string{"--files", "col/nosuch:00.txt"}, 4, `the entry was read as src:dst at a colon, source "col/nosuch"; for a colon in a name write \:`},
				{[]string{"--files", ""}, 2, "--files is given an empty value"},
				{[]string{"--paths", ""}, 2, "--paths is given an empty value"},
				{[]string{"--dirs", "sub,"}, 2, `--dirs "sub," holds an empty entry`},
				{[]string{"--files", "sub/"}, 2, `--files "sub/": a name ending with a slash is a folder`},
				{[]string{"--paths", "model.txt/"}, 2, `"ds/model.txt" is an object, and a name ending with a slash is a folder; name it without the final slash`},
				{[]string{"--files", "model.txt:."}, 2, `--files "model.txt:.": the destination is empty`},
			} {
				r, dst := get(c.args...)
				if c.want == "" {
					r.expectCode(t, 0)
					continue
				}
				r.expectCode(t, c.code)
				if !strings.Contains(r.Stderr, c.want) {
					t.Errorf("%v: stderr lacks %q:\n%s", c.args, c.want, r.Stderr)
				}
				if n := countFiles(dst); n != 0 {
					t.Errorf("%v: %d files written", c.args, n)
				}
			}
			// An object and a folder of one name (not on MinIO, whose keys
			// are files): name/ takes the folder.
			if sk.kind != "s3" {
				st.put(t, bucket, "ds/a", strings.NewReader("object"), 6)
				st.put(t, bucket, "ds/a/b", strings.NewReader("below"), 5)
				r, dst := get("--paths", "a/:x")
				r.expectCode(t, 0)
				if got, _ := os.ReadFile(filepath.Join(dst, "x", "b")); string(got) != "below" {
					t.Errorf("--paths a/:x: x/b holds %q\n%s", got, r.Stderr)
				}
				r, dst = get("--paths", "a:x")
				r.expectCode(t, 0)
				if got, _ := os.ReadFile(filepath.Join(dst, "x")); string(got) != "object" {
					t.Errorf("--paths a:x: x holds %q\n%s", got, r.Stderr)
				}
			}
		})
	}
}

// TestDownloadRetriesFirstRequest starts the store after the download:
// the first request (does the prefix name an object?) is retried as every
// other request is.
func TestDownloadRetriesFirstRequest(t *testing.T) {
	srv := newPrivateServer(t, "s3")
	st := minioStore(t, srv.endpoint())
	bucket := st.newBucket(t)
	st.put(t, bucket, "ds/a.txt", strings.NewReader("a"), 1)
	entry, env := st.connection(t, bucket, "ds", false)
	cat := storeCatalog(t, entry)
	for _, args := range [][]string{nil, {"--paths", "a.txt"}} {
		srv.stop(t)
		dst := t.TempDir()
		done := make(chan run)
		go func() {
			done <- cli(t, env, append([]string{"--catalog", cat, "--connection", "data", "--path", dst, "--retries", "8"}, args...)...)
		}()
		time.Sleep(1500 * time.Millisecond)
		srv.start(t)
		r := <-done
		r.expectCode(t, 0)
		if !strings.Contains(r.Stderr, "retrying") {
			t.Errorf("%v: no retry logged:\n%s", args, r.Stderr)
		}
		if got, _ := os.ReadFile(filepath.Join(dst, "a.txt")); string(got) != "a" {
			t.Errorf("%v: a.txt = %q", args, got)
		}
	}
	// A store that stays down: exit 5, and the result counts the retries
	// of that first request.
	srv.stop(t)
	r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", t.TempDir(), "--retries", "2")
	r.expectCode(t, 5)
	res, _ := r.Result["result"].(map[string]any)
	details, _ := res["details"].(map[string]any)
	if details["retries"] != float64(2) || details["transferSeconds"] == nil {
		t.Errorf("the result's details: %v", details)
	}
}

// TestDownloadRetriesZero puts a proxy that answers 503 to every read of
// one object in front of each store: with --retries 0 the object is asked
// for once (neither the engine nor the store's client retries), and the
// run ends with exit 5; with --retries 2 it is asked for again.
func TestDownloadRetriesZero(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			target := sharedEndpoint(t, sk.kind)
			st := sk.open(t, "")
			bucket := st.newBucket(t)
			st.put(t, bucket, "ds/ok.txt", strings.NewReader("ok"), 2)
			st.put(t, bucket, "ds/busy.bin", strings.NewReader("busy"), 4)
			var gets atomic.Int64
			// The Host header is left as the client sent it: signatures
			// cover it.
			proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "busy.bin") {
					gets.Add(1)
					w.Header().Set("Retry-After", "0")
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			defer front.Close()
			entry, cenv := sk.open(t, front.URL).connection(t, bucket, "ds", false)
			cat := storeCatalog(t, entry)

			dst := filepath.Join(t.TempDir(), "dst")
			r := cli(t, cenv, "--catalog", cat, "--connection", "data", "--path", dst, "--retries", "0")
			r.expectCode(t, 5)
			if n := gets.Load(); n != 1 {
				t.Errorf("--retries 0: the object was asked for %d times, want once\n%s", n, r.Stderr)
			}
			if _, err := os.Stat(filepath.Join(dst, "busy.bin")); err == nil {
				t.Error("busy.bin was written")
			}
			assertNoTemporaryFiles(t, dst)

			gets.Store(0)
			r = cli(t, cenv, "--catalog", cat, "--connection", "data", "--path", dst, "--retries", "2")
			r.expectCode(t, 5)
			if n := gets.Load(); n < 3 {
				t.Errorf("--retries 2: the object was asked for %d times, want 3 or more\n%s", n, r.Stderr)
			}
		})
	}
}

// TestDownloadWrongRegion: keys signed for another region than the
// store's are refused with the region to set, by check, by a download's
// first look and by its listing.
func TestDownloadWrongRegion(t *testing.T) {
	s := testenv.Load(t).S3()
	// A MinIO that enforces its region (the shared one takes any).
	srv := newPrivateServer(t, "s3")
	srv.stop(t)
	argv := srv.argv
	srv.argv = func(port int, data string) ([]string, []string) {
		a, e := argv(port, data)
		return a, append(e, "MINIO_REGION="+s.Region)
	}
	srv.start(t)
	st := minioStore(t, srv.endpoint())
	bucket := st.newBucket(t)
	st.put(t, bucket, "ds/a.txt", strings.NewReader("a"), 1)
	wrong := "eu-west-3"
	if s.Region == wrong {
		wrong = "ap-south-1"
	}
	dir := secretDir(t, map[string]string{"AWS_ACCESS_KEY_ID": s.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s.SecretAccessKey,
		"AWS_ENDPOINT_URL": srv.endpoint(), "AWS_REGION": wrong})
	for _, c := range []struct{ url, cmd string }{{"ds", "check"}, {"ds", "run"}, {"ds/", "run"}} {
		cat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/%s"}, secret: {name: s3, mountPath: %q}}`, bucket, c.url, dir))
		args := []string{"check", "--catalog", cat, "--connection", "data"}
		if c.cmd == "run" {
			args = []string{"--catalog", cat, "--connection", "data", "--path", t.TempDir()}
		}
		r := cli(t, []string{"AWS_EC2_METADATA_DISABLED=true"}, args...)
		r.expectCode(t, 2)
		if want := "set AWS_REGION to the bucket's region (the bucket's region is " + s.Region + ")"; !strings.Contains(r.Stderr, want) {
			t.Errorf("%s %s: stderr lacks %q:\n%s", c.cmd, c.url, want, r.Stderr)
		}
	}
}

// TestDownloadSurvivesServerRestart stops the store in the middle of a
// download and starts it again: the download completes, or fails with exit
// 5 leaving no partial file; a second run then completes.
func TestDownloadSurvivesServerRestart(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			srv := newPrivateServer(t, sk.kind)
			st := sk.open(t, srv.endpoint())
			bucket := st.newBucket(t)
			const n, size = 150, 1 << 20
			for i := range n {
				st.put(t, bucket, fmt.Sprintf("d/f%03d.bin", i), randomReader(size, uint64(i)), size)
			}
			entry, env := st.connection(t, bucket, "d", false)
			cat := storeCatalog(t, entry)
			dst := t.TempDir()
			cmd := exec.Command(binary, "--catalog", cat, "--connection", "data", "--path", dst, "--workers", "2", "--log-format", "json")
			cmd.Env = baseEnv(env)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, "a first downloaded file", func() bool { return countFiles(dst) > 0 })
			srv.stop(t)
			time.Sleep(time.Second)
			srv.start(t)
			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != 0 && code != 5 {
				t.Fatalf("exit code %d, want 0 or 5\n%s", code, stderr.String())
			}
			t.Logf("exit code %d during the restart", code)
			checkDownloaded(t, dst, n, size, code == 0)
			r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst)
			r.expectCode(t, 0)
			checkDownloaded(t, dst, n, size, true)
		})
	}
}

// checkDownloaded verifies that every file in dst is complete and correct,
// and, when all is set, that all n are there.
func checkDownloaded(t *testing.T, dst string, n, size int, all bool) {
	t.Helper()
	assertNoTemporaryFiles(t, dst)
	found := 0
	for i := range n {
		p := filepath.Join(dst, fmt.Sprintf("f%03d.bin", i))
		if _, err := os.Stat(p); err != nil {
			continue
		}
		found++
		if fileSHA(t, p) != sha(randomReader(int64(size), uint64(i))) {
			t.Errorf("%s is corrupt", p)
		}
	}
	if all && found != n {
		t.Errorf("%d of %d files downloaded", found, n)
	}
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".initializer-tmp-") {
			n++
		}
		return nil
	})
	return n
}

func assertNoTemporaryFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".initializer-tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// tlsFront serves endpoint (a test server's) over TLS, as an ingress
// would, until the test ends: it returns the front's URL and its
// certificate, in PEM. The front keeps the Host the request was signed for.
func tlsFront(t *testing.T, endpoint string) (string, string) {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewUnstartedServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}, ErrorLog: log.New(io.Discard, "", 0)})
	front.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected in some tests
	front.StartTLS()
	t.Cleanup(front.Close)
	return front.URL, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}))
}

// TestDownloadS3OverTLS: MinIO behind a TLS front, as behind an ingress.
// With AWS_CA_BUNDLE holding the front's certificate, small objects (one
// signed GET each) and a large one (ranged reads) download intact; without
// it the certificate is refused (exit 2, saying so); with
// AWS_VERIFY_SSL=false it is not checked, and the log says so.
func TestDownloadS3OverTLS(t *testing.T) {
	s := testenv.Load(t).S3()
	plain := minioStore(t, "")
	bucket := plain.newBucket(t)
	small := map[string]string{"a.txt": "alpha", "dir/b c.txt": "bravo"}
	for k, v := range small {
		plain.put(t, bucket, "tls/"+k, strings.NewReader(v), int64(len(v)))
	}
	const bigSize = 65 << 20 // over the 64 MiB from which objects are read in ranges
	plain.put(t, bucket, "tls/big.bin", randomReader(bigSize, 7), bigSize)

	frontURL, caPEM := tlsFront(t, s.Endpoint)
	connection := func(extra map[string]string) (string, []string) {
		files := map[string]string{"AWS_ACCESS_KEY_ID": s.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s.SecretAccessKey,
			"AWS_ENDPOINT_URL": frontURL, "AWS_REGION": s.Region}
		maps.Copy(files, extra)
		return fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/tls"}, secret: {name: s3-creds, mountPath: %q}}`, bucket, secretDir(t, files)),
			[]string{"AWS_EC2_METADATA_DISABLED=true"}
	}
	download := func(entry string, env []string, code int) (string, run) {
		dst := t.TempDir()
		r := cli(t, env, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", dst)
		r.expectCode(t, code)
		return dst, r
	}
	intact := func(dst string) {
		t.Helper()
		for k, v := range small {
			if got, err := os.ReadFile(filepath.Join(dst, k)); err != nil || string(got) != v {
				t.Errorf("%s: %q, %v", k, got, err)
			}
		}
		if fileSHA(t, filepath.Join(dst, "big.bin")) != sha(randomReader(bigSize, 7)) {
			t.Error("big.bin differs")
		}
	}

	entry, env := connection(map[string]string{"AWS_CA_BUNDLE": caPEM})
	dst, _ := download(entry, env, 0)
	intact(dst)
	// The large object, read in ranges after a HEAD (whole seconds), has
	// the time the listing gives (MinIO's milliseconds), as small ones do.
	out, err := s3Client(t, s.Endpoint, s.AccessKeyID, s.SecretAccessKey, s.Region).ListObjectsV2(context.Background(),
		&s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("tls/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		st, err := os.Stat(filepath.Join(dst, strings.TrimPrefix(aws.ToString(o.Key), "tls/")))
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(aws.ToTime(o.LastModified)) {
			t.Errorf("%s: modified %s, listed %s", aws.ToString(o.Key), st.ModTime().Format(time.RFC3339Nano), aws.ToTime(o.LastModified).Format(time.RFC3339Nano))
		}
	}

	entry, env = connection(nil)
	dst, r := download(entry, env, 2)
	if !strings.Contains(r.Stderr, "certificate") {
		t.Errorf("the refusal does not name the certificate:\n%s", r.Stderr)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("files written despite the refusal: %v", entries)
	}
	// Whichever request meets it first (the HEAD of the prefix, or the
	// listing of a folder's URL or of --dirs), the fix is named.
	for _, c := range []struct {
		entry string
		args  []string
	}{{entry, nil}, {strings.Replace(entry, `/tls"`, `/tls/"`, 1), nil}, {entry, []string{"--dirs", "dir"}}} {
		r := cli(t, env, append([]string{"--catalog", storeCatalog(t, c.entry), "--connection", "data", "--path", t.TempDir()}, c.args...)...)
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, "give the endpoint's CA in AWS_CA_BUNDLE") {
			t.Errorf("%s %v: the fix is not named:\n%s", c.entry, c.args, r.Stderr)
		}
	}

	// The TLS endpoint given as http://: said so, not a bare 400.
	// Whichever request meets it first: the HEAD of the prefix, of a
	// --files object, or a listing.
	entry, env = connection(map[string]string{"AWS_ENDPOINT_URL": strings.Replace(frontURL, "https://", "http://", 1)})
	for _, args := range [][]string{nil, {"--files", "a.txt"}, {"--dirs", "dir"}, {"check"}} {
		cmd := append([]string{"--catalog", storeCatalog(t, entry), "--connection", "data", "--path", t.TempDir()}, args...)
		if len(args) == 1 {
			cmd = []string{"check", "--catalog", storeCatalog(t, entry), "--connection", "data"}
		}
		r := cli(t, env, cmd...)
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, "the endpoint speaks TLS, not plain http") || !strings.Contains(r.Stderr, "give it as https://") {
			t.Errorf("%v: an https endpoint given as http is not named as such:\n%s", args, r.Stderr)
		}
	}
	// Not on a mistake of the flags, which never reached the store.
	r = cli(t, env, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", t.TempDir(), "--files", "a.txt,a.txt")
	r.expectCode(t, 2)
	if strings.Contains(r.Stderr, "speaks TLS") {
		t.Errorf("a flag mistake gets the TLS hint:\n%s", r.Stderr)
	}

	entry, env = connection(map[string]string{"AWS_VERIFY_SSL": "false"})
	dst, r = download(entry, env, 0)
	intact(dst)
	if !strings.Contains(r.Stderr, "AWS_VERIFY_SSL is false") {
		t.Errorf("no warning that the certificate is not checked:\n%s", r.Stderr)
	}

	// AWS_CA_BUNDLE adds to the system's CAs: a bundle for another
	// endpoint (set for the whole pod, as on CI machines) does not make
	// an endpoint the system trusts untrusted. Here the system's CAs
	// (SSL_CERT_FILE) hold the front's; the bundle, in the environment
	// and in the secret, an unrelated CA.
	_, otherCA := regSelfSigned(t, "another CA", nil)
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherCA}))
	system := writeFile(t, t.TempDir(), "system.pem", caPEM)
	otherFile := writeFile(t, t.TempDir(), "other.pem", otherPEM)
	entry, env = connection(nil)
	dst, _ = download(entry, append(env, "SSL_CERT_FILE="+system, "AWS_CA_BUNDLE="+otherFile), 0)
	intact(dst)
	entry, env = connection(map[string]string{"AWS_CA_BUNDLE": otherPEM})
	dst, _ = download(entry, append(env, "SSL_CERT_FILE="+system), 0)
	intact(dst)
}

// TestDownloadForceKeepsMountedVolumes: with --force, a folder where the
// bucket puts a file is removed, but not when it is a mount point (a
// volume mounted under --path): the volume keeps its files, exit 2.
func TestDownloadForceKeepsMountedVolumes(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed for this test: %v", err)
	}
	st := minioStore(t, "")
	bucket := st.newBucket(t)
	st.put(t, bucket, "p/models", strings.NewReader("weights"), 7)
	entry, env := st.connection(t, bucket, "p", false)
	dst, vol := t.TempDir(), t.TempDir()
	writeFile(t, vol, "weights.pt", "the volume's data")
	os.Mkdir(filepath.Join(dst, "models"), 0o755)
	wrapper := "unshare -m sh -c " + shellQuote(fmt.Sprintf("mount --bind %q %q && exec {}", vol, filepath.Join(dst, "models")))
	r := cliCmd(t, env, wrapper, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", dst, "--force")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "mount point") {
		t.Errorf("the refusal does not name the mount point:\n%s", r.Stderr)
	}
	if got, err := os.ReadFile(filepath.Join(vol, "weights.pt")); err != nil || string(got) != "the volume's data" {
		t.Errorf("the mounted volume lost its data: %q, %v", got, err)
	}
	// A file mounted where the bucket puts a folder (a ConfigMap's subPath):
	// refused the same way.
	st.put(t, bucket, "p2/cfg/x", strings.NewReader("x"), 1)
	entry2, env2 := st.connection(t, bucket, "p2", false)
	dst2 := t.TempDir()
	cfg := writeFile(t, t.TempDir(), "cfg", "mounted file")
	writeFile(t, dst2, "cfg", "")
	wrapper2 := "unshare -m sh -c " + shellQuote(fmt.Sprintf("mount --bind %q %q && exec {}", cfg, filepath.Join(dst2, "cfg")))
	r = cliCmd(t, env2, wrapper2, "--catalog", storeCatalog(t, entry2), "--connection", "data", "--path", dst2, "--force")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "mount point") {
		t.Errorf("the refusal does not name the mount point:\n%s", r.Stderr)
	}

	// Not mounted, the same folder is removed with --force.
	r = cli(t, env, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", dst, "--force")
	r.expectCode(t, 0)
	if got, _ := os.ReadFile(filepath.Join(dst, "models")); string(got) != "weights" {
		t.Errorf("models: %q", got)
	}
}

// TestDownloadS3EncryptedObjects: the ETag of an object encrypted with
// SSE-KMS is no MD5 of its content. Such objects download whole (one signed
// GET), named alone (a HEAD first) and in ranges (70 MiB), next to a plain
// one that is still verified; --checksum re-runs compare them by size and
// time instead of downloading them again.
func TestDownloadS3EncryptedObjects(t *testing.T) {
	srv := newPrivateServer(t, "s3")
	s := testenv.Load(t).S3()
	client := s3Client(t, srv.endpoint(), s.AccessKeyID, s.SecretAccessKey, s.Region)
	st := minioStore(t, srv.endpoint())
	bucket := st.newBucket(t)
	objects := map[string][]byte{
		"ds/small.txt":  []byte("encrypted with KMS\n"),
		"ds/large.bin":  randomBytes(t, 70<<20),
		"ds/plain.txt":  []byte("not encrypted\n"),
		"ds/sub/b.json": []byte(`{"k":"v"}`),
		"ds/tab\tx.txt": []byte("a name gocloud escapes"), // read by its real key
	}
	for k, v := range objects {
		in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(v), ContentLength: aws.Int64(int64(len(v)))}
		if k != "ds/plain.txt" {
			in.ServerSideEncryption, in.SSEKMSKeyId = "aws:kms", aws.String(kmsKeyName)
		}
		out, err := client.PutObject(context.Background(), in)
		if err != nil {
			t.Fatalf("PutObject %s: %v", k, err)
		}
		if sum := md5.Sum(v); k != "ds/plain.txt" && strings.Trim(aws.ToString(out.ETag), `"`) == hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: the ETag of an SSE-KMS object is its MD5; the test proves nothing", k)
		}
	}
	entry, env := st.connection(t, bucket, "ds", false)
	cat := storeCatalog(t, entry)
	dst := t.TempDir()
	r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst)
	r.expectCode(t, 0)
	for k, v := range objects {
		if got, err := os.ReadFile(filepath.Join(dst, strings.TrimPrefix(k, "ds/"))); err != nil || !bytes.Equal(got, v) {
			t.Errorf("%s: %d bytes, %v", k, len(got), err)
		}
	}
	r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst, "--checksum")
	r.expectCode(t, 0)
	if res := r.Result["result"].(map[string]any); res["files"] != float64(0) || res["skipped"] != float64(len(objects)) {
		t.Errorf("--checksum re-run: %v", res)
	}
	// Named one by one: the attributes come from a HEAD.
	one := t.TempDir()
	r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", one, "--files", "small.txt,large.bin")
	r.expectCode(t, 0)
	if got, _ := os.ReadFile(filepath.Join(one, "large.bin")); !bytes.Equal(got, objects["ds/large.bin"]) {
		t.Error("large.bin named alone: wrong content")
	}
}

// scopedCredentials returns temporary credentials from MinIO's STS whose
// session policy is policy (JSON), as a secret folder for an s3 connection
// (to the shared MinIO, or to the one at endpoint).
func scopedCredentials(t *testing.T, policy string, endpoint ...string) string {
	t.Helper()
	s := testenv.Load(t).S3()
	if len(endpoint) > 0 {
		s.Endpoint = endpoint[0]
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(s.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	client := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(s.Endpoint) })
	out, err := client.AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::123456789012:role/scoped"), RoleSessionName: aws.String("scoped"), Policy: aws.String(policy)})
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	return secretDir(t, map[string]string{
		"AWS_ACCESS_KEY_ID": aws.ToString(out.Credentials.AccessKeyId), "AWS_SECRET_ACCESS_KEY": aws.ToString(out.Credentials.SecretAccessKey),
		"AWS_SESSION_TOKEN": aws.ToString(out.Credentials.SessionToken), "AWS_ENDPOINT_URL": s.Endpoint, "AWS_REGION": s.Region,
	})
}

// TestDownloadPrefixScopedCredentials: AWS's usual per-folder policy
// grants the listing of a prefix and the objects below it, not the key of
// the prefix itself, whose HEAD is refused. A run and a check of the prefix
// work all the same; so does a single object with credentials that may
// read it but not list the bucket.
func TestDownloadPrefixScopedCredentials(t *testing.T) {
	st := minioStore(t, "")
	bucket := st.newBucket(t)
	for _, k := range []string{"ds/big/a.txt", "ds/big/sub/b.txt", "ds/other.txt"} {
		st.put(t, bucket, k, strings.NewReader(k), int64(len(k)))
	}
	prefixOnly := scopedCredentials(t, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s"],"Condition":{"StringLike":{"s3:prefix":["ds/big/*","ds/big/","ds/empty/*","ds/empty/"]}}},
		{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%[1]s/ds/big/*","arn:aws:s3:::%[1]s/ds/empty/*"]}]}`, bucket))
	env := []string{"AWS_EC2_METADATA_DISABLED=true"}
	for _, url := range []string{"s3://" + bucket + "/ds/big", "s3://" + bucket + "/ds/big/"} {
		cat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: %q}, secret: {name: s3-creds, mountPath: %q}}`, url, prefixOnly))
		cli(t, env, "check", "--catalog", cat, "--connection", "data").expectCode(t, 0)
		dst := t.TempDir()
		r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst)
		r.expectCode(t, 0)
		if got, _ := os.ReadFile(filepath.Join(dst, "sub", "b.txt")); string(got) != "ds/big/sub/b.txt" || countFiles(dst) != 2 {
			t.Errorf("%s: %d files, sub/b.txt = %q", url, countFiles(dst), got)
		}
		// --paths of a folder: its HEAD is refused too.
		dst = t.TempDir()
		cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst, "--paths", "sub").expectCode(t, 0)
		if countFiles(dst) != 1 {
			t.Errorf("%s --paths sub: %d files", url, countFiles(dst))
		}
	}
	// A granted prefix with nothing in it yet: a warning, as for any
	// empty prefix, in check and in the run alike.
	cat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/ds/empty"}, secret: {name: s3-creds, mountPath: %q}}`, bucket, prefixOnly))
	for _, args := range [][]string{{"check"}, {"--path", t.TempDir()}} {
		r := cli(t, env, append(args, "--catalog", cat, "--connection", "data")...)
		r.expectCode(t, 0)
		if !strings.Contains(r.Stderr, "level=WARN") {
			t.Errorf("%v of an empty granted prefix: no warning\n%s", args, r.Stderr)
		}
	}
	// A URL ending with / names a prefix, never the object of that name:
	// check warns that it is empty, as the run does.
	entry, full := st.connection(t, bucket, "ds/other.txt/", false)
	r := cli(t, full, "check", "--catalog", storeCatalog(t, entry), "--connection", "data")
	r.expectCode(t, 0)
	if !strings.Contains(r.Stderr, "holds no object") {
		t.Errorf("check of a URL with a slash after an object's name:\n%s", r.Stderr)
	}

	// What the policy does not grant stays refused.
	cat = storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/ds"}, secret: {name: s3-creds, mountPath: %q}}`, bucket, prefixOnly))
	cli(t, env, "--catalog", cat, "--connection", "data", "--path", t.TempDir()).expectCode(t, 3)

	readOnly := scopedCredentials(t, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/ds/big/a.txt"]}]}`, bucket))
	cat = storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/ds/big/a.txt"}, secret: {name: s3-creds, mountPath: %q}}`, bucket, readOnly))
	r = cli(t, env, "check", "--catalog", cat, "--connection", "data")
	r.expectCode(t, 0)
	if !strings.Contains(r.Stderr, "is an object readable with the given credentials") {
		t.Errorf("check of a readable object that cannot be listed:\n%s", r.Stderr)
	}
	dst := t.TempDir()
	cli(t, env, "--catalog", cat, "--connection", "data", "--path", dst+"/").expectCode(t, 0)
	if got, _ := os.ReadFile(filepath.Join(dst, "a.txt")); string(got) != "ds/big/a.txt" {
		t.Errorf("single object: %q", got)
	}
	// Objects that may be listed but not read: refused (exit 3), named by
	// the bucket URL, by --paths or by --files, in check and in the run.
	listOnly := scopedCredentials(t, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s"]},
		{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%[1]s/ds/big/sub/*"]}]}`, bucket))
	objCat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/ds/big/a.txt"}, secret: {name: s3-creds, mountPath: %q}}`, bucket, listOnly))
	dirCat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/ds/big"}, secret: {name: s3-creds, mountPath: %q}}`, bucket, listOnly))
	out := filepath.Join(t.TempDir(), "a.txt")
	cli(t, env, "--catalog", objCat, "--connection", "data", "--path", out).expectCode(t, 3)
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused object left something at --path")
	}
	// check of that object: refused too, not "holds no object".
	r = cli(t, env, "check", "--catalog", objCat, "--connection", "data")
	r.expectCode(t, 3)
	if !strings.Contains(r.Stderr, `reading "ds/big/a.txt"`) || strings.Contains(r.Stderr, "holds no object") {
		t.Errorf("check of an object that may be listed, not read:\n%s", r.Stderr)
	}
	cli(t, env, "--catalog", dirCat, "--connection", "data", "--path", t.TempDir(), "--paths", "a.txt").expectCode(t, 3)
	cli(t, env, "check", "--catalog", dirCat, "--connection", "data", "--files", "a.txt").expectCode(t, 3)

	// The same object selected with --files from the bucket's root: check
	// agrees with the run.
	cat = storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s"}, secret: {name: s3-creds, mountPath: %q}}`, bucket, readOnly))
	r = cli(t, env, "check", "--catalog", cat, "--connection", "data", "--files", "ds/big/a.txt")
	r.expectCode(t, 0)
	if !strings.Contains(r.Stderr, "the objects selected in") {
		t.Errorf("check --files of a readable object that cannot be listed:\n%s", r.Stderr)
	}
	cli(t, env, "--catalog", cat, "--connection", "data", "--path", t.TempDir(), "--files", "ds/big/a.txt").expectCode(t, 0)
	cli(t, env, "check", "--catalog", cat, "--connection", "data", "--files", "ds/big/nope.txt").expectCode(t, 3)
	// Mistakes of the flags themselves are said as the run says them.
	cli(t, env, "check", "--catalog", cat, "--connection", "data", "--files", "ds/big/a.txt,ds/big/a.txt").expectCode(t, 2)
	cli(t, env, "check", "--catalog", cat, "--connection", "data", "--files", "../x").expectCode(t, 2)
}

// TestInvalidBucketName: a bucket (container) name the store refuses as a
// name is named as such, with the field to fix (exit 2), by check and by a
// run, which leaves nothing.
func TestInvalidBucketName(t *testing.T) {
	for _, c := range []struct{ kind, name string }{{"s3", "My_Bucket"}, {"wasb", "Data_X"}} {
		for _, sk := range storeKinds {
			if sk.kind != c.kind {
				continue
			}
			entry, env := sk.open(t, "").connection(t, c.name, "p", false)
			cat := storeCatalog(t, entry)
			dst := filepath.Join(t.TempDir(), "out")
			for _, args := range [][]string{{"check", "--catalog", cat, "--connection", "data"}, {"--catalog", cat, "--connection", "data", "--path", dst}} {
				r := cli(t, env, args...)
				r.expectCode(t, 2)
				if want := fmt.Sprintf("%q is not a valid name for the store: fix schema.bucket", c.name); !strings.Contains(r.Stderr, want) {
					t.Errorf("%s %s: stderr lacks %q:\n%s", c.kind, args[0], want, r.Stderr)
				}
			}
			if _, err := os.Stat(dst); err == nil {
				t.Errorf("%s: a run left %s", c.kind, dst)
			}
		}
	}
}

// TestDownloadForceReplacesFileAtPath: a prefix downloaded to a --path that
// is a file is refused, saying --force replaces it; with --force the file
// makes way for the download's folder. A file above --path is refused
// either way.
func TestDownloadForceReplacesFileAtPath(t *testing.T) {
	st := minioStore(t, "")
	bucket := st.newBucket(t)
	st.put(t, bucket, "data/a.txt", strings.NewReader("a"), 1)
	entry, env := st.connection(t, bucket, "data", false)
	cat := storeCatalog(t, entry)
	target := writeFile(t, t.TempDir(), "out", "an earlier file")

	r := cli(t, env, "--catalog", cat, "--connection", "data", "--path", target)
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "--path "+target+" is a file") || !strings.Contains(r.Stderr, "pass --force to replace it") {
		t.Errorf("the refusal does not offer --force:\n%s", r.Stderr)
	}
	if b, _ := os.ReadFile(target); string(b) != "an earlier file" {
		t.Errorf("the refused run changed --path: %q", b)
	}

	r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", filepath.Join(target, "below"), "--force")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, "a name on the path of --path") || strings.Contains(r.Stderr, "pass --force") {
		t.Errorf("a file above --path:\n%s", r.Stderr)
	}

	// A failed download (a missing bucket) puts the file back.
	missing, menv := st.connection(t, bucket+"-missing", "data", false)
	r = cli(t, menv, "--catalog", storeCatalog(t, missing), "--connection", "data", "--path", target, "--force")
	r.expectCode(t, 4)
	if b, err := os.ReadFile(target); err != nil || string(b) != "an earlier file" {
		t.Errorf("a failed --force run lost the file at --path: %q, %v\n%s", b, err, r.Stderr)
	}
	if entries, _ := os.ReadDir(filepath.Dir(target)); len(entries) != 1 {
		t.Errorf("a failed --force run left %v beside --path", entries)
	}

	r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", target, "--force")
	r.expectCode(t, 0)
	if b, err := os.ReadFile(filepath.Join(target, "a.txt")); err != nil || string(b) != "a" {
		t.Errorf("--force: %q, %v\n%s", b, err, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "--force: removed the file that stood where --path puts a folder") {
		t.Errorf("no warning of the file removed:\n%s", r.Stderr)
	}
	if entries, _ := os.ReadDir(filepath.Dir(target)); len(entries) != 1 {
		t.Errorf("--force left %v beside --path", entries)
	}
	// The file a killed --force run moved aside is removed by the next
	// --force run that puts the download in its place.
	left := writeFile(t, filepath.Dir(target), ".out.initializer-aside-0123456789ab", "an earlier file")
	r = cli(t, env, "--catalog", cat, "--connection", "data", "--path", target, "--force")
	r.expectCode(t, 0)
	if _, err := os.Stat(left); err == nil || !strings.Contains(r.Stderr, "removed the file an earlier, killed run had moved aside") {
		t.Errorf("the file a killed run moved aside: %v\n%s", err, r.Stderr)
	}
}

// TestDownloadAzureHTTPSURLPercentEncoded: an https bucket URL is a URL, as
// the portal and the SDKs give it: its path is percent-encoded, and names
// the keys it decodes to.
func TestDownloadAzureHTTPSURLPercentEncoded(t *testing.T) {
	st := azuriteStore(t, "")
	container := st.newBucket(t)
	st.put(t, container, "ok/with space/f i.txt", strings.NewReader("spaced"), 6)
	st.put(t, container, "ok/with space/g%41.txt", strings.NewReader("percent"), 7)
	az := testenv.Load(t).Azure()
	dir := secretDir(t, map[string]string{"AZURE_CONNECTION_STRING": az.ConnectionString})
	for url, want := range map[string]map[string]string{
		"https://devstoreaccount1.blob.core.windows.net/" + container + "/ok/with%20space":           {"f i.txt": "spaced", "g%41.txt": "percent"},
		"https://devstoreaccount1.blob.core.windows.net/" + container + "/ok/with%20space/f%20i.txt": {"f i.txt": "spaced"},
	} {
		cat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: wasb, schema: {bucket: %q}, secret: {name: az-creds, mountPath: %q}}`, url, dir))
		dst := t.TempDir()
		r := cli(t, nil, "--catalog", cat, "--connection", "data", "--path", dst+"/")
		r.expectCode(t, 0)
		for name, content := range want {
			if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != content {
				t.Errorf("%s: %s = %q, %v\n%s", url, name, b, err, r.Stderr)
			}
		}
		if n := countFiles(dst); n != len(want) {
			t.Errorf("%s: %d files, want %d", url, n, len(want))
		}
	}
}

// TestDownloadLowOpenFilesLimit: a container whose open-files limit is low
// (ulimit -n 64, soft and hard) downloads with fewer workers than asked,
// saying so, instead of failing with "too many open files".
func TestDownloadLowOpenFilesLimit(t *testing.T) {
	st := minioStore(t, "")
	bucket := st.newBucket(t)
	for i := range 120 {
		k := fmt.Sprintf("ds/f%03d.txt", i)
		st.put(t, bucket, k, strings.NewReader(k), int64(len(k)))
	}
	const big = 70 << 20 // read as ranges
	st.put(t, bucket, "ds/big.bin", randomReader(big, 3), big)
	entry, env := st.connection(t, bucket, "ds", false)
	dst := t.TempDir()
	r := cliCmd(t, env, "ulimit -n 64 && exec {}", "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", dst)
	r.expectCode(t, 0)
	if n := countFiles(dst); n != 121 {
		t.Errorf("%d files downloaded, want 121", n)
	}
	if !strings.Contains(r.Stderr, "fewer workers than asked: the open-files limit (ulimit -n) allows no more") {
		t.Errorf("no word of the workers lowered:\n%s", r.Stderr)
	}
}

// TestProxyNamedWhenUnreachable: with HTTPS_PROXY / HTTP_PROXY naming a
// proxy that does not answer, the failure to connect is the proxy's, and
// the error says so (not only "check the host and port"): for a store and
// for git with both engines.
func TestProxyNamedWhenUnreachable(t *testing.T) {
	proxy := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	env := []string{"HTTPS_PROXY=" + proxy, "HTTP_PROXY=" + proxy, "http_proxy=" + proxy, "NO_PROXY="} // curl reads http_proxy only in lower case
	// Hosts that are no loopback address: Go sends loopback requests
	// direct, whatever the proxy settings.
	s := testenv.Load(t).S3()
	dir := secretDir(t, map[string]string{"AWS_ACCESS_KEY_ID": s.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s.SecretAccessKey,
		"AWS_ENDPOINT_URL": "http://store.initializer.invalid:9000", "AWS_REGION": s.Region})
	cat := storeCatalog(t, fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://b/p"}, secret: {name: s3, mountPath: %q}}`, dir))
	r := cli(t, append(env, "AWS_EC2_METADATA_DISABLED=true"), "--catalog", cat, "--connection", "data", "--path", t.TempDir(), "--retries", "0")
	r.expectCode(t, 5)
	if !strings.Contains(r.Stderr, "the proxy in HTTPS_PROXY / HTTP_PROXY could not be reached: check it, or list the endpoint's host in NO_PROXY") {
		t.Errorf("s3: the error does not name the proxy:\n%s", r.Stderr)
	}
	gcat := gitCatalog(t, "http://git.initializer.invalid/repo.git", "", nil, "")
	for _, eng := range engines {
		r := clone(t, env, gcat, filepath.Join(t.TempDir(), "code"), eng)
		r.expectCode(t, 5)
		if !strings.Contains(r.Stderr, "could not be reached: check it, or list the endpoint's host in NO_PROXY") {
			t.Errorf("git %s: the error does not name the proxy:\n%s", eng, r.Stderr)
		}
	}
}
