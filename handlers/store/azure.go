package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	azblobblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/secret"
)

// Azure keys, read in this order. The AZURE_STORAGE_* spellings are the ones
// adlfs (upstream's Azure file system) falls back to.
var (
	keyAzureAccountName  = []string{"AZURE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"}
	keyAzureAccountKey   = []string{"AZURE_ACCOUNT_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"}
	keyAzureConnString   = []string{"AZURE_CONNECTION_STRING", "AZURE_STORAGE_CONNECTION_STRING"}
	keyAzureSASToken     = []string{"AZURE_SAS_TOKEN", "AZURE_STORAGE_SAS_TOKEN"}
	keyAzureTenantID     = []string{"AZURE_TENANT_ID", "AZURE_STORAGE_TENANT_ID"}
	keyAzureClientID     = []string{"AZURE_CLIENT_ID", "AZURE_STORAGE_CLIENT_ID"}
	keyAzureClientSecret = []string{"AZURE_CLIENT_SECRET", "AZURE_STORAGE_CLIENT_SECRET"}
	keyAzureEndpoint     = []string{"AZURE_BLOB_ENDPOINT", "AZURE_STORAGE_BLOB_ENDPOINT"}
	keyAzureTokenFile    = []string{"AZURE_FEDERATED_TOKEN_FILE"}
)

// Azure credential kinds, in the order they are preferred.
const (
	azureConnString = "connection string"
	azureSharedKey  = "account key"
	azureSAS        = "SAS token"
	azurePrincipal  = "service principal"
	azureDefault    = "default Azure credential"
)

// azureRetryAttempts bounds the client's own attempts at a request (the
// transfer engine retries on top).
const azureRetryAttempts = 4

// azureConfig is what a wasb connection's keys and URL say.
type azureConfig struct {
	kind        string // one of the azure* credential kinds
	service     string // service URL, without the container ("" with a connection string)
	account     string
	connString  secret.Value
	accountKey  secret.Value
	sas         string // query string, without "?"
	tenant      string
	client      string
	clientSec   secret.Value
	tokenFile   string // a workload identity's token file, "" when none
	retries     int32  // the client's own retries of a request (-1: none)
	auth        string // for messages
	accountNote string // a warning about the URL's account, "" when none
}

