package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// setAside moves the file or link p, which stands where a folder is to be
// made (--force), to a hidden name in its own folder, and returns that
// name: kept until the work that replaces it has succeeded, and put back
// should it fail, so that a failed run loses nothing. A mount point is
// refused (a *MountPointError).
func setAside(p string) (string, error) {
	if err := NoMountIn(filepath.Dir(p), p); err != nil {
		return "", err
	}
	for range 10 {
		var b [6]byte
		_, _ = rand.Read(b[:])
		aside := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".initializer-aside-"+hex.EncodeToString(b[:]))
		err := unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, aside, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			// No RENAME_NOREPLACE there: the name is random enough.
			err = os.Rename(p, aside)
		}
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", &os.LinkError{Op: "rename", Old: p, New: aside, Err: err}
		}
		return aside, nil
	}
	return "", fmt.Errorf("no free name beside %s to move it aside", p)
}

// settleAside ends what setAside began for the file moved from path to
// aside: once the work succeeded (ok), the file is removed; else what now
// stands at its place (the folder the work made, with what it wrote) is
// removed and the file put back. The error says where the file is when it
// could not be put back.
func settleAside(path, aside string, ok bool) error {
	if ok {
		return os.Remove(aside)
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("the file that stood at %s is kept as %s: %w", path, aside, err)
	}
	if err := os.Rename(aside, path); err != nil {
		return fmt.Errorf("the file that stood at %s is kept as %s: %w", path, aside, err)
	}
	return nil
}

// leftAside lists the files setAside moved away from p that were never
// settled: a run killed (SIGKILL, an OOM kill) before its end left them.
func leftAside(p string) []string {
	p = filepath.Clean(p)
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		return nil
	}
	prefix := "." + filepath.Base(p) + ".initializer-aside-"
	var out []string
	for _, e := range entries {
		// Only the names setAside gives: 12 lower-case hex digits after
		// the prefix.
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if ok && len(rest) == 12 && strings.Trim(rest, "0123456789abcdef") == "" {
			out = append(out, filepath.Join(filepath.Dir(p), e.Name()))
		}
	}
	return out
}

// Replacement is --force's replacement of a file at a path by a folder of
// a run (what: "download", "copy"): the file it moved aside, if any, and
// those killed runs left there.
type Replacement struct {
	path, what string
	force      bool
	moved      string // where the file at path was moved; "" for none
	left       []string
}

// NewReplacement starts one for path, finding what killed runs left.
func NewReplacement(path, what string, force bool) *Replacement {
	return &Replacement{path: path, what: what, force: force, left: leftAside(path)}
}

// SetAside moves the file at the path aside (see setAside).
func (r *Replacement) SetAside() error {
	moved, err := setAside(r.path)
	r.moved = moved
	return err
}

// Settle ends it, once: after a run that succeeded (ok), the file moved
// aside is removed, and so are those killed runs left when this run had
// --force too; after one that failed, the file is put back. Each step is
// logged.
func (r *Replacement) Settle(ok bool, log *slog.Logger) {
	if r == nil {
		return
	}
	for _, p := range r.left {
		if ok && r.force {
			if err := os.Remove(p); err == nil {
				log.Warn("--force: removed the file an earlier, killed run had moved aside from --path; the "+r.what+" stands there now", "file", p)
				continue
			}
		}
		log.Warn("an earlier run, killed, moved the file that stood at --path aside, where it is still kept", "file", p, "path", r.path)
	}
	r.left = nil
	if r.moved == "" {
		return
	}
	if err := settleAside(r.path, r.moved, ok); err != nil {
		log.Warn("--force: "+err.Error(), "path", r.path)
	} else if ok {
		log.Warn("--force: removed the file that stood where --path puts a folder", "path", r.path)
	} else {
		log.Info("--force: the "+r.what+" failed; the file that stood at --path is back", "path", r.path)
	}
	r.moved = ""
}
