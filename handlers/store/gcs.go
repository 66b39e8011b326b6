package store

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"github.com/initializer/initializer/connections"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// GCS keys, read in this order.
var (
	keyGCEmulator = []string{"STORAGE_EMULATOR_HOST"}
	keyGCKeyPath  = []string{"GC_KEY_PATH", "GOOGLE_KEY_PATH", "GOOGLE_APPLICATION_CREDENTIALS"}
	keyGCKeyDict  = []string{"GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT"}
	keyGCScopes   = []string{"GC_SCOPES", "GOOGLE_SCOPES"}
)

const (
	defaultGCScope   = "https://www.googleapis.com/auth/cloud-platform"
	gcsRetryAttempts = 4
)

// contextRoot is upstream's context root, under which a mounted
// .gc/gc-secret.json is the key file of last resort.
var contextRoot = func() string {
	if r := os.Getenv("POLYAXON_CONTEXT_ROOT"); r != "" {
		return r
	}
	return "/plx-context"
}

// gcsConfig is what a GCS connection's keys say.
type gcsConfig struct {
	emulator string // host:port (or URL) of an emulator; no credentials then
	keyPath  string // a key file
	keyJSON  []byte // the key itself (GC_KEYFILE_DICT)
	scopes   []string
	auth     string // how requests are authenticated, for messages
}

// readGCSConfig reads a GCS connection's keys, upstream's order: an emulator
// needs no credentials; else the key file path, else the inline key, else
// the mounted gc-secret.json, else application default credentials.
func readGCSConfig(k *keyReader) (*gcsConfig, error) {
	c := &gcsConfig{scopes: []string{defaultGCScope}}
	var err error
	if c.emulator, err = k.str(keyGCEmulator...); err != nil {
		return nil, err
	}
	if c.emulator != "" {
		c.auth = "no credentials (STORAGE_EMULATOR_HOST from " + k.source(keyGCEmulator...) + ")"
		return c, nil
	}
	if scopes, err := k.str(keyGCScopes...); err != nil {
		return nil, err
	} else if scopes != "" {
		if c.scopes, err = parseList(scopes); err != nil || len(c.scopes) == 0 {
			return nil, k.usage("GC_SCOPES (from %s) must be a JSON list or a comma-separated list of OAuth scopes", k.source(keyGCScopes...))
		}
	}
	if c.keyPath, err = k.str(keyGCKeyPath...); err != nil {
		return nil, err
	}
	if c.keyPath != "" {
		if !strings.EqualFold(filepath.Ext(c.keyPath), ".json") {
			return nil, k.usage("%s (from %s): unrecognised extension for key file %q: give the path of a .json service account key",
				firstSet(k, keyGCKeyPath), k.source(keyGCKeyPath...), filepath.Base(c.keyPath))
		}
		c.auth = "the key file named by " + firstSet(k, keyGCKeyPath) + " (from " + k.source(keyGCKeyPath...) + ")"
		return c, nil
	}
	v, ok, err := k.value(keyGCKeyDict...)
	if err != nil {
		return nil, err
	}
	if ok {
		key, err := keyFromDict(v.Reveal())
		if err != nil {
			return nil, k.usage("GC_KEYFILE_DICT (from %s): %v", v.Source(), err)
		}
		c.keyJSON = key
		c.auth = "the key in GC_KEYFILE_DICT (from " + v.Source() + ")"
		return c, nil
	}
	fallback := filepath.Join(contextRoot(), ".gc", "gc-secret.json")
	if st, err := os.Stat(fallback); err == nil && !st.IsDir() {
		c.keyPath = fallback
		c.auth = "the key file " + fallback
		return c, nil
	}
	c.auth = "application default credentials (workload identity, metadata server, gcloud)"
	return c, nil
}

// firstSet returns the first of names that is set, for messages.
func firstSet(k *keyReader, names []string) string {
	for _, n := range names {
		if _, ok, _ := k.keys.Lookup(n); ok {
			return n
		}
	}
	return names[0]
}

