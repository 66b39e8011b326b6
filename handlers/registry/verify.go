package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers"
)

// verified says how the credentials were proved.
type verified struct {
	Method string // "basic", "bearer", "anonymous" (the registry needs none)
	URL    string // the /v2/ endpoint that answered
	Realm  string // the token server, for the bearer flow
}

// verifier checks credentials against a registry's /v2/ endpoint, the way
// the docker CLI's login does.
type verifier struct {
	conn     *connections.Connection
	client   *http.Client
	insecure bool
	log      *slog.Logger
	attempts int
	backoff  time.Duration
}

func newVerifier(c *connections.Connection, insecure bool, log *slog.Logger) *verifier {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // schema.insecure asks for it
	}
	return &verifier{
		conn:     c,
		client:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		insecure: insecure,
		log:      log,
		attempts: 4,
		backoff:  250 * time.Millisecond,
	}
}

// verify proves cr against ep. Empty credentials are proved too: the
// registry must then allow anonymous access.
func (v *verifier) verify(ctx context.Context, ep endpoint, cr *credentials) (verified, error) {
	schemes := []string{ep.Scheme}
	if ep.Scheme == "" {
		schemes = []string{"https"}
		if v.insecure {
			// Like the docker daemon's insecure registries: https first
			// (certificate unchecked), then plain http.
			schemes = append(schemes, "http")
		}
	}
	var resp *http.Response
	var base string
	var errs []error
	for _, scheme := range schemes {
		base = scheme + "://" + ep.APIHost
		var err error
		resp, err = v.do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodGet, base+"/v2/", nil) })
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return verified{}, ctx.Err()
		}
		v.log.Debug("registry ping failed", "url", base+"/v2/", "error", err)
		errs = append(errs, err)
	}
	if resp == nil {
		return verified{}, v.netError(base+"/v2/", errs[len(errs)-1], errs)
	}
	drain(resp)
	ping := base + "/v2/"
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.Header.Get("Docker-Distribution-Api-Version") == "" {
			v.log.Warn("the endpoint answered without a Docker-Distribution-Api-Version header; is schema.url a registry?", "url", ping)
		}
		return verified{Method: "anonymous", URL: ping}, nil
	case http.StatusUnauthorized:
	default:
		return verified{}, v.statusError("GET", ping, resp)
	}
	challenges := parseChallenges(resp.Header.Values("WWW-Authenticate"))
	if ch, ok := challenges["bearer"]; ok {
		return v.bearer(ctx, ping, ch, cr)
	}
	if _, ok := challenges["basic"]; ok {
		return v.basic(ctx, ping, cr)
	}
	return verified{}, fault.New(fault.Auth, "%s: %s answered 401 without a Basic or Bearer challenge (WWW-Authenticate: %q); it is not a registry this tool can log in to", v.conn, ping, resp.Header.Get("WWW-Authenticate"))
}

func (v *verifier) needCredentials(ping string) error {
	return fault.New(fault.Auth, "%s: %s requires credentials and the connection has none; give username and password keys (or a docker config.json) in %s", v.conn, ping, where(v.conn))
}

func (v *verifier) basic(ctx context.Context, ping string, cr *credentials) (verified, error) {
	switch {
	case cr.empty():
		return verified{}, v.needCredentials(ping)
	case cr.Password.IsZero():
		return verified{}, fault.New(fault.Auth, "%s: %s uses basic authentication, which needs a username and password; the connection gives an %s (%s)", v.conn, ping, cr.kind(), cr.Source)
	}
	resp, err := v.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, ping, nil)
		if err == nil {
			req.SetBasicAuth(cr.Username.Name(), cr.Password.Reveal())
		}
		return req, err
	})
	if err != nil {
		return verified{}, v.netError(ping, err, nil)
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return verified{Method: "basic", URL: ping}, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return verified{}, fault.New(fault.Auth, "%s: %s refused the username and password (HTTP %d, basic auth; %s); fix them in %s",
			v.conn, ping, resp.StatusCode, cr.Source, where(v.conn))
	}
	return verified{}, v.statusError("GET", ping, resp)
}

// tokenResponse is a token server's answer (docker token spec and OAuth2).
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
}

