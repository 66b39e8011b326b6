// Package store opens the bucket of an s3, gcs or wasb connection as a
// gocloud.dev *blob.Bucket: it parses the bucket URL as upstream does, reads
// the credentials and settings through the connection's credential look-up
// (mounted secret files, then the environment, then POLYAXON_-prefixed
// variables), configures the provider's SDK (custom endpoints, emulators,
// CA bundles, connection pool) and classifies the errors the bucket returns.
// Copying bytes is the transfer package's business, not this one's.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/secret"
	"github.com/initializer/initializer/transfer"
)

// Options tune how a bucket is opened.
type Options struct {
	Workers int          // parallel transfers planned: the HTTP connection pool is sized to it; 0 means 16
	Log     *slog.Logger // may be nil
	// ReadTimeout cuts a request that receives nothing for so long (it is
	// then retried); 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// Once sends each request once: the store client does not retry it
	// either (--retries 0). Otherwise the client makes a few quick
	// attempts of its own under each of the transfer engine's.
	Once bool
}

// attempts is how many times the store client sends a request, counting
// the first: its own bounded retries, or one.
func (o Options) attempts(bounded int) int {
	if o.Once {
		return 1
	}
	return bounded
}

func (o Options) readTimeout() time.Duration {
	if o.ReadTimeout <= 0 {
		return DefaultReadTimeout
	}
	return o.ReadTimeout
}

// Store is an opened bucket.
type Store struct {
	Bucket    *blob.Bucket
	Prefix    string            // key prefix from the bucket URL: no leading slash, no trailing slash, "" for the whole bucket
	prefixDir bool              // the bucket URL ends with a slash: Prefix is a folder, never one object
	URL       string            // credential-free display form, e.g. "s3://bucket/prefix"
	Provider  transfer.Provider // version pinning, CRC32C, upload options

	conn     *connections.Connection
	name     string // the bucket or container, for messages
	endpoint string // where requests go, for messages ("" for the provider's default)
	auth     string // how requests are authenticated, for messages (key names and sources, never values)
	hints    hints
	token    tokenService
	closers  []func() error
}

// tokenService is where temporary credentials come from (STS for an
// assumed role), when its failures can be told apart from the store's.
type tokenService struct {
	match []string // texts its failures carry (none: not told apart)
	where string   // what it is and where, for messages
	fix   string   // the setting that points at it
	auth  string   // what to check when it refuses the credentials
	// none, when set, is what to give when a chain of credential sources
	// found none that works (the default Azure credential).
	none string
}

