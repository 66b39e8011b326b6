package integration

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	azblobblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/initializer/initializer/integration/testenv"
)

// objectStore seeds one kind of real object store and describes connections
// to it, for the download tests that run against all three.
type objectStore struct {
	kind string
	// tryPut uploads size bytes from r under key.
	tryPut func(bucket, key string, r io.Reader, size int64) error
	// putGzip uploads data (gzip bytes) under key with Content-Encoding gzip.
	putGzip func(bucket, key string, data []byte) error
	// newBucket creates an empty bucket (container) and returns its name.
	newBucket func(t *testing.T) string
	// connection returns the catalog entry for bucket/prefix (named "data")
	// and the environment the initializer needs; badCreds spoils the secret.
	connection func(t *testing.T, bucket, prefix string, badCreds bool) (entry string, env []string)
}

var bucketSeq int

func uniqueBucket(kind string) string {
	bucketSeq++
	return fmt.Sprintf("%s-%d-%d", kind, time.Now().UnixNano()%1_000_000_000, bucketSeq)
}

// secretDir writes files as a mounted Kubernetes Secret would hold them.
func secretDir(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for k, v := range files {
		writeFile(t, dir, k, v+"\n")
	}
	return dir
}

func s3Client(t *testing.T, endpoint, key, secret, region string) *s3.Client {
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, secret, "")))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}

func minioStore(t *testing.T, endpoint string) objectStore {
	env := testenv.Load(t)
	s := env.S3()
	if endpoint == "" {
		endpoint = s.Endpoint
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	client := s3Client(t, endpoint, s.AccessKeyID, s.SecretAccessKey, s.Region)
	return objectStore{
		kind: "s3",
		newBucket: func(t *testing.T) string {
			b := uniqueBucket("s3")
			if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
				t.Fatalf("CreateBucket: %v", err)
			}
			return b
		},
		tryPut: func(bucket, key string, r io.Reader, size int64) error {
			// Signing needs a seekable body: spool it to a file.
			f, err := os.CreateTemp("", "put-")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			defer f.Close()
			if _, err := io.Copy(f, r); err != nil {
				return err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			r = f
			_, err = client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: r, ContentLength: aws.Int64(size)})
			return err
		},
		putGzip: func(bucket, key string, data []byte) error {
			_, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
				ContentLength: aws.Int64(int64(len(data))), ContentEncoding: aws.String("gzip"), ContentType: aws.String("text/plain")})
			return err
		},
		connection: func(t *testing.T, bucket, prefix string, badCreds bool) (string, []string) {
			secret := s.SecretAccessKey
			if badCreds {
				secret = "wrong-" + secret
			}
			dir := secretDir(t, map[string]string{
				"AWS_ACCESS_KEY_ID": s.AccessKeyID, "AWS_SECRET_ACCESS_KEY": secret,
				"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": s.Region,
			})
			return fmt.Sprintf(`{name: data, kind: s3, schema: {bucket: "s3://%s/%s"}, secret: {name: s3-creds, mountPath: %q}}`, bucket, prefix, dir),
				[]string{"AWS_EC2_METADATA_DISABLED=true"}
		},
	}
}

func azuriteStore(t *testing.T, endpoint string) objectStore {
	env := testenv.Load(t)
	az := env.Azure()
	connString := az.ConnectionString
	if endpoint != "" {
		connString = fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s/%s;", az.AccountName, az.AccountKey, endpoint, az.AccountName)
	}
	client, err := azblob.NewClientFromConnectionString(connString, nil)
	if err != nil {
		t.Fatal(err)
	}
	return objectStore{
		kind: "wasb",
		newBucket: func(t *testing.T) string {
			c := uniqueBucket("wasb")
			if _, err := client.CreateContainer(context.Background(), c, nil); err != nil {
				t.Fatalf("CreateContainer: %v", err)
			}
			return c
		},
		tryPut: func(container, key string, r io.Reader, size int64) error {
			_, err := client.UploadStream(context.Background(), container, key, r, &azblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 4})
			return err
		},
		putGzip: func(container, key string, data []byte) error {
			sum := md5.Sum(data)
			_, err := client.UploadBuffer(context.Background(), container, key, data, &azblob.UploadBufferOptions{
				HTTPHeaders: &azblobblob.HTTPHeaders{BlobContentEncoding: aws.String("gzip"), BlobContentType: aws.String("text/plain"), BlobContentMD5: sum[:]}})
			return err
		},
		connection: func(t *testing.T, container, prefix string, badCreds bool) (string, []string) {
			cs := connString
			if badCreds {
				cs = strings.Replace(cs, "AccountKey="+az.AccountKey, "AccountKey=d3JvbmcgYWNjb3VudCBrZXkgZm9yIHRoZSB0ZXN0cw==", 1)
			}
			dir := secretDir(t, map[string]string{"AZURE_CONNECTION_STRING": cs})
			return fmt.Sprintf(`{name: data, kind: wasb, schema: {bucket: "az://%s/%s"}, secret: {name: az-creds, mountPath: %q}}`, container, prefix, dir), nil
		},
	}
}

