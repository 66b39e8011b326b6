package store

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Timeouts of every store client. Reads of large objects are not bounded by
// them: only connecting, the TLS handshake and the wait for response headers.
const (
	dialTimeout           = 30 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 2 * time.Minute
	idleConnTimeout       = 90 * time.Second
)

// tuneTransport sizes tr's connection pool to workers parallel transfers.
// Go's default keeps 2 idle connections per host, so with more workers most
// requests would open (and TLS-handshake) a new connection.
func tuneTransport(tr *http.Transport, workers int) {
	tr.MaxIdleConnsPerHost = workers
	tr.MaxIdleConns = 2 * workers // a second host (STS, OAuth, a redirect) keeps its own
	tr.IdleConnTimeout = idleConnTimeout
	tr.TLSHandshakeTimeout = tlsHandshakeTimeout
	tr.ResponseHeaderTimeout = responseHeaderTimeout
	tr.ExpectContinueTimeout = time.Second
	// Objects are read as they are stored. Go would otherwise ask for gzip
	// and decompress a gzip-encoded object on the fly: other bytes than
	// the listed size and MD5 describe.
	tr.DisableCompression = true
}

// newTransport returns a proxy-aware transport with a pool sized to workers.
func newTransport(workers int) *http.Transport {
	tr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS12},
	}
	tuneTransport(tr, workers)
	return tr
}
