package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/transfer"
)

// failingClient fails every request: the tests below must send none.
type failingClient struct{ t *testing.T }

func (c failingClient) Do(r *http.Request) (*http.Response, error) {
	c.t.Errorf("a request was sent: %s %s", r.Method, r.URL)
	return nil, http.ErrHandlerTimeout
}

func s3TestBucket(t *testing.T, name string, opts func(*s3.Options)) (*blob.Bucket, s3Provider) {
	t.Helper()
	o := s3.Options{
		Region:      "us-west-2",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient:  failingClient{t},
	}
	if opts != nil {
		opts(&o)
	}
	b, err := s3blob.OpenBucket(context.Background(), s3.New(o), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, s3Provider{bucket: b, name: name, signed: &s3Signed{}}
}

// TestS3SignedEndpoint: the GET and the PUT go where the SDK's GetObject and
// PutObject would, for path-style custom endpoints and AWS's virtual-hosted
// buckets alike.
func TestS3SignedEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name, bucket, want, region string
		opts                       func(*s3.Options)
	}{
		{"virtual-hosted", "my-bucket", "https://my-bucket.s3.us-west-2.amazonaws.com", "us-west-2", nil},
		{"path-style", "my-bucket", "http://127.0.0.1:9000/my-bucket", "us-west-2", func(o *s3.Options) {
			o.BaseEndpoint = aws.String("http://127.0.0.1:9000")
			o.UsePathStyle = true
		}},
		{"dotted name, https", "my.dotted.bucket", "https://s3.us-west-2.amazonaws.com/my.dotted.bucket", "us-west-2", nil},
		{"FIPS", "my-bucket", "https://my-bucket.s3-fips.us-west-2.amazonaws.com", "us-west-2", func(o *s3.Options) {
			o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, p := s3TestBucket(t, tc.bucket, tc.opts)
			var client *s3.Client
			if !b.As(&client) {
				t.Fatal("no client")
			}
			p.signed.init(context.Background(), client, tc.bucket)
			if !p.signed.ok {
				t.Fatal("declined")
			}
			if got := p.signed.base.String(); got != tc.want || p.signed.region != tc.region || p.signed.signingName != "s3" {
				t.Errorf("endpoint %s, signed for %s in %s; want %s, s3 in %s", got, p.signed.signingName, p.signed.region, tc.want, tc.region)
			}
		})
	}
}

// TestS3SignedDeclines: what the GET and the PUT cannot do as the SDK would,
// they leave to gocloud's reader and the SDK's PutObject, having sent
// nothing.
func TestS3SignedDeclines(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, bucket string
		opts         func(*s3.Options)
	}{
		{"anonymous credentials", "my-bucket", func(o *s3.Options) { o.Credentials = aws.AnonymousCredentials{} }},
		{"S3 Express directory bucket", "my-bucket--usw2-az1--x-s3", nil},
		{"access point ARN", "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap", nil},
		{"S3 Object Lambda", "arn:aws:s3-object-lambda:us-west-2:123456789012:accesspoint/my-ol", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, p := s3TestBucket(t, tc.bucket, tc.opts)
			if r, ok, err := p.ReadWhole(ctx, b, "key"); ok || err != nil || r != nil {
				t.Errorf("used %v, %v", ok, err)
			}
			if ok, err := p.PutWhole(ctx, b, "key", []byte("x"), &blob.WriterOptions{}); ok || err != nil {
				t.Errorf("PUT: used %v, %v", ok, err)
			}
		})
	}
	b, p := s3TestBucket(t, "my-bucket", nil)
	other, _ := s3TestBucket(t, "my-bucket", nil)
	for name, call := range map[string]func() (bool, error){
		"another bucket": func() (bool, error) { _, ok, err := p.ReadWhole(ctx, other, "key"); return ok, err },
		"escaped key":    func() (bool, error) { _, ok, err := p.ReadWhole(ctx, b, "a/../b"); return ok, err },
		"no getter": func() (bool, error) {
			_, ok, err := s3Provider{bucket: b, name: "my-bucket"}.ReadWhole(ctx, b, "key")
			return ok, err
		},
		"PUT to another bucket": func() (bool, error) { return p.PutWhole(ctx, other, "key", []byte("x"), &blob.WriterOptions{}) },
		"PUT of an escaped key": func() (bool, error) { return p.PutWhole(ctx, b, "a/../b", []byte("x"), &blob.WriterOptions{}) },
		"PUT with options it does not carry": func() (bool, error) {
			return p.PutWhole(ctx, b, "key", []byte("x"), &blob.WriterOptions{CacheControl: "no-cache"})
		},
		"PUT with no signer": func() (bool, error) {
			return s3Provider{bucket: b, name: "my-bucket"}.PutWhole(ctx, b, "key", []byte("x"), &blob.WriterOptions{})
		},
	} {
		if ok, err := call(); ok || err != nil {
			t.Errorf("%s: used %v, %v", name, ok, err)
		}
	}
}