// failed reports an error of the token service.
func (t tokenService) failed(err error) bool {
	msg := err.Error()
	for _, m := range t.match {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// hints are the provider-specific fixes Check's errors suggest.
type hints struct {
	auth, notFound, unreachable, tls string
	host                             string // the settings that name the service's host
	plainHTTP                        string // how to name a plain-http endpoint
	region                           string // how to name the bucket's region; "" when the store has none
}

// Open opens the bucket of an s3, gcs or wasb connection, reading
// credentials through keys.
func Open(ctx context.Context, conn *connections.Connection, keys *connections.Keys, opts Options) (*Store, error) {
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if keys == nil {
		keys = conn.Keys()
	}
	bs := conn.Bucket()
	if bs == nil || bs.Bucket == "" {
		return nil, fault.New(fault.Usage, "%s: schema.bucket is required (e.g. %s)", conn, connections.BucketExample(conn.Kind))
	}
	loc, err := connections.ParseLocation(conn.Kind, bs.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", conn, err)
	}
	k := &keyReader{conn: conn, keys: keys}
	var s *Store
	switch conn.Kind {
	case connections.S3:
		s, err = openS3(ctx, k, loc, opts)
	case connections.GCS:
		s, err = openGCS(ctx, k, loc, opts)
	case connections.WASB:
		s, err = openAzure(ctx, k, loc, opts)
	default:
		return nil, fault.New(fault.Usage, "%s: not an object store (s3, gcs or wasb)", conn)
	}
	if err != nil {
		return nil, err
	}
	s.conn, s.Prefix, s.prefixDir, s.URL, s.name = conn, loc.Prefix, loc.Dir, loc.Display(), loc.Bucket
	args := []any{"url", s.URL, "auth", s.auth, "workers", opts.Workers}
	if s.endpoint != "" {
		args = append(args, "endpoint", s.endpoint)
	}
	opts.Log.Debug("bucket opened", args...)
	return s, nil
}

// Check lists at most one object under Prefix: it proves the credentials and
// that the bucket exists, without downloading anything. Its errors carry a
// class (3 auth, 4 not found, 5 unreachable, 2 bad configuration) and name
// the connection, the bucket and the fix.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.probe(ctx)
	return err
}

// probe is Check, and says whether anything is under Prefix.
func (s *Store) probe(ctx context.Context) (empty bool, err error) {
	prefix := s.Prefix
	if prefix != "" {
		prefix += "/"
	}
	page, _, err := s.Bucket.ListPage(ctx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	if err != nil {
		return false, s.explain(err, "listing")
	}
	if len(page) == 0 && s.Prefix != "" && !s.prefixDir {
		// The prefix may name one object (not when the URL ends with /).
		_, err := s.Bucket.Attributes(ctx, s.Prefix)
		switch {
		case err == nil:
			return false, nil
		case gcerrors.Code(err) == gcerrors.NotFound:
		case Classify(err) == fault.Auth && !s.listsKey(ctx, s.Prefix):
			// A policy that grants what is below the prefix refuses the
			// key itself: an empty prefix, as a run sees it.
		default:
			// An object these credentials may list but not read, or a
			// failed request: not "no object", which a run would contradict.
			return false, s.explain(err, fmt.Sprintf("reading %q in", s.Prefix))
		}
	}
	return len(page) == 0, nil
}

// explain turns an error of a request to the bucket into a classified error
// that names the connection, the bucket and the fix; op says what the
// request did ("listing", "reading \"key\"").
func (s *Store) explain(err error, op string) error {
	where := s.URL
	if s.endpoint != "" {
		where += " (endpoint " + s.endpoint + ")"
	}
	c := Classify(err)
	cause := Brief(err)
	if s.token.failed(err) {
		return fault.Wrap(c, &checkError{msg: s.explainToken(c, err, cause), err: err})
	}
	var msg string
	var dnsErr *net.DNSError
	switch c {
	case fault.NotFound:
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			msg = fmt.Sprintf("%s: the host %s does not exist: %s: %s; %s", s.conn, dnsErr.Name, where, cause, s.hints.host)
			break
		}
		msg = fmt.Sprintf("%s: %q does not exist: %s: %s; create it, or fix schema.bucket%s", s.conn, s.name, where, cause, s.hints.notFound)
	case fault.Auth:
		msg = fmt.Sprintf("%s: %s %s was refused with %s: %s; %s", s.conn, op, where, s.auth, cause, s.hints.auth)
	case fault.Transient:
		msg = fmt.Sprintf("%s: cannot reach %s: %s; check the network%s%s", s.conn, where, cause, s.hints.unreachable, handlers.ProxyHint(err.Error()))
	case fault.Usage:
		switch {
		case isTLS(err):
			msg = fmt.Sprintf("%s: TLS to %s failed: %s; %s", s.conn, where, cause, s.hints.tls)
		case isPlainHTTP(err):
			msg = fmt.Sprintf("%s: %s %s failed: the endpoint speaks plain http: %s; %s", s.conn, op, where, cause, s.hints.plainHTTP)
		case isTokenOverHTTP(err):
			msg = fmt.Sprintf("%s: %s %s failed: %s; a token credential (%s) needs an https endpoint: use an account key, a SAS token or a connection string with a plain-http endpoint", s.conn, op, where, cause, s.auth)
		case speaksTLS(s.endpoint):
			msg = fmt.Sprintf("%s: %s %s failed: %s; the endpoint speaks TLS, not plain http: give it as https://", s.conn, op, where, cause)
		case badBucketName(err):
			msg = fmt.Sprintf("%s: %s %s failed: %s; %q is not a valid name for the store: fix schema.bucket", s.conn, op, where, cause, s.name)
		case s.hints.region != "" && wrongRegion(err) != "":
			msg = fmt.Sprintf("%s: %s %s failed: %s; %s (the bucket's region is %s)", s.conn, op, where, cause, s.hints.region, wrongRegion(err))
		default:
			msg = fmt.Sprintf("%s: %s %s failed: %s; check the connection's settings", s.conn, op, where, cause)
		}
	case fault.Interrupted:
		msg = fmt.Sprintf("%s: %s %s: interrupted", s.conn, op, where)
	default:
		msg = fmt.Sprintf("%s: %s %s failed: %s", s.conn, op, where, cause)
	}
	return fault.Wrap(c, &checkError{msg: msg, err: err})
}

// speaksTLS reports an http:// endpoint whose server answers a TLS
// handshake: plain http requests to it fail with an unhelpful 400.
func speaksTLS(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	conn, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	// Only whether it speaks TLS, not whom: no verification.
	err = tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}).Handshake()
	var rh tls.RecordHeaderError
	return err == nil || !errors.As(err, &rh) && !errors.Is(err, io.EOF) && !fault.IsNetwork(err)
}

