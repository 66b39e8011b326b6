package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/secret"
)

// S3 keys, read in this order (the first set one wins within a line).
var (
	keyAWSAccessKeyID     = []string{"AWS_ACCESS_KEY_ID"}
	keyAWSSecretAccessKey = []string{"AWS_SECRET_ACCESS_KEY"}
	keyAWSSessionToken    = []string{"AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"}
	keyAWSRegion          = []string{"AWS_REGION", "AWS_DEFAULT_REGION"}
	keyAWSEndpoint        = []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"}
	keyAWSUseSSL          = []string{"AWS_USE_SSL"}
	keyAWSVerifySSL       = []string{"AWS_VERIFY_SSL"}
	keyAWSCABundle        = []string{"AWS_CA_BUNDLE"}
	keyAWSAddressing      = []string{"AWS_S3_ADDRESSING_STYLE"}
	keyAWSReqChecksum     = []string{"AWS_REQUEST_CHECKSUM_CALCULATION"}
	keyAWSRespChecksum    = []string{"AWS_RESPONSE_CHECKSUM_VALIDATION"}
	keyAWSAssumeRole      = []string{"AWS_ASSUME_ROLE"}
	keyAWSRoleARN         = []string{"AWS_ROLE_ARN"}
	keyAWSSessionName     = []string{"AWS_SESSION_NAME"}
	keyAWSSessionDuration = []string{"AWS_SESSION_DURATION"}
	keyAWSSTSEndpoint     = []string{"AWS_STS_ENDPOINT_URL"}
)

// Defaults of upstream's S3 provider.
const (
	defaultSessionName     = "S3Session"
	defaultSessionDuration = 43200 * time.Second
	customEndpointRegion   = "us-east-1"
	s3RetryAttempts        = 3
	s3RetryMaxBackoff      = 5 * time.Second
)

// s3Config is what an S3 connection's keys say, before any client is built.
type s3Config struct {
	accessKey, secretKey, token secret.Value
	static                      bool // access key and secret given

	region    string
	endpoint  string // full URL of a custom endpoint, "" for AWS
	pathStyle bool
	useSSL    bool
	verifySSL bool
	caBundle  []byte // PEM, nil for the system's (or $AWS_CA_BUNDLE's, which the SDK reads)

	reqChecksum  aws.RequestChecksumCalculation
	respChecksum aws.ResponseChecksumValidation

	assumeRole      bool
	roleARN         string
	sessionName     string
	duration        time.Duration
	durationGiven   bool
	stsEndpoint     string
	accessKeySource string
}

