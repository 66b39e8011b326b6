package store

import (
	"bytes"
	"errors"
	"net"
	"net/http"
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
