package store

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Timeouts of every store client: connecting, the TLS handshake, the wait
// for response headers, and each write to a connection (an upload to a
// peer that stopped reading). Reads of objects are bounded by the
// downloads' own watch (transfer.Options.ReadTimeout).
const (
	dialTimeout           = 30 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 2 * time.Minute
	idleConnTimeout       = 90 * time.Second
)

// writeIdleTimeout bounds each write to a store's connection: a peer that
// stops reading in the middle of an upload (an overloaded gateway, a stuck
// disk behind it) fails the request, which is retried, instead of holding
// the upload, and a sidecar's cycle, for ever. A variable for tests.
var writeIdleTimeout = 2 * time.Minute

// writeIdleConn is a connection whose every write must make progress
// within idle.
type writeIdleConn struct {
	net.Conn
	idle time.Duration
}

func (c *writeIdleConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// tuneTransport sizes tr's connection pool to workers parallel transfers.
// Go's default keeps 2 idle connections per host, so with more workers most
// requests would open (and TLS-handshake) a new connection.
func tuneTransport(tr *http.Transport, workers int) {
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	idle := writeIdleTimeout
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &writeIdleConn{Conn: c, idle: idle}, nil
	}
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
