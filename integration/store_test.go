package integration

// Tests of handlers/store against the real servers: opening buckets with
// credentials from mounted secret folders, round trips through the returned
// *blob.Bucket, error classes of Check, and version pinning.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers/store"
	"github.com/initializer/initializer/integration/testenv"
	"github.com/initializer/initializer/transfer"
)

// bktName returns a fresh bucket or container name.
func bktName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// bktSecret writes files into a temporary folder that stands for a mounted
// Kubernetes secret.
func bktSecret(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// bktConn is a connection whose secret is mounted at secretDir, with a
// credential look-up over env only (never the test process's environment).
func bktConn(kind connections.Kind, bucket, secretDir string, env map[string]string) (*connections.Connection, *connections.Keys) {
	conn := &connections.Connection{
		Name:   "it-" + string(kind),
		Kind:   kind,
		Schema: &connections.BucketSchema{Bucket: bucket},
	}
	if secretDir != "" {
		conn.Secret = &connections.Resource{Name: "it-secret", MountPath: secretDir}
	}
	return conn, connections.NewKeys(conn, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

// bktOpen opens a store and closes it when the test ends.
func bktOpen(t *testing.T, conn *connections.Connection, keys *connections.Keys) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), conn, keys, store.Options{Workers: 4})
	if err != nil {
		t.Fatalf("Open %s: %v", conn.Schema.(*connections.BucketSchema).Bucket, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// bktCreate creates the store's bucket through the SDK client behind it.
func bktCreate(t *testing.T, s *store.Store, name string) {
	t.Helper()
	ctx := context.Background()
	var s3c *awss3.Client
	var gcs *storage.Client
	var az *container.Client
	var err error
	switch {
	case s.Bucket.As(&s3c):
		_, err = s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)})
	case s.Bucket.As(&gcs):
		err = gcs.Bucket(name).Create(ctx, "initializer-test", nil)
	case s.Bucket.As(&az):
		_, err = az.Create(ctx, nil)
	default:
		t.Fatal("no SDK client behind the bucket")
	}
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
}

// bktCase is one server with the connection settings that reach it.
type bktCase struct {
	name   string
	kind   connections.Kind
	url    func(bucket, prefix string) string
	secret func(e testenv.Env) map[string]string   // the good credentials, as mounted files
	wrong  func(e testenv.Env) []map[string]string // wrong credentials; nil when the server checks none
	closed func(e testenv.Env, port int) map[string]string
	// https: the good credentials with the plain-http server's endpoint
	// given as https, and what the error must name to fix it.
	https func(e testenv.Env) (map[string]string, string)
}

var bktCases = []bktCase{
	{
		name: "minio",
		kind: connections.S3,
		url:  func(b, p string) string { return "s3://" + b + "/" + p + "/" },
		secret: func(e testenv.Env) map[string]string {
			s := e.S3()
			return map[string]string{"AWS_ACCESS_KEY_ID": s.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s.SecretAccessKey, "AWS_ENDPOINT_URL": s.Endpoint, "AWS_REGION": s.Region}
		},
		wrong: func(e testenv.Env) []map[string]string {
			s := e.S3()
			return []map[string]string{
				{"AWS_ACCESS_KEY_ID": s.AccessKeyID, "AWS_SECRET_ACCESS_KEY": "not-" + s.SecretAccessKey, "AWS_ENDPOINT_URL": s.Endpoint, "AWS_REGION": s.Region},
				{"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": s.SecretAccessKey, "AWS_ENDPOINT_URL": s.Endpoint, "AWS_REGION": s.Region},
			}
		},
		closed: func(e testenv.Env, port int) map[string]string {
			s := e.S3()
			return map[string]string{"AWS_ACCESS_KEY_ID": s.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s.SecretAccessKey, "AWS_ENDPOINT_URL": fmt.Sprintf("http://127.0.0.1:%d", port)}
		},
		https: func(e testenv.Env) (map[string]string, string) {
			s := e.S3()
			return map[string]string{"AWS_ACCESS_KEY_ID": s.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s.SecretAccessKey, "AWS_REGION": s.Region,
				"AWS_ENDPOINT_URL": strings.Replace(s.Endpoint, "http://", "https://", 1)}, "give AWS_ENDPOINT_URL as http://"
		},
	},
	{
		name: "azurite",
		kind: connections.WASB,
		// The production URL form: AZURE_BLOB_ENDPOINT points it at Azurite.
		url: func(b, p string) string { return "wasbs://" + b + "@devstoreaccount1.blob.core.windows.net/" + p },
		secret: func(e testenv.Env) map[string]string {
			a := e.Azure()
			return map[string]string{"AZURE_ACCOUNT_NAME": a.AccountName, "AZURE_ACCOUNT_KEY": a.AccountKey, "AZURE_BLOB_ENDPOINT": a.Endpoint}
		},
		wrong: func(e testenv.Env) []map[string]string {
			a := e.Azure()
			return []map[string]string{
				{"AZURE_ACCOUNT_NAME": a.AccountName, "AZURE_ACCOUNT_KEY": "d3Jvbmcga2V5IHdyb25nIGtleQ==", "AZURE_BLOB_ENDPOINT": a.Endpoint},
				{"AZURE_SAS_TOKEN": "sv=2021-08-06&ss=b&srt=co&sp=rl&se=2099-01-01T00:00:00Z&sig=d3Jvbmc%3D", "AZURE_BLOB_ENDPOINT": a.Endpoint},
			}
		},
		closed: func(e testenv.Env, port int) map[string]string {
			a := e.Azure()
			return map[string]string{"AZURE_ACCOUNT_NAME": a.AccountName, "AZURE_ACCOUNT_KEY": a.AccountKey, "AZURE_BLOB_ENDPOINT": fmt.Sprintf("http://127.0.0.1:%d/%s", port, a.AccountName)}
		},
		https: func(e testenv.Env) (map[string]string, string) {
			a := e.Azure()
			return map[string]string{"AZURE_ACCOUNT_NAME": a.AccountName, "AZURE_ACCOUNT_KEY": a.AccountKey,
				"AZURE_BLOB_ENDPOINT": strings.Replace(a.Endpoint, "http://", "https://", 1)}, "AZURE_BLOB_ENDPOINT=http://"
		},
	},
	{
		name: "fake-gcs-server",
		kind: connections.GCS,
		url:  func(b, p string) string { return "gs://" + b + "/" + p },
		secret: func(e testenv.Env) map[string]string {
			return map[string]string{"STORAGE_EMULATOR_HOST": e.GCS().EmulatorHost}
		},
		wrong: nil, // fake-gcs-server checks no credentials at all
		closed: func(e testenv.Env, port int) map[string]string {
			return map[string]string{"STORAGE_EMULATOR_HOST": fmt.Sprintf("127.0.0.1:%d", port)}
		},
		https: func(e testenv.Env) (map[string]string, string) {
			return map[string]string{"STORAGE_EMULATOR_HOST": "https://" + e.GCS().EmulatorHost}, "give STORAGE_EMULATOR_HOST as host:port or http://host:port"
		},
	},
}

