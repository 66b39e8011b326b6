package store

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/initializer/initializer/fault"
)

// An upload to a peer that stopped reading fails with a timeout once a
// write makes no progress for writeIdleTimeout, instead of hanging.
func TestTransportWriteIdleTimeout(t *testing.T) {
	defer func(d time.Duration) { writeIdleTimeout = d }(writeIdleTimeout)
	writeIdleTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c // accepted, never read
		}
	}()
	client := &http.Client{Transport: newTransport(1)}
	start := time.Now()
	_, err = client.Post("http://"+ln.Addr().String()+"/b/k", "application/octet-stream", bytes.NewReader(make([]byte, 64<<20)))
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a stalled upload: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
	if c := Classify(err); c != fault.Transient {
		t.Errorf("classified %v, want transient (retried)", c)
	}
	for len(held) > 0 {
		(<-held).Close()
	}
}

// A request that receives nothing for the idle time is cut with a transient
// error: a body that stops, an answer whose headers do not come to a GET.
// A slow but moving body is not cut, nor the wait for the answer to a
// request that sent a body (the store works on it).
func TestIdleWatch(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stalls":
			w.Write([]byte("some bytes"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/no-headers":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/slow":
			for range 8 {
				w.Write([]byte("x"))
				w.(http.Flusher).Flush()
				time.Sleep(60 * time.Millisecond) // under the idle time each, over it in all
			}
		case "/put":
			io.Copy(io.Discard, r.Body)
			time.Sleep(400 * time.Millisecond)
			w.Write([]byte("done"))
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: idleWatch{newTransport(1), 150 * time.Millisecond}}
	get := func(path string) (string, error) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for _, path := range []string{"/stalls", "/no-headers"} {
		start := time.Now()
		_, err := get(path)
		if fault.ClassOf(err) != fault.Transient || !strings.Contains(err.Error(), "stalled") || Classify(err) != fault.Transient {
			t.Errorf("%s: %v", path, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: cut after %v", path, d)
		}
	}
	if b, err := get("/slow"); err != nil || b != "xxxxxxxx" {
		t.Errorf("a slow body: %q, %v", b, err)
	}
	resp, err := client.Post(srv.URL+"/put", "text/plain", strings.NewReader("data"))
	if err != nil {
		t.Fatalf("an answer that takes its time after a body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "done" {
		t.Errorf("put: %q", b)
	}
}