func (v *verifier) bearer(ctx context.Context, ping string, ch map[string]string, cr *credentials) (verified, error) {
	realm := ch["realm"]
	ru, err := url.Parse(realm)
	if err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "" {
		return verified{}, fault.New(fault.Auth, "%s: %s names a token server %q that is not an http(s) URL", v.conn, ping, realm)
	}
	if ru.Scheme == "http" && !v.insecure && !strings.HasPrefix(ping, "http://") {
		return verified{}, fault.New(fault.Usage, "%s: the token server %s of %s is plain http; set schema.insecure: true to allow it", v.conn, realm, ping)
	}
	out := verified{Method: "bearer", URL: ping, Realm: realm}
	var token string
	switch {
	case !cr.RegistryToken.IsZero():
		token = cr.RegistryToken.Reveal()
	case !cr.IdentityToken.IsZero():
		token, err = v.oauthToken(ctx, ru, ch, cr)
	default:
		token, err = v.basicToken(ctx, ru, ch, cr)
	}
	if err != nil {
		return verified{}, err
	}
	resp, err := v.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, ping, nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req, err
	})
	if err != nil {
		return verified{}, v.netError(ping, err, nil)
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		if cr.empty() {
			out.Method = "anonymous"
		}
		return out, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		if cr.empty() {
			return verified{}, v.needCredentials(ping)
		}
		return verified{}, fault.New(fault.Auth, "%s: %s refused the token issued by %s (HTTP %d; %s)", v.conn, ping, realm, resp.StatusCode, cr.Source)
	}
	return verified{}, v.statusError("GET", ping, resp)
}

// basicToken asks the token server for a token with the username and
// password (or anonymously), as the docker token spec's GET.
func (v *verifier) basicToken(ctx context.Context, realm *url.URL, ch map[string]string, cr *credentials) (string, error) {
	u := *realm
	q := u.Query()
	if s := ch["service"]; s != "" {
		q.Set("service", s)
	}
	if s := ch["scope"]; s != "" {
		q.Set("scope", s)
	}
	if !cr.Username.IsZero() && !cr.Password.IsZero() {
		q.Set("account", cr.Username.Name())
	}
	u.RawQuery = q.Encode()
	resp, err := v.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err == nil && !cr.Password.IsZero() {
			req.SetBasicAuth(cr.Username.Name(), cr.Password.Reveal())
		}
		return req, err
	})
	if err != nil {
		return "", v.netError(realm.String(), err, nil)
	}
	return v.readToken(resp, realm.String(), cr)
}

// oauthToken exchanges an identity token (an OAuth2 refresh token) for an
// access token, as the docker CLI does.
func (v *verifier) oauthToken(ctx context.Context, realm *url.URL, ch map[string]string, cr *credentials) (string, error) {
	form := url.Values{}
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", cr.IdentityToken.Reveal())
	form.Set("client_id", "initializer")
	if s := ch["service"]; s != "" {
		form.Set("service", s)
	}
	if s := ch["scope"]; s != "" {
		form.Set("scope", s)
	}
	body := form.Encode()
	resp, err := v.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, realm.String(), strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return req, err
	})
	if err != nil {
		return "", v.netError(realm.String(), err, nil)
	}
	return v.readToken(resp, realm.String(), cr)
}

func (v *verifier) readToken(resp *http.Response, realm string, cr *credentials) (string, error) {
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest:
		if cr.empty() {
			return "", fault.New(fault.Auth, "%s: the token server %s gives no anonymous token (HTTP %d); give credentials in %s", v.conn, realm, resp.StatusCode, where(v.conn))
		}
		return "", fault.New(fault.Auth, "%s: the token server %s refused the %s (HTTP %d; %s); fix them in %s",
			v.conn, realm, cr.kind(), resp.StatusCode, cr.Source, where(v.conn))
	default:
		return "", v.statusError(resp.Request.Method, realm, resp)
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return "", fault.New(fault.Transient, "%s: the token server %s answered with no JSON token: %v", v.conn, realm, err)
	}
	if tr.Token == "" {
		tr.Token = tr.AccessToken
	}
	if tr.Token == "" {
		return "", fault.New(fault.Transient, "%s: the token server %s answered without a token", v.conn, realm)
	}
	return tr.Token, nil
}

// do sends the request built by mk, retrying transport failures and
// overloaded answers (429, 502, 503, 504) with a growing pause.
func (v *verifier) do(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, error) {
	var lastErr error
	for attempt := 0; attempt < v.attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(v.backoff << (attempt - 1)):
			}
		}
		req, err := mk()
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", "initializer")
		resp, err := v.client.Do(req.WithContext(ctx))
		if err != nil {
			lastErr = err
			if !retryable(err) || ctx.Err() != nil {
				return nil, err
			}
			continue
		}
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			if attempt < v.attempts-1 {
				drain(resp)
				continue
			}
		}
		return resp, nil
	}
	return nil, lastErr
}

// retryable reports transport errors worth another try: not certificate
// problems, not protocol mismatches, not unknown hosts.
func retryable(err error) bool {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns) && dns.IsNotFound, plainHTTP(err), badCertificate(err), errors.Is(err, context.Canceled):
		return false
	}
	return true
}