// readS3Config reads an S3 connection's keys.
func readS3Config(k *keyReader) (*s3Config, error) {
	c := &s3Config{sessionName: defaultSessionName, duration: defaultSessionDuration}
	var err error
	var ok bool
	if c.accessKey, ok, err = k.value(keyAWSAccessKeyID...); err != nil {
		return nil, err
	}
	var hasSecret bool
	if c.secretKey, hasSecret, err = k.value(keyAWSSecretAccessKey...); err != nil {
		return nil, err
	}
	switch {
	case ok && !hasSecret:
		return nil, k.usage("AWS_ACCESS_KEY_ID is set (from %s) but AWS_SECRET_ACCESS_KEY is not: give both, or neither to use the default AWS credential chain", c.accessKey.Source())
	case !ok && hasSecret:
		return nil, k.usage("AWS_SECRET_ACCESS_KEY is set (from %s) but AWS_ACCESS_KEY_ID is not: give both, or neither to use the default AWS credential chain", c.secretKey.Source())
	}
	c.static = ok
	c.accessKeySource = c.accessKey.Source()
	if c.token, _, err = k.value(keyAWSSessionToken...); err != nil {
		return nil, err
	}
	if c.region, err = k.str(keyAWSRegion...); err != nil {
		return nil, err
	}
	if c.region != "" && !validRegion(c.region) {
		return nil, k.usage("AWS_REGION (from %s) %q is not a region name (letters, digits and hyphens, like eu-west-1)", k.source(keyAWSRegion...), c.region)
	}
	if c.useSSL, err = k.boolean(true, keyAWSUseSSL...); err != nil {
		return nil, err
	}
	if c.verifySSL, err = k.boolean(true, keyAWSVerifySSL...); err != nil {
		return nil, err
	}
	endpoint, err := k.str(keyAWSEndpoint...)
	if err != nil {
		return nil, err
	}
	if c.endpoint, err = endpointURL(endpoint, c.useSSL); err != nil {
		return nil, k.usage("AWS_ENDPOINT_URL (from %s): %v", k.source(keyAWSEndpoint...), err)
	}
	if err := c.readCABundle(k); err != nil {
		return nil, err
	}

	// Custom endpoints are S3-compatible stores: path-style addressing (which
	// in-cluster MinIO and most others need) and checksums only when the
	// operation requires them (the 2025 SDK defaults break many of them).
	custom := c.endpoint != "" && !isAWSEndpoint(c.endpoint)
	c.pathStyle = custom
	switch style, err := k.str(keyAWSAddressing...); {
	case err != nil:
		return nil, err
	case style == "" || strings.EqualFold(style, "auto"):
	case strings.EqualFold(style, "path"):
		c.pathStyle = true
	case strings.EqualFold(style, "virtual"):
		c.pathStyle = false
	default:
		return nil, k.usage("AWS_S3_ADDRESSING_STYLE (from %s) must be path, virtual or auto", k.source(keyAWSAddressing...))
	}
	if custom {
		c.reqChecksum = aws.RequestChecksumCalculationWhenRequired
		c.respChecksum = aws.ResponseChecksumValidationWhenRequired
	}
	if required, given, err := checksumMode(k, "AWS_REQUEST_CHECKSUM_CALCULATION", keyAWSReqChecksum); err != nil {
		return nil, err
	} else if given {
		c.reqChecksum = aws.RequestChecksumCalculationWhenSupported
		if required {
			c.reqChecksum = aws.RequestChecksumCalculationWhenRequired
		}
	}
	if required, given, err := checksumMode(k, "AWS_RESPONSE_CHECKSUM_VALIDATION", keyAWSRespChecksum); err != nil {
		return nil, err
	} else if given {
		c.respChecksum = aws.ResponseChecksumValidationWhenSupported
		if required {
			c.respChecksum = aws.ResponseChecksumValidationWhenRequired
		}
	}

	if c.assumeRole, err = k.boolean(false, keyAWSAssumeRole...); err != nil {
		return nil, err
	}
	if c.roleARN, err = k.str(keyAWSRoleARN...); err != nil {
		return nil, err
	}
	if c.assumeRole && c.roleARN == "" {
		return nil, k.usage("AWS_ASSUME_ROLE is true but AWS_ROLE_ARN is not set: give the ARN of the role to assume")
	}
	if name, err := k.str(keyAWSSessionName...); err != nil {
		return nil, err
	} else if name != "" {
		c.sessionName = name
	}
	if d, err := k.str(keyAWSSessionDuration...); err != nil {
		return nil, err
	} else if d != "" {
		secs, err := strconv.Atoi(d)
		if err != nil || secs < 900 || secs > 43200 {
			return nil, k.usage("AWS_SESSION_DURATION (from %s) must be a number of seconds between 900 and 43200", k.source(keyAWSSessionDuration...))
		}
		c.duration, c.durationGiven = time.Duration(secs)*time.Second, true
	}
	sts, err := k.str(keyAWSSTSEndpoint...)
	if err != nil {
		return nil, err
	}
	if c.stsEndpoint, err = endpointURL(sts, c.useSSL); err != nil {
		return nil, k.usage("AWS_STS_ENDPOINT_URL (from %s): %v", k.source(keyAWSSTSEndpoint...), err)
	}
	if c.region == "" && custom {
		c.region = customEndpointRegion
	}
	return c, nil
}

