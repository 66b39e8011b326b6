package connections

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/secret"
)

// Location is a parsed bucket URL.
type Location struct {
	Scheme string // as written, lower-cased: s3, gs, gcs, wasb, wasbs, https, az, abfs, abfss
	Bucket string // S3/GCS bucket, Azure container
	Prefix string // key prefix: no leading or trailing slash, "" for the whole bucket
	Dir    bool   // the URL ends with a slash after a prefix: a folder, never one object

	// Azure only.
	Account string     // storage account named by the URL, "" when it names none
	Host    string     // service host named by the URL (account.blob.core.windows.net), "" when none
	Service string     // the service URL the URL names (https://account.blob.core.windows.net), "" when none
	SAS     url.Values // a SAS token given as the https URL's query, nil when none
}

// Display is the credential-free form of the Location for logs and results.
func (l Location) Display() string {
	var s string
	switch l.Scheme {
	case "wasb", "wasbs":
		s = l.Scheme + "://" + l.Bucket + "@" + l.Host
	case "abfs", "abfss":
		if l.Host != "" {
			s = l.Scheme + "://" + l.Bucket + "@" + l.Host
		} else {
			s = l.Scheme + "://" + l.Bucket
		}
	case "https":
		// A URL, its path percent-encoded as it was given.
		s = l.Service + "/" + l.Bucket
		if l.Prefix != "" {
			s += (&url.URL{Path: "/" + l.Prefix}).EscapedPath()
		}
		return s
	default:
		s = l.Scheme + "://" + l.Bucket
	}
	if l.Prefix != "" {
		s += "/" + l.Prefix
	}
	return s
}