// bktFresh creates a bucket on the case's server and opens it with the
// good credentials from a mounted secret folder.
func (c bktCase) fresh(t *testing.T, e testenv.Env, prefix string) (*store.Store, string) {
	t.Helper()
	name := bktName("st")
	conn, keys := bktConn(c.kind, c.url(name, prefix), bktSecret(t, c.secret(e)), nil)
	s := bktOpen(t, conn, keys)
	bktCreate(t, s, name)
	return s, name
}

func bktWrite(t *testing.T, b *blob.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatalf("write %q: %v", key, err)
	}
}

// bktSecretKey reports the keys whose values must never show.
func bktSecretKey(k string) bool {
	return strings.Contains(k, "SECRET") || strings.HasSuffix(k, "_KEY") || strings.Contains(k, "TOKEN") || strings.Contains(k, "CONNECTION_STRING")
}

func bktClosedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// bktClass checks that err is of class want and names the connection and
// the bucket.
func bktClass(t *testing.T, err error, want fault.Class, conn *connections.Connection, bucket string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want class %d (%v)", want, want)
	}
	if got := fault.ClassOf(err); got != want {
		t.Errorf("class %d (%v), want %d (%v): %v", got, got, want, want, err)
	}
	if msg := err.Error(); !strings.Contains(msg, conn.Name) || !strings.Contains(msg, bucket) {
		t.Errorf("the error must name the connection %q and the bucket %q: %v", conn.Name, bucket, err)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	e := testenv.Load(t)
	// This machine sets AWS_CA_BUNDLE: the SDK must accept it with the
	// store's HTTP client (a plain *http.Client would make it fail).
	_, self, _, _ := runtime.Caller(0)
	t.Setenv("AWS_CA_BUNDLE", filepath.Join(filepath.Dir(self), "..", "handlers", "store", "testdata", "ca.pem"))
	ctx := context.Background()
	objects := map[string]string{
		"a.txt":             "alpha",
		"dir/b.txt":         "beta",
		"dir/deeper/c.txt":  "gamma",
		"ünïcødé name.txt":  "delta",
		"with space/e.bin":  "\x00\x01\x02",
		"empty":             "",
		"dir/deeper/d.json": `{"x":1}`,
	}
	for _, c := range bktCases {
		t.Run(c.name, func(t *testing.T) {
			s, name := c.fresh(t, e, "data/set")
			if s.Prefix != "data/set" {
				t.Fatalf("prefix %q, want data/set", s.Prefix)
			}
			if !strings.Contains(s.URL, name) || strings.Contains(s.URL, "KEY") {
				t.Errorf("display URL %q", s.URL)
			}
			if err := s.Check(ctx); err != nil {
				t.Fatalf("Check of an empty bucket: %v", err)
			}
			for k, v := range objects {
				bktWrite(t, s.Bucket, s.Prefix+"/"+k, []byte(v))
			}
			bktWrite(t, s.Bucket, "outside/x.txt", []byte("not under the prefix"))
			if err := s.Check(ctx); err != nil {
				t.Fatalf("Check: %v", err)
			}
			var listed []string
			it := s.Bucket.List(&blob.ListOptions{Prefix: s.Prefix + "/"})
			for {
				o, err := it.Next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("list: %v", err)
				}
				listed = append(listed, strings.TrimPrefix(o.Key, s.Prefix+"/"))
				if want := objects[strings.TrimPrefix(o.Key, s.Prefix+"/")]; o.Size != int64(len(want)) {
					t.Errorf("%s: size %d, want %d", o.Key, o.Size, len(want))
				}
			}
			var want []string
			for k := range objects {
				want = append(want, k)
			}
			sort.Strings(want)
			sort.Strings(listed)
			if strings.Join(listed, "|") != strings.Join(want, "|") {
				t.Errorf("listed %q\nwant %q", listed, want)
			}
			for k, v := range objects {
				got, err := s.Bucket.ReadAll(ctx, s.Prefix+"/"+k)
				if err != nil || string(got) != v {
					t.Errorf("read %q: %q, %v; want %q", k, got, err, v)
				}
			}
			// A ranged read, as transfer does for large objects.
			r, err := s.Bucket.NewRangeReader(ctx, s.Prefix+"/dir/deeper/d.json", 1, 3, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(got) != `"x"` {
				t.Errorf("range read: %q, %v", got, err)
			}
		})
	}
}