// isAWSEndpoint reports an endpoint of AWS itself (a regional, FIPS or
// VPC endpoint), which gets AWS's defaults rather than those of
// S3-compatible stores.
func isAWSEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return strings.HasSuffix(h, ".amazonaws.com") || strings.HasSuffix(h, ".amazonaws.com.cn")
}

// endpointURL completes an endpoint given without a scheme the way botocore
// does (https unless use_ssl is false); a scheme given wins over use_ssl.
func endpointURL(raw string, useSSL bool) (string, error) {
	if raw == "" {
		return "", nil
	}
	if !strings.Contains(raw, "://") {
		if useSSL {
			raw = "https://" + raw
		} else {
			raw = "http://" + raw
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole value, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("expected http(s)://host[:port], got %s://%s", u.Scheme, u.Host)
	}
	if u.User != nil {
		return "", errors.New("credentials do not belong in the endpoint URL: give AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// readCABundle reads AWS_CA_BUNDLE: the path of a PEM file, or PEM text
// itself (a secret key holding the certificate).
func (c *s3Config) readCABundle(k *keyReader) error {
	v, ok, err := k.value(keyAWSCABundle...)
	if err != nil || !ok {
		return err
	}
	// A path is a setting, shown in errors; PEM text is not secret either,
	// but it is no use in a message.
	raw := v.Setting()
	var pem []byte
	if strings.Contains(raw, "-----BEGIN") {
		pem = []byte(raw)
	} else {
		pem, err = os.ReadFile(strings.TrimSpace(raw))
		if err != nil {
			return k.usage("AWS_CA_BUNDLE (from %s): cannot read the CA bundle: %v", v.Source(), err)
		}
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return k.usage("AWS_CA_BUNDLE (from %s): no PEM certificate in it", v.Source())
	}
	c.caBundle = pem
	return nil
}

// describeAuth says how requests are authenticated, without any secret.
func (c *s3Config) describeAuth() string {
	var s string
	if c.static {
		s = "AWS_ACCESS_KEY_ID from " + c.accessKeySource
		if src := c.secretKey.Source(); !sameOrigin(src, c.accessKeySource) {
			s += " and AWS_SECRET_ACCESS_KEY from " + src
		}
		if !c.token.IsZero() {
			s += " with a session token from " + c.token.Source()
		}
	} else {
		s = "the default AWS credential chain (web identity, profile, container or instance role)"
	}
	if c.assumeRole {
		s += ", assuming role " + c.roleARN
	}
	return s
}

// stsDisplay names where STS requests go, for messages.
func (c *s3Config) stsDisplay(region string) string {
	switch {
	case c.stsEndpoint != "":
		return c.stsEndpoint
	case os.Getenv("AWS_ENDPOINT_URL_STS") != "":
		return os.Getenv("AWS_ENDPOINT_URL_STS") + ", from $AWS_ENDPOINT_URL_STS"
	case region != "":
		return "https://sts." + region + ".amazonaws.com"
	}
	return "the regional endpoint"
}

// sameOrigin reports two keys read from one place: the environment (with
// the same prefix), or files of one mounted folder.
func sameOrigin(a, b string) bool {
	envA, envB := strings.HasPrefix(a, "$"), strings.HasPrefix(b, "$")
	switch {
	case envA && envB:
		return strings.HasPrefix(a, "$POLYAXON_") == strings.HasPrefix(b, "$POLYAXON_")
	case !envA && !envB:
		return filepath.Dir(a) == filepath.Dir(b)
	}
	return false
}

// validRegion reports a region name the SDK accepts (host labels, as its
// endpoint rules check them), so that a typo is a usage error here rather
// than a failure of every request.
func validRegion(r string) bool {
	for _, label := range strings.Split(r, ".") {
		if !smithyhttp.ValidHostLabel(label) {
			return false
		}
	}
	return true
}

// httpClient is the SDK's buildable client (never a plain *http.Client: the
// SDK applies AWS_CA_BUNDLE through WithTransportOptions and fails on any
// other type) with the pool sized to workers.
func (c *s3Config) httpClient(workers int) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tuneTransport(tr, workers)
		if !c.verifySSL {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.InsecureSkipVerify = true // AWS_VERIFY_SSL=false asks for it
		}
	})
}

// awsConfig loads the SDK configuration: the connection's keys first, then
// the SDK's own sources (environment, shared config files, web identity,
// container and instance roles) for whatever they leave unset. The SDK's
// own log lines go to log (nil: dropped), scrubbed like every other line.
func (c *s3Config) awsConfig(ctx context.Context, workers, attempts int, log *slog.Logger) (aws.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(c.httpClient(workers)),
		config.WithRetryer(func() aws.Retryer {
			// Bounded: the transfer engine retries whole requests on top.
			// No client-side retry quota: with many workers failing at once
			// it would refuse retries that the server would have served.
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = s3RetryMaxBackoff
				o.RateLimiter = ratelimit.None
			})
		}),
		config.WithLogger(sdkLogger{log}),
	}
	if c.region != "" {
		load = append(load, config.WithRegion(c.region))
	}
	if c.caBundle != nil {
		// Given here, the SDK does not read $AWS_CA_BUNDLE itself (which
		// may hold PEM text it cannot read as a path); its pool is then
		// replaced below by one that adds the bundle to the system's.
		load = append(load, config.WithCustomCABundle(bytes.NewReader(c.caBundle)))
	}
	if c.static {
		load = append(load, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			// The key ID names the key, as a user name does: it is shown
			// (secret.Value.Name); the secret key and the token are not.
			c.accessKey.Name(), c.secretKey.Reveal(), c.token.Reveal())))
	}
	if c.reqChecksum != 0 {
		load = append(load, config.WithRequestChecksumCalculation(c.reqChecksum))
	}
	if c.respChecksum != 0 {
		load = append(load, config.WithResponseChecksumValidation(c.respChecksum))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return cfg, err
	}
	if c.caBundle != nil {
		// AWS_CA_BUNDLE adds CAs (a private endpoint's, a proxy's): the SDK
		// alone would trust nothing else, so that a bundle meant for one
		// endpoint breaks every other one (AWS's own STS, public stores).
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(c.caBundle)
		if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
			cfg.HTTPClient = bc.WithTransportOptions(func(tr *http.Transport) {
				if tr.TLSClientConfig == nil {
					tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
				}
				tr.TLSClientConfig.RootCAs = pool
			})
		}
	}
	if c.assumeRole {
		// AWS_ENDPOINT_URL is the store's endpoint: the SDK would also send
		// STS requests there when it comes from the environment (its
		// global endpoint), and not when it comes from a mounted file.
		// STS goes to AWS_STS_ENDPOINT_URL, else $AWS_ENDPOINT_URL_STS or a
		// profile's STS endpoint, else the regional one.
		stsCfg := cfg.Copy()
		stsCfg.BaseEndpoint = nil
		stsClient := sts.NewFromConfig(stsCfg, func(o *sts.Options) {
			if c.stsEndpoint != "" {
				o.BaseEndpoint = aws.String(c.stsEndpoint)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(&assumeRole{
			client: stsClient, arn: c.roleARN, name: c.sessionName, duration: c.duration, given: c.durationGiven,
		})
	}
	return cfg, nil
}

// sdkLogger sends the AWS SDK's log lines (warnings about response bodies,
// checksums, retries) through the command's logger, which scrubs them.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "AWS SDK: "+fmt.Sprintf(format, v...))
}

// checksumMode reads one of the SDK's checksum settings, when_required or
// when_supported: whether it says when_required, and whether it is set.
func checksumMode(k *keyReader, name string, keys []string) (required, given bool, err error) {
	switch v, err := k.str(keys...); {
	case err != nil:
		return false, false, err
	case v == "":
		return false, false, nil
	case strings.EqualFold(v, "when_required"):
		return true, true, nil
	case strings.EqualFold(v, "when_supported"):
		return false, true, nil
	}
	return false, false, k.usage("%s (from %s) must be when_required or when_supported", name, k.source(keys...))
}

// s3Options applies the endpoint settings to the S3 client.
func (c *s3Config) s3Options(o *s3.Options) {
	if c.endpoint != "" {
		o.BaseEndpoint = aws.String(c.endpoint)
	} else if !c.useSSL {
		o.EndpointOptions.DisableHTTPS = true
	}
	o.UsePathStyle = c.pathStyle
	// Quiet "Response has no supported checksum" warnings on every GET
	// from stores that send no checksum: transfer verifies what it can.
	o.DisableLogOutputChecksumValidationSkipped = true
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		if c.reqChecksum == aws.RequestChecksumCalculationWhenSupported {
			if err := st.Initialize.Add(checksumAhead, middleware.Before); err != nil {
				return err
			}
		}
		if err := st.Initialize.Add(listURLEncoded, middleware.After); err != nil {
			return err
		}
		return st.Initialize.Add(recordPutDigest, middleware.After)
	})
}