// keyFromDict reads an inline key as upstream does: a JSON object whose
// private_key may carry literal "\n" sequences for newlines.
func keyFromDict(raw string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, errors.New("not a JSON object (give the content of a service account key file)")
	}
	if pk, ok := m["private_key"].(string); ok {
		m["private_key"] = strings.ReplaceAll(pk, `\n`, "\n")
	}
	return json.Marshal(m)
}

// parseList reads a JSON list of strings or a comma-separated list.
func parseList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	var out []string
	if strings.HasPrefix(s, "[") {
		err := json.Unmarshal([]byte(s), &out)
		return out, err
	}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out, nil
}

// credTypes are the key file types accepted, by their "type" field.
var credTypes = map[string]google.CredentialsType{
	"service_account":              google.ServiceAccount,
	"authorized_user":              google.AuthorizedUser,
	"external_account":             google.ExternalAccount,
	"impersonated_service_account": google.ImpersonatedServiceAccount,
}

// credentials loads the OAuth credentials of c (not for an emulator).
func (c *gcsConfig) credentials(ctx context.Context, k *keyReader) (*google.Credentials, error) {
	// Tokens are refreshed long after Open returns: not on Open's context.
	ctx = context.WithoutCancel(ctx)
	params := google.CredentialsParams{Scopes: c.scopes}
	key := c.keyJSON
	if c.keyPath != "" {
		var err error
		if key, err = os.ReadFile(c.keyPath); err != nil {
			return nil, k.usage("cannot read the GCS key file: %v; check GC_KEY_PATH and the secret's mountPath", err)
		}
	}
	if key == nil {
		creds, err := google.FindDefaultCredentialsWithParams(ctx, params)
		if err != nil {
			// None found: keys to give (exit 2), as when a secret lacks them.
			return nil, k.usage("no GCS credentials: %v; give GC_KEY_PATH or GC_KEYFILE_DICT, mount gc-secret.json at %s/.gc, or run with a workload identity", err, contextRoot())
		}
		return creds, nil
	}
	var head struct {
		Type       string `json:"type"`
		PrivateKey string `json:"private_key"`
	}
	// The key, as messages name it: where it came from, and its file.
	what := "the GCS key: " + c.auth
	if c.keyPath != "" {
		what += ", " + c.keyPath + ","
	}
	if err := json.Unmarshal(key, &head); err != nil {
		return nil, k.usage("%s is not JSON; give the key file as Google issued it (a service account's .json key)", what)
	}
	if head.Type == "service_account" {
		// The OAuth library parses it only for the first token, and its
		// failure would read as refused credentials.
		if err := parsePrivateKey(head.PrivateKey); err != nil {
			return nil, k.usage("%s: its private_key %v; give the key file as Google issued it", what, err)
		}
	}
	t, ok := credTypes[head.Type]
	if !ok {
		return nil, k.usage("%s has type %q: expected service_account, authorized_user, external_account or impersonated_service_account", what, head.Type)
	}
	creds, err := google.CredentialsFromJSONWithTypeAndParams(ctx, key, t, params)
	if err != nil {
		return nil, k.usage("%s is not valid: %v; give the key file as Google issued it", what, err)
	}
	return creds, nil
}

// parsePrivateKey checks a service account's private key as the OAuth
// library reads it: PEM (or bare DER), PKCS#8 or PKCS#1, RSA.
func parsePrivateKey(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("is missing")
	}
	der := []byte(s)
	if block, _ := pem.Decode(der); block != nil {
		der = block.Bytes
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(der); err != nil {
			return errors.New("is not a PEM-encoded PKCS#8 or PKCS#1 private key")
		}
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return errors.New("is not an RSA key")
	}
	return nil
}

// emulatorEndpoint returns the JSON API endpoint of an emulator given as
// host:port (what gocloud expects) or as a URL (what the Go client accepts).
func emulatorEndpoint(host string) string {
	scheme := "http"
	if s, rest, ok := strings.Cut(host, "://"); ok {
		scheme, host = s, rest
	}
	return scheme + "://" + strings.TrimRight(host, "/") + "/storage/v1/"
}

