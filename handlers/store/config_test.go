package store

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/secret"
)

// testKeys returns the key reader of a connection whose secret is mounted
// at a temporary folder holding files, over an environment of env.
func testKeys(t *testing.T, kind connections.Kind, bucket string, files, env map[string]string) *keyReader {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conn := &connections.Connection{
		Name:   "store-test",
		Kind:   kind,
		Schema: &connections.BucketSchema{Bucket: bucket},
		Secret: &connections.Resource{Name: "creds", MountPath: dir},
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return &keyReader{conn: conn, keys: connections.NewKeys(conn, getenv)}
}

func TestS3CredentialOrder(t *testing.T) {
	tests := []struct {
		name       string
		files, env map[string]string
		wantID     string
		wantSource string
	}{
		{
			name:   "mounted secret file beats env and POLYAXON_ env",
			files:  map[string]string{"AWS_ACCESS_KEY_ID": "from-file\n", "AWS_SECRET_ACCESS_KEY": "file-secret\n"},
			env:    map[string]string{"AWS_ACCESS_KEY_ID": "from-env", "AWS_SECRET_ACCESS_KEY": "env-secret", "POLYAXON_AWS_ACCESS_KEY_ID": "from-plx", "POLYAXON_AWS_SECRET_ACCESS_KEY": "plx-secret"},
			wantID: "from-file", wantSource: "AWS_ACCESS_KEY_ID",
		},
		{
			name:   "lower-case file names count as mounted files",
			files:  map[string]string{"aws_access_key_id": "lower-file", "awssecretaccesskey": "s"},
			env:    map[string]string{"AWS_ACCESS_KEY_ID": "from-env", "AWS_SECRET_ACCESS_KEY": "env-secret"},
			wantID: "lower-file", wantSource: "aws_access_key_id",
		},
		{
			name:   "env beats POLYAXON_ env",
			env:    map[string]string{"AWS_ACCESS_KEY_ID": "from-env", "AWS_SECRET_ACCESS_KEY": "env-secret", "POLYAXON_AWS_ACCESS_KEY_ID": "from-plx", "POLYAXON_AWS_SECRET_ACCESS_KEY": "plx-secret"},
			wantID: "from-env", wantSource: "$AWS_ACCESS_KEY_ID",
		},
		{
			name:   "POLYAXON_ env last",
			env:    map[string]string{"POLYAXON_AWS_ACCESS_KEY_ID": "from-plx", "POLYAXON_AWS_SECRET_ACCESS_KEY": "plx-secret"},
			wantID: "from-plx", wantSource: "$POLYAXON_AWS_ACCESS_KEY_ID",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := readS3Config(testKeys(t, connections.S3, "s3://b", tt.files, tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !c.static || c.accessKey.Reveal() != tt.wantID {
				t.Errorf("access key %q (static %v), want %q", c.accessKey.Reveal(), c.static, tt.wantID)
			}
			if !strings.HasSuffix(c.accessKey.Source(), tt.wantSource) {
				t.Errorf("source %q, want …%s", c.accessKey.Source(), tt.wantSource)
			}
			if a := c.describeAuth(); strings.Contains(a, tt.wantID) || !strings.Contains(a, tt.wantSource) {
				t.Errorf("describeAuth %q: must name the source, not the value", a)
			}
		})
	}
}

// An endpoint that does not parse is refused without quoting it: it may
// hold a password.
func TestS3EndpointErrorQuotesNoPassword(t *testing.T) {
	_, err := readS3Config(testKeys(t, connections.S3, "s3://b", nil, map[string]string{"AWS_ENDPOINT_URL": "http://minio:Top Secret%zz@host:9000"}))
	if err == nil || fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL") {
		t.Fatalf("got %v, want a usage error naming AWS_ENDPOINT_URL", err)
	}
	if strings.Contains(err.Error(), "Top Secret") {
		t.Errorf("the error quotes the password: %v", err)
	}
}

// Keys read from different places are each named.
func TestS3DescribeAuthMixedSources(t *testing.T) {
	c, err := readS3Config(testKeys(t, connections.S3, "s3://b",
		map[string]string{"AWS_ACCESS_KEY_ID": "id"}, map[string]string{"AWS_SECRET_ACCESS_KEY": "env-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.describeAuth(); !strings.Contains(a, "AWS_SECRET_ACCESS_KEY from $AWS_SECRET_ACCESS_KEY") || strings.Contains(a, "env-secret") {
		t.Errorf("describeAuth %q: must name where the secret key came from", a)
	}
	c, err = readS3Config(testKeys(t, connections.S3, "s3://b", nil, map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.describeAuth(); strings.Contains(a, "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("describeAuth %q: keys from one place need one source", a)
	}
}

// The store's endpoint in $AWS_ENDPOINT_URL, which the SDK also reads as
// every service's endpoint, does not receive the AssumeRole request: STS
// goes to AWS_STS_ENDPOINT_URL, else AWS's regional endpoint, as when the
// endpoint comes from a mounted file.
func TestS3AssumeRoleNotSentToStoreEndpoint(t *testing.T) {
	var hits atomic.Int64
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "not STS", http.StatusForbidden)
	}))
	defer store.Close()
	stsCalls := make(chan string, 1)
	stsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stsCalls <- r.URL.Path
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer stsSrv.Close()
	t.Setenv("AWS_ENDPOINT_URL", store.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	env := map[string]string{
		"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": store.URL,
		"AWS_ASSUME_ROLE": "true", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/reader", "AWS_REGION": "eu-west-1",
	}
	retrieve := func() {
		c, err := readS3Config(testKeys(t, connections.S3, "s3://b", nil, env))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := c.awsConfig(context.Background(), 2, s3RetryAttempts, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cfg.Credentials.Retrieve(ctx); err == nil {
			t.Fatal("credentials from nowhere")
		}
	}
	retrieve() // to AWS's STS: refused or unreachable, either way not the store
	if n := hits.Load(); n != 0 {
		t.Errorf("the store's endpoint got %d STS requests", n)
	}
	env["AWS_STS_ENDPOINT_URL"] = stsSrv.URL
	retrieve()
	select {
	case <-stsCalls:
	default:
		t.Error("AWS_STS_ENDPOINT_URL got no request")
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the store's endpoint got %d STS requests", n)
	}
}

func TestS3SessionToken(t *testing.T) {
	base := map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	c, err := readS3Config(testKeys(t, connections.S3, "s3://b", nil, with(map[string]string{"AWS_SECURITY_TOKEN": "security", "AWS_SESSION_TOKEN": "session"})))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.token.Reveal(); got != "security" {
		t.Errorf("token %q: AWS_SECURITY_TOKEN (upstream's key) must win over AWS_SESSION_TOKEN", got)
	}
	c, err = readS3Config(testKeys(t, connections.S3, "s3://b", nil, with(map[string]string{"AWS_SESSION_TOKEN": "session"})))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.token.Reveal(); got != "session" {
		t.Errorf("token %q, want the AWS_SESSION_TOKEN fallback", got)
	}
}

func TestS3Options(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		endpoint   string
		region     string
		pathStyle  bool
		whenReq    bool
		disableTLS bool
		insecure   bool
	}{
		{name: "AWS defaults", env: map[string]string{}, pathStyle: false},
		{name: "custom endpoint: path style, checksums when required, us-east-1",
			env:      map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/"},
			endpoint: "http://127.0.0.1:9000", region: "us-east-1", pathStyle: true, whenReq: true},
		{name: "custom endpoint, virtual-hosted switch",
			env:      map[string]string{"AWS_ENDPOINT_URL": "https://s3.example.com", "AWS_S3_ADDRESSING_STYLE": "virtual", "AWS_REGION": "eu-west-3"},
			endpoint: "https://s3.example.com", region: "eu-west-3", pathStyle: false, whenReq: true},
		{name: "an AWS endpoint keeps AWS's defaults",
			env:      map[string]string{"AWS_ENDPOINT_URL": "https://bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com", "AWS_REGION": "us-east-1"},
			endpoint: "https://bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com", region: "us-east-1"},
		{name: "AWS with path style forced",
			env:       map[string]string{"AWS_S3_ADDRESSING_STYLE": "path", "AWS_REGION": "eu-west-1"},
			region:    "eu-west-1",
			pathStyle: true},
		{name: "use-ssl false completes a scheme-less endpoint with http",
			env:      map[string]string{"AWS_ENDPOINT_URL": "minio.local:9000", "AWS_USE_SSL": "false"},
			endpoint: "http://minio.local:9000", region: "us-east-1", pathStyle: true, whenReq: true},
		{name: "use-ssl true (default) completes with https",
			env:      map[string]string{"AWS_ENDPOINT_URL": "minio.local:9000"},
			endpoint: "https://minio.local:9000", region: "us-east-1", pathStyle: true, whenReq: true},
		{name: "use-ssl false without endpoint: plain http to AWS",
			env:        map[string]string{"AWS_USE_SSL": "False", "AWS_REGION": "us-west-2"},
			region:     "us-west-2",
			disableTLS: true},
		{name: "verify-ssl false",
			env:      map[string]string{"AWS_ENDPOINT_URL": "https://s3.internal", "AWS_VERIFY_SSL": "false"},
			endpoint: "https://s3.internal", region: "us-east-1", pathStyle: true, whenReq: true, insecure: true},
		{name: "checksums can be turned back on",
			env:      map[string]string{"AWS_ENDPOINT_URL": "https://s3.internal", "AWS_REQUEST_CHECKSUM_CALCULATION": "when_supported", "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_SUPPORTED"},
			endpoint: "https://s3.internal", region: "us-east-1", pathStyle: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := readS3Config(testKeys(t, connections.S3, "s3://b", nil, env))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := c.awsConfig(context.Background(), 7, s3RetryAttempts, nil)
			if err != nil {
				t.Fatal(err)
			}
			o := s3.NewFromConfig(cfg, c.s3Options).Options()
			if got := aws.ToString(o.BaseEndpoint); got != tt.endpoint {
				t.Errorf("endpoint %q, want %q", got, tt.endpoint)
			}
			if tt.region != "" && o.Region != tt.region {
				t.Errorf("region %q, want %q", o.Region, tt.region)
			}
			if o.UsePathStyle != tt.pathStyle {
				t.Errorf("path style %v, want %v", o.UsePathStyle, tt.pathStyle)
			}
			if got := o.RequestChecksumCalculation == aws.RequestChecksumCalculationWhenRequired; got != tt.whenReq {
				t.Errorf("request checksums when required: %v, want %v", got, tt.whenReq)
			}
			if got := o.ResponseChecksumValidation == aws.ResponseChecksumValidationWhenRequired; got != tt.whenReq {
				t.Errorf("response checksums when required: %v, want %v", got, tt.whenReq)
			}
			if o.EndpointOptions.DisableHTTPS != tt.disableTLS {
				t.Errorf("DisableHTTPS %v, want %v", o.EndpointOptions.DisableHTTPS, tt.disableTLS)
			}
			tr := c.httpClient(7).GetTransport()
			if tr.MaxIdleConnsPerHost != 7 {
				t.Errorf("MaxIdleConnsPerHost %d, want the workers (7)", tr.MaxIdleConnsPerHost)
			}
			if got := tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify; got != tt.insecure {
				t.Errorf("InsecureSkipVerify %v, want %v", got, tt.insecure)
			}
		})
	}
}

func TestS3ConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"key without secret", map[string]string{"AWS_ACCESS_KEY_ID": "id"}, "AWS_SECRET_ACCESS_KEY is not"},
		{"secret without key", map[string]string{"AWS_SECRET_ACCESS_KEY": "s"}, "AWS_ACCESS_KEY_ID is not"},
		{"bad use-ssl", map[string]string{"AWS_USE_SSL": "yes"}, "AWS_USE_SSL"},
		{"bad verify-ssl", map[string]string{"AWS_VERIFY_SSL": "0"}, "AWS_VERIFY_SSL"},
		{"bad addressing", map[string]string{"AWS_S3_ADDRESSING_STYLE": "dns"}, "AWS_S3_ADDRESSING_STYLE"},
		{"bad endpoint", map[string]string{"AWS_ENDPOINT_URL": "ftp://x"}, "AWS_ENDPOINT_URL"},
		{"endpoint with credentials", map[string]string{"AWS_ENDPOINT_URL": "http://u:p@x"}, "credentials do not belong"},
		{"assume role without ARN", map[string]string{"AWS_ASSUME_ROLE": "true"}, "AWS_ROLE_ARN"},
		{"bad duration", map[string]string{"AWS_SESSION_DURATION": "1h"}, "AWS_SESSION_DURATION"},
		{"bad CA bundle path", map[string]string{"AWS_CA_BUNDLE": "/nonexistent/ca.pem"}, "AWS_CA_BUNDLE"},
		{"CA bundle without a certificate", map[string]string{"AWS_CA_BUNDLE": "-----BEGIN nothing"}, "no PEM certificate"},
		{"bad checksum mode", map[string]string{"AWS_REQUEST_CHECKSUM_CALCULATION": "always"}, "AWS_REQUEST_CHECKSUM_CALCULATION"},
		{"region with an underscore", map[string]string{"AWS_REGION": "us_east_1"}, "AWS_REGION"},
		{"region with a space", map[string]string{"AWS_REGION": "bad region"}, "AWS_REGION"},
		{"region with a slash", map[string]string{"AWS_DEFAULT_REGION": "eu-west-1/"}, "AWS_REGION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readS3Config(testKeys(t, connections.S3, "s3://b", nil, tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "store-test") {
				t.Errorf("got %v (class %v), want a usage error naming the connection and %s", err, fault.ClassOf(err), tt.want)
			}
		})
	}
}

