package integration

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/initializer/initializer/integration/testenv"
)

// stallProxy forwards TCP connections to a server; on the first stalls
// connections whose answers pass limit bytes, it stops forwarding the
// answer there and keeps the connection open, as a stalled peer or a
// half-open socket does.
type stallProxy struct {
	ln     net.Listener
	target string
	limit  int64
	stalls atomic.Int64 // connections still to stall; negative: all
	mu     sync.Mutex
	conns  []net.Conn
}

func newStallProxy(t *testing.T, target string, limit int64, stalls int64) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, limit: limit}
	p.stalls.Store(stalls)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *stallProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *stallProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() {
			n, _ := io.CopyN(c, s, p.limit)
			if n == p.limit {
				if left := p.stalls.Add(-1); left >= 0 || left < -1<<40 {
					return // stalled: nothing more is forwarded, nothing is closed
				}
			}
			io.Copy(c, s)
			c.Close()
		}()
	}
}

// sharedEndpoint is the URL of the shared test server of a store kind, for
// a proxy to stand in front of.
func sharedEndpoint(t *testing.T, kind string) *url.URL {
	t.Helper()
	env := testenv.Load(t)
	raw := map[string]string{"s3": env.S3().Endpoint, "gcs": env.GCS().Endpoint, "wasb": env.Azure().Endpoint}[kind]
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("the %s server's endpoint %q", kind, raw)
	}
	return u
}

// TestDownloadStalledConnection: a download whose connection stops
// sending, without closing, is cut after --read-timeout and retried, on
// every store, for whole and ranged reads and for listings; one that
// stalls every time ends with exit 5, names the stall, and leaves nothing.
func TestDownloadStalledConnection(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.kind, func(t *testing.T) {
			u := sharedEndpoint(t, sk.kind)
			st := sk.open(t, "")
			bucket := st.newBucket(t)
			const size = 4 << 20
			st.put(t, bucket, "ds/a.bin", randomReader(size, 1), size)
			big := int64(0)
			if sk.kind == "s3" {
				big = 70 << 20 // read as ranges
				st.put(t, bucket, "ds/big.bin", randomReader(big, 2), big)
			}

			// Two stalls, then the connections pass.
			proxy := newStallProxy(t, u.Host, 1<<20, 2)
			entry, cenv := sk.open(t, proxy.url()).connection(t, bucket, "ds", false)
			cat := storeCatalog(t, entry)
			dst := t.TempDir()
			r := cli(t, cenv, "--catalog", cat, "--connection", "data", "--path", dst, "--read-timeout", "1s")
			r.expectCode(t, 0)
			// (The GCS and Azure clients retry such requests themselves,
			// and GCS resumes a read where it stopped, without a word.)
			if sk.kind == "s3" && !strings.Contains(r.Stderr, "stalled") {
				t.Errorf("the stall is not named:\n%s", r.Stderr)
			}
			if fileSHA(t, filepath.Join(dst, "a.bin")) != sha(randomReader(size, 1)) {
				t.Error("a.bin differs")
			}
			if big > 0 && fileSHA(t, filepath.Join(dst, "big.bin")) != sha(randomReader(big, 2)) {
				t.Error("big.bin differs")
			}

			// A listing that stalls (300 keys: more than the proxy passes).
			for i := range 300 {
				st.put(t, bucket, fmt.Sprintf("many/k%03d", i), strings.NewReader("k"), 1)
			}
			proxy = newStallProxy(t, u.Host, 20000, 1)
			entry, cenv = sk.open(t, proxy.url()).connection(t, bucket, "many", false)
			dst = t.TempDir()
			r = cli(t, cenv, "--catalog", storeCatalog(t, entry), "--connection", "data", "--path", dst, "--read-timeout", "1s")
			r.expectCode(t, 0)
			if n := countFiles(dst); n != 300 || sk.kind == "s3" && !strings.Contains(r.Stderr, "stalled") {
				t.Errorf("a stalled listing: %d files\n%s", n, r.Stderr)
			}

			// Stalling every time, before the answer's headers.
			proxy = newStallProxy(t, u.Host, 0, -1<<50)
			entry, cenv = sk.open(t, proxy.url()).connection(t, bucket, "ds", false)
			cat = storeCatalog(t, entry)
			dst = filepath.Join(t.TempDir(), "new")
			r = cli(t, cenv, "--catalog", cat, "--connection", "data", "--path", dst, "--read-timeout", "1s", "--retries", "1", "--files", "a.bin")
			r.expectCode(t, 5)
			if !strings.Contains(r.Stderr, "no data received for 1s (--read-timeout)") {
				t.Errorf("the stall is not named:\n%s", r.Stderr)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("the failed download left %s: %v", dst, err)
			}
		})
	}
}
