package store

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
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
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

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
	return b, s3Provider{bucket: b, name: name, get: &s3Getter{}}
}

// TestS3GetterEndpoint: the GET goes where the SDK's GetObject would, for
// path-style custom endpoints and AWS's virtual-hosted buckets alike.
func TestS3GetterEndpoint(t *testing.T) {
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
			p.get.init(context.Background(), client, tc.bucket)
			if !p.get.ok {
				t.Fatal("declined")
			}
			if got := p.get.base.String(); got != tc.want || p.get.region != tc.region || p.get.signingName != "s3" {
				t.Errorf("endpoint %s, signed for %s in %s; want %s, s3 in %s", got, p.get.signingName, p.get.region, tc.want, tc.region)
			}
		})
	}
}

// TestS3GetterDeclines: what the GET cannot do as the SDK would, it leaves
// to gocloud's reader, having sent nothing.
func TestS3GetterDeclines(t *testing.T) {
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
	} {
		if ok, err := call(); ok || err != nil {
			t.Errorf("%s: used %v, %v", name, ok, err)
		}
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
