package sidecar

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/initializer/initializer/fsutil"
)

// MountFile returns the path of the file that a fileblob bucket rooted at
// mount (OpenMount's) writes for key. fileblob escapes keys as gocloud's
// internal/escape.HexEscape does with its rule: a control character, the
// slash of "../", the second slash of "//", a trailing slash, and the start
// of any text that reads as an escape ("__0x41__") become "__0x<hex>__".
// The common key, with nothing to escape, costs one pass and no string but
// the joined path.
func MountFile(mount, key string) string {
	return filepath.Join(mount, filepath.FromSlash(fileblobEscape(key)))
}

// fileblobEscape is fileblob's escapeKey on a system whose separator is
// "/". As HexEscape, it returns key itself when nothing is to be escaped
// (an invalid UTF-8 key included), and otherwise rebuilds it from its
// runes (invalid bytes become U+FFFD, as there).
func fileblobEscape(key string) string {
	r := []rune(key)
	first := -1
	for i := range r {
		if fileblobRule(r, i) || escapeLike(r, i) {
			first = i
			break
		}
	}
	if first < 0 {
		return key
	}
	var b strings.Builder
	b.WriteString(string(r[:first]))
	for i := first; i < len(r); i++ {
		if fileblobRule(r, i) || escapeLike(r, i) {
			fmt.Fprintf(&b, "__%#x__", r[i])
		} else {
			b.WriteRune(r[i])
		}
	}
	return b.String()
}

// fileblobRule is fileblob's shouldEscape on Linux.
func fileblobRule(r []rune, i int) bool {
	c := r[i]
	switch {
	case c < 32:
		return true
	case i > 1 && c == '/' && r[i-1] == '.' && r[i-2] == '.': // the slash of "../"
		return true
	case i > 0 && c == '/' && r[i-1] == '/': // the second slash of "//"
		return true
	case c == '/' && i == len(r)-1: // a trailing slash
		return true
	}
	return false
}

// escapeLike reports whether r[i:] starts with "__0x<hex>__", as gocloud's
// HexUnescape would read it (HexEscape escapes its first rune).
func escapeLike(r []rune, i int) bool {
	if len(r)-i < 4 || r[i] != '_' || r[i+1] != '_' || r[i+2] != '0' || r[i+3] != 'x' {
		return false
	}
	j := i + 4
	for j < len(r) && r[j] != '_' {
		j++
	}
	if j+1 >= len(r) || r[j+1] != '_' {
		return false
	}
	_, err := strconv.ParseInt(string(r[i+4:j]), 16, 32)
	return err == nil
}

// mountTempDir is the hidden folder, at the root of a mount store, where
// the sidecars write their uploads before renaming them into place: a
// killed upload leaves its temporary file there, out of every run's
// folder, instead of beside the files, where it would be taken for one.
const mountTempDir = fsutil.TempPrefix + "sidecar"

// Temporary files of killed uploads are removed once untouched for so
// long: in the shared folder, where other sidecars' uploads write theirs
// (an upload writes to its file all the time); beside the files, below
// the run's own prefix, where only an earlier start of this run wrote.
const (
	staleShared = time.Hour
	staleOwn    = 2 * time.Second
)

// mountTemps makes the folder for the uploads' temporary files in mount
// and checks that this process can write there and rename from there to
// top, the folder the uploads go to (same file system).
func mountTemps(mount, top string) (string, error) {
	dir := filepath.Join(mount, mountTempDir)
	if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is not a folder", dir)
	}
	f, err := os.CreateTemp(dir, fsutil.TempPrefix+"probe-*")
	if err != nil {
		return "", err
	}
	f.Close()
	os.Remove(f.Name())
	// The deepest folder of top that exists holds what will be created.
	near := top
	for {
		if _, err := os.Stat(near); err == nil {
			break
		}
		parent := filepath.Dir(near)
		if parent == near {
			break
		}
		near = parent
	}
	var a, b syscall.Stat_t
	if err := syscall.Stat(dir, &a); err != nil {
		return "", err
	}
	if err := syscall.Stat(near, &b); err != nil {
		return "", err
	}
	if a.Dev != b.Dev {
		return "", fmt.Errorf("%s and %s are on different file systems", dir, near)
	}
	return dir, nil
}

// removeStaleTemps removes the temporary files that uploads killed before
// they ended left in the mount store: in tmp, the shared folder (none when
// ""), those untouched for staleShared; beside the files below top, the
// run's own folder in the store, those untouched since start (less
// staleOwn; staleShared when top is the whole store, where other runs
// upload too) that are no file of the folder localRoot uploaded under that
// name. Only fileblob's exact naming is taken (see isFileblobTemp).
func removeStaleTemps(mount, tmp, top, localRoot string, start time.Time, log *slog.Logger) {
	removed := 0
	remove := func(p string) {
		if err := os.Remove(p); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				log.Warn("cannot remove the temporary file of an upload that was killed", "file", p, "error", err.Error())
			}
			return
		}
		if removed++; removed <= 10 {
			log.Info("removed the temporary file of an upload that was killed", "file", p)
		}
	}
	if tmp != "" {
		entries, _ := os.ReadDir(tmp)
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			if info, err := e.Info(); err == nil && isFileblobTemp(e.Name(), info.ModTime()) && start.Sub(info.ModTime()) > staleShared {
				remove(filepath.Join(tmp, e.Name()))
			}
		}
	}
	stale := staleOwn
	if filepath.Clean(top) == filepath.Clean(mount) {
		stale = staleShared
	}
	hidden := filepath.Join(mount, mountTempDir)
	filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // a folder that cannot be read, or no folder yet
		case d.IsDir():
			if p == hidden { // --prefix= : the shared folder is below top
				return filepath.SkipDir
			}
			return nil
		case !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".tmp"):
			return nil
		}
		info, err := d.Info()
		if err != nil || !isFileblobTemp(d.Name(), info.ModTime()) || start.Sub(info.ModTime()) < stale {
			return nil
		}
		if rel, err := filepath.Rel(top, p); err != nil {
			return nil
		} else if _, err := os.Lstat(filepath.Join(localRoot, rel)); err == nil {
			return nil // a file of the job's, uploaded under that name
		}
		remove(p)
		return nil
	})
	if removed > 10 {
		log.Info("removed more temporary files of uploads that were killed", "count", removed-10)
	}
}

// isFileblobTemp reports whether name, of a file last modified at mtime,
// is one fileblob gives its temporary files: the target's name, a dot,
// the time it was made (nanoseconds since the epoch in 16 hexadecimal
// digits), ".tmp"; and that time is not after the file's last change.
func isFileblobTemp(name string, mtime time.Time) bool {
	base, ok := strings.CutSuffix(name, ".tmp")
	i := strings.LastIndexByte(base, '.')
	if !ok || i < 1 || len(base)-i-1 != 16 {
		return false
	}
	digits := base[i+1:]
	for j := 0; j < len(digits); j++ {
		if c := digits[j]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	ns, err := strconv.ParseInt(digits, 16, 64)
	return err == nil && ns > 0 && !time.Unix(0, ns).After(mtime.Add(time.Second))
}
