package store

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"

	"github.com/initializer/initializer/transfer"
)

// emptySHA256 is the SHA-256 of an empty payload, which a GET signs.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// s3Signed reads whole objects with one signed GET each, and writes small
// ones with one signed PUT each, sent through the S3 client's own HTTP
// client, credentials and endpoint. Each GetObject or PutObject through the
// SDK builds and runs its middleware stack anew, about 60 µs of CPU and
// 30 KB of garbage per request: for 10,000 small objects, 0.6 s of CPU on
// top of the transfers themselves (a third of the sidecar's CPU when it
// uploads them).
type s3Signed struct {
	once sync.Once
	ok   bool // the bucket's endpoint can be read this way

	validate    bool         // ask for the object's checksum and check it, as the client would ("when supported")
	skew        atomic.Int64 // the store's clock minus this machine's, in ns, once a request was refused for it
	hc          s3.HTTPClient
	creds       aws.CredentialsProvider
	signer      *v4.Signer
	base        url.URL // the bucket's endpoint, path-style or virtual-hosted
	signingName string
	region      string
}

// ReadWhole opens key for reading with one signed GET (transfer.WholeReader).
// It declines (false, nil: nothing was sent) what only gocloud's reader
// handles as gocloud would: another bucket, a key gocloud would escape, an
// endpoint that needs more than a plain SigV4 signature (S3 Express, access
// points, endpoint headers), anonymous credentials.
func (p s3Provider) ReadWhole(ctx context.Context, b *blob.Bucket, key string) (transfer.ObjectReader, bool, error) {
	g, creds, ok, err := p.signer(ctx, p.keyClient(b, key))
	if !ok || err != nil {
		return nil, ok, err
	}
	h := http.Header{}
	// identity: Go's transport would otherwise ask for gzip and unpack it,
	// and the bytes would no longer be those the ETag's MD5 describes.
	h.Set("Accept-Encoding", "identity")
	if g.validate {
		h.Set("X-Amz-Checksum-Mode", "ENABLED")
	}
	resp, err := g.send(ctx, creds, http.MethodGet, key, h, nil)
	if err != nil {
		return nil, true, err
	}
	r := &objectBody{ReadCloser: resp.Body, size: resp.ContentLength, header: resp.Header}
	if r.size < 0 {
		resp.Body.Close()
		return nil, true, fmt.Errorf("s3: GET %q: the answer has no Content-Length", key)
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		r.modTime, _ = http.ParseTime(lm)
	}
	if g.validate {
		r.ReadCloser = checkedBody(resp.Body, resp.Header)
	}
	return r, true, nil
}

// signer returns what signs p's requests with client's endpoint and
// credentials, and the credentials, or not ok when such requests cannot be
// sent as the SDK would send them (see init) or go unsigned (anonymous
// credentials), or client is nil. An error is a failure to get the
// credentials.
func (p s3Provider) signer(ctx context.Context, client *s3.Client) (*s3Signed, aws.Credentials, bool, error) {
	g := p.signed
	if g == nil || client == nil {
		return nil, aws.Credentials{}, false, nil
	}
	g.once.Do(func() { g.init(ctx, client, p.name) })
	if !g.ok {
		return nil, aws.Credentials{}, false, nil
	}
	creds, err := g.creds.Retrieve(ctx)
	if err != nil {
		return nil, creds, true, err
	}
	if creds.AccessKeyID == "" {
		return nil, creds, false, nil // anonymous: the SDK sends such requests unsigned
	}
	return g, creds, true, nil
}

// The checksums S3 may send with an object, cheapest to compute first.
var s3Checksums = []struct {
	name string
	hash func() hash.Hash
}{
	{"CRC32C", func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }},
	{"CRC32", func() hash.Hash { return crc32.NewIEEE() }},
	{"CRC64NVME", func() hash.Hash { return crc64.New(crc64NVME) }},
	{"SHA1", sha1.New},
	{"SHA256", sha256.New},
}

