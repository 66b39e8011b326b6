package fault

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

func TestIsNetwork(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{&url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true},
		{&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, true},
		{&fs.PathError{Op: "write", Path: "/mnt/f", Err: syscall.ENOSPC}, false},
		{fmt.Errorf("fetch: %w", &fs.PathError{Op: "open", Path: "/ro/f", Err: syscall.EROFS}), false},
		{syscall.EACCES, false},
		{errors.New("plain"), false},
	} {
		if got := IsNetwork(tt.err); got != tt.want {
			t.Errorf("IsNetwork(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