func openGCS(ctx context.Context, k *keyReader, loc connections.Location, opts Options) (*Store, error) {
	c, err := readGCSConfig(k)
	if err != nil {
		return nil, err
	}
	transport := newTransport(opts.Workers)
	var clientOpts []option.ClientOption
	endpoint := ""
	if c.emulator != "" {
		endpoint = emulatorEndpoint(c.emulator)
		clientOpts = []option.ClientOption{
			option.WithEndpoint(endpoint),
			option.WithoutAuthentication(),
			option.WithHTTPClient(&http.Client{Transport: idleWatch{storedReads{transport}, opts.readTimeout()}}),
			// The JSON API for reads too: fake-gcs-server ignores the
			// generation preconditions of XML reads, which pinning needs,
			// and routes XML reads only for its -public-host.
			storage.WithJSONReads(),
		}
	} else {
		creds, err := c.credentials(ctx, k)
		if err != nil {
			return nil, err
		}
		hc := &http.Client{Transport: &oauth2.Transport{Source: creds.TokenSource, Base: idleWatch{storedReads{transport}, opts.readTimeout()}}}
		clientOpts = []option.ClientOption{option.WithHTTPClient(hc), option.WithTokenSource(creds.TokenSource)}
	}
	client, err := storage.NewClient(ctx, clientOpts...)
	if err != nil {
		return nil, k.usage("creating the GCS client: %v", err)
	}
	// Bounded retries: the client's default retries idempotent requests
	// until the context ends, and the transfer engine retries on top.
	client.SetRetry(
		storage.WithBackoff(gax.Backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}),
		storage.WithMaxAttempts(opts.attempts(gcsRetryAttempts)),
	)
	b, err := gcsblob.OpenBucket(ctx, nil, loc.Bucket, &gcsblob.Options{Client: client})
	if err != nil {
		_ = client.Close()
		return nil, k.usage("opening bucket %q: %v", loc.Bucket, err)
	}
	if endpoint != "" {
		endpoint = strings.TrimSuffix(endpoint, "/storage/v1/")
	}
	return &Store{
		Bucket:   b,
		Provider: gcsProvider{name: loc.Bucket},
		endpoint: endpoint,
		auth:     c.auth,
		closers:  []func() error{client.Close, func() error { transport.CloseIdleConnections(); return nil }},
		hints: hints{
			auth:        "check the service account key (GC_KEY_PATH, GC_KEYFILE_DICT or gc-secret.json) and that it has storage.objects.list on the bucket (GCS also answers 403 for a bucket that does not exist)",
			unreachable: " (and STORAGE_EMULATOR_HOST, host:port, for an emulator)",
			tls:         "check the proxy and the system's CA certificates",
			host:        "check the cluster's DNS (and STORAGE_EMULATOR_HOST, host:port, for an emulator)",
			plainHTTP:   "give STORAGE_EMULATOR_HOST as host:port or http://host:port",
		},
	}, nil
}

// gcsProvider pins GCS reads to a generation and reads CRC32C checksums.
type gcsProvider struct {
	name string // the bucket
}

func (gcsProvider) PinVersion(attrs *blob.Attributes) func(as func(any) bool) error {
	if attrs == nil {
		return nil
	}
	var oa storage.ObjectAttrs
	if !attrs.As(&oa) || oa.Generation == 0 {
		return nil
	}
	gen := oa.Generation
	return func(as func(any) bool) error {
		var obj **storage.ObjectHandle
		if !as(&obj) {
			return errors.New("gcs: cannot pin the read to a generation: the driver offers no *storage.ObjectHandle")
		}
		live := *obj
		// Read generation gen, and only while it is the live one: GCS
		// answers 412 (FailedPrecondition) once the object was replaced.
		*obj = live.Generation(gen).If(storage.Conditions{GenerationMatch: gen})
		var r *storage.Reader
		if as(&r) {
			return nil
		}
		// The read failed. Emulators ignore the precondition and answer
		// 404 for a generation that is gone: when the live object is no
		// longer generation gen, say so the way GCS does, so that the
		// caller starts over instead of reporting a missing object.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cur, err := live.Attrs(ctx)
		switch {
		case errors.Is(err, storage.ErrObjectNotExist):
			return &googleapi.Error{Code: http.StatusPreconditionFailed, Message: fmt.Sprintf("the object was deleted after generation %d was listed", gen)}
		case err == nil && cur.Generation != gen:
			return &googleapi.Error{Code: http.StatusPreconditionFailed, Message: fmt.Sprintf("the object changed: generation %d replaced by %d", gen, cur.Generation)}
		}
		return nil // the driver returns the read's own error
	}
}