func fakeGCSStore(t *testing.T, host string) objectStore {
	env := testenv.Load(t)
	if host == "" {
		host = env.GCS().EmulatorHost
	}
	t.Setenv("STORAGE_EMULATOR_HOST", host)
	client, err := storage.NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return objectStore{
		kind: "gcs",
		newBucket: func(t *testing.T) string {
			b := uniqueBucket("gcs")
			if err := client.Bucket(b).Create(context.Background(), "initializer-test", nil); err != nil {
				t.Fatalf("creating bucket: %v", err)
			}
			return b
		},
		putGzip: func(bucket, key string, data []byte) error {
			w := client.Bucket(bucket).Object(key).NewWriter(context.Background())
			w.ContentEncoding, w.ContentType = "gzip", "text/plain"
			if _, err := w.Write(data); err != nil {
				w.Close()
				return err
			}
			return w.Close()
		},
		tryPut: func(bucket, key string, r io.Reader, size int64) error {
			w := client.Bucket(bucket).Object(key).NewWriter(context.Background())
			w.ChunkSize = 16 << 20
			if _, err := io.Copy(w, r); err != nil {
				w.Close()
				return err
			}
			return w.Close()
		},
		connection: func(t *testing.T, bucket, prefix string, badCreds bool) (string, []string) {
			return fmt.Sprintf(`{name: data, kind: gcs, schema: {bucket: "gs://%s/%s"}}`, bucket, prefix),
				[]string{"STORAGE_EMULATOR_HOST=" + host}
		},
	}
}

// put uploads size bytes from r under key, failing the test on error.
func (st objectStore) put(t *testing.T, bucket, key string, r io.Reader, size int64) {
	t.Helper()
	if err := st.tryPut(bucket, key, r, size); err != nil {
		t.Fatalf("uploading %q to %s: %v", key, st.kind, err)
	}
}

// privateServer is a store server of this test's own, started from the
// binaries servers.sh installed, that the test may stop and restart.
type privateServer struct {
	name string
	port int
	data string
	argv func(port int, data string) ([]string, []string) // command line and extra environment
	cmd  *exec.Cmd
	log  *os.File
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// kmsKeyName names the KMS key of a private MinIO.
const kmsKeyName = "test-key"

func newPrivateServer(t *testing.T, kind string) *privateServer {
	env := testenv.Load(t)
	tools := env.Get("TOOLS_BIN")
	p := &privateServer{name: kind, port: freePort(t), data: t.TempDir()}
	s3 := env.S3()
	switch kind {
	case "s3":
		// A static KMS key (kmsKeyName), for objects encrypted with SSE-KMS.
		kmsKey := make([]byte, 32)
		rand.Read(kmsKey)
		p.argv = func(port int, data string) ([]string, []string) {
			return []string{filepath.Join(tools, "minio"), "server", filepath.Join(data, "data"), "--address", fmt.Sprintf("127.0.0.1:%d", port), "--certs-dir", filepath.Join(data, "certs"), "--quiet"},
				[]string{"HOME=" + data, "MINIO_ROOT_USER=" + s3.AccessKeyID, "MINIO_ROOT_PASSWORD=" + s3.SecretAccessKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off",
					"MINIO_KMS_SECRET_KEY=" + kmsKeyName + ":" + base64.StdEncoding.EncodeToString(kmsKey)}
		}
	case "wasb":
		p.argv = func(port int, data string) ([]string, []string) {
			return []string{filepath.Join(filepath.Dir(tools), "node/node_modules/.bin/azurite-blob"), "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
				"--location", data, "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"}, nil
		}
	case "gcs":
		p.argv = func(port int, data string) ([]string, []string) {
			hostPort := fmt.Sprintf("127.0.0.1:%d", port)
			return []string{filepath.Join(tools, "fake-gcs-server"), "-scheme", "http", "-host", "127.0.0.1", "-port", fmt.Sprint(port),
				"-backend", "filesystem", "-filesystem-root", filepath.Join(data, "gcs"), "-public-host", hostPort, "-external-url", "http://" + hostPort, "-log-level", "warn"}, nil
		}
	default:
		t.Fatalf("no private server for %s", kind)
	}
	p.start(t)
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *privateServer) endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", p.port) }
func (p *privateServer) hostPort() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

func (p *privateServer) start(t *testing.T) {
	t.Helper()
	argv, env := p.argv(p.port, p.data)
	var err error
	if p.log, err = os.OpenFile(filepath.Join(p.data, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting private %s: %v", p.name, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.hostPort(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			if p.name != "s3" || healthy(p.endpoint()+"/minio/health/ready") {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p.log.Name())
			t.Fatalf("private %s not ready on %s:\n%s", p.name, p.hostPort(), b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func healthy(url string) bool {
	return exec.Command("curl", "-sf", "--noproxy", "*", "--max-time", "2", "-o", "/dev/null", url).Run() == nil
}

// stop terminates the server and waits until its port is closed.
func (p *privateServer) stop(t *testing.T) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.log.Close()
	p.cmd = nil
}
