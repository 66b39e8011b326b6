// Package fsutil holds the local file-system primitives every handler shares:
// joining untrusted names under a root, atomic file writes, cleanup of
// staging files, and free-space queries.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnsafePath is returned (wrapped) when a name would escape its root.
var ErrUnsafePath = errors.New("unsafe path")

// CleanRel checks an untrusted slash-separated relative name (an object key,
// a --paths entry) and returns it cleaned. It refuses absolute names,
// backslashes, NUL bytes and any ".." element, so the result can never point
// outside the directory it is joined to (a name such as "c:x" is a plain
// name on Linux, and kept). The empty name and "."
// mean the root itself and return "".
func CleanRel(name string) (string, error) {
	switch {
	case strings.ContainsRune(name, 0):
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrUnsafePath, name)
	case strings.ContainsRune(name, '\\'):
		return "", fmt.Errorf("%w: %q contains a backslash", ErrUnsafePath, name)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w: %q is absolute", ErrUnsafePath, name)
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: %q contains \"..\"", ErrUnsafePath, name)
		}
		out = append(out, p)
	}
	return strings.Join(out, "/"), nil
}

// SafeJoin joins the untrusted relative name to root; see CleanRel for what is
// refused. The result is always root itself or a path below it.
func SafeJoin(root, name string) (string, error) {
	rel, err := CleanRel(name)
	if err != nil {
		return "", err
	}
	if rel == "" {
		return filepath.Clean(root), nil
	}
	return filepath.Join(root, filepath.FromSlash(rel)), nil
}

// Within reports whether path is root or lies below it (both cleaned,
// lexically; resolve symlinks first where that matters).
func Within(root, path string) bool {
	root, path = filepath.Clean(root), filepath.Clean(path)
	if root == path {
		return true
	}
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// Resolve returns p with its symbolic links resolved, as far as p exists:
// the part of p that does not exist yet is joined as it is.
func Resolve(p string) string {
	p = filepath.Clean(p)
	var rest []string
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// FirstMissing returns the outermost folder of path that does not exist
// (path itself when only it is missing), or "" when path exists: what
// os.MkdirAll(path) is about to create.
func FirstMissing(path string) string {
	path = filepath.Clean(path)
	missing := ""
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			return missing
		}
		missing = p
		if parent := filepath.Dir(p); parent == p {
			return missing
		}
	}
}

// RemoveEmptyUpTo removes path and its parents up to top (as FirstMissing
// returned it), each only if it is empty, stopping at the first that is
// not.
func RemoveEmptyUpTo(path, top string) {
	top = filepath.Clean(top)
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if os.Remove(p) != nil || p == top || filepath.Dir(p) == p {
			return
		}
	}
}

// OpenedPath returns the path the kernel resolved when f was opened (its
// /proc/self/fd link): what was opened, whatever links the path went
// through or has been changed to since.
func OpenedPath(f *os.File) (string, error) {
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}

// RemoveEmptyDirs removes dir and the folders below it that hold nothing
// but empty folders, deepest first; folders holding anything else stay.
func RemoveEmptyDirs(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			RemoveEmptyDirs(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir) // fails, as it should, when anything is left
}

// Folder holds a folder open, to tell later whether its path still leads
// to it: the open folder's inode cannot be reused by a new one meanwhile.
type Folder struct {
	path string
	f    *os.File
}

// Hold opens the folder p; nil (whose Replaced says nothing) when it cannot.
func Hold(p string) *Folder {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	return &Folder{path: p, f: f}
}

// Replaced reports, as an error naming it, that the folder's path no
// longer leads to it: it was removed, or replaced by another (or made
// again). nil when it still does.
func (h *Folder) Replaced() error {
	if h == nil {
		return nil
	}
	was, err := h.f.Stat()
	if err != nil {
		return nil
	}
	if now, err := os.Stat(h.path); err == nil && os.SameFile(was, now) || err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("--path %s was removed or replaced", h.path)
}

// Close lets the folder go.
func (h *Folder) Close() {
	if h != nil {
		h.f.Close()
	}
}

// FollowLink returns what the link p leads to, whether or not it exists; ok
// is false when p is no link. A relative target is taken from the real
// path of p's folder, as the kernel takes it (a ".." in it leaves the
// folder a link leads to, not the link's).
func FollowLink(p string) (to string, ok bool) {
	st, err := os.Lstat(p)
	if err != nil || st.Mode()&os.ModeSymlink == 0 {
		return p, false
	}
	to, err = os.Readlink(p)
	if err != nil {
		return p, false
	}
	base := "/"
	if !filepath.IsAbs(to) {
		// The link's folder, as the kernel reaches it (p's own ".." too).
		start := "/"
		if !filepath.IsAbs(p) {
			wd, err := os.Getwd()
			if err != nil {
				return p, false
			}
			start = wd
		}
		dir, _ := path.Split(p)
		base = Resolve(walkParts(start, dir))
	}
	return walkParts(base, to), true
}

// walkParts joins the slash-separated rel to base part by part, as the
// kernel walks a path: a ".." leaves the folder the path so far really is
// (a link to a folder followed first), which a join by text would not.
func walkParts(base, rel string) string {
	for _, part := range strings.Split(rel, "/") {
		switch part {
		case "", ".":
		case "..":
			base = filepath.Dir(Resolve(base))
		default:
			base = filepath.Join(base, part)
		}
	}
	return base
}

// FollowLinks follows p's final links (40 at most) to the file they lead
// to, which need not exist yet: writing there keeps the links.
func FollowLinks(p string) string {
	for range 40 {
		to, ok := FollowLink(p)
		if !ok {
			return p
		}
		p = to
	}
	return p
}