// TestStoreCredentialSources opens each server with credentials given the
// other ways: environment, POLYAXON_-prefixed environment, a connection
// string, other bucket URL forms.
func TestStoreCredentialSources(t *testing.T) {
	e := testenv.Load(t)
	ctx := context.Background()
	s3 := e.S3()
	az := e.Azure()
	tests := []struct {
		name    string
		kind    connections.Kind
		url     func(bucket string) string
		files   map[string]string
		env     map[string]string
		assumed bool // the requests must carry temporary credentials from STS
	}{
		{
			name: "s3 from env", kind: connections.S3, url: func(b string) string { return "s3://" + b },
			env: map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3.SecretAccessKey, "AWS_ENDPOINT_URL": s3.Endpoint},
		},
		{
			name: "s3 from POLYAXON_ env, file beats env", kind: connections.S3, url: func(b string) string { return "s3://" + b + "/p" },
			files: map[string]string{"aws_secret_access_key": s3.SecretAccessKey},
			env:   map[string]string{"POLYAXON_AWS_ACCESS_KEY_ID": s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY": "wrong", "POLYAXON_AWS_ENDPOINT_URL": strings.TrimPrefix(s3.Endpoint, "http://"), "POLYAXON_AWS_USE_SSL": "false"},
		},
		{
			name: "s3 assuming a role through STS (MinIO serves STS on its endpoint)", kind: connections.S3, url: func(b string) string { return "s3://" + b },
			files: map[string]string{
				"AWS_ACCESS_KEY_ID": s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3.SecretAccessKey, "AWS_ENDPOINT_URL": s3.Endpoint,
				"AWS_ASSUME_ROLE": "true", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/initializer-test", "AWS_STS_ENDPOINT_URL": s3.Endpoint,
			},
			assumed: true,
		},
		{
			name: "azure connection string, az:// URL", kind: connections.WASB, url: func(b string) string { return "az://" + b + "/p" },
			files: map[string]string{"AZURE_CONNECTION_STRING": az.ConnectionString},
		},
		{
			name: "azure account key, https URL of the emulator", kind: connections.WASB,
			url: func(b string) string {
				return strings.Replace(az.Endpoint, "http://", "https://", 1) + "/" + b + "/p"
			},
			files: map[string]string{"AZURE_ACCOUNT_KEY": az.AccountKey, "AZURE_BLOB_ENDPOINT": az.Endpoint},
		},
		{
			name: "gcs emulator from POLYAXON_ env, gcs:// URL", kind: connections.GCS, url: func(b string) string { return "gcs://" + b + "/p" },
			env: map[string]string{"POLYAXON_STORAGE_EMULATOR_HOST": e.GCS().EmulatorHost},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := bktName("cs")
			dir := ""
			if tt.files != nil {
				dir = bktSecret(t, tt.files)
			}
			conn, keys := bktConn(tt.kind, tt.url(name), dir, tt.env)
			s := bktOpen(t, conn, keys)
			bktCreate(t, s, name)
			bktWrite(t, s.Bucket, "p/x", []byte("x"))
			if err := s.Check(ctx); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got, err := s.Bucket.ReadAll(ctx, "p/x"); err != nil || string(got) != "x" {
				t.Fatalf("read: %q, %v", got, err)
			}
			// The signed GET of small objects, with these credentials too
			// (temporary ones carry their session token).
			if wr, ok := s.Provider.(transfer.WholeReader); ok {
				r, used, err := wr.ReadWhole(ctx, s.Bucket, "p/x")
				if !used || err != nil {
					t.Fatalf("ReadWhole: used %v, %v", used, err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || string(got) != "x" {
					t.Fatalf("ReadWhole: %q, %v", got, err)
				}
			}
			if tt.assumed {
				var c *awss3.Client
				if !s.Bucket.As(&c) {
					t.Fatal("no S3 client")
				}
				creds, err := c.Options().Credentials.Retrieve(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if creds.AccessKeyID == s3.AccessKeyID || creds.SessionToken == "" || creds.Source != "AssumeRoleProvider" {
					t.Errorf("requests were not signed with assumed-role credentials (source %q, session token %v)", creds.Source, creds.SessionToken != "")
				}
			}
		})
	}
}

func TestStoreCheckErrors(t *testing.T) {
	e := testenv.Load(t)
	ctx := context.Background()
	for _, c := range bktCases {
		t.Run(c.name+"/wrong credentials", func(t *testing.T) {
			if c.wrong == nil {
				t.Log("fake-gcs-server accepts any request without credentials: wrong GCS credentials cannot be tested here (the classes of GCS 401/403 answers are unit-tested)")
				return
			}
			// The bucket exists: only the credentials are wrong.
			_, name := c.fresh(t, e, "p")
			for _, wrong := range c.wrong(e) {
				conn, keys := bktConn(c.kind, c.url(name, "p"), bktSecret(t, wrong), nil)
				s := bktOpen(t, conn, keys)
				err := s.Check(ctx)
				bktClass(t, err, fault.Auth, conn, name)
				for k, v := range wrong {
					if bktSecretKey(k) && strings.Contains(err.Error(), v) {
						t.Errorf("the error shows the value of %s: %v", k, err)
					}
				}
				t.Logf("wrong credentials: %v", err)
			}
		})
		t.Run(c.name+"/missing bucket", func(t *testing.T) {
			name := bktName("missing")
			conn, keys := bktConn(c.kind, c.url(name, "p"), bktSecret(t, c.secret(e)), nil)
			s := bktOpen(t, conn, keys)
			err := s.Check(ctx)
			bktClass(t, err, fault.NotFound, conn, name)
			t.Logf("missing bucket: %v", err)
		})
		t.Run(c.name+"/unreachable endpoint", func(t *testing.T) {
			name := bktName("unreachable")
			conn, keys := bktConn(c.kind, c.url(name, "p"), bktSecret(t, c.closed(e, bktClosedPort(t))), nil)
			s := bktOpen(t, conn, keys)
			// A generous deadline only so that a hang fails the test instead
			// of the whole run: the client's own retry budget must end first.
			ctx, cancel := context.WithTimeout(ctx, 2*60e9)
			defer cancel()
			err := s.Check(ctx)
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				t.Fatalf("the retries did not stop by themselves: %v", err)
			}
			bktClass(t, err, fault.Transient, conn, name)
			t.Logf("unreachable: %v", err)
		})
		t.Run(c.name+"/plain-http endpoint given as https", func(t *testing.T) {
			_, name := c.fresh(t, e, "p")
			secret, fix := c.https(e)
			conn, keys := bktConn(c.kind, c.url(name, "p"), bktSecret(t, secret), nil)
			s := bktOpen(t, conn, keys)
			err := s.Check(ctx)
			bktClass(t, err, fault.Usage, conn, name)
			if !strings.Contains(err.Error(), "speaks plain http") || !strings.Contains(err.Error(), fix) {
				t.Errorf("the error does not say %q: %v", fix, err)
			}
		})
	}
}

// TestStorePinVersion overwrites an object between reading its attributes
// and a pinned ranged read: the read must fail with FailedPrecondition
// (class 6), never return bytes of the new version.
func TestStorePinVersion(t *testing.T) {
	e := testenv.Load(t)
	ctx := context.Background()
	for _, c := range bktCases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := c.fresh(t, e, "pin")
			key := s.Prefix + "/object.bin"
			v1 := bytes.Repeat([]byte("version one. "), 10000)
			v2 := bytes.Repeat([]byte("VERSION TWO! "), 10000)
			bktWrite(t, s.Bucket, key, v1)
			attrs, err := s.Bucket.Attributes(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			pin := s.Provider.PinVersion(attrs)
			if pin == nil {
				t.Fatal("PinVersion returned nil: the read cannot be pinned")
			}
			read := func(off, n int64) ([]byte, error) {
				r, err := s.Bucket.NewRangeReader(ctx, key, off, n, &blob.ReaderOptions{BeforeRead: pin})
				if err != nil {
					return nil, err
				}
				defer r.Close()
				return io.ReadAll(r)
			}
			got, err := read(13, 1000)
			if err != nil || !bytes.Equal(got, v1[13:1013]) {
				t.Fatalf("pinned read of the unchanged object: %v", err)
			}
			bktWrite(t, s.Bucket, key, v2)
			got, err = read(13, 1000)
			if err == nil {
				t.Fatalf("pinned read after an overwrite succeeded (%d bytes, new version: %v)", len(got), bytes.Equal(got, v2[13:1013]))
			}
			if code := gcerrors.Code(err); code != gcerrors.FailedPrecondition {
				t.Errorf("gcerrors code %v, want FailedPrecondition: %v", code, err)
			}
			if cl := store.Classify(err); cl != fault.Integrity {
				t.Errorf("Classify %v, want integrity (6): %v", cl, err)
			}
			// Unpinned, the new version reads fine.
			if got, err := s.Bucket.ReadAll(ctx, key); err != nil || !bytes.Equal(got, v2) {
				t.Errorf("unpinned read: %v", err)
			}
		})
	}
}

