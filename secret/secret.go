// Package secret keeps credentials out of logs, errors and results.
//
// A Value read from a secret prints as [redacted] through every fmt verb,
// slog and JSON. Its real content is reached only through Reveal, which also
// remembers it, so that Scrub (applied to every log line and every error the
// command prints) can blank it wherever a library echoes it back.
package secret

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Redacted is what a secret prints as.
const Redacted = "[redacted]"

// minLen is the shortest revealed value Scrub replaces: shorter ones would
// blank ordinary words ("true", port numbers) all over the logs.
const minLen = 6

// Value is a string that may be secret.
type Value struct {
	raw    string
	secret bool
	source string
}

// New returns a value; isSecret says whether it must never be printed.
// source names where it came from (a file path or an environment variable),
// which is safe to print.
func New(raw string, isSecret bool, source string) Value {
	return Value{raw: raw, secret: isSecret, source: source}
}

// Plain returns a non-secret value.
func Plain(s string) Value { return Value{raw: s} }

// Reveal returns the content, for handing to a client library.
func (v Value) Reveal() string {
	if v.secret {
		Register(v.raw)
	}
	return v.raw
}

// Setting returns the content of a value that is a setting rather than a
// credential (a region, an endpoint, an account name): it is not registered
// for scrubbing, so logs and errors keep showing it.
func (v Value) Setting() string { return v.raw }

// Name returns the content of a value that names an account (a user name,
// an access key ID): like a setting, it is not blanked wherever its text
// appears (an organisation's or a bucket's name, a path), since it opens
// nothing by itself. One that looks like a token (long, or with a known
// token's prefix), which some put in a user name's field, is handled as a
// secret.
func (v Value) Name() string {
	if v.secret && looksLikeToken(v.raw) {
		Register(v.raw)
	}
	return v.raw
}

// looksLikeToken reports a value that may be a token rather than a name.
func looksLikeToken(s string) bool {
	if len(s) >= 32 {
		return true
	}
	for _, p := range []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gldt-", "xoxb-", "xoxp-", "ya29."} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// IsSecret says whether the value must not be printed.
func (v Value) IsSecret() bool { return v.secret }

// Source names where the value was read from.
func (v Value) Source() string { return v.source }

// IsZero reports an empty value.
func (v Value) IsZero() bool { return v.raw == "" }

// String prints the value, or [redacted] for a secret.
func (v Value) String() string {
	if v.secret {
		return Redacted
	}
	return v.raw
}

// GoString keeps %#v from printing the content.
func (v Value) GoString() string { return "secret.Value(" + v.String() + ")" }

// LogValue keeps slog from printing the content.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MarshalText keeps JSON and text encoders from printing the content.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Bool interprets "true"/"false" (any case) as upstream does; ok is false for
// anything else.
func (v Value) Bool() (b, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v.raw)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

var (
	mu       sync.RWMutex
	revealed = map[string]struct{}{}
	ordered  []string // longest first, so a secret containing another is blanked whole
	// windows holds every windowLen-character piece of the key material in
	// the secrets: a piece of a key printed cut short (an error quoting its
	// first bytes) is blanked too.
	windows = map[string]struct{}{}
)

// windowLen is the shortest piece of key material Scrub blanks.
const windowLen = 20

// Register remembers s as a secret for Scrub.
func Register(s string) {
	s = strings.TrimSpace(s)
	if len(s) < minLen {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if _, ok := revealed[s]; ok {
		return
	}
	revealed[s] = struct{}{}
	ordered = append(ordered, s)
	addPart := func(part string) {
		if len(part) < minLen {
			return
		}
		if _, ok := revealed[part]; !ok {
			revealed[part] = struct{}{}
			ordered = append(ordered, part)
		}
		addWindows(part)
	}
	var v any
	switch {
	case strings.Contains(s, "\n"):
		// A key file, a kubeconfig, an .env file, a JSON key: a part of
		// it printed alone (a line, a password's value) is blanked too;
		// its structure ("apiVersion: v1", armour lines) is not.
		for _, part := range secretParts(s) {
			addPart(part)
		}
	case strings.HasPrefix(s, "{") && json.Unmarshal([]byte(s), &v) == nil:
		// A JSON key on one line (GC_KEYFILE_DICT): its settings are
		// read as those of one laid out on lines are.
		jsonParts(v, "", addPart)
	default:
		addWindows(s)
	}
	sort.Slice(ordered, func(i, j int) bool { return len(ordered[i]) > len(ordered[j]) })
	// Libraries may print a secret URL-encoded (userinfo, query strings).
	if e := url.QueryEscape(s); e != s {
		revealed[e] = struct{}{}
		ordered = append(ordered, e)
	}
}

// jsonParts gives add the parts of a JSON secret's value v, of the setting
// name, to blank where they are printed alone, as secretParts does for a
// secret laid out on lines: the value of a setting whose name says it is
// secret (and its lines), and, outside public settings, the runs that look
// like key material. Numbers and booleans are no secret's parts.
func jsonParts(v any, name string, add func(string)) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			jsonParts(x, k, add)
		}
	case []any:
		for _, x := range t {
			jsonParts(x, name, add)
		}
	case string:
		switch {
		case secretSetting(name):
			add(t)
			if strings.Contains(t, "\n") {
				for _, part := range secretParts(t) {
					add(part)
				}
			}
		case !publicSetting(name) && strings.Contains(t, "\n"):
			// A file held in a value (a .netrc, an .env, a kubeconfig).
			for _, part := range secretParts(t) {
				add(part)
			}
		case !publicSetting(name):
			for _, run := range keyRuns.FindAllString(t, -1) {
				if keyLike(run) {
					add(run)
				}
			}
			if cryptHash.MatchString(t) {
				add(t)
			}
		}
	}
}