// attempted sums up the credential sources a chain tried, one short
// clause each, from the identity library's message ("Attempted
// credentials:" then a line per source, some with a whole HTTP response).
func attempted(msg string) string {
	_, rest, ok := strings.Cut(msg, "Attempted credentials:")
	if !ok {
		return strings.Join(strings.Fields(msg), " ")
	}
	var out []string
	for _, line := range strings.Split(rest, "\n") {
		line = strings.TrimSpace(line)
		// "EnvironmentCredential: missing …", or "ManagedIdentityCredential
		// authentication failed. " followed by the response's lines.
		name, text, _ := strings.Cut(line, " ")
		name = strings.TrimSuffix(name, ":")
		if !strings.HasSuffix(name, "Credential") {
			continue // a line of a response's dump
		}
		text = strings.TrimSpace(text)
		if i := strings.Index(text, ". "); i > 0 {
			text = text[:i] // its first sentence
		}
		text = strings.TrimSuffix(text, ".")
		if len(text) > 100 {
			text = text[:100] + "…"
		}
		out = append(out, name+": "+text)
	}
	if len(out) == 0 {
		return "no source answered"
	}
	return strings.Join(out, "; ")
}

// explainToken explains a failure to get credentials from the token
// service (class c), which is not the store's.
func (s *Store) explainToken(c fault.Class, err error, cause string) string {
	t := s.token
	switch {
	case t.none != "" && strings.Contains(err.Error(), "DefaultAzureCredential: failed to acquire a token"):
		return fmt.Sprintf("%s: no credentials were given, and %s found none that works (%s); %s", s.conn, s.auth, attempted(err.Error()), t.none)
	case c == fault.Usage && isTLS(err):
		return fmt.Sprintf("%s: TLS to %s failed: %s; %s", s.conn, t.where, cause, s.hints.tls)
	case c == fault.Transient:
		return fmt.Sprintf("%s: cannot reach %s: %s; check the network and %s", s.conn, t.where, cause, t.fix)
	case c == fault.Auth:
		return fmt.Sprintf("%s: %s refused the credentials (%s): %s; %s", s.conn, t.where, s.auth, cause, t.auth)
	}
	return fmt.Sprintf("%s: getting credentials from %s failed: %s; check %s and the connection's settings", s.conn, t.where, cause, t.fix)
}

