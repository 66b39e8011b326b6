// Package fault carries an exit class with an error, so that the command line
// can turn any failure into the documented exit code.
package fault

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Class is the kind of failure; its value is the process exit code.
type Class int

// Exit classes, documented in the README.
const (
	OK          Class = 0
	Internal    Class = 1   // a bug or an unexpected condition
	Usage       Class = 2   // bad flags, bad catalog, bad connection spec
	Auth        Class = 3   // credentials refused, permission denied
	NotFound    Class = 4   // connection, mount, bucket, object, revision missing
	Transient   Class = 5   // remote unavailable after retries
	Integrity   Class = 6   // checksum or size mismatch
	LocalDisk   Class = 7   // local disk full, read-only or not writable
	Interrupted Class = 130 // stopped by SIGTERM or SIGINT
)

var names = map[Class]string{
	OK: "ok", Internal: "internal", Usage: "usage", Auth: "auth", NotFound: "not-found",
	Transient: "transient", Integrity: "integrity", LocalDisk: "local-disk", Interrupted: "interrupted",
}

func (c Class) String() string {
	if n, ok := names[c]; ok {
		return n
	}
	// A custom handler's own exit code becomes the class. Above 128 it is,
	// by the shells' convention, 128 + the signal that ended the handler (or
	// a program it ran): 143 is SIGTERM, 139 SIGSEGV, 137 SIGKILL (often the
	// OOM killer). Name the signal rather than a bare number.
	if c > 128 {
		if sig := syscall.Signal(c - 128); unix.SignalName(sig) != "" {
			return fmt.Sprintf("signal %s (%s)", unix.SignalName(sig), sig)
		}
	}
	return fmt.Sprintf("class-%d", int(c))
}

// Error is an error with an exit class.
type Error struct {
	Class Class
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of class c with a formatted message (%w is honoured).
func New(c Class, format string, args ...any) error {
	return &Error{Class: c, Err: fmt.Errorf(format, args...)}
}

// Wrap gives err the class c, unless err is nil.
func Wrap(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, Err: err}
}

// ClassOf returns the exit class of err: the outermost explicit class, else
// one derived from well-known system errors, else Internal.
func ClassOf(err error) Class {
	if err == nil {
		return OK
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Class
	}
	return classOfSystem(err)
}

func classOfSystem(err error) Class {
	switch {
	case errors.Is(err, context.Canceled):
		return Interrupted
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EROFS),
		errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		// The container's resources: its disk, its open files.
		return LocalDisk
	case errors.Is(err, fs.ErrPermission):
		return Auth
	case errors.Is(err, fs.ErrNotExist):
		return NotFound
	case errors.Is(err, context.DeadlineExceeded):
		return Transient
	}
	return Internal
}

// FromSystem classifies err from its system cause when it has no class yet.
// It is meant for local file-system errors.
func FromSystem(err error) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return err
	}
	return &Error{Class: classOfSystem(err), Err: err}
}

// IsNetwork reports an error of the network (net.Error: a dial, a read or
// a write on a connection, a timeout). A bare syscall.Errno has net.Error's
// methods too, but it is not taken for one: an ENOSPC from writing a local
// file is not a network failure to retry.
func IsNetwork(err error) bool {
	var ne net.Error
	if !errors.As(err, &ne) {
		return false
	}
	_, errno := ne.(syscall.Errno)
	return !errno
}