// readAzureConfig reads a wasb connection's keys, adlfs's order: a
// connection string, an account key, a SAS token, a service principal,
// else the default Azure credential chain.
func readAzureConfig(k *keyReader, loc connections.Location) (*azureConfig, error) {
	c := &azureConfig{}
	var err error
	var ok bool
	if c.account, err = k.str(keyAzureAccountName...); err != nil {
		return nil, err
	}
	switch {
	case c.account == "":
		c.account = loc.Account
	case loc.Account != "" && !strings.EqualFold(c.account, loc.Account):
		// Upstream authenticates as AZURE_ACCOUNT_NAME whatever the URL says.
		c.accountNote = "the bucket URL names account " + loc.Account + " but AZURE_ACCOUNT_NAME is " + c.account + ": using " + c.account
	}
	endpoint, err := k.str(keyAzureEndpoint...)
	if err != nil {
		return nil, err
	}
	switch {
	case endpoint != "":
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, k.usage("AZURE_BLOB_ENDPOINT (from %s) must be the blob service URL, like https://account.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1", k.source(keyAzureEndpoint...))
		}
		c.service = strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
		if c.account == "" && connections.IsLocalHost(u.Host) {
			c.account = strings.Trim(u.Path, "/")
		} else if m := connections.AzureHost.FindStringSubmatch(strings.ToLower(u.Hostname())); c.account == "" && m != nil {
			c.account = m[1]
		}
	case loc.Service != "" && c.accountNote != "":
		// The URL's cloud (or emulator), AZURE_ACCOUNT_NAME's account.
		if rest, ok := strings.CutPrefix(loc.Service, "https://"+loc.Account+"."); ok {
			c.service = "https://" + strings.ToLower(c.account) + "." + rest
		} else {
			c.service = strings.TrimSuffix(loc.Service, "/"+loc.Account) + "/" + c.account
		}
		c.accountNote += " (" + c.service + ")"
	case loc.Service != "":
		c.service = loc.Service
	case c.account != "":
		c.service = "https://" + c.account + ".blob.core.windows.net"
	}

	if c.connString, ok, err = k.value(keyAzureConnString...); err != nil {
		return nil, err
	} else if ok {
		for _, part := range strings.Split(c.connString.Reveal(), ";") {
			if name, value, _ := strings.Cut(part, "="); strings.EqualFold(strings.TrimSpace(name), "SharedAccessSignature") {
				registerSAS(value)
			}
		}
		c.kind, c.auth = azureConnString, "the connection string from "+c.connString.Source()
		if c.accountNote != "" {
			c.accountNote = "the bucket URL names account " + loc.Account + " and AZURE_ACCOUNT_NAME is " + c.account + ": the connection string (from " + c.connString.Source() + ") says where requests go"
		}
		return c, nil
	}
	if c.service == "" {
		return nil, k.usage("no storage account: the bucket URL names none (%s), so give AZURE_ACCOUNT_NAME, AZURE_CONNECTION_STRING or AZURE_BLOB_ENDPOINT, or use wasbs://container@account.blob.core.windows.net/path", loc.Display())
	}
	if c.accountKey, ok, err = k.value(keyAzureAccountKey...); err != nil {
		return nil, err
	} else if ok {
		if c.account == "" {
			return nil, k.usage("AZURE_ACCOUNT_KEY is set (from %s) but no account name: give AZURE_ACCOUNT_NAME", c.accountKey.Source())
		}
		c.kind, c.auth = azureSharedKey, "the key of account "+c.account+" from "+c.accountKey.Source()
		return c, nil
	}
	if v, ok, err := k.value(keyAzureSASToken...); err != nil {
		return nil, err
	} else if ok {
		c.sas = strings.TrimPrefix(strings.TrimSpace(v.Reveal()), "?")
		registerSAS(c.sas)
		c.kind, c.auth = azureSAS, "the SAS token from "+v.Source()
		return c, nil
	}
	if loc.SAS != nil {
		c.sas = loc.SAS.Encode()
		registerSAS(c.sas)
		c.kind, c.auth = azureSAS, "the SAS token in the bucket URL"
		return c, nil
	}
	if c.tenant, err = k.str(keyAzureTenantID...); err != nil {
		return nil, err
	}
	if c.client, err = k.str(keyAzureClientID...); err != nil {
		return nil, err
	}
	if c.clientSec, ok, err = k.value(keyAzureClientSecret...); err != nil {
		return nil, err
	}
	if ok {
		if c.tenant == "" || c.client == "" {
			return nil, k.usage("AZURE_CLIENT_SECRET is set (from %s): a service principal also needs AZURE_TENANT_ID and AZURE_CLIENT_ID", c.clientSec.Source())
		}
		c.kind, c.auth = azurePrincipal, "service principal "+c.client+" (secret from "+c.clientSec.Source()+")"
		return c, nil
	}
	// A tenant and client without a secret are a workload identity (AKS
	// sets them with AZURE_FEDERATED_TOKEN_FILE) or a user-assigned managed
	// identity; the default credential covers the rest.
	if c.tokenFile, err = k.str(keyAzureTokenFile...); err != nil {
		return nil, err
	}
	c.kind, c.auth = azureDefault, "the default Azure credential (environment, workload identity, managed identity)"
	if c.client != "" {
		c.auth = "the identity of client " + c.client + " (workload identity, managed identity), else the default Azure credential"
	}
	return c, nil
}

// registerSAS makes a SAS token's signature a secret wherever it is
// printed: the SDK rebuilds the query of every request in its own order,
// so the token as given never appears whole.
func registerSAS(token string) {
	token = strings.TrimPrefix(strings.TrimSpace(token), "?")
	secret.Register(token)
	if q, err := url.ParseQuery(token); err == nil {
		for _, sig := range q["sig"] {
			secret.Register(sig)
			secret.Register(url.PathEscape(sig))
		}
		return
	}
	// Not a valid query: blank whatever follows sig=.
	for _, part := range strings.Split(token, "&") {
		if v, ok := strings.CutPrefix(part, "sig="); ok {
			secret.Register(v)
		}
	}
}

