package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/api/iterator"

	"github.com/initializer/initializer/integration/testenv"
)

// smokeName returns a lowercase name that is valid as an S3 bucket, an Azure
// container, a GCS bucket and a git repository name, and differs per run.
func smokeName(prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + "-" + time.Now().UTC().Format("150405") + "-" + hex.EncodeToString(b)
}

func smokeContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestServerEnvFile checks that the env file parses in Go exactly as the shell
// sources it, and that it holds every key the tests rely on.
func TestServerEnvFile(t *testing.T) {
	env := testenv.Load(t)
	required := []string{
		"S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
		"AWS_EC2_METADATA_DISABLED", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_BLOB_ENDPOINT",
		"AZURE_ACCOUNT_NAME", "AZURE_ACCOUNT_KEY", "STORAGE_EMULATOR_HOST", "GCS_ENDPOINT",
		"GIT_ROOT", "GIT_SMOKE_REPO", "GIT_HTTP_URL", "GIT_HTTP_USER", "GIT_HTTP_PASSWORD",
		"GIT_DAEMON_URL", "GIT_SSH_URL", "GIT_SSH_KEY", "GIT_SSH_KNOWN_HOSTS",
		"REGISTRY_URL", "REGISTRY_HOST", "REGISTRY_USER", "REGISTRY_PASSWORD",
		"TOOLS_BIN", "SERVER_PIDS",
	}
	args := []string{"-c", `set -eu; . "$1"; shift; for k in "$@"; do printf '%s\0' "${!k}"; done`, "bash", env.File()}
	args = append(args, required...)
	out, err := exec.Command("bash", args...).Output()
	if err != nil {
		t.Fatalf("sourcing %s with bash: %v", env.File(), err)
	}
	shellValues := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(shellValues) != len(required) {
		t.Fatalf("bash printed %d values for %d keys", len(shellValues), len(required))
	}
	for i, key := range required {
		if got := env.Get(key); got != shellValues[i] {
			t.Errorf("%s: Go parsed %q, bash sourced %q", key, got, shellValues[i])
		}
	}
	if h := env.Get("STORAGE_EMULATOR_HOST"); strings.Contains(h, "://") {
		t.Errorf("STORAGE_EMULATOR_HOST=%q must be host:port without a scheme", h)
	}
	for _, tool := range []string{"crane", "minio", "fake-gcs-server", "registry"} {
		env.Tool(tool)
	}
}

func TestServerMinIO(t *testing.T) {
	env := testenv.Load(t)
	env.Setenv(t, "AWS_EC2_METADATA_DISABLED")
	s3env := env.S3()
	ctx := smokeContext(t)

	// The default HTTP client is kept: AWS_CA_BUNDLE may be set, and the SDK
	// can only apply it to its own buildable client.
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(s3env.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			s3env.AccessKeyID, s3env.SecretAccessKey, "")),
	)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s3env.Endpoint)
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
	})

	bucket := smokeName("smoke")
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("CreateBucket %s: %v", bucket, err)
	}
	key := "dir/hello.txt"
	body := []byte("hello from the s3 smoke test\n")
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		_, _ = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
	})

	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
	}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	got, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	data, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil {
		t.Fatalf("reading object: %v", err)
	}
	if !bytes.Equal(data, body) {
		t.Fatalf("GetObject returned %q, want %q", data, body)
	}
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("dir/")})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != key ||
		aws.ToInt64(list.Contents[0].Size) != int64(len(body)) {
		t.Fatalf("ListObjectsV2 returned %d objects, want just %s (%d bytes)", len(list.Contents), key, len(body))
	}
}