// plainHTTP reports an https request answered in plain HTTP (net/http turns
// the tls.RecordHeaderError into a plain error with this text).
func plainHTTP(err error) bool {
	var rec tls.RecordHeaderError
	return errors.As(err, &rec) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// badCertificate reports a TLS certificate that failed verification.
func badCertificate(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// netError turns a transport failure into a classified, actionable error.
// all holds every attempt's error when several schemes were tried.
func (v *verifier) netError(target string, err error, all []error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var dns *net.DNSError
	for _, e := range all {
		// https failed first, then http: report the https failure when it
		// is the telling one (a certificate), else the last.
		if badCertificate(e) {
			err = e
			break
		}
	}
	switch {
	case plainHTTP(err):
		return fault.New(fault.Usage, "%s: %s speaks plain HTTP, not HTTPS; set schema.insecure: true to allow plain HTTP (and write the url as http://host or just the host)", v.conn, target)
	case badCertificate(err):
		return fault.New(fault.Usage, "%s: the TLS certificate of %s is not trusted (%v); add its CA to the container's trust store (SSL_CERT_FILE), or set schema.insecure: true to skip the check", v.conn, target, rootCause(err))
	case errors.As(err, &dns) && dns.IsNotFound:
		fix := "fix schema.url"
		if dns.Name == "registry-1.docker.io" || dns.Name == "auth.docker.io" {
			fix = "Docker Hub's host is not known to the cluster's DNS: check its DNS and network access to Docker Hub (or name another registry in schema.url)"
		}
		return fault.New(fault.NotFound, "%s: the registry host %s is not known to DNS (%v); %s", v.conn, dns.Name, dns, fix)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fault.New(fault.Transient, "%s: %s did not answer in time after %d attempts: %v; check the network (and schema.url)", v.conn, target, v.attempts, rootCause(err))
	}
	return fault.New(fault.Transient, "%s: cannot reach %s after %d attempts: %v; check schema.url's host and port, and the network%s", v.conn, target, v.attempts, rootCause(err), handlers.ProxyHint(err.Error()))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rootCause drops net/http's "Get \"URL\": " wrapping, which repeats the URL.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError classifies an unexpected HTTP answer.
func (v *verifier) statusError(method, target string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	snippet := strings.Join(strings.Fields(string(body)), " ")
	if snippet != "" {
		snippet = ": " + snippet
	}
	class := fault.Usage
	hint := "check schema.url"
	switch {
	case resp.StatusCode == http.StatusNotFound:
		class, hint = fault.NotFound, "is schema.url a registry (it must serve the /v2/ API)?"
	case resp.StatusCode == http.StatusForbidden:
		class, hint = fault.Auth, "the credentials are not allowed to use this registry"
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		class, hint = fault.Transient, fmt.Sprintf("still failing after %d attempts", v.attempts)
	}
	return fault.New(class, "%s: %s %s answered HTTP %d%s; %s", v.conn, method, target, resp.StatusCode, snippet, hint)
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// parseChallenges reads WWW-Authenticate headers into scheme (lower-case) →
// parameters: `Bearer realm="https://auth/token",service="registry"`.
func parseChallenges(headers []string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, h := range headers {
		for _, ch := range splitChallenges(h) {
			scheme, rest, _ := strings.Cut(strings.TrimSpace(ch), " ")
			params := map[string]string{}
			for _, kv := range splitParams(rest) {
				k, val, ok := strings.Cut(kv, "=")
				if !ok {
					continue
				}
				val = strings.TrimSpace(val)
				if uq, err := unquote(val); err == nil {
					val = uq
				}
				params[strings.ToLower(strings.TrimSpace(k))] = val
			}
			if scheme != "" {
				out[strings.ToLower(scheme)] = params
			}
		}
	}
	return out
}

// splitChallenges splits one header holding several challenges
// ("Basic realm=x, Bearer realm=y"): a new challenge starts at a token that
// is followed by a space and is not a parameter.
func splitChallenges(h string) []string {
	var out []string
	parts := splitParams(h)
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if sp := strings.IndexByte(p, ' '); sp > 0 && !strings.Contains(p[:sp], "=") {
			out = append(out, p)
			continue
		}
		if len(out) == 0 {
			out = append(out, p)
			continue
		}
		out[len(out)-1] += "," + p
	}
	return out
}

// splitParams splits on commas outside double quotes.
func splitParams(s string) []string {
	var out []string
	var b strings.Builder
	inQuote, esc := false, false
	for _, r := range s {
		switch {
		case esc:
			esc = false
		case r == '\\' && inQuote:
			esc = true
		case r == '"':
			inQuote = !inQuote
		case r == ',' && !inQuote:
			out = append(out, b.String())
			b.Reset()
			continue
		}
		b.WriteRune(r)
	}
	if strings.TrimSpace(b.String()) != "" {
		out = append(out, b.String())
	}
	return out
}

func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s, nil
	}
	var b strings.Builder
	esc := false
	for _, r := range s[1 : len(s)-1] {
		if !esc && r == '\\' {
			esc = true
			continue
		}
		esc = false
		b.WriteRune(r)
	}
	return b.String(), nil
}