// clientOptions are the Azure SDK options of every client: the pooled
// transport and bounded retries (the transfer engine retries on top).
func (c *azureConfig) clientOptions(transport http.RoundTripper) azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: &http.Client{Transport: transport},
		Retry: policy.RetryOptions{
			MaxRetries:    c.retries,
			RetryDelay:    200 * time.Millisecond,
			MaxRetryDelay: 5 * time.Second,
		},
	}
}

// containerClient builds the container client of c.
func (c *azureConfig) containerClient(name string, transport http.RoundTripper) (*container.Client, error) {
	opts := &container.ClientOptions{ClientOptions: c.clientOptions(transport)}
	containerURL := c.service + "/" + url.PathEscape(name)
	switch c.kind {
	case azureConnString:
		return container.NewClientFromConnectionString(c.connString.Reveal(), name, opts)
	case azureSharedKey:
		cred, err := container.NewSharedKeyCredential(c.account, c.accountKey.Reveal())
		if err != nil {
			return nil, err
		}
		return container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
	case azureSAS:
		return container.NewClientWithNoCredential(containerURL+"?"+c.sas, opts)
	case azurePrincipal:
		cred, err := azidentity.NewClientSecretCredential(c.tenant, c.client, c.clientSec.Reveal(),
			&azidentity.ClientSecretCredentialOptions{ClientOptions: c.clientOptions(transport)})
		if err != nil {
			return nil, err
		}
		return container.NewClient(containerURL, cred, opts)
	default:
		cred, err := c.defaultCredential(transport)
		if err != nil {
			return nil, err
		}
		return container.NewClient(containerURL, cred, opts)
	}
}

// defaultCredential is the default Azure credential, preceded, when a
// client ID is given (it may come from a mounted file, which the default
// credential does not read), by that client's workload identity and
// managed identity.
func (c *azureConfig) defaultCredential(transport http.RoundTripper) (azcore.TokenCredential, error) {
	co := c.clientOptions(transport)
	def, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: co, TenantID: c.tenant})
	if err != nil || c.client == "" {
		return def, err
	}
	var chain []azcore.TokenCredential
	if c.tokenFile != "" && c.tenant != "" {
		wi, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, ClientID: c.client, TenantID: c.tenant, TokenFilePath: c.tokenFile,
		})
		if err != nil {
			return nil, err
		}
		chain = append(chain, wi)
	}
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: co, ID: azidentity.ClientID(c.client)})
	if err != nil {
		return nil, err
	}
	return azidentity.NewChainedTokenCredential(append(chain, mi, def), nil)
}