func (gcsProvider) CRC32C(as func(any) bool) (uint32, bool) {
	if as == nil {
		return 0, false
	}
	var oa storage.ObjectAttrs
	if as(&oa) {
		if oa.Prefix != "" {
			return 0, false
		}
		// GCS keeps a CRC32C of every object; 0 is a real checksum only of
		// empty content (and otherwise means the store sent none).
		return oa.CRC32C, oa.CRC32C != 0 || oa.Size == 0
	}
	var r *storage.Reader
	if as(&r) && r != nil && r.Attrs.CRC32C != 0 {
		return r.Attrs.CRC32C, true
	}
	return 0, false
}

func (gcsProvider) BeforeWrite() func(as func(any) bool) error { return nil }

// WatchUpload: GCS answers an upload with the object's resource, which
// holds the MD5 it computed of what it stored (transfer.UploadDigests). The
// writer keeps it (storage.Writer.Attrs); it is reached through the
// upload's BeforeWrite, chained after the one opts had. Each attempt of an
// upload makes a writer of its own: the last one is read.
//
// Through the same BeforeWrite, an upload whose caller chose no buffer size
// (a small or medium file, which a retry reads again from the file) goes as
// one request with no buffer: gcsblob's default gives every writer a buffer
// of 16 MiB, for a file of 1 KB too, and the sidecar's 32 workers made
// their way through them at 150–270 MiB of RSS.
func (gcsProvider) WatchUpload(ctx context.Context, opts *blob.WriterOptions) (context.Context, func() []byte) {
	var w *storage.Writer
	prev := opts.BeforeWrite
	opts.BeforeWrite = func(as func(any) bool) error {
		if prev != nil {
			if err := prev(as); err != nil {
				return err
			}
		}
		if !as(&w) {
			w = nil
			return nil
		}
		if opts.BufferSize == 0 {
			w.ChunkSize = 0
		}
		return nil
	}
	return ctx, func() []byte {
		if w == nil {
			return nil
		}
		if a := w.Attrs(); a != nil {
			return a.MD5
		}
		return nil
	}
}

// storedReads asks for gzip on the requests that read an object's content,
// so that GCS sends a gzip-encoded object as stored, as S3 and Azure do
// (its size, MD5 and CRC32C are those of the stored bytes), where it would
// decompress it for a client that does not accept gzip ("decompressive
// transcoding", which also ignores ranges). With the header set by the
// caller, Go's transport does not decompress either. The storage library's
// own ReadCompressed cannot do it with JSON reads: its request layer
// refuses an Accept-Encoding header set by the library.
type storedReads struct{ base http.RoundTripper }

func (t storedReads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.Header.Get("Accept-Encoding") == "" && contentRead(req.URL) {
		req = req.Clone(req.Context())
		req.Header.Set("Accept-Encoding", "gzip")
	}
	return t.base.RoundTrip(req)
}

// contentRead reports whether u reads an object's content: a JSON API
// media download (alt=media) or an XML API object GET (any path outside
// the JSON API's).
func contentRead(u *url.URL) bool {
	if strings.HasPrefix(u.Path, "/storage/v1/") || strings.HasPrefix(u.Path, "/upload/") || strings.HasPrefix(u.Path, "/batch/") {
		return u.Query().Get("alt") == "media"
	}
	return true
}