// TestStoreCRC32C reads GCS's CRC32C from listings and attributes; the
// others keep none.
func TestStoreCRC32C(t *testing.T) {
	e := testenv.Load(t)
	ctx := context.Background()
	for _, c := range bktCases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := c.fresh(t, e, "crc")
			data := []byte("checksummed content")
			want := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
			bktWrite(t, s.Bucket, "crc/x", data)
			attrs, err := s.Bucket.Attributes(ctx, "crc/x")
			if err != nil {
				t.Fatal(err)
			}
			got, ok := s.Provider.CRC32C(attrs.As)
			page, _, err := s.Bucket.ListPage(ctx, blob.FirstPageToken, 10, &blob.ListOptions{Prefix: "crc/"})
			if err != nil || len(page) != 1 {
				t.Fatalf("list: %d objects, %v", len(page), err)
			}
			lgot, lok := s.Provider.CRC32C(page[0].As)
			if c.kind != connections.GCS {
				if ok || lok {
					t.Errorf("%s keeps no CRC32C, got one", c.name)
				}
				return
			}
			if !ok || got != want || !lok || lgot != want {
				t.Errorf("CRC32C attrs %08x (%v), list %08x (%v), want %08x", got, ok, lgot, lok, want)
			}
		})
	}
}

// TestStoreUploadDigest: the stores answer an upload with the MD5 of what
// they stored, which transfer then compares instead of reading the object
// back: S3 a single PutObject (its ETag), GCS any upload (the object's
// resource), Azure a Put Blob; an S3 multipart upload's answer and an Azure
// block upload's hold none. Uploads go as transfer sends them: small ones
// through the provider's BytesUploader where it has one, large ones
// through its StreamUploader or gocloud's writer.
func TestStoreUploadDigest(t *testing.T) {
	forKinds(t, "digest", "upload digests", []connections.Kind{connections.S3, connections.GCS, connections.WASB}, func(t *testing.T, _ testenv.Env, c bktCase, s *store.Store, _ string, ud transfer.UploadDigests) {
		send := func(key string, data []byte, large bool) []byte {
			t.Helper()
			sum := md5.Sum(data)
			opts := &blob.WriterOptions{ContentMD5: sum[:], BufferSize: 5 << 20}
			ctx, digest := ud.WatchUpload(context.Background(), opts)
			bu, isBytes := s.Provider.(transfer.BytesUploader)
			su, isStream := s.Provider.(transfer.StreamUploader)
			var used bool
			var err error
			switch {
			case !large && isBytes:
				used, err = bu.UploadBytes(ctx, s.Bucket, key, data, opts)
			case large && isStream:
				used, err = su.UploadStream(ctx, s.Bucket, key, bytes.NewReader(data), opts, 5<<20, 2)
			}
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if !used {
				if err := s.Bucket.WriteAll(ctx, key, data, opts); err != nil {
					t.Fatalf("%s: %v", key, err)
				}
			}
			return digest()
		}
		small := bytes.Repeat([]byte("digest me "), 1000)
		if d, want := send(s.Prefix+"/small", small, false), md5.Sum(small); !bytes.Equal(d, want[:]) {
			t.Errorf("small: digest %x, want %x", d, want)
		}
		// 24 MiB goes up in parts (S3: past the SDK's 16 MiB threshold;
		// Azure: blocks of 5 MiB); GCS takes it in 5 MiB chunks of one
		// resumable upload, and still answers with the object's MD5.
		big := bytes.Repeat([]byte("0123456789abcdef"), 24<<20/16)
		d := send(s.Prefix+"/big", big, true)
		if c.kind == connections.GCS {
			if want := md5.Sum(big); !bytes.Equal(d, want[:]) {
				t.Errorf("big: digest %x, want %x", d, want)
			}
		} else if d != nil {
			t.Errorf("upload in parts: digest %x, want none", d)
		}
	})
}

