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

// Aside is a file (or link) that stood where a folder is to be made, moved
// out of the way for --force: kept until the work that replaces it has
// succeeded, and put back should it fail, so that a failed run loses
// nothing.
type Aside struct {
	path, aside string
}

// SetAside moves the file or link p to a hidden name in its own folder. A
// mount point is refused (a *MountPointError).
func SetAside(p string) (*Aside, error) {
	if err := NoMountIn(filepath.Dir(p), p); err != nil {
		return nil, err
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
			return nil, &os.LinkError{Op: "rename", Old: p, New: aside, Err: err}
		}
		return &Aside{path: p, aside: aside}, nil
	}
	return nil, fmt.Errorf("no free name beside %s to move it aside", p)
}

// Settle ends what SetAside began: once the work succeeded (ok), the file
// set aside is removed; else what now stands at its place (the folder the
// work made, with what it wrote) is removed and the file put back. The
// error says where the file is when it could not be put back.
func (a *Aside) Settle(ok bool) error {
	if ok {
		return os.Remove(a.aside)
	}
	if err := os.RemoveAll(a.path); err != nil {
		return fmt.Errorf("the file that stood at %s is kept as %s: %w", a.path, a.aside, err)
	}
	if err := os.Rename(a.aside, a.path); err != nil {
		return fmt.Errorf("the file that stood at %s is kept as %s: %w", a.path, a.aside, err)
	}
	return nil
}

// LeftAside lists the files SetAside moved away from p that were never
// settled: a run killed (SIGKILL, an OOM kill) before its end left them.
func LeftAside(p string) []string {
	p = filepath.Clean(p)
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		return nil
	}
	prefix := "." + filepath.Base(p) + ".initializer-aside-"
	var out []string
	for _, e := range entries {
		// Only the names SetAside gives: 12 lower-case hex digits after
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
	aside      *Aside
	left       []string
}

// NewReplacement starts one for path, finding what killed runs left.
func NewReplacement(path, what string, force bool) *Replacement {
	return &Replacement{path: path, what: what, force: force, left: LeftAside(path)}
}

// SetAside moves the file at the path aside (see SetAside).
func (r *Replacement) SetAside() error {
	a, err := SetAside(r.path)
	r.aside = a
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
	if r.aside == nil {
		return
	}
	if err := r.aside.Settle(ok); err != nil {
		log.Warn("--force: "+err.Error(), "path", r.path)
	} else if ok {
		log.Warn("--force: removed the file that stood where --path puts a folder", "path", r.path)
	} else {
		log.Info("--force: the "+r.what+" failed; the file that stood at --path is back", "path", r.path)
	}
	r.aside = nil
}
