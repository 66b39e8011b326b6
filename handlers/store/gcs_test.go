package store

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"google.golang.org/api/googleapi"

	"github.com/initializer/initializer/connections"
)

// serviceAccountKey returns a service account key whose token_uri is a local
// token server, and the number of tokens that server handed out.
func serviceAccountKey(t *testing.T) ([]byte, *atomic.Int32) {
	t.Helper()
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	var tokens atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"test-token","token_type":"Bearer","expires_in":3600}`))
	}))
	t.Cleanup(srv.Close)
	key, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "initializer-test",
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "reader@initializer-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      srv.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	return key, &tokens
}

// TestGCSKeyToToken follows each way of giving a key down to an access
// token, from a local token server.
func TestGCSKeyToToken(t *testing.T) {
	key, tokens := serviceAccountKey(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.json")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	// GC_KEYFILE_DICT as upstream users write it: newlines of the private
	// key escaped as literal \n.
	var m map[string]string
	if err := json.Unmarshal(key, &m); err != nil {
		t.Fatal(err)
	}
	m["private_key"] = strings.ReplaceAll(m["private_key"], "\n", `\n`)
	escaped, _ := json.Marshal(m)
	dict := strings.ReplaceAll(string(escaped), `\\n`, `\n`)

	saved := contextRoot
	t.Cleanup(func() { contextRoot = saved })
	root := t.TempDir()
	contextRoot = func() string { return root }
	if err := os.MkdirAll(filepath.Join(root, ".gc"), 0o755); err != nil {
		t.Fatal(err)
	}

	for name, env := range map[string]map[string]string{
		"key file":        {"GC_KEY_PATH": keyFile},
		"inline key":      {"GC_KEYFILE_DICT": dict},
		"gc-secret.json":  nil,
		"escaped newline": {"GOOGLE_KEYFILE_DICT": strings.ReplaceAll(string(key), `\n`, `\\n`)},
	} {
		t.Run(name, func(t *testing.T) {
			fallback := filepath.Join(root, ".gc", "gc-secret.json")
			os.Remove(fallback)
			if env == nil {
				if err := os.WriteFile(fallback, key, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			k := testKeys(t, connections.GCS, "gs://b/p", nil, env)
			c, err := readGCSConfig(k)
			if err != nil {
				t.Fatal(err)
			}
			creds, err := c.credentials(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			before := tokens.Load()
			tok, err := creds.TokenSource.Token()
			if err != nil || tok.AccessToken != "test-token" || tokens.Load() != before+1 {
				t.Fatalf("token %v, %v", tok, err)
			}
			// Open builds the storage client over it without a request.
			s, err := Open(context.Background(), k.conn, k.keys, Options{Workers: 3})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestTransportPool(t *testing.T) {
	tr := newTransport(24)
	if tr.MaxIdleConnsPerHost != 24 || tr.MaxIdleConns != 48 || tr.Proxy == nil || !tr.ForceAttemptHTTP2 {
		t.Errorf("pool not sized to the workers: per host %d, total %d", tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
	}
}

func TestContentRead(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://storage.googleapis.com/storage/v1/b/bkt/o/a%2Fb?alt=media": true,
		"https://storage.googleapis.com/storage/v1/b/bkt/o/a%2Fb":           false,
		"https://storage.googleapis.com/storage/v1/b/bkt/o?prefix=a":        false,
		"https://storage.googleapis.com/upload/storage/v1/b/bkt/o":          false,
		"https://storage.googleapis.com/bkt/a/b":                            true,
	} {
		u, _ := url.Parse(raw)
		if got := contentRead(u); got != want {
			t.Errorf("%s: %v", raw, got)
		}
	}
}

// TestGCSWatchUploadChunks: an upload whose caller chose no buffer size
// goes as one request with no buffer (ChunkSize 0), not with gcsblob's
// 16 MiB one; a chosen size is kept; a BeforeWrite already set still runs,
// first.
func TestGCSWatchUploadChunks(t *testing.T) {
	for _, size := range []int{0, 8 << 20} {
		var ran bool
		opts := &blob.WriterOptions{BufferSize: size, BeforeWrite: func(func(any) bool) error { ran = true; return nil }}
		_, digest := gcsProvider{}.WatchUpload(context.Background(), opts)
		w := &storage.Writer{ChunkSize: googleapi.DefaultUploadChunkSize}
		if size != 0 {
			w.ChunkSize = size // as gcsblob sets it from BufferSize
		}
		err := opts.BeforeWrite(func(i any) bool {
			if p, ok := i.(**storage.Writer); ok {
				*p = w
				return true
			}
			return false
		})
		if err != nil || !ran {
			t.Fatalf("BeforeWrite: %v, the earlier one ran: %v", err, ran)
		}
		if want := size; w.ChunkSize != want {
			t.Errorf("BufferSize %d: ChunkSize %d, want %d", size, w.ChunkSize, want)
		}
		if d := digest(); d != nil {
			t.Errorf("a writer never closed gives digest %x", d)
		}
	}
}

// A key file that is no key names the file itself and the fix.
func TestGCSKeyFileNotJSON(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.json")
	os.WriteFile(p, []byte("not json"), 0o600)
	k := testKeys(t, connections.GCS, "gs://b/p", nil, map[string]string{"GC_KEY_PATH": p})
	_, err := Open(context.Background(), k.conn, k.keys, Options{Workers: 2})
	if err == nil || !strings.Contains(err.Error(), ", "+p+", is not JSON; give the key file as Google issued it") || strings.Contains(err.Error(), "((") {
		t.Errorf("%v", err)
	}
}