func TestServerAzurite(t *testing.T) {
	env := testenv.Load(t)
	az := env.Azure()
	ctx := smokeContext(t)

	client, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatalf("azblob client: %v", err)
	}
	if !strings.HasPrefix(client.URL(), az.Endpoint) {
		t.Errorf("client URL %s does not start with AZURE_BLOB_ENDPOINT %s", client.URL(), az.Endpoint)
	}
	container := smokeName("smoke")
	if _, err := client.CreateContainer(ctx, container, nil); err != nil {
		t.Fatalf("CreateContainer %s: %v", container, err)
	}
	t.Cleanup(func() { _, _ = client.DeleteContainer(context.Background(), container, nil) })

	blobName := "dir/hello.txt"
	body := []byte("hello from the azure smoke test\n")
	if _, err := client.UploadBuffer(ctx, container, blobName, body, nil); err != nil {
		t.Fatalf("UploadBuffer: %v", err)
	}
	resp, err := client.DownloadStream(ctx, container, blobName, nil)
	if err != nil {
		t.Fatalf("DownloadStream: %v", err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading blob: %v", err)
	}
	if !bytes.Equal(data, body) {
		t.Fatalf("DownloadStream returned %q, want %q", data, body)
	}

	var names []string
	pager := client.NewListBlobsFlatPager(container, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing blobs: %v", err)
		}
		for _, item := range page.Segment.BlobItems {
			names = append(names, *item.Name)
		}
	}
	if len(names) != 1 || names[0] != blobName {
		t.Fatalf("listed %v, want [%s]", names, blobName)
	}
}

func TestServerFakeGCS(t *testing.T) {
	env := testenv.Load(t)
	env.Setenv(t, "STORAGE_EMULATOR_HOST")
	ctx := smokeContext(t)

	client, err := storage.NewClient(ctx)
	if err != nil {
		t.Fatalf("storage client: %v", err)
	}
	t.Cleanup(func() { client.Close() })

	bucketName := smokeName("smoke")
	bucket := client.Bucket(bucketName)
	if err := bucket.Create(ctx, "initializer-test", nil); err != nil {
		t.Fatalf("creating bucket %s: %v", bucketName, err)
	}
	objName := "dir/hello.txt"
	body := []byte("hello from the gcs smoke test\n")
	t.Cleanup(func() {
		ctx := context.Background()
		_ = bucket.Object(objName).Delete(ctx)
		_ = bucket.Delete(ctx)
	})

	w := bucket.Object(objName).NewWriter(ctx)
	w.ContentType = "text/plain"
	if _, err := w.Write(body); err != nil {
		t.Fatalf("writing object: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("closing writer: %v", err)
	}
	r, err := bucket.Object(objName).NewReader(ctx)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatalf("reading object: %v", err)
	}
	if !bytes.Equal(data, body) {
		t.Fatalf("read %q, want %q", data, body)
	}

	var names []string
	it := bucket.Objects(ctx, &storage.Query{Prefix: "dir/"})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatalf("listing objects: %v", err)
		}
		names = append(names, attrs.Name)
	}
	if len(names) != 1 || names[0] != objName {
		t.Fatalf("listed %v, want [%s]", names, objName)
	}
}

// smokeGitEnv returns an environment for the git CLI that ignores the user's and
// the system's git config and never prompts, plus extra.
func smokeGitEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GIT_ASKPASS", "SSH_ASKPASS", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_DIR", "GIT_WORK_TREE":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Smoke Test", "GIT_AUTHOR_EMAIL=smoke@initializer.invalid",
		"GIT_COMMITTER_NAME=Smoke Test", "GIT_COMMITTER_EMAIL=smoke@initializer.invalid",
	)
	return append(env, extra...)
}

func smokeGit(t *testing.T, env []string, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = env
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), errors.New(strings.TrimSpace(err.Error() + ": " + stderr.String()))
	}
	return string(out), nil
}

