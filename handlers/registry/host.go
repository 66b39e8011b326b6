package registry

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Docker Hub is spelled many ways; its docker config key is fixed by the
// docker CLI, and its API lives on another host than its index.
const (
	hubConfigKey = "https://index.docker.io/v1/"
	hubAPIHost   = "registry-1.docker.io"
	hubCanonical = "index.docker.io"
)

var hubHosts = map[string]bool{
	"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true,
	"registry.hub.docker.com": true, "hub.docker.com": true,
}

// endpoint is where a registry connection points.
type endpoint struct {
	// ConfigKey is the key of the registry's entry under "auths" in a
	// docker config: host[:port], or Docker Hub's https://index.docker.io/v1/.
	ConfigKey string
	// Canonical is the host[:port] that docker config keys are compared on
	// (see canonicalKey); Docker Hub's aliases all map to index.docker.io.
	Canonical string
	// APIHost is the host[:port] serving /v2/.
	APIHost string
	// Scheme is "https" or "http" when schema.url gives one, else "".
	Scheme string
	Hub    bool
}

// parseEndpoint derives the registry from a connection's schema.url, which
// may be a bare host, a host with a repository path, or a URL:
// registry.example.com/org/repo → registry.example.com. As in image
// references, a first component without a dot, a colon or "localhost" is a
// Docker Hub namespace ("myorg/repo").
func parseEndpoint(raw string) (endpoint, error) {
	s := strings.TrimSpace(raw)
	var ep endpoint
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		ep.Scheme = strings.ToLower(scheme)
		if ep.Scheme != "https" && ep.Scheme != "http" {
			return ep, fmt.Errorf("scheme %q is not one a registry speaks; write https://host, http://host (with insecure: true) or just the host", scheme)
		}
		s = rest
	}
	host, _, _ := strings.Cut(s, "/")
	if host == "" {
		return ep, fmt.Errorf("%q names no registry host; write e.g. registry.example.com/org", raw)
	}
	if strings.Contains(host, "@") {
		return ep, fmt.Errorf("has credentials in it; remove them and put username and password in the connection's secret")
	}
	host = strings.ToLower(host)
	if err := checkHostPort(host); err != nil {
		return ep, fmt.Errorf("host %q: %v", host, err)
	}
	hostOnly := hostname(host)
	if hubHosts[host] || (ep.Scheme == "" && !strings.ContainsAny(host, ".:") && hostOnly != "localhost") {
		ep.Hub = true
		ep.ConfigKey, ep.Canonical, ep.APIHost = hubConfigKey, hubCanonical, hubAPIHost
		if ep.Scheme == "http" {
			return ep, fmt.Errorf("points to Docker Hub, which is served over https only; drop http://")
		}
		ep.Scheme = "https"
		return ep, nil
	}
	ep.ConfigKey, ep.Canonical, ep.APIHost = host, host, host
	return ep, nil
}

// checkHostPort accepts host, host:port, an IPv4 address or a bracketed IPv6
// address, with an optional numeric port.
func checkHostPort(hp string) error {
	h, port := hp, ""
	switch {
	case strings.HasPrefix(hp, "[") && strings.Contains(hp, "]:"), !strings.HasPrefix(hp, "[") && strings.Count(hp, ":") == 1:
		var err error
		if h, port, err = net.SplitHostPort(hp); err != nil {
			return err
		}
	case strings.HasPrefix(hp, "["):
		h = strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]")
	case strings.Contains(hp, ":"):
		return fmt.Errorf("an IPv6 address must be written in brackets, e.g. [::1]:5000")
	}
	if h == "" {
		return fmt.Errorf("empty host name")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number between 1 and 65535", port)
		}
	}
	return nil
}

// hostname drops the port of host[:port].
func hostname(hp string) string {
	if h, _, err := net.SplitHostPort(hp); err == nil {
		return h
	}
	return strings.Trim(hp, "[]")
}

// canonicalKey reduces a docker config "auths" or "credHelpers" key to the
// host[:port] it is for, the way the docker CLI matches them: scheme and path
// dropped, lower-case, Docker Hub's aliases folded into one.
func canonicalKey(key string) string {
	s := strings.TrimSpace(key)
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	s, _, _ = strings.Cut(s, "/")
	s = strings.ToLower(s)
	if hubHosts[s] {
		return hubCanonical
	}
	return s
}
