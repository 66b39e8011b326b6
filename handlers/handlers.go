// Package handlers defines what a connection kind's handler does and keeps
// the kind → handler registry the command line dispatches on.
package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/pflag"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
)

// Request is one invocation of a handler.
type Request struct {
	Conn    *connections.Connection
	Keys    *connections.Keys
	Path    string    // --path: where to put the data; empty when not asked
	Paths   []Mapping // --paths: sub-paths to take, empty for everything
	Workers int       // parallel file copies
	Force   bool      // replace what stands in the way at Path
	// Checksum: on re-runs, a file is up to date when its content is the
	// same (object stores: by hash), not when its size and time are.
	Checksum bool
	Log      *slog.Logger
	// Terminal, when set, is where a live progress bar is drawn (stderr,
	// when it is a terminal).
	Terminal io.Writer
	// JSONLogs says the logs are JSON lines (--log-format json): what a
	// handler relays to stderr goes there as log lines too.
	JSONLogs bool
}

// Mapping is one --paths (--files, --dirs) entry: Src below the
// connection's root goes to Dst below Path. Both are cleaned relative names
// ("" is the root itself).
type Mapping struct {
	Src, Dst string
	Into     bool   // dst ended with a slash: a file goes into that folder, under its own name
	SrcDir   bool   // src ended with a slash: it names a folder, never a file
	Entry    string // the entry as given, for messages
	// Whole is set when the entry was read as src:dst at a colon: the
	// entry taken whole, as one name (cleaned), had the colon been part of
	// it. A name that exists under it makes the entry ambiguous.
	Whole string
}

// FileDst is where Src goes when it names a file: Dst, or Dst/<name of
// Src> with Into.
func (m Mapping) FileDst() string {
	if m.Into {
		return path.Join(m.Dst, path.Base(m.Src))
	}
	return m.Dst
}

// Name is the entry as given, with its flag, for messages: --files "a:b".
func (m Mapping) Name(flag string) string {
	return flag + " " + quoteEntry(m.Entry)
}

// quoteEntry quotes an entry as given: its backslashes (escapes) are shown
// once, not doubled as %q would.
func quoteEntry(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r == '"' || !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return `"` + s + `"`
}

// ColonHint is what a message about a name that was not found adds when the
// entry was read as src:dst at a colon.
func (m Mapping) ColonHint() string {
	if m.Whole == "" {
		return ""
	}
	return fmt.Sprintf(" (the entry was read as src:dst at a colon, source %q; for a colon in a name write \\:)", m.Src)
}

// Ambiguous is the error for an entry read as src:dst at a colon when the
// whole entry names something: the colon may be part of the name.
func (m Mapping) Ambiguous(conn fmt.Stringer, flag, what string) error {
	return fault.New(fault.Usage, "%s: %s is read as source %q to destination %q, and %s %q exists: say which is meant; write \\: for a colon that is part of the name, or ./ before the destination (%s:./%s) for src:dst",
		conn, m.Name(flag), m.Src, m.Dst, what, m.Whole, m.Src, m.Dst)
}