// checksumAhead computes the CRC32 (or CRC32C) of a PutObject's or an
// UploadPart's body before it is sent, when the body can be read twice, and
// gives it as the request's checksum header. The SDK would otherwise send
// the body as one aws-chunked chunk with the checksum as its trailer, which
// MinIO refuses past 16 MiB ("chunk too big"): the parts of gocloud's
// writer are the part size (--part-size 20 is such a case). It costs one
// read of a body already in memory.
var checksumAhead = middleware.InitializeMiddlewareFunc("ChecksumAhead", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	var body io.Reader
	var alg *types.ChecksumAlgorithm
	var crc32Value, crc32cValue **string
	var others bool
	switch p := in.Parameters.(type) {
	case *s3.PutObjectInput:
		body, alg, crc32Value, crc32cValue = p.Body, &p.ChecksumAlgorithm, &p.ChecksumCRC32, &p.ChecksumCRC32C
		others = p.ChecksumCRC64NVME != nil || p.ChecksumSHA1 != nil || p.ChecksumSHA256 != nil
	case *s3.UploadPartInput:
		body, alg, crc32Value, crc32cValue = p.Body, &p.ChecksumAlgorithm, &p.ChecksumCRC32, &p.ChecksumCRC32C
		others = p.ChecksumCRC64NVME != nil || p.ChecksumSHA1 != nil || p.ChecksumSHA256 != nil
	default:
		return next.HandleInitialize(ctx, in)
	}
	rs, ok := body.(io.ReadSeeker)
	if !ok || others || *crc32Value != nil || *crc32cValue != nil {
		return next.HandleInitialize(ctx, in)
	}
	var h hash.Hash32
	switch *alg {
	case "", types.ChecksumAlgorithmCrc32:
		h, *alg = crc32.NewIEEE(), types.ChecksumAlgorithmCrc32
	case types.ChecksumAlgorithmCrc32c:
		h = crc32.New(crc32.MakeTable(crc32.Castagnoli))
	default:
		return next.HandleInitialize(ctx, in)
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = io.Copy(h, rs)
	}
	if err == nil {
		_, err = rs.Seek(start, io.SeekStart)
	}
	if err != nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, fmt.Errorf("s3: reading the body for its checksum: %w", err)
	}
	sum := aws.String(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	if *alg == types.ChecksumAlgorithmCrc32c {
		*crc32cValue = sum
	} else {
		*crc32Value = sum
	}
	return next.HandleInitialize(ctx, in)
})