// Brief is the cause of a request's failure on one line: Azure's errors
// span a dozen lines, and gocloud's "blob (code=Unknown)" prefix tells a
// user nothing.
func Brief(err error) string {
	var az *azcore.ResponseError
	if errors.As(err, &az) {
		s := fmt.Sprintf("HTTP %d", az.StatusCode)
		if az.ErrorCode != "" {
			s += " " + az.ErrorCode
		}
		if r := az.RawResponse; r != nil && r.Request != nil && r.Request.URL != nil {
			u := *r.Request.URL
			u.RawQuery = "" // may hold a SAS token
			s = r.Request.Method + " " + u.String() + ": " + s
		}
		return s
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		// A transport failure quotes the request's URL, whose query may
		// hold a SAS token: the query goes.
		if u, perr := url.Parse(ue.URL); perr == nil && u.RawQuery != "" {
			u.RawQuery = ""
			msg = strings.ReplaceAll(msg, ue.URL, u.String())
			msg = strings.ReplaceAll(msg, strconv.Quote(ue.URL), strconv.Quote(u.String()))
		}
	}
	// The identity library's messages span lines.
	msg = strings.Join(strings.Fields(msg), " ")
	// "blob (code=…): " or "blob (key "k") (code=…): ", wherever wrapping put it.
	if i := strings.Index(msg, "blob ("); i >= 0 {
		if j := strings.Index(msg[i:], "(code="); j >= 0 {
			if k := strings.Index(msg[i+j:], "): "); k >= 0 {
				msg = msg[:i] + msg[i+j+k+3:]
			}
		}
	}
	return msg
}

// checkError keeps the cause reachable (errors.As, gcerrors.Code) under the
// explained message.
type checkError struct {
	msg string
	err error
}

func (e *checkError) Error() string { return e.msg }
func (e *checkError) Unwrap() error { return e.err }

// Close closes the bucket and the clients behind it.
// Endpoint is where requests go ("" for the provider's default), as shown
// in messages: with no credentials.
func (s *Store) Endpoint() string { return s.endpoint }

// Credentials names how requests are authenticated (the credentials' kind
// and source, never a value), for messages.
func (s *Store) Credentials() string { return s.auth }

func (s *Store) Close() error {
	var errs []error
	if s.Bucket != nil {
		errs = append(errs, s.Bucket.Close())
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// keyReader reads a connection's settings through its Keys, naming the key
// and where its value came from in errors.
type keyReader struct {
	conn *connections.Connection
	keys *connections.Keys
}

// value returns the first of names that is set, and where it came from.
func (k *keyReader) value(names ...string) (secret.Value, bool, error) {
	return k.keys.Lookup(names...)
}

// str returns the first of names that is set. It is for settings (region,
// endpoint, account name…), which stay readable in logs and errors;
// credentials are read with value and handed to the SDK with Reveal.
func (k *keyReader) str(names ...string) (string, error) {
	v, ok, err := k.keys.Lookup(names...)
	if err != nil || !ok {
		return "", err
	}
	return strings.TrimSpace(v.Setting()), nil
}

// boolean reads a true/false setting, def when unset.
func (k *keyReader) boolean(def bool, names ...string) (bool, error) {
	v, ok, err := k.keys.Lookup(names...)
	if err != nil || !ok {
		return def, err
	}
	b, valid := v.Bool()
	if !valid {
		return def, fault.New(fault.Usage, "%s: %s (from %s) must be true or false", k.conn, names[0], v.Source())
	}
	return b, nil
}

// source names where the first set key of names came from, for messages.
func (k *keyReader) source(names ...string) string {
	v, ok, err := k.keys.Lookup(names...)
	if err != nil || !ok {
		return ""
	}
	return v.Source()
}

// usage returns a Usage-class error naming the connection.
func (k *keyReader) usage(format string, args ...any) error {
	return fault.New(fault.Usage, "%s: %s", k.conn, fmt.Sprintf(format, args...))
}

// Explain is transfer.Options.Explain: a refusal, or an answer that
// shows which setting is wrong, explained as the connection's own
// (explain); nil for any other usage error, which the generic message
// words as well.
func (s *Store) Explain(err error, what string) error {
	switch Classify(err) {
	case fault.Auth:
	case fault.Usage:
		if !fromTheStore(err) || !(isTLS(err) || isPlainHTTP(err) || isTokenOverHTTP(err) || badBucketName(err) || speaksTLS(s.endpoint) || s.hints.region != "" && wrongRegion(err) != "") {
			return nil
		}
	default:
		return nil
	}
	return s.explain(err, what+" in")
}