func smokeMustGit(t *testing.T, env []string, dir string, args ...string) string {
	t.Helper()
	out, err := smokeGit(t, env, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// smokeAskpassEnv returns environment entries that make git answer the HTTP
// username and password prompts from environment variables, so that
// neither appears in any command line.
func smokeAskpassEnv(t *testing.T, user, password string) []string {
	script := filepath.Join(t.TempDir(), "askpass.sh")
	const body = "#!/bin/sh\ncase \"$1\" in\nUsername*) printf '%s\\n' \"$SMOKE_GIT_USER\" ;;\n*) printf '%s\\n' \"$SMOKE_GIT_PASSWORD\" ;;\nesac\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return []string{"GIT_ASKPASS=" + script, "SMOKE_GIT_USER=" + user, "SMOKE_GIT_PASSWORD=" + password}
}

// checkSmokeRefs checks that ls-remote output matches the seeded repository
// as git sees it on disk.
func checkSmokeRefs(t *testing.T, g testenv.Git, got string) {
	t.Helper()
	want := smokeMustGit(t, smokeGitEnv(), "", "ls-remote", filepath.Join(g.Root, g.SmokeRepo))
	if got != want {
		t.Fatalf("ls-remote returned\n%s\nwant\n%s", got, want)
	}
	for _, ref := range []string{"\trefs/heads/main\n", "\trefs/heads/feature\n", "\trefs/tags/v1.0.0\n", "\trefs/tags/v1.0.0^{}\n"} {
		if !strings.Contains(got, ref) {
			t.Errorf("ls-remote output lacks %q", strings.TrimSpace(ref))
		}
	}
}

func TestServerGitHTTP(t *testing.T) {
	g := testenv.Load(t).Git()
	repoURL := g.HTTPURL + "/" + g.SmokeRepo

	t.Run("ls-remote with credentials", func(t *testing.T) {
		out := smokeMustGit(t, smokeGitEnv(smokeAskpassEnv(t, g.HTTPUser, g.HTTPPassword)...), "", "ls-remote", repoURL)
		checkSmokeRefs(t, g, out)
	})
	t.Run("ls-remote without credentials fails", func(t *testing.T) {
		if out, err := smokeGit(t, smokeGitEnv(), "", "ls-remote", repoURL); err == nil {
			t.Fatalf("ls-remote without credentials succeeded:\n%s", out)
		}
	})
	t.Run("ls-remote with a wrong password fails", func(t *testing.T) {
		if out, err := smokeGit(t, smokeGitEnv(smokeAskpassEnv(t, g.HTTPUser, "wrong")...), "", "ls-remote", repoURL); err == nil {
			t.Fatalf("ls-remote with a wrong password succeeded:\n%s", out)
		}
	})
	t.Run("status codes", func(t *testing.T) {
		infoRefs := repoURL + "/info/refs?service=git-upload-pack"
		for _, tc := range []struct {
			name           string
			user, password string
			want           int
		}{
			{"no credentials", "", "", http.StatusUnauthorized},
			{"wrong password", g.HTTPUser, "wrong", http.StatusUnauthorized},
			{"right credentials", g.HTTPUser, g.HTTPPassword, http.StatusOK},
		} {
			if got := smokeHTTPStatus(t, infoRefs, tc.user, tc.password); got != tc.want {
				t.Errorf("%s: GET info/refs returned %d, want %d", tc.name, got, tc.want)
			}
		}
		if got := smokeHTTPStatus(t, g.HTTPURL+"/healthz", "", ""); got != http.StatusOK {
			t.Errorf("GET /healthz returned %d, want 200", got)
		}
	})
}

func TestServerGitDaemon(t *testing.T) {
	g := testenv.Load(t).Git()
	out := smokeMustGit(t, smokeGitEnv(), "", "ls-remote", g.DaemonURL+"/"+g.SmokeRepo)
	checkSmokeRefs(t, g, out)
}

func TestServerGitSSH(t *testing.T) {
	g := testenv.Load(t).Git()
	repoURL := g.SSHURL + "/" + g.SmokeRepo
	out := smokeMustGit(t, smokeGitEnv("GIT_SSH_COMMAND="+g.SSHCommand()), "", "ls-remote", repoURL)
	checkSmokeRefs(t, g, out)

	t.Run("unknown key is refused", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "other_ed25519")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		other := g
		other.SSHKey = key
		if out, err := smokeGit(t, smokeGitEnv("GIT_SSH_COMMAND="+other.SSHCommand()), "", "ls-remote", repoURL); err == nil {
			t.Fatalf("ls-remote with an unknown key succeeded:\n%s", out)
		}
	})
	t.Run("path outside the root is refused", func(t *testing.T) {
		if out, err := smokeGit(t, smokeGitEnv("GIT_SSH_COMMAND="+g.SSHCommand()), "", "ls-remote", g.SSHURL+"/../../etc"); err == nil {
			t.Fatalf("ls-remote outside the root succeeded:\n%s", out)
		}
	})
}

