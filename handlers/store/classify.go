package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/initializer/initializer/transfer"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/initializer/initializer/fault"
)

// Classify turns an error of a bucket (or of opening one) into an exit
// class: the class an error already carries; then the provider's own error
// codes, which gcerrors misses or maps loosely (S3 InvalidAccessKeyId and
// SignatureDoesNotMatch are 3, NoSuchBucket 4, Azure AuthenticationFailed 3,
// ContainerNotFound 4, throttling and 5xx 5); then gcerrors.Code (NotFound
// 4, PermissionDenied 3, FailedPrecondition 6: the object changed); then
// the network (connection refused, reset, timeouts: 5; TLS verification: 2).
func Classify(err error) fault.Class {
	if err == nil {
		return fault.OK
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Class
	}
	if errors.Is(err, context.Canceled) {
		return fault.Interrupted
	}
	if c, ok := classifyProvider(err); ok {
		return c
	}
	if c, ok := transfer.CodeClass(err); ok {
		return c
	}
	if c, ok := classifyNetwork(err); ok {
		return c
	}
	return fault.ClassOf(err)
}

// S3 error codes gcerrors does not map (or maps to Unknown).
var s3Codes = map[string]fault.Class{
	"InvalidAccessKeyId":           fault.Auth,
	"SignatureDoesNotMatch":        fault.Auth,
	"AccessDenied":                 fault.Auth,
	"AllAccessDisabled":            fault.Auth,
	"AccountProblem":               fault.Auth,
	"ExpiredToken":                 fault.Auth,
	"InvalidToken":                 fault.Auth,
	"TokenRefreshRequired":         fault.Auth,
	"InvalidSecurity":              fault.Auth,
	"InvalidClientTokenId":         fault.Auth, // STS
	"MissingAuthenticationToken":   fault.Auth,
	"UnrecognizedClientException":  fault.Auth,
	"RequestTimeTooSkewed":         fault.Auth,
	"NoSuchBucket":                 fault.NotFound,
	"NoSuchKey":                    fault.NotFound,
	"NotFound":                     fault.NotFound,
	"PreconditionFailed":           fault.Integrity,
	"InvalidBucketName":            fault.Usage,
	"AuthorizationHeaderMalformed": fault.Usage, // wrong region
	"PermanentRedirect":            fault.Usage, // wrong region or endpoint
	"InvalidArgument":              fault.Usage,
	"SlowDown":                     fault.Transient,
	"ServiceUnavailable":           fault.Transient,
	"InternalError":                fault.Transient,
	"RequestTimeout":               fault.Transient,
	"Throttling":                   fault.Transient,
	"ThrottlingException":          fault.Transient,
	"XMinioServerNotInitialized":   fault.Transient,
}

// Azure error codes (x-ms-error-code).
var azureCodes = map[string]fault.Class{
	"AuthenticationFailed":              fault.Auth,
	"AuthorizationFailure":              fault.Auth,
	"AuthorizationPermissionMismatch":   fault.Auth,
	"AuthorizationProtocolMismatch":     fault.Auth,
	"AuthorizationResourceTypeMismatch": fault.Auth,
	"AuthorizationServiceMismatch":      fault.Auth,
	"AuthorizationSourceIPMismatch":     fault.Auth,
	"InsufficientAccountPermissions":    fault.Auth,
	"InvalidAuthenticationInfo":         fault.Auth,
	"NoAuthenticationInformation":       fault.Auth,
	"AccountIsDisabled":                 fault.Auth,
	"ContainerNotFound":                 fault.NotFound,
	"BlobNotFound":                      fault.NotFound,
	"ResourceNotFound":                  fault.NotFound,
	"ContainerBeingDeleted":             fault.NotFound,
	"ConditionNotMet":                   fault.Integrity,
	"InvalidResourceName":               fault.Usage,
	"InvalidUri":                        fault.Usage,
	"InvalidQueryParameterValue":        fault.Usage,
	"ServerBusy":                        fault.Transient,
	"InternalError":                     fault.Transient,
	"OperationTimedOut":                 fault.Transient,
}

