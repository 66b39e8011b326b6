package store

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/initializer/initializer/fault"
)

// Timeouts of every store client: connecting, the TLS handshake, the wait
// for response headers, and each write to a connection (an upload to a
// peer that stopped reading). What a request receives is bounded by
// idleWatch (Options.ReadTimeout).
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

// DefaultReadTimeout is how long a request may receive nothing before it
// is cut (Options.ReadTimeout).
const DefaultReadTimeout = time.Minute

// idleWatch cuts a request that receives nothing for idle: a response
// body that stops coming (a stalled peer, a half-open connection that no
// reset ever reaches: a listing, an object), and, for a request with no
// body to send (GET, HEAD, a listing), an answer whose headers do not come.
// The request then fails with a transient error, which the retries take.
// (A request with a body waits for its answer after sending it, as long as
// the store works on it: the transport's responseHeaderTimeout bounds that.)
type idleWatch struct {
	base http.RoundTripper
	idle time.Duration
}

func (t idleWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	return watchRequest(req, t.idle, t.base.RoundTrip)
}

// idleDoer is idleWatch for clients given as a Do function (the AWS SDK's).
type idleDoer struct {
	base interface {
		Do(*http.Request) (*http.Response, error)
	}
	idle time.Duration
}

func (d idleDoer) Do(req *http.Request) (*http.Response, error) {
	return watchRequest(req, d.idle, d.base.Do)
}

func watchRequest(req *http.Request, idle time.Duration, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := &idleTimer{idle: idle, cancel: cancel, start: time.Now()}
	if req.Body == nil || req.Body == http.NoBody {
		w.run()
	}
	resp, err := send(req.WithContext(ctx))
	if err != nil {
		if w.stop() {
			err = stalled(idle)
		}
		cancel()
		return nil, err
	}
	w.touch()
	w.run()
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w}
	return resp, nil
}

func stalled(idle time.Duration) error {
	return fault.New(fault.Transient, "no data received for %s (--read-timeout): the connection stalled", idle)
}

// idleTimer cancels its request once nothing came for idle.
type idleTimer struct {
	idle   time.Duration
	cancel func()
	start  time.Time
	last   atomic.Int64 // when bytes last came, in ns since start
	fired  atomic.Bool
	mu     sync.Mutex
	t      *time.Timer
}

func (w *idleTimer) run() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t == nil {
		w.t = time.AfterFunc(w.idle, w.check)
	}
}

func (w *idleTimer) touch() { w.last.Store(int64(time.Since(w.start))) }

func (w *idleTimer) check() {
	since := time.Since(w.start) - time.Duration(w.last.Load())
	if since < w.idle {
		w.mu.Lock()
		w.t.Reset(w.idle - since)
		w.mu.Unlock()
		return
	}
	w.fired.Store(true)
	w.cancel()
}

// stop ends the watch and reports whether it cut the request.
func (w *idleTimer) stop() bool {
	w.mu.Lock()
	if w.t != nil {
		w.t.Stop()
	}
	w.mu.Unlock()
	return w.fired.Load()
}

// watchedBody is a response body under an idleTimer.
type watchedBody struct {
	io.ReadCloser
	w *idleTimer
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.touch()
	}
	if err != nil && err != io.EOF && b.w.fired.Load() {
		err = stalled(b.w.idle)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.w.stop()
	err := b.ReadCloser.Close()
	b.w.cancel()
	return err
}