// listURLEncoded asks S3 for a listing's keys URL-encoded, and decodes
// them: a key that holds a character XML 1.0 cannot carry (a control
// character, which S3 allows in keys) would otherwise make the whole answer
// unreadable ("illegal character code U+0001") and the listing fail. A
// store that does not say it encoded them (no EncodingType in the answer)
// is taken as it answered.
var listURLEncoded = middleware.InitializeMiddlewareFunc("ListURLEncoded", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	lin, ok := in.Parameters.(*s3.ListObjectsV2Input)
	if !ok || lin.EncodingType != "" {
		return next.HandleInitialize(ctx, in)
	}
	encoded := *lin
	encoded.EncodingType = types.EncodingTypeUrl
	in.Parameters = &encoded
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	if o, ok := out.Result.(*s3.ListObjectsV2Output); ok && o.EncodingType == types.EncodingTypeUrl {
		if err := decodeListing(o); err != nil {
			return out, md, err
		}
	}
	return out, md, nil
})

// decodeListing decodes the URL-encoded keys of a listing's answer.
func decodeListing(o *s3.ListObjectsV2Output) error {
	dec := func(p *string) error {
		if p == nil {
			return nil
		}
		s, err := url.QueryUnescape(*p)
		if err != nil {
			return fmt.Errorf("s3: a listed key is not URL-encoded as asked (%q): %w", *p, err)
		}
		*p = s
		return nil
	}
	for i := range o.Contents {
		if err := dec(o.Contents[i].Key); err != nil {
			return err
		}
	}
	for i := range o.CommonPrefixes {
		if err := dec(o.CommonPrefixes[i].Prefix); err != nil {
			return err
		}
	}
	for _, p := range []*string{o.Prefix, o.Delimiter, o.StartAfter} {
		if err := dec(p); err != nil {
			return err
		}
	}
	o.EncodingType = ""
	return nil
}