// crc64NVME is the table of the CRC-64/NVME polynomial (bit-reversed, as
// crc64.MakeTable takes it).
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// checkedBody checks body against the first full-object checksum the
// answer carries, as the SDK's "when supported" validation does; a
// composite checksum (of a multipart upload's parts, "…-N") is skipped, as
// the SDK skips it.
func checkedBody(body io.ReadCloser, h http.Header) io.ReadCloser {
	for _, c := range s3Checksums {
		v := h.Get("X-Amz-Checksum-" + c.name)
		if v == "" || strings.Contains(v, "-") {
			continue
		}
		want, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			continue
		}
		return &checkReader{ReadCloser: body, name: c.name, h: c.hash(), want: want}
	}
	return body
}

// checkReader hashes what it reads and, at its end, fails unless the sum
// is the one the store sent.
type checkReader struct {
	io.ReadCloser
	name string
	h    hash.Hash
	want []byte
}

func (c *checkReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.h.Write(p[:n])
	if err == io.EOF {
		if got := c.h.Sum(nil); !bytes.Equal(got, c.want) {
			return n, fmt.Errorf("%w: %s %s, expected %s", transfer.ErrChecksumMismatch, c.name,
				base64.StdEncoding.EncodeToString(got), base64.StdEncoding.EncodeToString(c.want))
		}
	}
	return n, err
}

// PutWhole sends data to key as one signed PUT, with the headers the SDK's
// PutObject would send for it (content type, metadata, a CRC32 "when
// supported"), and keeps the MD5 of the store's answer for the upload that
// watches it (WatchUpload). It declines (false, nil: nothing was sent) what
// UploadFile declines and what ReadWhole declines.
func (p s3Provider) PutWhole(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) (bool, error) {
	client := p.client(b, key, withoutMD5(opts))
	g, creds, ok, err := p.signer(ctx, client)
	if !ok || err != nil {
		return ok, err
	}
	md, contentType, alg := putParams(client, opts, data[:min(len(data), 512)])
	h := make(http.Header, len(md)+3)
	h.Set("Content-Type", contentType)
	for k, v := range md {
		h.Set("X-Amz-Meta-"+k, v)
	}
	if alg == types.ChecksumAlgorithmCrc32 {
		h.Set("X-Amz-Sdk-Checksum-Algorithm", "CRC32")
		h.Set("X-Amz-Checksum-Crc32", base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data))))
	}
	resp, err := g.send(ctx, creds, http.MethodPut, key, h, data)
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if d, ok := ctx.Value(putDigestKey{}).(*putDigest); ok &&
		etagIsMD5(resp.Header.Get("X-Amz-Server-Side-Encryption"), resp.Header.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm")) {
		d.md5 = etagMD5(resp.Header.Get("ETag"))
	}
	return true, nil
}

// send signs and sends a GET (body nil) or a PUT of key with the headers h;
// an answer other than 200 is an error, as the SDK would return it. A
// request refused for this machine's clock is signed with the store's time
// from then on, as the SDK does, and sent again.
func (g *s3Signed) send(ctx context.Context, creds aws.Credentials, method, key string, h http.Header, body []byte) (*http.Response, error) {
	resp, err := g.sendOnce(ctx, creds, method, key, h, body)
	if skew, ok := clockSkew(err, time.Now()); ok {
		g.skew.Store(int64(skew))
		resp, err = g.sendOnce(ctx, creds, method, key, h, body)
	}
	return resp, err
}

func (g *s3Signed) sendOnce(ctx context.Context, creds aws.Credentials, method, key string, h http.Header, body []byte) (*http.Response, error) {
	op, payload := "GetObject", emptySHA256
	if method == http.MethodPut {
		sum := sha256.Sum256(body)
		op, payload = "PutObject", hex.EncodeToString(sum[:])
	}
	// The key escaped as the SDK escapes it, which is also how S3 rebuilds
	// the path it verifies the signature over.
	u := g.base
	u.RawPath = strings.TrimSuffix(g.base.EscapedPath(), "/") + "/" + httpbinding.EscapePath(key, false)
	u.Path = strings.TrimSuffix(g.base.Path, "/") + "/" + key
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base.String(), rd)
	if err != nil {
		return nil, err
	}
	req.URL = &u
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "initializer")
	req.Header.Set("X-Amz-Content-Sha256", payload)
	now := time.Now().Add(time.Duration(g.skew.Load())).UTC()
	if err := g.signer.SignHTTP(ctx, creds, req, payload, g.signingName, g.region, now); err != nil {
		return nil, err
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, &smithy.OperationError{ServiceID: "S3", OperationName: op, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &smithy.OperationError{ServiceID: "S3", OperationName: op, Err: responseError(resp)}
	}
	return resp, nil
}