func openAzure(ctx context.Context, k *keyReader, loc connections.Location, opts Options) (*Store, error) {
	c, err := readAzureConfig(k, loc)
	if err != nil {
		return nil, err
	}
	if c.accountNote != "" {
		opts.Log.Warn(c.accountNote)
	}
	c.retries = int32(opts.attempts(azureRetryAttempts) - 1)
	if c.retries == 0 {
		c.retries = -1 // 0 would be the SDK's default of 3
	}
	transport := newTransport(opts.Workers)
	client, err := c.containerClient(loc.Bucket, idleWatch{transport, opts.readTimeout()})
	if err != nil {
		what := "AZURE_ACCOUNT_KEY"
		switch c.kind {
		case azureConnString:
			what = "AZURE_CONNECTION_STRING"
		case azurePrincipal, azureDefault:
			what = "the Azure identity settings"
		case azureSAS:
			what = "AZURE_SAS_TOKEN"
		}
		return nil, k.usage("%s is not usable (%s): %v", what, c.auth, err)
	}
	b, err := azureblob.OpenBucket(ctx, client, nil)
	if err != nil {
		return nil, k.usage("opening container %q: %v", loc.Bucket, err)
	}
	endpoint := c.service
	if c.kind == azureConnString {
		endpoint = client.URL()
	}
	if u, err := url.Parse(endpoint); err == nil {
		u.RawQuery = "" // a SAS token
		endpoint = u.String()
	}
	if c.kind == azureConnString {
		endpoint = strings.TrimSuffix(endpoint, "/"+url.PathEscape(loc.Bucket))
		endpoint = strings.TrimSuffix(endpoint, "/"+loc.Bucket)
	}
	var token tokenService
	if c.kind == azurePrincipal || c.kind == azureDefault {
		token = tokenService{
			match: []string{"ClientSecretCredential", "DefaultAzureCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential", "ChainedTokenCredential"},
			where: "Microsoft Entra ID (the identity's token endpoint)", fix: "AZURE_AUTHORITY_HOST (and any proxy)",
			auth: "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or the workload identity's federation)",
		}
		if c.kind == azureDefault {
			token.none = "give AZURE_ACCOUNT_NAME and AZURE_ACCOUNT_KEY, AZURE_CONNECTION_STRING, a SAS token (AZURE_SAS_TOKEN) or a service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET) in the connection's secret, or run the pod with a workload identity"
		}
	}
	return &Store{
		Bucket:   b,
		Provider: azureProvider{},
		token:    token,
		endpoint: endpoint,
		auth:     c.auth,
		closers:  []func() error{func() error { transport.CloseIdleConnections(); return nil }},
		hints: hints{
			auth:        "check AZURE_ACCOUNT_NAME and AZURE_ACCOUNT_KEY (or AZURE_CONNECTION_STRING, the SAS token's permissions and expiry, or the identity's role on the container)",
			notFound:    " (and the storage account: AZURE_ACCOUNT_NAME, AZURE_BLOB_ENDPOINT)",
			unreachable: " and the storage account's endpoint (AZURE_BLOB_ENDPOINT, the connection string's BlobEndpoint)",
			tls:         "check the proxy and the system's CA certificates",
			host:        "check the storage account's name (AZURE_ACCOUNT_NAME, the bucket URL, AZURE_BLOB_ENDPOINT): no such account exists",
			plainHTTP:   "give the endpoint as AZURE_BLOB_ENDPOINT=http://… (or BlobEndpoint=http://… in the connection string); the bucket URL stays https:// or wasbs://",
		},
	}, nil
}

// azureProvider pins Azure reads to an ETag (If-Match).
type azureProvider struct{}

func (azureProvider) PinVersion(attrs *blob.Attributes) func(as func(any) bool) error {
	if attrs == nil || attrs.ETag == "" {
		return nil
	}
	etag := azcore.ETag(attrs.ETag)
	return func(as func(any) bool) error {
		var o *azblobblob.DownloadStreamOptions
		if !as(&o) {
			return errors.New("azure: cannot pin the read to an ETag: the driver offers no *blob.DownloadStreamOptions")
		}
		if o.AccessConditions == nil {
			o.AccessConditions = &azblobblob.AccessConditions{}
		}
		if o.AccessConditions.ModifiedAccessConditions == nil {
			o.AccessConditions.ModifiedAccessConditions = &azblobblob.ModifiedAccessConditions{}
		}
		o.AccessConditions.ModifiedAccessConditions.IfMatch = &etag
		return nil
	}
}

func (azureProvider) CRC32C(func(any) bool) (uint32, bool) { return 0, false }

func (azureProvider) BeforeWrite() func(as func(any) bool) error { return nil }