func openS3(ctx context.Context, k *keyReader, loc connections.Location, opts Options) (*Store, error) {
	c, err := readS3Config(k)
	if err != nil {
		return nil, err
	}
	cfg, err := c.awsConfig(ctx, opts.Workers, opts.attempts(s3RetryAttempts), opts.Log)
	if err != nil {
		return nil, k.usage("loading the AWS configuration: %v", err)
	}
	cfg.HTTPClient = idleDoer{cfg.HTTPClient, opts.readTimeout()}
	if cfg.Region == "" {
		cfg.Region = bucketRegion(ctx, cfg, c, loc.Bucket)
		opts.Log.Info("AWS_REGION is not set: using the bucket's region", "region", cfg.Region)
	}
	if !c.verifySSL {
		opts.Log.Warn("AWS_VERIFY_SSL is false: the endpoint's TLS certificate is not verified")
	}
	client := s3.NewFromConfig(cfg, c.s3Options)
	b, err := s3blob.OpenBucket(ctx, client, loc.Bucket, &s3blob.Options{RequestChecksumCalculation: cfg.RequestChecksumCalculation})
	if err != nil {
		return nil, k.usage("opening bucket %q: %v", loc.Bucket, err)
	}
	s := &Store{
		Bucket:   b,
		Provider: s3Provider{bucket: b, name: loc.Bucket, signed: &s3Signed{}, reqChecksum: cfg.RequestChecksumCalculation},
		endpoint: c.endpoint,
		auth:     c.describeAuth(),
		hints: hints{
			auth:        "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SECURITY_TOKEN for temporary credentials), and that they may list and read the bucket",
			notFound:    " (and AWS_ENDPOINT_URL / AWS_REGION)",
			unreachable: " and AWS_ENDPOINT_URL (AWS_USE_SSL=false for a plain-http endpoint without a scheme)",
			tls:         "give the endpoint's CA in AWS_CA_BUNDLE (a path or the PEM itself), or set AWS_VERIFY_SSL=false",
			host:        "fix AWS_ENDPOINT_URL (with AWS_S3_ADDRESSING_STYLE=virtual the bucket's name is part of the host)",
			plainHTTP:   "give AWS_ENDPOINT_URL as http://… (or AWS_USE_SSL=false for an endpoint without a scheme)",
			region:      "set AWS_REGION to the bucket's region",
		},
	}
	if c.endpoint == "" {
		// AWS's own host, named after the bucket and region: not a
		// setting the user gave.
		s.hints.host = "AWS's hosts are not known to the cluster's DNS: check its DNS and network access to AWS (or set AWS_ENDPOINT_URL for another S3 store)"
	}
	if c.assumeRole {
		s.token = tokenService{match: []string{"operation error STS:"}, where: "STS (" + c.stsDisplay(cfg.Region) + ")", fix: "AWS_STS_ENDPOINT_URL",
			auth: "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that they may assume AWS_ROLE_ARN (" + c.roleARN + ")"}
	}
	return s, nil
}