// AzureHost matches upstream's <container>@<account>.blob.core.windows.net,
// widened to the other Azure clouds (blob.core.chinacloudapi.cn, …) and to
// the Data Lake endpoint (dfs.core.windows.net), which serves the same data.
var AzureHost = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)\.(blob|dfs)\.(core\.[a-z0-9.-]+)$`)

// ParseLocation parses the bucket URL of a connection as upstream does
// (S3Path, GcsPath, WasbPath): the bucket is the URL's host (for wasb, the
// container before the @), the prefix the path without surrounding slashes.
// Paths are taken literally: no percent-decoding, no query, except for the
// https form, a URL whose path is percent-encoded and whose query may carry
// a SAS token.
func ParseLocation(kind Kind, raw string) (Location, error) {
	loc, problem := parseLocation(kind, raw)
	if problem != "" {
		return Location{}, fault.New(fault.Usage, "schema.bucket %q: %s", shownURL(raw), problem)
	}
	return loc, nil
}

// parseLocation is ParseLocation with what is wrong as text ("" when
// nothing is), for the catalog's validation to report with the others.
func parseLocation(kind Kind, raw string) (Location, string) {
	bad := func(format string, args ...any) (Location, string) {
		return Location{}, fmt.Sprintf(format, args...)
	}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(raw), "://")
	if !ok || rest == "" {
		return bad("expected a URL like %s", bucketExample[kind])
	}
	scheme = strings.ToLower(scheme)
	if !slices.Contains(bucketSchemes[kind], scheme) {
		return bad("scheme %s:// is not valid for kind %s (e.g. %s)", scheme, kind, bucketExample[kind])
	}
	netloc, path, _ := strings.Cut(rest, "/")
	loc := Location{Scheme: scheme}
	if scheme == "https" {
		var query string
		path, query, _ = strings.Cut(path, "?")
		if query != "" {
			q, err := url.ParseQuery(query)
			if err != nil || q.Get("sig") == "" {
				return bad("the query of an https bucket URL can only be a SAS token (sv=…&sig=…)")
			}
			loc.SAS = q
		}
		// A URL, as the portal and the SDKs give it: its path is
		// percent-encoded ("with%20space" names "with space").
		d, err := url.PathUnescape(path)
		if err != nil {
			return bad("the path of an https bucket URL is percent-encoded (%v): write a %% in a name as %%25", err)
		}
		path = d
	}
	dir := strings.HasSuffix(path, "/")
	path = strings.Trim(path, "/")

	switch scheme {
	case "s3", "gs", "gcs":
		// A user part (user:password@, whose password may hold a slash, so
		// that the @ comes after the first one): never quoted.
		if at := strings.LastIndexByte(rest, '@'); strings.Contains(netloc, "@") || strings.Contains(netloc, ":") && at > len(netloc) {
			return bad("credentials do not belong in the bucket URL: give them in the connection's secret")
		}
		if err := checkName(netloc); err != nil {
			return bad("bucket name: %v", err)
		}
		loc.Bucket, loc.Prefix = netloc, path
	case "wasb", "wasbs":
		container, host, ok := strings.Cut(netloc, "@")
		m := AzureHost.FindStringSubmatch(strings.ToLower(host))
		if !ok || container == "" || m == nil {
			return bad("wasbs url must be of the form <container>@<account>.blob.core.windows.net")
		}
		loc.Bucket, loc.Account, loc.Host, loc.Prefix = container, m[1], strings.ToLower(host), path
		loc.Service = "https://" + blobHost(m)
	case "abfs", "abfss", "az":
		container, host, hasAt := strings.Cut(netloc, "@")
		if hasAt {
			m := AzureHost.FindStringSubmatch(strings.ToLower(host))
			if m == nil {
				return bad("expected <container>@<account>.dfs.core.windows.net")
			}
			loc.Account, loc.Host = m[1], strings.ToLower(host)
			loc.Service = "https://" + blobHost(m)
		}
		loc.Bucket, loc.Prefix = container, path
	case "https":
		// https://<account>.blob.core.windows.net/<container>/<path>; an
		// emulator (Azurite) puts the account first in the path instead:
		// https://127.0.0.1:10000/<account>/<container>/<path>.
		loc.Host = strings.ToLower(netloc)
		loc.Service = "https://" + loc.Host
		if m := AzureHost.FindStringSubmatch(loc.Host); m != nil {
			loc.Account = m[1]
		} else if IsLocalHost(loc.Host) {
			loc.Account, path, _ = strings.Cut(path, "/")
			loc.Service += "/" + loc.Account
		}
		container, p, _ := strings.Cut(path, "/")
		if netloc == "" || container == "" || (IsLocalHost(loc.Host) && loc.Account == "") {
			return bad("expected https://<account>.blob.core.windows.net/<container>/<path>")
		}
		loc.Bucket, loc.Prefix = container, strings.Trim(p, "/")
	}
	if kind == WASB {
		if err := checkName(loc.Bucket); err != nil {
			return bad("container name: %v", err)
		}
	}
	loc.Dir = dir && loc.Prefix != ""
	return loc, ""
}

// shownURL is a bucket URL as errors may quote it: without a query (an
// https URL's may hold a SAS signature) and without what may be credentials
// before an @: for s3 and gs the whole user part (no bucket name holds an
// @ or a colon), for the others the password of a user:password@ (for wasb
// the part before the @ is the container). A password may hold a slash,
// so the last @ counts.
func shownURL(raw string) string {
	raw = strings.TrimSpace(raw)
	scheme, rest, ok := strings.Cut(raw, "://")
	if ok && slices.Contains([]string{"s3", "gs", "gcs"}, strings.ToLower(scheme)) {
		// Before the query is cut: a password may hold a ? too.
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if user := rest[:at]; strings.Contains(user, ":") || !strings.Contains(user, "/") {
				rest = secret.Redacted + rest[at:]
			}
		}
		return scheme + "://" + noQuery(rest)
	}
	return noQuery(secret.BlankUserinfo(raw))
}

// noQuery blanks the query of a URL (an https URL's may hold a SAS
// signature).
func noQuery(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?" + secret.Redacted
	}
	return s
}

// IsLocalHost reports a loopback host (with or without a port), where Azure
// emulators serve accounts path-style.
func IsLocalHost(host string) bool {
	h := host
	if i := strings.LastIndex(h, ":"); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.Trim(h, "[]")
	return h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.")
}

// blobHost returns the blob service host of a wasbHost match.
func blobHost(m []string) string { return m[1] + ".blob." + m[3] }

// checkName refuses what no store accepts as a bucket or container name and
// would only make a confusing request: nothing, spaces, URL syntax.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("is empty")
	}
	if i := strings.IndexAny(name, " \t?#@:/\\%"); i >= 0 {
		return fmt.Errorf("%q may not contain %q", name, name[i])
	}
	return nil
}