// secretParts returns the parts of a multi-line secret to blank where
// they are printed alone:
//   - every line, except those of its structure: PEM armour, INI section
//     headers and comments, and "name: value" or "name=value" settings
//     whose name says nothing secret ("apiVersion: v1", "DB_HOST=db");
//   - the value of each setting whose name says it is secret
//     ("password: …", "export DB_PASSWORD=…", "token: …", a .netrc's
//     "password …", a .pgpass line's last field, a crypt hash);
//   - in any line but a public setting's (a name, a host, a URL), every
//     run that looks like key material: 20 or more base64, base64url or
//     hex characters (without the padding; with and without "/") with a
//     digit and an upper-case letter (32 or more when all hex).
//
// A JSON string's escaped newlines ("\n") end a line too.
func secretParts(s string) []string {
	var out []string
	add := func(p string) {
		p = strings.TrimSpace(p)
		if len(p) >= minLen && !strings.HasPrefix(p, "-----") {
			out = append(out, p)
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(s, `\n`, "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "-----") {
			continue
		}
		for _, m := range wordSecret.FindAllStringSubmatch(line, -1) {
			add(m[1]) // "password p" (.netrc), wherever it stands
		}
		m := settingLine.FindStringSubmatch(line)
		pgpass := strings.Count(line, ":") >= 4 && !strings.Contains(line, " ")
		switch {
		case pgpass:
			add(line)
			add(line[strings.LastIndex(line, ":")+1:])
		case m == nil:
			if !iniLine.MatchString(line) {
				add(line) // a key's body, a password alone
			}
		default:
			name, value := m[1], settingValue(m[2]+m[3])
			switch {
			case secretSetting(name):
				add(line)
				add(value)
			case cryptHash.MatchString(value):
				add(value) // htpasswd's user:hash
			}
			if publicSetting(name) {
				continue
			}
		}
		// With and without "/": a path's last part, a base64 key with one.
		for _, runs := range [][]string{keyRuns.FindAllString(line, -1), keyWords.FindAllString(line, -1)} {
			for _, run := range runs {
				if keyLike(run) {
					out = append(out, run)
				}
			}
		}
	}
	return out
}

// settingValue is a setting's value without its quotes, a trailing comma
// (JSON) or a trailing comment (" # …").
func settingValue(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 1 && (v[0] == '"' || v[0] == '\'') {
		if end := strings.IndexByte(v[1:], v[0]); end >= 0 {
			return v[1 : end+1]
		}
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	return strings.Trim(strings.TrimSuffix(strings.TrimSpace(v), ","), `"'`)
}

// secretSetting reports a setting name that says its value is secret.
func secretSetting(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "webhook") || secretName.MatchString(n) && !publicSuffix.MatchString(n)
}

// publicSetting reports a setting whose value is public (a name, a host, a
// URL, a path): nothing in it is taken for key material.
func publicSetting(name string) bool {
	n := strings.ToLower(name)
	return !secretSetting(n) && (publicSuffix.MatchString(n) || publicName[n])
}

// keyLike reports a run of key characters that looks like key material.
func keyLike(run string) bool {
	if len(run) < 20 {
		return false
	}
	digit, upper, hex := false, false, true
	for _, r := range run {
		digit = digit || r >= '0' && r <= '9'
		upper = upper || r >= 'A' && r <= 'Z'
		hex = hex && (r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F')
	}
	return digit && (upper || hex && len(run) >= 32)
}

var (
	// settingLine is a "name: value" or "name=value" line (YAML, .env
	// with or without "export", JSON, INI), a YAML list item's included.
	// (Not a base64 line's padding: "…AQC7=", "…AQ==".)
	settingLine = regexp.MustCompile(`^(?:-\s+)?(?:export\s+)?["']?([A-Za-z_][A-Za-z0-9_.\-]*)["']?\s*(?::\s*(.*)|=\s*([^=\s].*))$`)
	// secretName is in a setting name that says its value is secret.
	secretName = regexp.MustCompile(`pass|pwd|secret|token|key|cred|auth|private|cert|sig|session|cookie|bearer|connection_?string|dsn|(^|_)pw$|(^|_)pat$`)
	// publicSuffix ends the name of a setting that names or locates
	// something (token_uri, credsStore, aws_access_key_id, S3_KEY_PREFIX).
	publicSuffix = regexp.MustCompile(`(uri|url|store|helper|helpers|prefix|path|file|id|type|name|region|endpoint|version|algorithm|method)$`)
	publicName   = map[string]bool{"server": true, "cluster": true, "context": true, "current-context": true, "namespace": true,
		"apiversion": true, "kind": true, "host": true, "hostname": true, "user": true, "username": true, "login": true, "machine": true}
	// wordSecret is ".netrc"'s "password p" and the like.
	wordSecret = regexp.MustCompile(`(?i)(?:^|\s)(?:password|passwd|passphrase)\s+(\S+)`)
	// iniLine is an INI section header or a comment.
	iniLine   = regexp.MustCompile(`^(\[[^\]]*\]|[#;].*)$`)
	cryptHash = regexp.MustCompile(`^\$[0-9a-z]+\$`)
	keyRuns   = regexp.MustCompile(`[A-Za-z0-9+/_\-]+`)
	keyWords  = regexp.MustCompile(`[A-Za-z0-9+_\-]+`)
)

// addWindows adds the windowLen-character pieces of the runs of key
// material in part to windows (mu held).
func addWindows(part string) {
	for _, run := range keyRuns.FindAllString(part, -1) {
		if !keyLike(run) {
			continue
		}
		for i := 0; i+windowLen <= len(run); i++ {
			windows[run[i:i+windowLen]] = struct{}{}
		}
	}
}

// Scrub replaces every registered secret in s, any piece of their key
// material of windowLen characters or more, and the password of any URL
// with userinfo, by [redacted].
func Scrub(s string) string {
	mu.RLock()
	for _, sec := range ordered {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	if len(windows) > 0 {
		s = blankPieces(s)
	}
	mu.RUnlock()
	return BlankUserinfo(s)
}

// blankPieces replaces each stretch of s whose every windowLen-character
// piece is one of windows (mu held).
func blankPieces(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+windowLen <= len(s); {
		if _, ok := windows[s[i:i+windowLen]]; !ok {
			i++
			continue
		}
		j := i + windowLen
		for j < len(s) {
			if _, ok := windows[s[j+1-windowLen:j+1]]; !ok {
				break
			}
			j++
		}
		b.WriteString(s[last:i])
		b.WriteString(Redacted)
		last, i = j, j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// BlankUserinfo blanks "user:password@" in anything that looks like a URL,
// a password holding a slash, a ? or a # included.
func BlankUserinfo(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		scheme := s[strings.LastIndexAny(s[:i], " \t\n\"'=(")+1 : i]
		s = s[i+3:]
		end := strings.IndexAny(s, "/ \t\n\"'?#")
		if end < 0 {
			end = len(s)
		}
		authority := s[:end]
		at := strings.LastIndex(authority, "@")
		if c := strings.Index(authority, ":"); at < 0 && c >= 0 && end < len(s) && !allDigits(authority[c+1:]) {
			// The authority ended early, inside a password (user:pa/ss@host):
			// the last @ of the URL ends it. A port (host:8080/…) does not.
			tokenEnd := strings.IndexAny(s, " \t\n\"'")
			if tokenEnd < 0 {
				tokenEnd = len(s)
			}
			if a := strings.LastIndex(s[:tokenEnd], "@"); a > end {
				authority, at = s[:a+1], a
			}
		}
		if at >= 0 {
			user := authority[:at]
			switch c := strings.Index(user, ":"); {
			case c >= 0:
				user = user[:c] + ":" + Redacted
			case strings.HasSuffix(strings.ToLower(scheme), "ssh"):
				// An SSH login name is not a credential (ssh://git@host).
			case isAzureScheme(scheme):
				// Nor is an Azure container (wasbs://container@account…).
			default:
				user = Redacted // a bare token as the user name (https://TOKEN@host)
			}
			b.WriteString(user + "@")
			s = s[at+1:]
		}
	}
}

// allDigits reports a non-empty run of ASCII digits (a port).
func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// isAzureScheme reports the schemes whose URLs put a container, not a
// user, before the @: wasb[s]://container@account…, abfs[s]://….
func isAzureScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "wasb", "wasbs", "abfs", "abfss":
		return true
	}
	return false
}

// URL returns rawURL without any userinfo, for logs and results.
func URL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return BlankUserinfo(rawURL)
	}
	u.User = nil
	return u.String()
}

// Handler wraps a slog.Handler so that every message and string attribute is
// scrubbed before it is written.
func Handler(h slog.Handler) slog.Handler { return &handler{h} }

type handler struct{ next slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	scrubbed := make([]slog.Attr, len(as))
	for i, a := range as {
		scrubbed[i] = scrubAttr(a)
	}
	return &handler{h.next.WithAttrs(scrubbed)}
}

func (h *handler) WithGroup(name string) slog.Handler { return &handler{h.next.WithGroup(name)} }

func scrubAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = scrubAttr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Scrub(err.Error()))
		}
		return slog.Attr{Key: a.Key, Value: v}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