// UploadBytes sends a small file as one Put Blob request (transfer.BytesUploader),
// under the key gocloud's writer would use, with the metadata and content
// type it would send. Azure checks the body against its MD5 (transactional
// validation) and keeps the MD5 as the blob's. gocloud's writer stages
// blocks through a pipe instead, and its Close dereferences that pipe after
// a failed upload (a nil-pointer panic on any refused or unreachable
// upload); this path does not go through it. It declines (false, nil:
// nothing was sent) options it does not carry and metadata keys gocloud
// would escape.
func (p azureProvider) UploadBytes(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) (bool, error) {
	cc, md, ok := azureDirect(b, key, opts)
	if !ok {
		return false, nil
	}
	contentType := opts.ContentType
	if contentType == "" {
		contentType = http.DetectContentType(data[:min(len(data), 512)])
	}
	sum := opts.ContentMD5
	if sum == nil {
		s := md5.Sum(data)
		sum = s[:]
	}
	resp, err := cc.NewBlockBlobClient(gocloudEscape(key, azureRule)).Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		Metadata:                md,
		HTTPHeaders:             &azblobblob.HTTPHeaders{BlobContentType: &contentType, BlobContentMD5: sum},
		TransactionalValidation: azblobblob.TransferValidationTypeMD5(sum),
	})
	if d, ok := ctx.Value(putDigestKey{}).(*putDigest); ok && err == nil {
		d.md5 = resp.ContentMD5
	}
	return true, err
}

// WatchUpload: Azure answers a Put Blob (UploadBytes) with the MD5 it
// computed of what it stored (transfer.UploadDigests). A block upload's
// answer holds the MD5 of its list of blocks, not of the blob: nothing is
// reported for it.
func (azureProvider) WatchUpload(ctx context.Context, _ *blob.WriterOptions) (context.Context, func() []byte) {
	d := &putDigest{}
	return context.WithValue(ctx, putDigestKey{}, d), func() []byte { return d.md5 }
}

// UploadStream sends what r yields (a file's first size bytes) with the
// SDK's block upload (transfer.StreamUploader), as gocloud's writer would
// but without it: after a failed upload, its Close dereferences a nil pipe,
// and the store's error is lost. The blob keeps opts.ContentMD5 as its MD5;
// the caller compares it with what r yielded. It declines what
// UploadBytes declines.
func (p azureProvider) UploadStream(ctx context.Context, b *blob.Bucket, key string, r io.Reader, opts *blob.WriterOptions, blockSize int64, conc int) (bool, error) {
	cc, md, ok := azureDirect(b, key, opts)
	if !ok {
		return false, nil
	}
	contentType := opts.ContentType
	if contentType == "" {
		br := bufio.NewReaderSize(r, 512)
		head, _ := br.Peek(512) // as gocloud's writer sniffs the first bytes written
		contentType, r = http.DetectContentType(head), br
	}
	_, err := cc.NewBlockBlobClient(gocloudEscape(key, azureRule)).UploadStream(ctx, r, &blockblob.UploadStreamOptions{
		BlockSize: blockSize, Concurrency: conc, Metadata: md,
		HTTPHeaders: &azblobblob.HTTPHeaders{BlobContentType: &contentType, BlobContentMD5: opts.ContentMD5},
	})
	return true, err
}

// azureDirect returns the container client and the metadata, as gocloud's
// writer would store them, for an upload to key with opts outside
// gocloud's writer; ok is false for what only that writer handles as it
// would: options the direct paths do not carry, metadata keys it escapes,
// keys it refuses (not UTF-8).
func azureDirect(b *blob.Bucket, key string, opts *blob.WriterOptions) (*container.Client, map[string]*string, bool) {
	o := *opts
	o.ContentMD5 = nil
	if !plainOptions(&o) || !utf8.ValidString(key) {
		return nil, nil, false
	}
	md := make(map[string]*string, len(opts.Metadata))
	for k, v := range opts.Metadata {
		if !azureMetadataKey(k) {
			return nil, nil, false
		}
		md[k] = to.Ptr(url.PathEscape(v)) // as gocloud's writer stores values
	}
	var cc *container.Client
	if !b.As(&cc) {
		return nil, nil, false
	}
	return cc, md, true
}

// azureMetadataKey reports whether gocloud's Azure writer stores the
// metadata key k as it is: ASCII letters, digits and "_", not starting
// with a digit.
func azureMetadataKey(k string) bool {
	for i, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return k != ""
}