// bucketRegion finds the region of an AWS bucket when none is configured:
// S3 names it in the x-amz-bucket-region header of any HeadBucket answer,
// even an error. It falls back to us-east-1.
func bucketRegion(ctx context.Context, cfg aws.Config, c *s3Config, bucket string) string {
	probe := cfg.Copy()
	probe.Region = "us-east-1"
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := s3.NewFromConfig(probe, c.s3Options).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil && out.BucketRegion != nil && *out.BucketRegion != "" {
		return *out.BucketRegion
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if r := re.Response.Header.Get("X-Amz-Bucket-Region"); r != "" {
			return r
		}
	}
	return "us-east-1"
}

// assumeRole is stscreds' AssumeRole provider with upstream's session name
// and duration. Upstream's default duration (12 h) exceeds what most roles
// allow (1 h unless raised); when it was not asked for explicitly and STS
// refuses it, the role is assumed again for 1 h.
type assumeRole struct {
	client   stscreds.AssumeRoleAPIClient
	arn      string
	name     string
	duration time.Duration
	given    bool
}

func (a *assumeRole) Retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := a.retrieve(ctx, a.duration)
	var ae smithy.APIError
	if err != nil && !a.given && a.duration > time.Hour && errors.As(err, &ae) &&
		ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "DurationSeconds") {
		return a.retrieve(ctx, time.Hour)
	}
	return creds, err
}

func (a *assumeRole) retrieve(ctx context.Context, d time.Duration) (aws.Credentials, error) {
	return stscreds.NewAssumeRoleProvider(a.client, a.arn, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = a.name
		o.Duration = d
	}).Retrieve(ctx)
}

// s3Provider pins S3 reads to an ETag, reports the MD5 of single-request
// uploads, uploads large files in parts read straight from the file, and
// reads and writes small objects with one signed request each.
// Upload checksums need nothing here: the client is configured "when
// required" for custom endpoints, and the bucket passes that to its uploads.
type s3Provider struct {
	bucket *blob.Bucket // the bucket it was opened with
	name   string       // its name
	signed *s3Signed    // reads whole objects (ReadWhole) and puts small ones (UploadBytes); nil: the SDK does
	// reqChecksum is the bucket's request checksum setting, which gocloud
	// gives its transfer manager (TuneWriter sets one up again).
	reqChecksum aws.RequestChecksumCalculation
}

func (s3Provider) PinVersion(attrs *blob.Attributes) func(as func(any) bool) error {
	if attrs == nil || attrs.ETag == "" {
		return nil
	}
	etag := attrs.ETag
	return func(as func(any) bool) error {
		var in *s3.GetObjectInput
		if !as(&in) {
			return errors.New("s3: cannot pin the read to an ETag: the driver offers no *s3.GetObjectInput")
		}
		in.IfMatch = aws.String(etag)
		return nil
	}
}

func (s3Provider) CRC32C(func(any) bool) (uint32, bool) { return 0, false }

func (s3Provider) BeforeWrite() func(as func(any) bool) error { return nil }

