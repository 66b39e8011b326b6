package git

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// remote is a parsed repository URL: https://host/org/repo, ssh://user@host:port/path,
// the scp-like user@host:org/repo.git, git://host/repo or file:///path.
type remote struct {
	Scheme   string // https, http, ssh, git, file; "scp" for user@host:path
	User     string // the URL's user name (kept for ssh, a credential for http)
	Password string // the URL's password (a credential, never printed)
	HasPass  bool
	Host     string // host name, without port
	Port     string
	Path     string // as in the URL; for scp-like URLs without the leading "/"
	Query    string
}

// parseRemote reads a repository URL in any form git accepts.
func parseRemote(s string) (remote, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return remote{}, fmt.Errorf("the URL is empty")
	}
	if !strings.Contains(s, "://") {
		// scp-like: [user@]host:path, where no "/" comes before the ":".
		colon := strings.Index(s, ":")
		slash := strings.Index(s, "/")
		if colon > 0 && (slash < 0 || colon < slash) {
			hostPart, p := s[:colon], s[colon+1:]
			r := remote{Scheme: "scp", Path: p}
			if at := strings.LastIndex(hostPart, "@"); at >= 0 {
				r.User, hostPart = hostPart[:at], hostPart[at+1:]
			}
			r.Host = strings.Trim(hostPart, "[]")
			if r.Host == "" || p == "" {
				return remote{}, fmt.Errorf("%q is not a valid URL: expected https://host/org/repo, ssh://git@host/org/repo or git@host:org/repo", s)
			}
			return r, nil
		}
		if strings.HasPrefix(s, "/") {
			return remote{Scheme: "file", Path: s}, nil
		}
		return remote{}, fmt.Errorf("%q is not a valid URL: expected https://host/org/repo, ssh://git@host/org/repo or git@host:org/repo", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		// Never echo the parser's message: it quotes the whole URL, password included.
		return remote{}, fmt.Errorf("the URL is not valid: expected https://host/org/repo, ssh://git@host/org/repo or git@host:org/repo")
	}
	r := remote{Scheme: strings.ToLower(u.Scheme), Host: u.Hostname(), Port: u.Port(), Path: u.Path, Query: u.RawQuery}
	switch r.Scheme {
	case "http", "https", "ssh", "git", "file":
	case "git+ssh", "ssh+git":
		r.Scheme = "ssh"
	default:
		return remote{}, fmt.Errorf("URL scheme %q is not supported; use https, http, ssh, git or file", u.Scheme)
	}
	if u.User != nil {
		r.User = u.User.Username()
		r.Password, r.HasPass = u.User.Password()
	}
	if r.Scheme != "file" && r.Host == "" {
		return remote{}, fmt.Errorf("the URL has no host")
	}
	return r, nil
}

// isSSH reports URLs reached over SSH.
func (r remote) isSSH() bool { return r.Scheme == "ssh" || r.Scheme == "scp" }

// isHTTP reports URLs reached over http or https.
func (r remote) isHTTP() bool { return r.Scheme == "http" || r.Scheme == "https" }

func (r remote) hostPort() string {
	if r.Port == "" {
		return r.Host
	}
	return net.JoinHostPort(r.Host, r.Port)
}

// String returns the URL without any password; over http(s) the user name
// is dropped too, since it is part of the credentials there.
func (r remote) String() string {
	switch r.Scheme {
	case "scp":
		h := r.Host
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		if r.User != "" {
			h = r.User + "@" + h
		}
		return h + ":" + r.Path
	case "file":
		if r.Host == "" && !strings.HasPrefix(r.Path, "//") {
			return "file://" + r.Path
		}
	}
	u := url.URL{Scheme: r.Scheme, Host: r.hostPort(), Path: r.Path, RawQuery: r.Query}
	if r.User != "" && r.isSSH() {
		u.User = url.User(r.User)
	}
	return u.String()
}

// origin returns the URL recorded as the clone's origin: as given, less
// credentials.
func (r remote) origin() string { return r.String() }

// toHTTPS turns an SSH URL into the https URL of the same repository, the
// way upstream does when git credentials are given (git@host:org/repo.git →
// https://host/org/repo). Other URLs are returned unchanged.
func (r remote) toHTTPS() remote {
	if !r.isSSH() {
		return r
	}
	p := strings.TrimSuffix(strings.TrimPrefix(r.Path, "/"), ".git")
	// The SSH port says nothing about the https one.
	return remote{Scheme: "https", Host: r.Host, Path: "/" + p}
}

// toSSH turns an http(s) URL into the scp-like SSH URL of the same
// repository, the way upstream does when an SSH key is given
// (https://host/org/repo → git@host:org/repo.git). Other URLs are returned
// unchanged.
func (r remote) toSSH() remote {
	if !r.isHTTP() {
		return r
	}
	p := strings.TrimPrefix(r.Path, "/")
	p = strings.TrimSuffix(p, "/")
	if !strings.HasSuffix(p, ".git") {
		p += ".git"
	}
	return remote{Scheme: "scp", User: "git", Host: r.Host, Path: p}
}

// canonical returns a form of the URL for comparing two URLs of the same
// repository: lower-case host, no credentials, no trailing "/" or ".git".
func (r remote) canonical() string {
	c := r
	c.Password, c.HasPass = "", false
	if c.isHTTP() {
		c.User = ""
	}
	c.Host = strings.ToLower(c.Host)
	c.Path = strings.TrimSuffix(strings.TrimSuffix(c.Path, "/"), ".git")
	if c.Scheme == "scp" {
		c.Path = strings.TrimPrefix(c.Path, "/")
	}
	return c.String()
}

// credentialScope is the URL prefix git's credential.<url>.* settings match
// for this remote: scheme://host[:port].
func (r remote) credentialScope() string {
	return r.Scheme + "://" + r.hostPort()
}