func TestS3AssumeRoleSettings(t *testing.T) {
	env := map[string]string{
		"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_ASSUME_ROLE": "true", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/reader",
		"AWS_STS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "eu-west-1",
	}
	c, err := readS3Config(testKeys(t, connections.S3, "s3://b", nil, env))
	if err != nil {
		t.Fatal(err)
	}
	if !c.assumeRole || c.sessionName != "S3Session" || c.duration.Seconds() != 43200 || c.durationGiven || c.stsEndpoint != "http://127.0.0.1:9" {
		t.Errorf("upstream defaults not applied: %+v", c)
	}
	cfg, err := c.awsConfig(context.Background(), 4, s3RetryAttempts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Credentials.(*aws.CredentialsCache); !ok {
		t.Errorf("credentials %T, want a cache over the assume-role provider", cfg.Credentials)
	}
	env["AWS_SESSION_NAME"], env["AWS_SESSION_DURATION"] = "mine", "3600"
	c, err = readS3Config(testKeys(t, connections.S3, "s3://b", nil, env))
	if err != nil {
		t.Fatal(err)
	}
	if c.sessionName != "mine" || c.duration.Seconds() != 3600 || !c.durationGiven {
		t.Errorf("session settings not read: %+v", c)
	}
}

func TestS3CABundle(t *testing.T) {
	pem, err := os.ReadFile("testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	// A path in the environment, or the PEM itself in a mounted secret file.
	for name, keys := range map[string]*keyReader{
		"path": testKeys(t, connections.S3, "s3://b", nil, map[string]string{"AWS_CA_BUNDLE": "testdata/ca.pem"}),
		"pem":  testKeys(t, connections.S3, "s3://b", map[string]string{"AWS_CA_BUNDLE": string(pem)}, nil),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := readS3Config(keys)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(c.caBundle)) != strings.TrimSpace(string(pem)) {
				t.Fatalf("CA bundle not read")
			}
			cfg, err := c.awsConfig(context.Background(), 4, s3RetryAttempts, nil)
			if err != nil {
				t.Fatalf("the SDK refused the CA bundle with our HTTP client: %v", err)
			}
			_ = cfg
		})
	}
}