// cutUnescaped cuts s at the first sep not taken by a backslash.
func cutUnescaped(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// unescape takes a backslash before a comma, a colon or a backslash as
// making that character part of the name. Any other backslash is left, and
// refused later (names never hold one).
func unescape(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(",:\\", s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseMappings reads the values of flag (--paths, --files, --dirs) for
// conn. A value holds entries separated by commas, each "src" or "src:dst";
// a backslash makes the comma, colon or backslash after it part of a name.
// Entries that would leave their root, and empty ones, are refused.
func ParseMappings(conn fmt.Stringer, flag string, values []string) ([]Mapping, error) {
	var out []Mapping
	for _, v := range values {
		if v == "" {
			return nil, fault.New(fault.Usage, "%s: %s is given an empty value; give at least one entry (src or src:dst), or leave %s out to take everything", conn, flag, flag)
		}
		for rest, more := v, true; more; {
			var entry string
			entry, rest, more = cutUnescaped(rest, ',')
			if entry == "" {
				return nil, fault.New(fault.Usage, "%s: %s %s holds an empty entry (a comma too many?); remove it, or write \\, for a comma in a name", conn, flag, quoteEntry(v))
			}
			m, err := parseMapping(entry)
			if err != nil {
				hint := ""
				if m.Whole != "" {
					hint = fmt.Sprintf("; the entry was read as src:dst, source %s: for a colon in a name write \\:", quoteEntry(m.Src))
				}
				return nil, fault.New(fault.Usage, "%s: %s: %w; give a source relative to the connection's root and a destination relative to --path, as src or src:dst%s", conn, m.Name(flag), err, hint)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func parseMapping(entry string) (Mapping, error) {
	rawSrc, rawDst, hasDst := cutUnescaped(entry, ':')
	src, dst := unescape(rawSrc), unescape(rawDst)
	m := Mapping{Entry: entry}
	if !hasDst {
		dst = src
	} else if whole, err := fsutil.CleanRel(unescape(entry)); err == nil {
		m.Whole = whole
	}
	m.Src = src // as given, for the error; cleaned below
	var err error
	if m.Src, err = fsutil.CleanRel(src); err != nil {
		m.Src = src
		return m, err
	}
	if m.Dst, err = fsutil.CleanRel(dst); err != nil {
		return m, err
	}
	m.SrcDir = strings.HasSuffix(src, "/")
	m.Into = hasDst && strings.HasSuffix(dst, "/")
	return m, nil
}

// CheckTargets refuses destinations (relative, cleaned; "" is the target
// folder itself) of which one is, or is inside, another: what goes to one
// would overwrite what goes to the other. names say which flag entry
// asked for each, for the error.
func CheckTargets(conn fmt.Stringer, names, dsts []string) error {
	show := func(d string) string {
		if d == "" {
			return "--path itself"
		}
		return strconv.Quote(d)
	}
	for i := range dsts {
		for j := i + 1; j < len(dsts); j++ {
			a, b := dsts[i], dsts[j]
			if names[i] == names[j] && a == b {
				return fault.New(fault.Usage, "%s: %s is given twice; give it once", conn, names[i])
			}
			if a == b || a == "" || b == "" || strings.HasPrefix(b, a+"/") || strings.HasPrefix(a, b+"/") {
				return fault.New(fault.Usage, "%s: %s and %s write to the same place (%s and %s): one would overwrite the other; give them separate destinations (src:dst)", conn, names[i], names[j], show(a), show(b))
			}
		}
	}
	return nil
}

// Result says what a handler did; it becomes the --result JSON.
type Result struct {
	Summary string         `json:"summary"`
	Path    string         `json:"path,omitempty"`
	Files   int64          `json:"files"`
	Bytes   int64          `json:"bytes"`
	Skipped int64          `json:"skipped"`
	Details map[string]any `json:"details,omitempty"`
}

// Handler prepares one kind of connection.
type Handler interface {
	// Check validates the connection and its environment without writing
	// anything to the target.
	Check(ctx context.Context, req *Request) (*Result, error)
	// Run does the work: brings the data to req.Path.
	Run(ctx context.Context, req *Request) (*Result, error)
}

// Flagger is implemented by handlers that take flags of their own (for
// example --revision for git). The command line adds them to the run and
// check commands; the handler keeps the values it is given.
type Flagger interface {
	Flags(fs *pflag.FlagSet)
}

// FlagUser is implemented by handlers that use only some of the flags every
// run and check takes (CommonFlags): a run refuses one given that its
// handler does not use, rather than ignore it. A handler without it uses
// them all.
type FlagUser interface {
	UsesFlags() []string
}

// CommonFlags are the flags every run and check takes, which not every
// handler uses (FlagUser).
var CommonFlags = []string{"paths", "workers", "checksum", "force"}

// Registry maps kinds to their built-in handlers, and holds the fallback
// handler for kinds without one.
type Registry struct {
	byKind   map[connections.Kind]Handler
	fallback Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byKind: map[connections.Kind]Handler{}} }

// Register makes h the handler of kinds.
func (r *Registry) Register(h Handler, kinds ...connections.Kind) {
	for _, k := range kinds {
		if _, dup := r.byKind[k]; dup {
			panic(fmt.Sprintf("handlers: kind %s registered twice", k))
		}
		r.byKind[k] = h
	}
}

// SetFallback makes h the handler of every kind without a built-in one.
func (r *Registry) SetFallback(h Handler) { r.fallback = h }

// For returns the handler of kind and whether it is built in. For a kind
// without a built-in handler it returns the fallback (nil when none is set).
func (r *Registry) For(kind connections.Kind) (h Handler, builtIn bool) {
	if h, ok := r.byKind[kind]; ok {
		return h, true
	}
	return r.fallback, false
}

// Handlers returns every distinct handler, the fallback last, for flag wiring.
func (r *Registry) Handlers() []Handler {
	var out []Handler
	seen := map[Handler]bool{}
	for _, k := range r.Kinds() {
		if h := r.byKind[k]; !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	if r.fallback != nil && !seen[r.fallback] {
		out = append(out, r.fallback)
	}
	return out
}

// KindsOf lists the kinds h is the built-in handler of, sorted.
func (r *Registry) KindsOf(h Handler) []connections.Kind {
	var out []connections.Kind
	for _, k := range r.Kinds() {
		if r.byKind[k] == h {
			out = append(out, k)
		}
	}
	return out
}

// Kinds lists the kinds with a built-in handler, sorted.
func (r *Registry) Kinds() []connections.Kind {
	out := make([]connections.Kind, 0, len(r.byKind))
	for k := range r.byKind {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ProxyHint says what to check when a failure to connect was the proxy's
// rather than the endpoint's: Go's "proxyconnect", or (curl, under the git
// CLI) a failure to reach the host and port of the proxy named in
// HTTPS_PROXY, HTTP_PROXY or ALL_PROXY. It is "" otherwise.
func ProxyHint(msg string) string {
	const fix = ": check it, or list the endpoint's host in NO_PROXY"
	if strings.Contains(msg, "proxyconnect") {
		return "; the proxy in HTTPS_PROXY / HTTP_PROXY could not be reached" + fix
	}
	var named []string
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"} {
		v := os.Getenv(k)
		if v == "" {
			continue
		}
		if !strings.Contains(v, "://") {
			v = "http://" + v
		}
		u, err := url.Parse(v)
		if err != nil || u.Hostname() == "" {
			continue
		}
		port := u.Port()
		if port == "" {
			port = "1080" // curl's default proxy port
		}
		// curl's "Failed to connect to HOST port PORT after …": the
		// whole host and port, not a longer one that starts alike.
		if regexp.MustCompile(`to connect to ` + regexp.QuoteMeta(u.Hostname()) + ` port ` + port + `\b`).MatchString(msg) {
			named = append(named, "$"+k)
		}
	}
	if len(named) == 0 {
		return ""
	}
	return "; the proxy in " + strings.Join(named, " / ") + " could not be reached" + fix
}