// TuneWriter implements transfer.WriterTuner: gocloud's writer uploads
// through the SDK's transfer manager, which aborts a failed multipart
// upload with the upload's own context. An upload the uploader abandons
// (cancelled: the file changed while it was read, the grace ran out) thus
// left its upload unaborted, its parts billed. Its client is set up again
// as gocloud sets it up, with a time of its own for that abort (short once
// the upload's context has ended: it may come once the grace has run out;
// an upload it cannot abort stays in the upload journal for the next
// sidecar), and with the multipart uploads it begins and ends recorded in
// the upload journal (journaledClient).
func (p s3Provider) TuneWriter(opts *blob.WriterOptions) {
	prev := opts.BeforeWrite
	part, conc := int64(opts.BufferSize), opts.MaxConcurrency
	opts.BeforeWrite = func(as func(any) bool) error {
		if prev != nil {
			if err := prev(as); err != nil {
				return err
			}
		}
		var tm *transfermanager.Client
		var client *s3.Client
		if !as(&tm) || tm == nil || p.bucket == nil || !p.bucket.As(&client) {
			return nil
		}
		*tm = *transfermanager.New(journaledClient{client}, func(o *transfermanager.Options) {
			o.RequestChecksumCalculation = p.reqChecksum
			if part != 0 {
				o.PartSizeBytes = part
			}
			if conc != 0 {
				o.Concurrency = conc
			}
			o.FailTimeout = 30 * time.Second // and abortAfterEnd past the upload's end (journaledClient)
		})
		return nil
	}
}

// putDigestKey marks the context of an upload whose answer's MD5 is kept
// in a *putDigest (S3's PutObject, Azure's Put Blob).
type putDigestKey struct{}

type putDigest struct{ md5 []byte }

// WatchUpload: a single PutObject answers with the object's ETag, which is
// the MD5 of what S3 stored unless the object is encrypted with KMS or a
// customer key (transfer.UploadDigests).
func (s3Provider) WatchUpload(ctx context.Context, _ *blob.WriterOptions) (context.Context, func() []byte) {
	d := &putDigest{}
	return context.WithValue(ctx, putDigestKey{}, d), func() []byte { return d.md5 }
}

// recordPutDigest keeps the MD5 of a PutObject's answer for the upload
// that watches it (see WatchUpload).
var recordPutDigest = middleware.InitializeMiddlewareFunc("RecordPutDigest", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	if d, ok := ctx.Value(putDigestKey{}).(*putDigest); ok && err == nil {
		if o, ok := out.Result.(*s3.PutObjectOutput); ok && etagIsMD5(string(o.ServerSideEncryption), aws.ToString(o.SSECustomerAlgorithm)) {
			d.md5 = etagMD5(aws.ToString(o.ETag))
		}
	}
	return out, md, err
})

// etagIsMD5 reports whether the ETag of a single-request object is the MD5
// of its content, from its server-side encryption and customer key
// algorithm: not when it is encrypted with KMS (aws:kms, aws:kms:dsse) or a
// customer's key (SSE-C).
func etagIsMD5(sse, customerAlgorithm string) bool {
	return customerAlgorithm == "" && !strings.HasPrefix(sse, "aws:kms")
}

// MD5Usable implements transfer.ETagDigests: an object encrypted with KMS
// or a customer key is listed with an ETag that is no MD5 of its content.
// as is a reader's (the SDK's GetObjectOutput, or the signed GET's headers)
// or attributes' (HeadObjectOutput).
func (s3Provider) MD5Usable(as func(any) bool) bool {
	var h http.Header
	if as(&h) {
		return etagIsMD5(h.Get("X-Amz-Server-Side-Encryption"), h.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm"))
	}
	var get s3.GetObjectOutput
	if as(&get) {
		return etagIsMD5(string(get.ServerSideEncryption), aws.ToString(get.SSECustomerAlgorithm))
	}
	var head s3.HeadObjectOutput
	if as(&head) {
		return etagIsMD5(string(head.ServerSideEncryption), aws.ToString(head.SSECustomerAlgorithm))
	}
	return true
}

// etagMD5 returns the MD5 an ETag holds, or nil for one that is not an MD5
// (a multipart upload's).
func etagMD5(etag string) []byte {
	b, err := hex.DecodeString(strings.Trim(etag, `"`))
	if err != nil || len(b) != md5.Size {
		return nil
	}
	return b
}
