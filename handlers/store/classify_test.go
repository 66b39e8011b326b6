package store

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azblobblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"google.golang.org/api/googleapi"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/secret"
)

func s3Err(code string, status int) error {
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
			Err:      &smithy.GenericAPIError{Code: code, Message: code},
		},
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	_, notFound := b.Attributes(ctx, "missing")

	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	tests := []struct {
		name string
		err  error
		want fault.Class
	}{
		{"nil", nil, fault.OK},
		{"explicit class", fault.New(fault.LocalDisk, "disk"), fault.LocalDisk},
		{"canceled", fmt.Errorf("list: %w", context.Canceled), fault.Interrupted},
		{"gcerrors NotFound", notFound, fault.NotFound},
		{"S3 InvalidAccessKeyId", s3Err("InvalidAccessKeyId", 403), fault.Auth},
		{"S3 SignatureDoesNotMatch", s3Err("SignatureDoesNotMatch", 403), fault.Auth},
		{"S3 AccessDenied", s3Err("AccessDenied", 403), fault.Auth},
		{"S3 NoSuchBucket", s3Err("NoSuchBucket", 404), fault.NotFound},
		{"S3 PreconditionFailed", s3Err("PreconditionFailed", 412), fault.Integrity},
		{"S3 SlowDown", s3Err("SlowDown", 503), fault.Transient},
		{"GCS bad CRC", fmt.Errorf("read: %w", errors.New("storage: bad CRC on read: got 1, want 2")), fault.Integrity},
		{"GCS bad private key", errors.New("oauth2: google: private key should be a PEM or plain PKCS1 or PKCS8; parse error: asn1"), fault.Auth},
		{"S3 bare 500", s3Err("", 500), fault.Transient},
		{"S3 bare 403", s3Err("", 403), fault.Auth},
		{"Azure AuthenticationFailed", &azcore.ResponseError{ErrorCode: "AuthenticationFailed", StatusCode: 403}, fault.Auth},
		{"Azure AuthorizationFailure", &azcore.ResponseError{ErrorCode: "AuthorizationFailure", StatusCode: 403}, fault.Auth},
		{"Azure ContainerNotFound", &azcore.ResponseError{ErrorCode: "ContainerNotFound", StatusCode: 404}, fault.NotFound},
		{"Azure ConditionNotMet", &azcore.ResponseError{ErrorCode: "ConditionNotMet", StatusCode: 412}, fault.Integrity},
		{"Azure ServerBusy", &azcore.ResponseError{ErrorCode: "ServerBusy", StatusCode: 503}, fault.Transient},
		{"GCS 401", &googleapi.Error{Code: 401}, fault.Auth},
		{"GCS 403", &googleapi.Error{Code: 403}, fault.Auth},
		{"GCS 404", &googleapi.Error{Code: 404}, fault.NotFound},
		{"GCS 412", &googleapi.Error{Code: 412}, fault.Integrity},
		{"GCS 429", &googleapi.Error{Code: 429}, fault.Transient},
		{"GCS 503", &googleapi.Error{Code: 503}, fault.Transient},
		{"connection refused", refused, fault.Transient},
		{"connection refused, wrapped", fmt.Errorf("operation error S3: ListObjectsV2, exceeded maximum number of attempts, 3, %w", refused), fault.Transient},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), fault.Transient},
		{"DNS no such host", &net.DNSError{Err: "no such host", Name: "acc.blob.core.windows.net", IsNotFound: true}, fault.NotFound},
		{"DNS timeout", &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true}, fault.Transient},
		{"unknown CA", &url.Error{Op: "Get", URL: "https://x", Err: x509.UnknownAuthorityError{}}, fault.Usage},
		{"unknown", errors.New("something else"), fault.Internal},
		// Getting credentials: a token service that cannot be reached is
		// unreachable, even when its name does not resolve; its untrusted
		// certificate is the configuration's.
		{"STS name does not resolve", fmt.Errorf("get identity: get credentials: failed to refresh cached credentials, operation error STS: AssumeRole, %w",
			&net.DNSError{Err: "no such host", Name: "sts.us-east-1.amazonaws.com", IsNotFound: true}), fault.Transient},
		{"STS untrusted certificate", fmt.Errorf("get credentials: failed to refresh cached credentials, operation error STS: AssumeRole, %w",
			&url.Error{Op: "Post", URL: "https://sts", Err: x509.UnknownAuthorityError{}}), fault.Usage},
		{"STS refused", fmt.Errorf("get credentials: failed to refresh cached credentials, operation error STS: AssumeRole: %w", s3Err("InvalidClientTokenId", 403)), fault.Auth},
		{"https to a plain-http endpoint", &url.Error{Op: "Get", URL: "https://127.0.0.1:1", Err: errors.New("http: server gave HTTP response to HTTPS client")}, fault.Usage},
		{"Azure token over http", errors.New("authorized requests are not permitted for non-TLS protected (https) endpoints"), fault.Usage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestS3PinVersion(t *testing.T) {
	p := s3Provider{}
	if p.PinVersion(&blob.Attributes{}) != nil {
		t.Error("no ETag: nothing to pin")
	}
	pin := p.PinVersion(&blob.Attributes{ETag: `"abc"`})
	in := &s3.GetObjectInput{}
	err := pin(func(v any) bool {
		if pp, ok := v.(**s3.GetObjectInput); ok {
			*pp = in
			return true
		}
		return false
	})
	if err != nil || aws.ToString(in.IfMatch) != `"abc"` {
		t.Errorf("IfMatch %q, err %v", aws.ToString(in.IfMatch), err)
	}
	if err := pin(func(any) bool { return false }); err == nil {
		t.Error("a driver without *s3.GetObjectInput must make the read fail, not go unpinned")
	}
	if p.BeforeWrite() != nil {
		t.Error("S3 needs no BeforeWrite")
	}
}

func TestAzurePinVersion(t *testing.T) {
	pin := azureProvider{}.PinVersion(&blob.Attributes{ETag: `"0x8D"`})
	o := &azblobblob.DownloadStreamOptions{}
	err := pin(func(v any) bool {
		if pp, ok := v.(**azblobblob.DownloadStreamOptions); ok {
			*pp = o
			return true
		}
		return false
	})
	if err != nil || o.AccessConditions == nil || o.AccessConditions.ModifiedAccessConditions == nil ||
		o.AccessConditions.ModifiedAccessConditions.IfMatch == nil || *o.AccessConditions.ModifiedAccessConditions.IfMatch != azcore.ETag(`"0x8D"`) {
		t.Errorf("If-Match not set: %+v, %v", o.AccessConditions, err)
	}
}

// A transport failure quotes the request's URL; its query (a SAS token)
// is left out of the brief cause.
func TestBriefDropsQueries(t *testing.T) {
	u := "http://127.0.0.1:1/acct/data/a?se=2030&sig=c2VjcmV0%2Bc2ln&sp=rl&sv=2022"
	err := fmt.Errorf("retrying: %w", &url.Error{Op: "Head", URL: u, Err: errors.New("connect: connection refused")})
	got := Brief(err)
	if strings.Contains(got, "sig=") || !strings.Contains(got, "http://127.0.0.1:1/acct/data/a") {
		t.Errorf("Brief = %q", got)
	}
}

// A SAS token's signature is blanked wherever it is printed, whatever the
// order the SDK puts the query in and however it escapes it.
func TestRegisterSAS(t *testing.T) {
	registerSAS("?sv=2022-11-02&st=2026-01-01&sr=c&sp=rl&sig=Zm9vYmFy%2BcXV4L3NpZw%3D%3D&se=2030-01-01")
	for _, printed := range []string{
		"Head http://h/acct/c/a?se=2030-01-01&sig=Zm9vYmFy%2BcXV4L3NpZw%3D%3D&sp=rl&sr=c",
		"sig=Zm9vYmFy+cXV4L3NpZw== in a decoded query",
	} {
		if got := secret.Scrub(printed); strings.Contains(got, "Zm9vYmFy") {
			t.Errorf("signature printed: %s", got)
		}
	}
	registerSAS("sv=1&sig=unparsable%zzSignatureValue")
	if got := secret.Scrub("x?sig=unparsable%zzSignatureValue&sv=1"); strings.Contains(got, "SignatureValue") {
		t.Errorf("signature of an unparsable token printed: %s", got)
	}
}

func TestBriefTrimsBlobPrefix(t *testing.T) {
	for in, want := range map[string]string{
		`blob (code=NotFound): api error NoSuchKey`:                     "api error NoSuchKey",
		`blob (key "ds/a b") (code=Unknown): api error BadRequest: (x)`: "api error BadRequest: (x)",
		`plain failure`: "plain failure",
		`HEAD p/d: gave up after 2 attempts: blob (key "p/d") (code=Unknown): dial tcp: refused`: "HEAD p/d: gave up after 2 attempts: dial tcp: refused",
	} {
		if got := Brief(errors.New(in)); got != want {
			t.Errorf("Brief(%q) = %q, want %q", in, got, want)
		}
	}
}