// recordingClient answers every request with answer, and keeps the
// requests and their bodies.
type recordingClient struct {
	answer func(*http.Request) *http.Response
	reqs   []*http.Request
	bodies [][]byte
}

func (c *recordingClient) Do(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
	}
	c.reqs = append(c.reqs, r)
	c.bodies = append(c.bodies, body)
	return c.answer(r), nil
}

func answer(status int, h http.Header, body string) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

// TestS3PutWhole: a small upload is one signed PUT of our own, not the
// SDK's, with the headers PutObject would send (type, metadata, a CRC32
// when checksums are "when supported", the payload's SHA-256), signed over
// all of them; the ETag of the answer is the MD5 the upload is checked
// against, unless the object is encrypted with KMS or a customer key; a
// refusal is the SDK's error for PutObject.
func TestS3PutWhole(t *testing.T) {
	ctx := context.Background()
	data := []byte("a line of a log\n")
	sum := md5.Sum(data)
	etag := http.Header{"Etag": {`"` + hex.EncodeToString(sum[:]) + `"`}}
	crc := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data)))
	payload := sha256.Sum256(data)
	opts := func() *blob.WriterOptions {
		return &blob.WriterOptions{Metadata: map[string]string{"mtime": "2024-05-06T07:08:09.5Z"}, ContentMD5: sum[:]}
	}
	for _, checksums := range []aws.RequestChecksumCalculation{aws.RequestChecksumCalculationWhenRequired, aws.RequestChecksumCalculationWhenSupported} {
		rc := &recordingClient{answer: func(*http.Request) *http.Response { return answer(200, etag, "") }}
		b, p := s3TestBucket(t, "my-bucket", func(o *s3.Options) {
			o.BaseEndpoint = aws.String("http://127.0.0.1:9000")
			o.UsePathStyle = true
			o.HTTPClient = rc
			o.RequestChecksumCalculation = checksums
		})
		wctx, digest := p.WatchUpload(ctx, &blob.WriterOptions{})
		if used, err := p.UploadBytes(wctx, b, "logs/ünï file+1.txt", data, opts()); !used || err != nil {
			t.Fatalf("used %v, %v", used, err)
		}
		if len(rc.reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(rc.reqs))
		}
		r := rc.reqs[0]
		if r.Method != http.MethodPut || r.URL.EscapedPath() != "/my-bucket/logs/%C3%BCn%C3%AF%20file%2B1.txt" || !bytes.Equal(rc.bodies[0], data) {
			t.Errorf("%s %s with %q", r.Method, r.URL.EscapedPath(), rc.bodies[0])
		}
		if r.Header.Get("Amz-Sdk-Invocation-Id") != "" {
			t.Error("the request went through the SDK's PutObject")
		}
		want := map[string]string{
			"Content-Type":         "text/plain; charset=utf-8",
			"X-Amz-Meta-Mtime":     "2024-05-06T07:08:09.5Z",
			"X-Amz-Content-Sha256": hex.EncodeToString(payload[:]),
			"Content-Md5":          "",
			"X-Amz-Checksum-Crc32": "",
		}
		if checksums == aws.RequestChecksumCalculationWhenSupported {
			want["X-Amz-Checksum-Crc32"] = crc
		}
		for k, v := range want {
			if got := r.Header.Get(k); got != v {
				t.Errorf("checksums %v: %s %q, want %q", checksums, k, got, v)
			}
		}
		auth := r.Header.Get("Authorization")
		for _, h := range []string{"content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-mtime"} {
			if !strings.Contains(auth, h) {
				t.Errorf("%s is not signed: %s", h, auth)
			}
		}
		if !bytes.Equal(digest(), sum[:]) {
			t.Errorf("digest %x, want %x", digest(), sum)
		}
	}

	// An object encrypted with KMS or a customer key: its ETag is no MD5.
	for _, h := range []http.Header{
		{"Etag": etag["Etag"], "X-Amz-Server-Side-Encryption": {"aws:kms"}},
		{"Etag": etag["Etag"], "X-Amz-Server-Side-Encryption-Customer-Algorithm": {"AES256"}},
	} {
		b, p := s3TestBucket(t, "my-bucket", func(o *s3.Options) {
			o.HTTPClient = &recordingClient{answer: func(*http.Request) *http.Response { return answer(200, h, "") }}
		})
		wctx, digest := p.WatchUpload(ctx, &blob.WriterOptions{})
		if used, err := p.UploadBytes(wctx, b, "key", data, opts()); !used || err != nil || digest() != nil {
			t.Errorf("%v: used %v, %v, digest %x", h, used, err, digest())
		}
	}

	// A refusal: the SDK's error for PutObject, with S3's code.
	b, p := s3TestBucket(t, "my-bucket", func(o *s3.Options) {
		o.HTTPClient = &recordingClient{answer: func(*http.Request) *http.Response {
			return answer(403, nil, "<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>")
		}}
	})
	_, err := p.UploadBytes(ctx, b, "key", data, opts())
	var oe *smithy.OperationError
	if !errors.As(err, &oe) || oe.OperationName != "PutObject" || Classify(err) != fault.Auth {
		t.Errorf("refused: %v (class %v), want PutObject's AccessDenied", err, Classify(err))
	}
}