// clockSkew returns how far the store's clock is ahead of now when err is
// its refusal of a request for the time it was signed at.
func clockSkew(err error, now time.Time) (time.Duration, bool) {
	var apiErr smithy.APIError
	var re *awshttp.ResponseError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "RequestTimeTooSkewed" || !errors.As(err, &re) || re.Response == nil {
		return 0, false
	}
	t, perr := http.ParseTime(re.Response.Header.Get("Date"))
	if perr != nil {
		return 0, false
	}
	return t.Sub(now), true
}

// init resolves the bucket's endpoint once, as the client would for a
// GetObject or a PutObject, and keeps what signing them needs.
func (g *s3Signed) init(ctx context.Context, client *s3.Client, bucket string) {
	o := client.Options()
	if o.HTTPClient == nil || o.Credentials == nil || o.EndpointResolverV2 == nil || o.Region == "" || strings.HasPrefix(bucket, "arn:") {
		return
	}
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, s3.EndpointParameters{
		Bucket:                         aws.String(bucket),
		Region:                         aws.String(o.Region),
		UseFIPS:                        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:                   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		Endpoint:                       o.BaseEndpoint,
		ForcePathStyle:                 aws.Bool(o.UsePathStyle),
		Accelerate:                     aws.Bool(o.UseAccelerate),
		DisableMultiRegionAccessPoints: aws.Bool(o.DisableMultiRegionAccessPoints),
		UseArnRegion:                   aws.Bool(o.UseARNRegion),
		DisableS3ExpressSessionAuth:    o.DisableS3ExpressSessionAuth,
	})
	if err != nil || len(ep.Headers) > 0 || ep.Properties.Get("backend") != nil {
		return
	}
	name, region := "s3", o.Region
	if opts, ok := smithyauth.GetAuthOptions(&ep.Properties); ok {
		if len(opts) == 0 || opts[0].SchemeID != "sigv4" {
			return
		}
		if n, ok := smithyhttp.GetSigV4SigningName(&opts[0].SignerProperties); ok {
			name = n
		}
		if r, ok := smithyhttp.GetSigV4SigningRegion(&opts[0].SignerProperties); ok {
			region = r
		}
	}
	if name != "s3" || ep.URI.Host == "" || ep.URI.RawQuery != "" {
		return
	}
	g.hc, g.creds, g.base, g.signingName, g.region = o.HTTPClient, o.Credentials, ep.URI, name, region
	g.validate = o.ResponseChecksumValidation == aws.ResponseChecksumValidationWhenSupported
	// S3 signs the path as sent, not escaped a second time.
	g.signer = v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true })
	g.ok = true
}

// objectBody is the body of a GET (S3's signed GET, Azure's download by
// real key), with the object's size and time: a transfer.ObjectReader.
type objectBody struct {
	io.ReadCloser
	size    int64
	modTime time.Time
	header  http.Header // the answer's headers, for As
}

func (o *objectBody) Size() int64        { return o.size }
func (o *objectBody) ModTime() time.Time { return o.modTime }

// As gives the answer's headers (*http.Header), as a blob.Reader gives the
// SDK's output.
func (o *objectBody) As(i any) bool {
	p, ok := i.(*http.Header)
	if ok && o.header != nil {
		*p = o.header
	}
	return ok && o.header != nil
}

// responseError turns a failed answer into the error the SDK would return
// for it: an HTTP response error carrying S3's error code and message.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Code      string `xml:"Code"`
		Message   string `xml:"Message"`
		RequestID string `xml:"RequestId"`
	}
	_ = xml.Unmarshal(body, &e)
	if e.Code == "" {
		e.Code = strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")
	}
	if e.Code == "" {
		e.Code = fmt.Sprintf("HTTP%d", resp.StatusCode)
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Amz-Request-Id")
	}
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: resp},
			Err:      &smithy.GenericAPIError{Code: e.Code, Message: e.Message},
		},
		RequestID: e.RequestID,
	}
}
