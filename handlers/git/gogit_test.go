package git

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/initializer/initializer/fault"
)

// TestGoGitClass: system errors from the local disk are not taken for
// network failures (syscall.Errno implements net.Error), network ones are.
func TestGoGitClass(t *testing.T) {
	path := func(errno syscall.Errno) error {
		return fmt.Errorf("write pack: %w", &fs.PathError{Op: "write", Path: "/code/.git/objects/pack/tmp_pack_1", Err: errno})
	}
	for _, tt := range []struct {
		err  error
		want fault.Class
	}{
		{path(syscall.ENOSPC), fault.LocalDisk},
		{path(syscall.EDQUOT), fault.LocalDisk},
		{path(syscall.EROFS), fault.LocalDisk},
		{path(syscall.EACCES), fault.Auth},
		{fmt.Errorf("unpack: %w", syscall.ENOSPC), fault.LocalDisk},
		{fmt.Errorf("write .git/objects/pack/tmp_pack_1: no space left on device"), fault.LocalDisk},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, fault.Transient},
		{fmt.Errorf("read: %w", os.NewSyscallError("read", syscall.ECONNRESET)), fault.Transient},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, fault.Transient},
	} {
		if got := goGitClass(tt.err); got != tt.want {
			t.Errorf("goGitClass(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestGoGitMessage: go-git's errors carrying the server's answer read as
// one line, without repeating themselves or ending on nothing.
func TestGoGitMessage(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: %s", transport.ErrAuthenticationRequired, "authentication required\n"), "authentication required"},
		{fmt.Errorf("%w: %s", transport.ErrRepositoryNotFound, ""), "repository not found"},
		{fmt.Errorf("%w: %s", transport.ErrAuthorizationFailed, "Forbidden\r\n"), "authorization failed (the server says: Forbidden)"},
		{fmt.Errorf("%w: %s", transport.ErrRepositoryNotFound, "moved\nto x\n"), "repository not found (the server says: moved / to x)"},
		{fmt.Errorf("unpack: %w", errors.New("line one\nline two\n")), "unpack: line one / line two"},
	} {
		if got := goGitMessage(tt.err); got != tt.want {
			t.Errorf("goGitMessage(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// The parent's credentials go to a submodule on the same server only: the
// same scheme, host and port (a default port written or not), any path.
func TestSubmoduleCredentialScope(t *testing.T) {
	parent, err := parseRemote("https://git.example.com/org/parent.git")
	if err != nil {
		t.Fatal(err)
	}
	e := &goGitEngine{url: parent}
	for sub, want := range map[string]bool{
		"../sub.git":                               true,
		"./sub.git":                                true,
		"https://git.example.com/other/sub.git":    true,
		"https://GIT.example.com:443/other/sub":    true,
		"https://git.example.com:8443/sub.git":     false,
		"http://git.example.com/sub.git":           false,
		"https://evil.example.com/sub.git":         false,
		"git@git.example.com:org/sub.git":          false,
		"ssh://git@git.example.com/org/sub.git":    false,
		"git://git.example.com/org/sub.git":        false,
		"https://user@git.example.com/org/sub.git": true,
	} {
		if got := e.sameHost(nil, sub); got != want {
			t.Errorf("sameHost(%q) = %v, want %v", sub, got, want)
		}
	}
	plain, _ := parseRemote("http://127.0.0.1/parent.git")
	e = &goGitEngine{url: plain}
	if !e.sameHost(nil, "http://127.0.0.1:80/sub.git") || e.sameHost(nil, "http://127.0.0.1:8080/sub.git") {
		t.Error("http's default port")
	}
}