// TestCheckedBody: the body is checked against the first full-object
// checksum of the answer; a composite one is skipped, as the SDK skips it.
func TestCheckedBody(t *testing.T) {
	// The CRC-64/NVME check value (the CRC of "123456789").
	if got := crc64.Checksum([]byte("123456789"), crc64NVME); got != 0xae8b14860a799888 {
		t.Fatalf("CRC-64/NVME check value %x", got)
	}
	data := []byte("the object's content")
	sum := func(h hash.Hash) string { h.Write(data); return base64.StdEncoding.EncodeToString(h.Sum(nil)) }
	good := map[string]string{
		"CRC32C":    sum(crc32.New(crc32.MakeTable(crc32.Castagnoli))),
		"CRC32":     sum(crc32.NewIEEE()),
		"CRC64NVME": sum(crc64.New(crc64NVME)),
		"SHA1":      sum(sha1.New()),
		"SHA256":    sum(sha256.New()),
	}
	read := func(h http.Header, content []byte) error {
		_, err := io.ReadAll(checkedBody(io.NopCloser(bytes.NewReader(content)), h))
		return err
	}
	for name, v := range good {
		h := http.Header{}
		h.Set("X-Amz-Checksum-"+name, v)
		if err := read(h, data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := read(h, []byte("the object's c0ntent")); !errors.Is(err, transfer.ErrChecksumMismatch) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s, changed content: %v", name, err)
		}
	}
	for _, h := range []http.Header{
		{"X-Amz-Checksum-Crc32c": {good["CRC32C"] + "-3"}}, // composite
		{"X-Amz-Checksum-Crc32": {"not base64!"}},
		{},
	} {
		if err := read(h, []byte("anything")); err != nil {
			t.Errorf("%v: %v", h, err)
		}
	}
}

// TestClockSkew: a refusal for the signing time gives the store's clock
// offset, from the Date of its answer; other errors give none.
func TestClockSkew(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	refusal := func(code, date string) error {
		h := http.Header{}
		if date != "" {
			h.Set("Date", date)
		}
		return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: http.StatusForbidden, Header: h}},
				Err:      &smithy.GenericAPIError{Code: code},
			},
		}}
	}
	if d, ok := clockSkew(refusal("RequestTimeTooSkewed", "Fri, 02 Jan 2026 03:24:05 GMT"), now); !ok || d != 20*time.Minute {
		t.Errorf("skewed: %v, %v; want 20m", d, ok)
	}
	for _, err := range []error{
		refusal("RequestTimeTooSkewed", ""),
		refusal("RequestTimeTooSkewed", "yesterday"),
		refusal("SignatureDoesNotMatch", "Fri, 02 Jan 2026 03:24:05 GMT"),
		errors.New("RequestTimeTooSkewed"),
		nil,
	} {
		if d, ok := clockSkew(err, now); ok {
			t.Errorf("%v: skew %v", err, d)
		}
	}
}

// MD5Usable reads the encryption of an object from each As form a download
// meets: the signed GET's headers, the SDK's GetObject and HeadObject outputs.
func TestS3MD5Usable(t *testing.T) {
	asOf := func(v any) func(any) bool {
		return func(i any) bool {
			switch p := i.(type) {
			case *http.Header:
				h, ok := v.(http.Header)
				if ok {
					*p = h
				}
				return ok
			case *s3.GetObjectOutput:
				o, ok := v.(s3.GetObjectOutput)
				if ok {
					*p = o
				}
				return ok
			case *s3.HeadObjectOutput:
				o, ok := v.(s3.HeadObjectOutput)
				if ok {
					*p = o
				}
				return ok
			}
			return false
		}
	}
	for _, tt := range []struct {
		name string
		v    any
		want bool
	}{
		{"plain GET", http.Header{}, true},
		{"SSE-S3 GET", http.Header{"X-Amz-Server-Side-Encryption": {"AES256"}}, true},
		{"SSE-KMS GET", http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}}, false},
		{"SSE-C GET", http.Header{"X-Amz-Server-Side-Encryption-Customer-Algorithm": {"AES256"}}, false},
		{"SDK GET, DSSE-KMS", s3.GetObjectOutput{ServerSideEncryption: types.ServerSideEncryptionAwsKmsDsse}, false},
		{"SDK GET, plain", s3.GetObjectOutput{}, true},
		{"HEAD, SSE-C", s3.HeadObjectOutput{SSECustomerAlgorithm: aws.String("AES256")}, false},
		{"HEAD, SSE-S3", s3.HeadObjectOutput{ServerSideEncryption: types.ServerSideEncryptionAes256}, true},
		{"nothing to tell", nil, true},
	} {
		if got := (s3Provider{}).MD5Usable(asOf(tt.v)); got != tt.want {
			t.Errorf("%s: MD5Usable = %v, want %v", tt.name, got, tt.want)
		}
	}
}