func TestGCSConfig(t *testing.T) {
	saved := contextRoot
	t.Cleanup(func() { contextRoot = saved })
	root := t.TempDir()
	contextRoot = func() string { return root }

	dict := `{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----\\n","client_email":"x@y"}`
	tests := []struct {
		name     string
		files    map[string]string
		env      map[string]string
		fallback bool
		keyPath  string
		keyJSON  bool
		emulator string
		auth     string
	}{
		{name: "emulator: no credentials", env: map[string]string{"STORAGE_EMULATOR_HOST": "127.0.0.1:4443", "GC_KEY_PATH": "/k.json"},
			emulator: "127.0.0.1:4443", auth: "no credentials"},
		{name: "GC_KEY_PATH first", env: map[string]string{"GC_KEY_PATH": "/a.json", "GOOGLE_KEY_PATH": "/b.json", "GOOGLE_APPLICATION_CREDENTIALS": "/c.json", "GC_KEYFILE_DICT": dict},
			keyPath: "/a.json", auth: "GC_KEY_PATH"},
		{name: "GOOGLE_KEY_PATH next", env: map[string]string{"GOOGLE_KEY_PATH": "/b.json", "GOOGLE_APPLICATION_CREDENTIALS": "/c.json"},
			keyPath: "/b.json", auth: "GOOGLE_KEY_PATH"},
		{name: "GOOGLE_APPLICATION_CREDENTIALS next", env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/c.json", "GC_KEYFILE_DICT": dict},
			keyPath: "/c.json", auth: "GOOGLE_APPLICATION_CREDENTIALS"},
		{name: "mounted file beats env", files: map[string]string{"GC_KEY_PATH": "/mounted.json"}, env: map[string]string{"GC_KEY_PATH": "/env.json"},
			keyPath: "/mounted.json", auth: "GC_KEY_PATH"},
		{name: "inline key", env: map[string]string{"POLYAXON_GC_KEYFILE_DICT": dict}, keyJSON: true, auth: "GC_KEYFILE_DICT"},
		{name: "gc-secret.json fallback", fallback: true, keyPath: filepath.Join(root, ".gc", "gc-secret.json"), auth: "gc-secret.json"},
		{name: "application default credentials", auth: "application default credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(filepath.Join(root, ".gc"))
			if tt.fallback {
				if err := os.MkdirAll(filepath.Join(root, ".gc"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, ".gc", "gc-secret.json"), []byte(dict), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := readGCSConfig(testKeys(t, connections.GCS, "gs://b", tt.files, tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.emulator != tt.emulator || c.keyPath != tt.keyPath || (c.keyJSON != nil) != tt.keyJSON {
				t.Errorf("got emulator %q key path %q inline %v", c.emulator, c.keyPath, c.keyJSON != nil)
			}
			if !strings.Contains(c.auth, tt.auth) {
				t.Errorf("auth %q, want it to mention %q", c.auth, tt.auth)
			}
			if tt.keyJSON && !strings.Contains(string(c.keyJSON), `KEY-----\nabc\n`) {
				t.Errorf("private_key's literal \\n not turned into newlines: %s", c.keyJSON)
			}
		})
	}
}

func TestGCSConfigErrors(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"key path without .json": {"GC_KEY_PATH": "/secret/key.p12"},
		"inline key not JSON":    {"GC_KEYFILE_DICT": "not json"},
		"bad scopes":             {"GC_SCOPES": "[1,2]", "GC_KEY_PATH": "/k.json"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readGCSConfig(testKeys(t, connections.GCS, "gs://b", nil, env))
			if err == nil || fault.ClassOf(err) != fault.Usage {
				t.Fatalf("got %v, want a usage error", err)
			}
		})
	}
}

func TestGCSKeyFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "key.json")
	if err := os.WriteFile(bad, []byte(`{"type":"gdch_service_account"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	k := testKeys(t, connections.GCS, "gs://b", nil, map[string]string{"GC_KEY_PATH": bad})
	c, err := readGCSConfig(k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.credentials(context.Background(), k); err == nil || !strings.Contains(err.Error(), "gdch_service_account") {
		t.Errorf("an unexpected key type must be refused by name, got %v", err)
	}
	k = testKeys(t, connections.GCS, "gs://b", nil, map[string]string{"GC_KEY_PATH": filepath.Join(dir, "missing.json")})
	if c, err = readGCSConfig(k); err != nil {
		t.Fatal(err)
	}
	if _, err := c.credentials(context.Background(), k); err == nil || fault.ClassOf(err) != fault.Usage {
		t.Errorf("a missing key file must be a usage error, got %v", err)
	}
	// A private key that does not parse is the configuration's fault, found
	// before any request (the OAuth library would fail at the first token,
	// which reads as refused credentials).
	for name, pk := range map[string]string{
		"not PEM":   "-----BEGIN PRIVATE KEY-----\\nbm90IGEga2V5\\n-----END PRIVATE KEY-----\\n",
		"missing":   "",
		"truncated": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n",
	} {
		dict := `{"type":"service_account","client_email":"x@y.iam.gserviceaccount.com","private_key":"` + pk + `"}`
		k = testKeys(t, connections.GCS, "gs://b", nil, map[string]string{"GC_KEYFILE_DICT": dict})
		if c, err = readGCSConfig(k); err != nil {
			t.Fatal(err)
		}
		_, err := c.credentials(context.Background(), k)
		if err == nil || fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "private_key") {
			t.Errorf("%s: got %v, want a usage error naming private_key", name, err)
		}
	}
}

func TestEmulatorEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4443":         "http://127.0.0.1:4443/storage/v1/",
		"http://127.0.0.1:4443/": "http://127.0.0.1:4443/storage/v1/",
		"https://gcs.local":      "https://gcs.local/storage/v1/",
	} {
		if got := emulatorEndpoint(in); got != want {
			t.Errorf("emulatorEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAzureConfig(t *testing.T) {
	const wasbs = "wasbs://c@acc.blob.core.windows.net/p"
	tests := []struct {
		name    string
		bucket  string
		files   map[string]string
		env     map[string]string
		kind    string
		service string
		account string
		sas     string
	}{
		{name: "connection string first", bucket: wasbs,
			env:  map[string]string{"AZURE_CONNECTION_STRING": "AccountName=x;AccountKey=eQ==", "AZURE_ACCOUNT_NAME": "acc", "AZURE_ACCOUNT_KEY": "eQ==", "AZURE_SAS_TOKEN": "sig=x"},
			kind: azureConnString, service: "https://acc.blob.core.windows.net", account: "acc"},
		{name: "AZURE_STORAGE_CONNECTION_STRING fallback", bucket: "az://c",
			env:  map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "AccountName=x;AccountKey=eQ=="},
			kind: azureConnString},
		{name: "account key, account from the URL", bucket: wasbs,
			env:  map[string]string{"AZURE_ACCOUNT_KEY": "eQ==", "AZURE_SAS_TOKEN": "sig=x"},
			kind: azureSharedKey, service: "https://acc.blob.core.windows.net", account: "acc"},
		{name: "account key, account from AZURE_ACCOUNT_NAME with az://", bucket: "az://c/p",
			files: map[string]string{"AZURE_ACCOUNT_NAME": "mounted", "AZURE_ACCOUNT_KEY": "eQ=="},
			env:   map[string]string{"AZURE_ACCOUNT_NAME": "env"},
			kind:  azureSharedKey, service: "https://mounted.blob.core.windows.net", account: "mounted"},
		{name: "AZURE_ACCOUNT_NAME wins over the URL's account, as upstream", bucket: wasbs,
			env:  map[string]string{"AZURE_ACCOUNT_NAME": "other", "AZURE_ACCOUNT_KEY": "eQ=="},
			kind: azureSharedKey, service: "https://other.blob.core.windows.net", account: "other"},
		{name: "AZURE_ACCOUNT_NAME over a Data Lake URL's account: its blob service", bucket: "abfss://c@acc.dfs.core.windows.net/p",
			env:  map[string]string{"AZURE_ACCOUNT_NAME": "other", "AZURE_ACCOUNT_KEY": "eQ=="},
			kind: azureSharedKey, service: "https://other.blob.core.windows.net", account: "other"},
		{name: "AZURE_ACCOUNT_NAME over an emulator URL's account", bucket: "https://127.0.0.1:10000/devstoreaccount1/c/p",
			env:  map[string]string{"AZURE_ACCOUNT_NAME": "other", "AZURE_ACCOUNT_KEY": "eQ=="},
			kind: azureSharedKey, service: "https://127.0.0.1:10000/other", account: "other"},
		{name: "emulator endpoint", bucket: "az://c",
			env:  map[string]string{"AZURE_BLOB_ENDPOINT": "http://127.0.0.1:10000/devstoreaccount1/", "AZURE_ACCOUNT_KEY": "eQ=="},
			kind: azureSharedKey, service: "http://127.0.0.1:10000/devstoreaccount1", account: "devstoreaccount1"},
		{name: "SAS token", bucket: wasbs, env: map[string]string{"AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=abc", "AZURE_CLIENT_SECRET": "s"},
			kind: azureSAS, service: "https://acc.blob.core.windows.net", account: "acc", sas: "sv=1&sig=abc"},
		{name: "SAS token in the URL", bucket: "https://acc.blob.core.windows.net/c/p?sig=abc&sv=1",
			kind: azureSAS, service: "https://acc.blob.core.windows.net", account: "acc", sas: "sig=abc&sv=1"},
		{name: "service principal", bucket: wasbs,
			env:  map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s"},
			kind: azurePrincipal, service: "https://acc.blob.core.windows.net", account: "acc"},
		{name: "workload identity: tenant and client without a secret", bucket: wasbs,
			env:  map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"},
			kind: azureDefault, service: "https://acc.blob.core.windows.net", account: "acc"},
		{name: "default credential", bucket: wasbs,
			kind: azureDefault, service: "https://acc.blob.core.windows.net", account: "acc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testKeys(t, connections.WASB, tt.bucket, tt.files, tt.env)
			loc, err := connections.ParseLocation(connections.WASB, tt.bucket)
			if err != nil {
				t.Fatal(err)
			}
			c, err := readAzureConfig(k, loc)
			if err != nil {
				t.Fatal(err)
			}
			if c.kind != tt.kind || c.service != tt.service || c.account != tt.account || c.sas != tt.sas {
				t.Errorf("got kind %q service %q account %q sas %q\nwant kind %q service %q account %q sas %q",
					c.kind, c.service, c.account, c.sas, tt.kind, tt.service, tt.account, tt.sas)
			}
			if _, err := c.containerClient(loc.Bucket, newTransport(4)); err != nil {
				t.Errorf("client: %v", err)
			}
		})
	}
}

// The warning about the URL's account says what is used: the account of
// AZURE_ACCOUNT_NAME, or the connection string's endpoint. A client ID
// from a mounted file reaches the identity credential.
func TestAzureAccountNoteAndClientID(t *testing.T) {
	const bucket = "wasbs://c@acc.blob.core.windows.net/p"
	loc, err := connections.ParseLocation(connections.WASB, bucket)
	if err != nil {
		t.Fatal(err)
	}
	c, err := readAzureConfig(testKeys(t, connections.WASB, bucket, nil, map[string]string{
		"AZURE_ACCOUNT_NAME": "other", "AZURE_CONNECTION_STRING": "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=1&sig=abc"}), loc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.accountNote, "connection string") || strings.Contains(c.accountNote, "https://other") {
		t.Errorf("note %q", c.accountNote)
	}
	c, err = readAzureConfig(testKeys(t, connections.WASB, bucket,
		map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "mounted-client"}, map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"}), loc)
	if err != nil {
		t.Fatal(err)
	}
	if c.kind != azureDefault || c.client != "mounted-client" || c.tokenFile != "/var/run/token" || !strings.Contains(c.auth, "mounted-client") {
		t.Errorf("%+v", c)
	}
	cred, err := c.defaultCredential(newTransport(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cred.(*azidentity.ChainedTokenCredential); !ok {
		t.Errorf("credential %T, want a chain starting with the client's identities", cred)
	}
}

func TestAzureConfigErrors(t *testing.T) {
	for name, tt := range map[string]struct {
		bucket string
		env    map[string]string
	}{
		"no account anywhere":          {"az://c", map[string]string{"AZURE_ACCOUNT_KEY": "eQ=="}},
		"partial principal":            {"wasbs://c@acc.blob.core.windows.net", map[string]string{"AZURE_CLIENT_SECRET": "s"}},
		"endpoint not a URL":           {"az://c", map[string]string{"AZURE_BLOB_ENDPOINT": "127.0.0.1:10000", "AZURE_ACCOUNT_NAME": "a"}},
		"endpoint with another scheme": {"az://c", map[string]string{"AZURE_BLOB_ENDPOINT": "ftp://x", "AZURE_ACCOUNT_NAME": "a"}},
	} {
		t.Run(name, func(t *testing.T) {
			loc, err := connections.ParseLocation(connections.WASB, tt.bucket)
			if err != nil {
				t.Fatal(err)
			}
			_, err = readAzureConfig(testKeys(t, connections.WASB, tt.bucket, nil, tt.env), loc)
			if err == nil || fault.ClassOf(err) != fault.Usage {
				t.Fatalf("got %v, want a usage error", err)
			}
		})
	}
}

func TestOpenOptions(t *testing.T) {
	// Open needs no network for a custom S3 endpoint with keys, nor for
	// the GCS emulator or Azure with a key: it only builds clients.
	ctx := context.Background()
	for _, tt := range []struct {
		kind   connections.Kind
		bucket string
		env    map[string]string
		url    string
		prefix string
	}{
		{connections.S3, "s3://b/deep/prefix/", map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "s3://b/deep/prefix", "deep/prefix"},
		{connections.GCS, "gcs://b", map[string]string{"STORAGE_EMULATOR_HOST": "127.0.0.1:1"}, "gcs://b", ""},
		{connections.WASB, "wasbs://c@acc.blob.core.windows.net/p", map[string]string{"AZURE_ACCOUNT_KEY": "eQ=="}, "wasbs://c@acc.blob.core.windows.net/p", "p"},
	} {
		t.Run(tt.url, func(t *testing.T) {
			k := testKeys(t, tt.kind, tt.bucket, nil, tt.env)
			s, err := Open(ctx, k.conn, k.keys, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.URL != tt.url || s.Prefix != tt.prefix || s.Bucket == nil || s.Provider == nil {
				t.Errorf("got URL %q prefix %q bucket %v provider %v", s.URL, s.Prefix, s.Bucket, s.Provider)
			}
		})
	}
}

// A host AWS names after the bucket that DNS does not know is the
// cluster's DNS (or egress) to check, not a setting the user did not give;
// a custom endpoint's is that setting.
func TestS3UnknownHostHint(t *testing.T) {
	dnsErr := &net.DNSError{Err: "no such host", Name: "data.s3.us-east-1.amazonaws.com", IsNotFound: true}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "check its DNS and network access to AWS"},
		{map[string]string{"AWS_ENDPOINT_URL": "http://minio.example:9000"}, "fix AWS_ENDPOINT_URL"},
	} {
		env := map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1"}
		maps.Copy(env, c.env)
		k := testKeys(t, connections.S3, "s3://data/p", nil, env)
		s, err := Open(context.Background(), k.conn, k.keys, Options{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if msg := s.explain(dnsErr, "listing").Error(); !strings.Contains(msg, c.want) {
			t.Errorf("%v: %s", c.env, msg)
		}
		s.Close()
	}
}

// An access key ID names the key: a path or bucket name holding its text
// is shown as it is; the secret key is blanked wherever it appears.
func TestS3KeyIDNotBlanked(t *testing.T) {
	k := testKeys(t, connections.S3, "s3://data/p", map[string]string{"AWS_ACCESS_KEY_ID": "team-keyid", "AWS_SECRET_ACCESS_KEY": "team-secret-value"},
		map[string]string{"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
	s, err := Open(context.Background(), k.conn, k.keys, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := secret.Scrub("/data/team-keyid/x team-secret-value"); got != "/data/team-keyid/x "+secret.Redacted {
		t.Errorf("scrubbed: %q", got)
	}
}