// openData writes data to a file of its own and opens it for reading,
// until the test ends.
func openData(t *testing.T, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// holds fails the test unless key of b holds data.
func holds(t *testing.T, b *blob.Bucket, key string, data []byte) {
	t.Helper()
	got, err := b.ReadAll(context.Background(), key)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("%s: read back %d bytes (%v), want %d identical", key, len(got), err, len(data))
	}
}

// TestStoreFileUploader: S3 uploads a large file in parts read straight
// from it, with the metadata and content type gocloud's writer would give
// it, and leaves no parts behind when the upload fails; it declines keys
// that gocloud would escape and buckets it was not opened with.
func TestStoreFileUploader(t *testing.T) {
	forS3Only(t, "files", "a file uploader", func(t *testing.T, e testenv.Env, c bktCase, s *store.Store, name string, fu transfer.FileUploader) {
		data := randomBytes(t, 13<<20+12345)
		f := openData(t, data)
		ctx := context.Background()
		opts := &blob.WriterOptions{Metadata: map[string]string{transfer.MetaModTime: "2024-05-06T07:08:09.5Z"}}
		var sent atomic.Int64 // the parts report from their goroutines
		key := s.Prefix + "/dir/model.bin"
		used, err := fu.UploadFile(ctx, s.Bucket, key, f, int64(len(data)), opts, 5<<20, 2, func(n int64) { sent.Add(n) })
		if !used || err != nil || sent.Load() != int64(len(data)) {
			t.Fatalf("UploadFile: used %v, %v, sent %d", used, err, sent.Load())
		}
		holds(t, s.Bucket, key, data)
		attrs, err := s.Bucket.Attributes(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if attrs.Metadata[transfer.MetaModTime] != "2024-05-06T07:08:09.5Z" || attrs.ContentType != "application/octet-stream" {
			t.Errorf("metadata %v, content type %q", attrs.Metadata, attrs.ContentType)
		}

		// With request checksums "when supported" (AWS's default), each
		// part carries a CRC32, declared when the upload is created.
		sec := c.secret(e)
		sec["AWS_REQUEST_CHECKSUM_CALCULATION"] = "when_supported"
		conn, keys := bktConn(c.kind, c.url(name, "crc"), bktSecret(t, sec), nil)
		s2 := bktOpen(t, conn, keys)
		used, err = s2.Provider.(transfer.FileUploader).UploadFile(ctx, s2.Bucket, "crc/model.bin", f, int64(len(data)), opts, 5<<20, 2, func(int64) {})
		if !used || err != nil {
			t.Fatalf("UploadFile with part checksums: used %v, %v", used, err)
		}
		holds(t, s2.Bucket, "crc/model.bin", data)

		// The same over TLS, in a part over 16 MiB: the SDK would send the
		// part's checksum as the trailer of one aws-chunked chunk as long
		// as the part, which MinIO refuses past 16 MiB ("chunk too big").
		frontURL, caPEM := tlsFront(t, e.S3().Endpoint)
		sec["AWS_ENDPOINT_URL"], sec["AWS_CA_BUNDLE"] = frontURL, caPEM
		conn, keys = bktConn(c.kind, c.url(name, "crc-tls"), bktSecret(t, sec), nil)
		s3t := bktOpen(t, conn, keys)
		big := randomBytes(t, 20<<20+3)
		used, err = s3t.Provider.(transfer.FileUploader).UploadFile(ctx, s3t.Bucket, "crc-tls/big.bin", openData(t, big), int64(len(big)), opts, 20<<20, 2, func(int64) {})
		if !used || err != nil {
			t.Fatalf("UploadFile over TLS with part checksums: used %v, %v", used, err)
		}
		holds(t, s3t.Bucket, "crc-tls/big.bin", big)
		// Through gocloud's writer with parts over 16 MiB (--part-size 20):
		// one PutObject, and a multipart upload of the transfer manager's.
		for _, size := range []int{20<<20 + 3, 45 << 20} {
			data := randomBytes(t, size)
			key := fmt.Sprintf("crc-tls/writer-%d.bin", size)
			w, err := s3t.Bucket.NewWriter(ctx, key, &blob.WriterOptions{BufferSize: 20<<20 + 5, MaxConcurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatalf("writer, %d bytes: %v", size, err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("writer over TLS with checksums, parts over 16 MiB, %d bytes: %v", size, err)
			}
			holds(t, s3t.Bucket, key, data)
		}

		// Declined, with nothing sent: keys gocloud escapes, other buckets.
		for _, k := range []string{s.Prefix + "/../x", s.Prefix + "/a\x01b", s.Prefix + "/__0x41__"} {
			if used, err := fu.UploadFile(ctx, s.Bucket, k, f, int64(len(data)), opts, 5<<20, 2, func(int64) {}); used || err != nil {
				t.Errorf("key %q: used %v, %v", k, used, err)
			}
		}
		other, _ := c.fresh(t, e, "other")
		if used, err := fu.UploadFile(ctx, other.Bucket, key, f, int64(len(data)), opts, 5<<20, 2, func(int64) {}); used || err != nil {
			t.Errorf("another bucket: used %v, %v", used, err)
		}

		// A failed upload (the file is shorter than said) leaves no parts.
		used, err = fu.UploadFile(ctx, s.Bucket, s.Prefix+"/short.bin", f, int64(len(data))+10<<20, opts, 5<<20, 2, func(int64) {})
		if !used || err == nil {
			t.Fatalf("short file: used %v, %v", used, err)
		}
		var client *awss3.Client
		s.Bucket.As(&client)
		list, err := client.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(name)})
		if err != nil || len(list.Uploads) != 0 {
			t.Errorf("multipart uploads left: %v (%v)", list, err)
		}
	})
}

// forS3Only runs test on each store case whose provider offers P, found
// with a fresh prefix: a capability (what) only the S3 provider offers,
// which the others must not.
func forS3Only[P any](t *testing.T, prefix, what string, test func(t *testing.T, e testenv.Env, c bktCase, s *store.Store, name string, p P)) {
	forKinds(t, prefix, what, []connections.Kind{connections.S3}, test)
}

// forKinds is forS3Only for the providers of kinds.
func forKinds[P any](t *testing.T, prefix, what string, kinds []connections.Kind, test func(t *testing.T, e testenv.Env, c bktCase, s *store.Store, name string, p P)) {
	e := testenv.Load(t)
	for _, c := range bktCases {
		t.Run(c.name, func(t *testing.T) {
			s, name := c.fresh(t, e, prefix)
			p, ok := s.Provider.(P)
			if !slices.Contains(kinds, c.kind) {
				if ok {
					t.Errorf("%s offers %s", c.name, what)
				}
				return
			}
			if !ok {
				t.Fatalf("the S3 provider does not offer %s", what)
			}
			test(t, e, c, s, name, p)
		})
	}
}

// TestStoreWholeReader: S3 reads a whole object with one signed GET of its
// own, which gives the bytes, size and time gocloud's reader gives, keys
// that need escaping included; its failures classify as the SDK's do, with
// no secret in them; what it cannot read as gocloud would, it declines.
func TestStoreWholeReader(t *testing.T) {
	forS3Only(t, "whole", "a whole reader", func(t *testing.T, e testenv.Env, c bktCase, s *store.Store, name string, wr transfer.WholeReader) {
		ctx := context.Background()
		objects := map[string][]byte{
			"plain.txt": []byte("plain text\n"),
			"nested/dir/ünï cödé, with spaces.bin": randomBytes(t, 70000),
			"empty": {},
			"odd/a+b=c&d;e,f@g$h'i(j)!k*l~m[n]o^p`q{r}s|t.txt": []byte("odd"),
			"percent/100%/%41%2F%zz":                           []byte("percent"),
			"query/?x=1#frag":                                  []byte("query"),
		}
		for k, data := range objects {
			key := s.Prefix + "/" + k
			bktWrite(t, s.Bucket, key, data)
			r, ok, err := wr.ReadWhole(ctx, s.Bucket, key)
			if !ok || err != nil {
				t.Fatalf("%q: ReadWhole: used %v, %v", key, ok, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) || r.Size() != int64(len(data)) {
				t.Errorf("%q: read %d bytes (size %d, %v), want %d identical", key, len(got), r.Size(), err, len(data))
			}
			ref, err := s.Bucket.NewReader(ctx, key, nil)
			if err != nil {
				t.Fatal(err)
			}
			ref.Close()
			if !r.ModTime().Equal(ref.ModTime()) || r.ModTime().IsZero() {
				t.Errorf("%q: time %v, gocloud's reader: %v", key, r.ModTime(), ref.ModTime())
			}
		}

		// With response checksums "when supported", an object stored with a
		// full-object checksum is checked against it as it is read.
		var client *awss3.Client
		if !s.Bucket.As(&client) {
			t.Fatal("no S3 client")
		}
		sec := c.secret(e)
		sec["AWS_RESPONSE_CHECKSUM_VALIDATION"] = "when_supported"
		conn, keys := bktConn(c.kind, c.url(name, "whole"), bktSecret(t, sec), nil)
		checked := bktOpen(t, conn, keys)
		data := randomBytes(t, 30000)
		for _, alg := range []s3types.ChecksumAlgorithm{s3types.ChecksumAlgorithmCrc32c, s3types.ChecksumAlgorithmCrc32,
			s3types.ChecksumAlgorithmCrc64nvme, s3types.ChecksumAlgorithmSha1, s3types.ChecksumAlgorithmSha256} {
			key := s.Prefix + "/checksum/" + string(alg)
			if _, err := client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(name), Key: aws.String(key),
				Body: bytes.NewReader(data), ChecksumAlgorithm: alg}); err != nil {
				t.Fatal(err)
			}
			// The server does send the checksum back (else nothing is checked here).
			out, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(name), Key: aws.String(key), ChecksumMode: s3types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			out.Body.Close()
			if out.ChecksumCRC32C == nil && out.ChecksumCRC32 == nil && out.ChecksumCRC64NVME == nil && out.ChecksumSHA1 == nil && out.ChecksumSHA256 == nil {
				t.Fatalf("%s: the server sent no checksum", alg)
			}
			r, ok, err := checked.Provider.(transfer.WholeReader).ReadWhole(ctx, checked.Bucket, key)
			if !ok || err != nil {
				t.Fatalf("%s: ReadWhole: used %v, %v", alg, ok, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: read %d bytes, %v", alg, len(got), err)
			}
		}

		// A missing key is NotFound (4), as through the SDK.
		_, ok, err := wr.ReadWhole(ctx, s.Bucket, s.Prefix+"/missing")
		if !ok || store.Classify(err) != fault.NotFound {
			t.Errorf("missing key: used %v, class %v (%v), want NotFound", ok, store.Classify(err), err)
		}
		// Wrong credentials are Auth (3), and the error holds no secret.
		for _, wrong := range c.wrong(e) {
			conn, keys := bktConn(c.kind, c.url(name, "whole"), bktSecret(t, wrong), nil)
			bad := bktOpen(t, conn, keys)
			_, ok, err := bad.Provider.(transfer.WholeReader).ReadWhole(ctx, bad.Bucket, s.Prefix+"/plain.txt")
			if !ok || store.Classify(err) != fault.Auth {
				t.Errorf("wrong credentials: used %v, class %v (%v), want Auth", ok, store.Classify(err), err)
			}
			if err != nil && strings.Contains(err.Error(), wrong["AWS_SECRET_ACCESS_KEY"]) {
				t.Errorf("the error shows the secret: %v", err)
			}
		}
		// A server that is not there: a network error, which transfer retries.
		conn, keys = bktConn(c.kind, c.url(name, "whole"), bktSecret(t, c.closed(e, bktClosedPort(t))), nil)
		gone := bktOpen(t, conn, keys)
		if _, ok, err := gone.Provider.(transfer.WholeReader).ReadWhole(ctx, gone.Bucket, s.Prefix+"/plain.txt"); !ok || store.Classify(err) != fault.Transient {
			t.Errorf("closed port: used %v, class %v (%v), want Transient", ok, store.Classify(err), err)
		}

		// Declined, with nothing sent: keys gocloud escapes, other buckets.
		for _, k := range []string{s.Prefix + "/../x", s.Prefix + "/a\x01b", s.Prefix + "/__0x41__"} {
			if r, ok, err := wr.ReadWhole(ctx, s.Bucket, k); ok || err != nil || r != nil {
				t.Errorf("key %q: used %v, %v", k, ok, err)
			}
		}
		other, _ := c.fresh(t, e, "other")
		if _, ok, err := wr.ReadWhole(ctx, other.Bucket, s.Prefix+"/plain.txt"); ok || err != nil {
			t.Errorf("another bucket: used %v, %v", ok, err)
		}
	})
}

// TestStoreBytesUploader: S3 sends a small file as one PutObject from the
// caller's goroutine, stored as gocloud's writer stores it, and its answer
// gives the MD5 of what the store received.
func TestStoreBytesUploader(t *testing.T) {
	forKinds(t, "bytes", "a bytes uploader", []connections.Kind{connections.S3, connections.WASB}, func(t *testing.T, e testenv.Env, c bktCase, s *store.Store, name string, bu transfer.BytesUploader) {
		ctx := context.Background()
		if c.kind == connections.WASB {
			testAzureBytesUploader(t, s, bu)
			return
		}
		for _, data := range [][]byte{[]byte("plain text, as a log would be\n"), randomBytes(t, 20000), {}} {
			sum := md5.Sum(data)
			opts := func() *blob.WriterOptions {
				return &blob.WriterOptions{Metadata: map[string]string{transfer.MetaModTime: "2024-05-06T07:08:09.5Z"}, ContentMD5: sum[:]}
			}
			for _, checksums := range []string{"when_required", "when_supported"} {
				sec := c.secret(e)
				sec["AWS_REQUEST_CHECKSUM_CALCULATION"] = checksums
				conn, keys := bktConn(c.kind, c.url(name, checksums), bktSecret(t, sec), nil)
				st := bktOpen(t, conn, keys)
				// One signed PUT of its own (PutWhole), keys that need
				// escaping included.
				for i, k := range []string{"plain", "nested/ünï cödé, with spaces.bin", "odd/a+b=c&d;e,f@g$h'i(j)!k*l~m[n]o^p`q{r}s|t.txt",
					"percent/100%/%41%2F%zz", "query/?x=1#frag"} {
					key := fmt.Sprintf("%s/direct/%d/%s", checksums, len(data), k)
					wctx, digest := st.Provider.(transfer.UploadDigests).WatchUpload(ctx, &blob.WriterOptions{})
					used, err := st.Provider.(wholePutter).PutWhole(wctx, st.Bucket, key, data, opts())
					if !used || err != nil {
						t.Fatalf("%q: PutWhole: used %v, %v", key, used, err)
					}
					if !bytes.Equal(digest(), sum[:]) {
						t.Errorf("%q: the store reported MD5 %x, want %x", key, digest(), sum)
					}
					// The same through gocloud's writer, to compare.
					sameAsWriter(t, st.Bucket, key, fmt.Sprintf("%s/writer/%d/%d", checksums, len(data), i), data, opts(), nil)
				}
				key := fmt.Sprintf("%s/bytes/%d", checksums, len(data))
				if used, err := st.Provider.(transfer.BytesUploader).UploadBytes(ctx, st.Bucket, key, data, opts()); !used || err != nil {
					t.Fatalf("%s: UploadBytes: used %v, %v", key, used, err)
				}
				sameAsWriter(t, st.Bucket, key, fmt.Sprintf("%s/writer/%d/bytes", checksums, len(data)), data, opts(), nil)
			}
		}

		// Wrong credentials are Auth (3), with no secret in the error; a
		// server that is not there is a network error, which transfer
		// retries; a bucket that does not exist is NotFound (4).
		for _, wrong := range c.wrong(e) {
			conn, keys := bktConn(c.kind, c.url(name, "bytes"), bktSecret(t, wrong), nil)
			bad := bktOpen(t, conn, keys)
			used, err := bad.Provider.(wholePutter).PutWhole(ctx, bad.Bucket, s.Prefix+"/refused", []byte("x"), &blob.WriterOptions{})
			if !used || store.Classify(err) != fault.Auth {
				t.Errorf("wrong credentials: used %v, class %v (%v), want Auth", used, store.Classify(err), err)
			}
			if err != nil && strings.Contains(err.Error(), wrong["AWS_SECRET_ACCESS_KEY"]) {
				t.Errorf("the error shows the secret: %v", err)
			}
		}
		conn, keys := bktConn(c.kind, c.url(name, "bytes"), bktSecret(t, c.closed(e, bktClosedPort(t))), nil)
		gone := bktOpen(t, conn, keys)
		if used, err := gone.Provider.(wholePutter).PutWhole(ctx, gone.Bucket, s.Prefix+"/refused", []byte("x"), &blob.WriterOptions{}); !used || store.Classify(err) != fault.Transient {
			t.Errorf("closed port: used %v, class %v (%v), want Transient", used, store.Classify(err), err)
		}
		conn, keys = bktConn(c.kind, c.url(name+"-missing", "bytes"), bktSecret(t, c.secret(e)), nil)
		missing := bktOpen(t, conn, keys)
		if used, err := missing.Provider.(wholePutter).PutWhole(ctx, missing.Bucket, s.Prefix+"/refused", []byte("x"), &blob.WriterOptions{}); !used || store.Classify(err) != fault.NotFound {
			t.Errorf("missing bucket: used %v, class %v (%v), want NotFound", used, store.Classify(err), err)
		}

		// Declined, with nothing sent: keys gocloud escapes, options
		// this path does not carry, other buckets.
		data := []byte("x")
		for _, k := range []string{s.Prefix + "/../x", s.Prefix + "/a\x01b", s.Prefix + "/__0x41__"} {
			if used, err := bu.UploadBytes(ctx, s.Bucket, k, data, &blob.WriterOptions{}); used || err != nil {
				t.Errorf("key %q: used %v, %v", k, used, err)
			}
		}
		for _, o := range []*blob.WriterOptions{{CacheControl: "no-cache"}, {Metadata: map[string]string{"a=b": "c"}}} {
			if used, err := bu.UploadBytes(ctx, s.Bucket, s.Prefix+"/declined", data, o); used || err != nil {
				t.Errorf("options %+v: used %v, %v", o, used, err)
			}
		}
		other, _ := c.fresh(t, e, "other")
		if used, err := bu.UploadBytes(ctx, other.Bucket, s.Prefix+"/declined", data, &blob.WriterOptions{}); used || err != nil {
			t.Errorf("another bucket: used %v, %v", used, err)
		}
		if ok, _ := s.Bucket.Exists(ctx, s.Prefix+"/declined"); ok {
			t.Error("a declined upload was sent")
		}
	})
}

// wholePutter is S3's one signed PUT of a small object.
type wholePutter interface {
	PutWhole(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) (bool, error)
}

// testAzureBytesUploader: Azure's Put Blob path stores what gocloud's writer
// would (content, type, metadata, MD5), under the key gocloud's writer
// would use, and declines what it does not carry.
func testAzureBytesUploader(t *testing.T, s *store.Store, bu transfer.BytesUploader) {
	ctx := context.Background()
	for i, data := range [][]byte{[]byte("plain text, as a log would be\n"), randomBytes(t, 20000), {}} {
		sum := md5.Sum(data)
		opts := func() *blob.WriterOptions {
			return &blob.WriterOptions{Metadata: map[string]string{transfer.MetaModTime: "2024-05-06T07:08:09.5Z"}, ContentMD5: sum[:]}
		}
		for _, k := range []string{"plain", "pct%41 #?\"q", "v1../y", "esc__0x41__"} {
			key := fmt.Sprintf("%s/direct/%d/%s", s.Prefix, i, k)
			if used, err := bu.UploadBytes(ctx, s.Bucket, key, data, opts()); !used || err != nil {
				t.Fatalf("%q: UploadBytes: used %v, %v", key, used, err)
			}
			sameAsWriter(t, s.Bucket, key, fmt.Sprintf("%s/writer/%d/%s", s.Prefix, i, k), data, opts(), sum[:])
		}
	}
	// The block upload of larger files stores the same as gocloud's writer.
	su := s.Provider.(transfer.StreamUploader)
	for _, data := range [][]byte{randomBytes(t, 300_000), []byte(strings.Repeat("<html><body>text</body></html>\n", 20_000))} {
		sum := md5.Sum(data)
		opts := func() *blob.WriterOptions {
			return &blob.WriterOptions{Metadata: map[string]string{transfer.MetaModTime: "2024-05-06T07:08:09.5Z"}, ContentMD5: sum[:], BufferSize: 64 << 10}
		}
		key := fmt.Sprintf("%s/stream/%d", s.Prefix, len(data))
		if used, err := su.UploadStream(ctx, s.Bucket, key, bytes.NewReader(data), opts(), 64<<10, 4); !used || err != nil {
			t.Fatalf("UploadStream: used %v, %v", used, err)
		}
		sameAsWriter(t, s.Bucket, key, fmt.Sprintf("%s/stream-writer/%d", s.Prefix, len(data)), data, opts(), sum[:])
	}

	// A reader that fails at its end (the file changed since it was hashed)
	// abandons the upload before it is committed: the object stays as it
	// was, in one request (under a block) as in several.
	for _, size := range []int{300_000, 100_000} { // 64 KiB blocks; one block of 1 MiB
		key := fmt.Sprintf("%s/abandoned/%d", s.Prefix, size)
		if err := s.Bucket.WriteAll(ctx, key, []byte("the good version"), nil); err != nil {
			t.Fatal(err)
		}
		changed := errors.New("changed while read")
		r := io.MultiReader(bytes.NewReader(randomBytes(t, size)), iotest.ErrReader(changed))
		block := int64(64 << 10)
		if size < 200_000 {
			block = 1 << 20
		}
		used, err := su.UploadStream(ctx, s.Bucket, key, r, &blob.WriterOptions{}, block, 4)
		if !used || !errors.Is(err, changed) {
			t.Errorf("%d bytes: used %v, error %v; want the reader's error", size, used, err)
		}
		if got, _ := s.Bucket.ReadAll(ctx, key); string(got) != "the good version" {
			t.Errorf("%d bytes: the object was replaced (%d bytes) by an abandoned upload", size, len(got))
		}
	}

	data := []byte("x")
	for _, o := range []*blob.WriterOptions{{CacheControl: "no-cache"}, {Metadata: map[string]string{"1st": "c"}}, {Metadata: map[string]string{"a-b": "c"}}} {
		if used, err := bu.UploadBytes(ctx, s.Bucket, s.Prefix+"/declined", data, o); used || err != nil {
			t.Errorf("options %+v: used %v, %v", o, used, err)
		}
	}
}

// sameAsWriter checks that key of b holds data, with the content type,
// metadata and MD5 (sum too, when given) that gocloud's writer stores when
// it writes data to ref with opts.
func sameAsWriter(t *testing.T, b *blob.Bucket, key, ref string, data []byte, opts *blob.WriterOptions, sum []byte) {
	t.Helper()
	ctx := context.Background()
	if err := b.WriteAll(ctx, ref, data, opts); err != nil {
		t.Fatal(err)
	}
	got, err := b.ReadAll(ctx, key)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%q: read back %d bytes (%v), want %d identical", key, len(got), err, len(data))
	}
	a, err := b.Attributes(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.Attributes(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if a.ContentType != w.ContentType || !maps.Equal(a.Metadata, w.Metadata) || !bytes.Equal(a.MD5, w.MD5) || sum != nil && !bytes.Equal(a.MD5, sum) {
		t.Errorf("%q: type %q, metadata %v, MD5 %x; gocloud's writer: %q, %v, %x", key, a.ContentType, a.Metadata, a.MD5, w.ContentType, w.Metadata, w.MD5)
	}
}