// classifyProvider reads the provider's own error, when err carries one.
func classifyProvider(err error) (fault.Class, bool) {
	// The GCS client's check of the CRC32C of what it read.
	if strings.Contains(err.Error(), "storage: bad CRC on read") {
		return fault.Integrity, true
	}
	// A service account key whose private key does not parse: no request
	// was sent, and none will succeed.
	if strings.Contains(err.Error(), "private key should be a PEM") {
		return fault.Auth, true
	}
	// Azure first: azcore.ResponseError does not implement smithy.APIError,
	// but be explicit about the order anyway.
	var azErr *azcore.ResponseError
	if errors.As(err, &azErr) {
		if c, ok := azureCodes[azErr.ErrorCode]; ok {
			return c, true
		}
		return classifyStatus(azErr.StatusCode)
	}
	if isTokenOverHTTP(err) {
		return fault.Usage, true
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) || strings.Contains(err.Error(), "CredentialUnavailableError") || strings.Contains(err.Error(), "DefaultAzureCredential: failed to acquire a token") {
		return credentialClass(err), true
	}

	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if c, ok := s3Codes[apiErr.ErrorCode()]; ok {
			return c, true
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		if c, ok := classifyStatus(re.HTTPStatusCode()); ok {
			return c, true
		}
	}
	if isAWSCredentialsError(err) {
		return credentialClass(err), true
	}

	var gErr *googleapi.Error
	if errors.As(err, &gErr) {
		switch gErr.Code {
		case http.StatusForbidden:
			// gcsblob maps 403 to NotFound ("permission denied on resource
			// (or it may not exist)"); it is a refusal of the credentials.
			return fault.Auth, true
		case http.StatusPreconditionFailed:
			return fault.Integrity, true
		}
		return classifyStatus(gErr.Code)
	}
	var oErr *oauth2.RetrieveError
	if errors.As(err, &oErr) {
		if oErr.Response != nil && oErr.Response.StatusCode >= 500 {
			return fault.Transient, true
		}
		return fault.Auth, true
	}
	return 0, false
}

// credentialClass classifies a failure to get credentials (STS, a token
// endpoint, the metadata service): refused credentials are auth; a service
// that cannot be reached, even one whose name does not resolve, is
// unreachable, not a missing bucket; a certificate it presents that is not
// trusted is the configuration's.
func credentialClass(err error) fault.Class {
	switch c, ok := classifyNetwork(err); {
	case !ok && strings.Contains(err.Error(), "no such host"):
		return fault.Transient // the identity library keeps only the text
	case !ok:
		return fault.Auth
	case c == fault.NotFound:
		return fault.Transient
	default:
		return c
	}
}

// isPlainHTTP reports an https request answered in plain http: the
// endpoint's scheme is wrong.
func isPlainHTTP(err error) bool {
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// isTokenOverHTTP reports the Azure SDK refusing to send a bearer token to
// a plain-http endpoint.
func isTokenOverHTTP(err error) bool {
	return strings.Contains(err.Error(), "authorized requests are not permitted for non-TLS protected (https) endpoints")
}

// badBucketName reports a store refusing the bucket's (container's) name
// itself.
func badBucketName(err error) bool {
	var ae smithy.APIError
	var az *azcore.ResponseError
	var ge *googleapi.Error
	switch {
	case errors.As(err, &ae):
		return ae.ErrorCode() == "InvalidBucketName"
	case errors.As(err, &az):
		return az.ErrorCode == "InvalidResourceName" || az.ErrorCode == "ContainerNameInvalid"
	case errors.As(err, &ge):
		return ge.Code == 400 && strings.Contains(strings.ToLower(ge.Message), "bucket name")
	}
	return false
}

// wrongRegion returns the region an S3 store says the bucket is in, when it
// refused a request signed for another ("the region 'us-east-1' is wrong;
// expecting 'eu-west-1'"); "" otherwise.
func wrongRegion(err error) string {
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AuthorizationHeaderMalformed" {
		return ""
	}
	m := expectingRegion.FindStringSubmatch(ae.ErrorMessage())
	if m == nil {
		return ""
	}
	return m[1]
}

var expectingRegion = regexp.MustCompile(`expecting '([a-z0-9-]+)'`)

// classifyStatus classifies a bare HTTP status.
func classifyStatus(code int) (fault.Class, bool) {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fault.Auth, true
	case code == http.StatusNotFound:
		return fault.NotFound, true
	case code == http.StatusPreconditionFailed:
		return fault.Integrity, true
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fault.Transient, true
	case code == http.StatusBadRequest || code == http.StatusMovedPermanently:
		return fault.Usage, true
	}
	return 0, false
}

// isAWSCredentialsError reports the SDK failing to get credentials at all
// (no keys, no role): that is the configuration's fault, shown as auth.
func isAWSCredentialsError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to refresh cached credentials") ||
		strings.Contains(msg, "no EC2 IMDS role found") ||
		strings.Contains(msg, "get credentials:")
}

// classifyNetwork classifies transport failures.
func classifyNetwork(err error) (fault.Class, bool) {
	if isTLS(err) || isPlainHTTP(err) {
		return fault.Usage, true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return fault.NotFound, true // a host (endpoint, account) that does not exist
		}
		return fault.Transient, true
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return fault.Transient, true
	case fault.IsNetwork(err):
		return fault.Transient, true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "i/o timeout", "EOF", "retry quota exceeded", "exceeded maximum number of attempts"} {
		if strings.Contains(msg, s) {
			return fault.Transient, true
		}
	}
	return 0, false
}

// isTLS reports a failed certificate verification.
func isTLS(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) ||
		strings.Contains(err.Error(), "x509: ")
}