// TestServerGitPush pushes over smart HTTP and over SSH into a new bare repository.
func TestServerGitPush(t *testing.T) {
	g := testenv.Load(t).Git()
	name := smokeName("push") + ".git"
	bare := filepath.Join(g.Root, name)
	smokeMustGit(t, smokeGitEnv(), "", "init", "-q", "--bare", bare)
	t.Cleanup(func() { os.RemoveAll(bare) })

	work := t.TempDir()
	smokeMustGit(t, smokeGitEnv(), work, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(work, "pushed.txt"), []byte("pushed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	smokeMustGit(t, smokeGitEnv(), work, "add", "pushed.txt")
	smokeMustGit(t, smokeGitEnv(), work, "commit", "-q", "-m", "pushed")
	head := strings.TrimSpace(smokeMustGit(t, smokeGitEnv(), work, "rev-parse", "HEAD"))

	smokeMustGit(t, smokeGitEnv(smokeAskpassEnv(t, g.HTTPUser, g.HTTPPassword)...), work,
		"push", "-q", g.HTTPURL+"/"+name, "main:refs/heads/via-http")
	smokeMustGit(t, smokeGitEnv("GIT_SSH_COMMAND="+g.SSHCommand()), work,
		"push", "-q", g.SSHURL+"/"+name, "main:refs/heads/via-ssh")
	if _, err := smokeGit(t, smokeGitEnv(), work, "push", "-q", g.HTTPURL+"/"+name, "main:refs/heads/anonymous"); err == nil {
		t.Errorf("push over HTTP without credentials succeeded")
	}

	refs := smokeMustGit(t, smokeGitEnv(), "", "ls-remote", bare)
	for _, ref := range []string{"refs/heads/via-http", "refs/heads/via-ssh"} {
		if !strings.Contains(refs, head+"\t"+ref+"\n") {
			t.Errorf("%s is not at %s after the push:\n%s", ref, head, refs)
		}
	}
	if strings.Contains(refs, "refs/heads/anonymous") {
		t.Errorf("an anonymous push landed:\n%s", refs)
	}
}

func smokeHTTPStatus(t *testing.T, url, user, password string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestServerRegistry(t *testing.T) {
	env := testenv.Load(t)
	reg := env.Registry()

	for _, tc := range []struct {
		name           string
		user, password string
		want           int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", reg.User, "wrong", http.StatusUnauthorized},
		{"right credentials", reg.User, reg.Password, http.StatusOK},
	} {
		if got := smokeHTTPStatus(t, reg.URL+"/v2/", tc.user, tc.password); got != tc.want {
			t.Errorf("%s: GET /v2/ returned %d, want %d", tc.name, got, tc.want)
		}
	}

	// crane reads the credentials from a docker config.json, the file the
	// initializer writes for registries.
	crane := env.Tool("crane")
	dockerConfig := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	cfg, err := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{"auth": auth}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(t.TempDir(), "layer.tar")
	smokeLayer(t, layer, "hello.txt", "hello from the registry smoke test\n")
	image := reg.Host + "/" + smokeName("smoke") + ":v1"

	runCrane := func(dockerConfig string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, crane, args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerConfig)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := runCrane(dockerConfig, "append", "--insecure", "-f", layer, "-t", image); err != nil {
		t.Fatalf("crane append: %v\n%s", err, out)
	}
	out, err := runCrane(dockerConfig, "manifest", "--insecure", image)
	if err != nil || !strings.Contains(out, `"layers"`) {
		t.Fatalf("crane manifest: %v\n%s", err, out)
	}
	if out, err := runCrane(t.TempDir(), "manifest", "--insecure", image); err == nil || !strings.Contains(out, "UNAUTHORIZED") {
		t.Fatalf("crane manifest without credentials: err=%v, want UNAUTHORIZED\n%s", err, out)
	}
}

// smokeLayer writes a one-file tar archive to path.
func smokeLayer(t *testing.T, path, name, content string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
