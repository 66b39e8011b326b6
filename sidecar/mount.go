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

// Temporary files of killed uploads are removed from the shared folder
// once untouched for so long: other sidecars' uploads write theirs there
// too (an upload writes to its file all the time).
const staleShared = time.Hour

// mountTemps makes the folder for the uploads' temporary files in mount
// and checks that this process can write there and rename from there to
// top, the folder the uploads go to: same file system, and no other mount
// below top (a rename into it would cross file systems).
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
	// Renames work within one mount only: a bind mount of the same file
	// system at or above top counts as another.
	a, err := fsutil.MountID(dir)
	if err != nil {
		return "", err
	}
	b, err := fsutil.MountID(fsutil.Resolve(near))
	if err != nil {
		return "", err
	}
	if a != b {
		return "", fmt.Errorf("%s and %s are on different mounts", dir, near)
	}
	if m, err := mountBelow(fsutil.Resolve(top)); err != nil {
		return "", err
	} else if m != "" {
		return "", fmt.Errorf("%s is another file system mounted below %s", m, top)
	}
	return dir, nil
}

// mountBelow returns a mount point strictly below dir, "" when there is
// none (read from /proc/self/mountinfo).
func mountBelow(dir string) (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		// Field 5 is the mount point, with space, tab, newline and
		// backslash written as octal escapes.
		if mp := unescapeMountinfo(fields[4]); strings.HasPrefix(mp, prefix) {
			return mp, nil
		}
	}
	return "", nil
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeStaleTemps removes, from tmp, the shared folder of the uploads'
// temporary files, those that uploads killed before they ended left there
// and that are untouched for staleShared. Only this folder is looked at:
// below it, every name is this tool's; elsewhere in the store, a file
// named like a temporary file may be anyone's data.
func removeStaleTemps(tmp string, start time.Time, log *slog.Logger) {
	if tmp == "" {
		return
	}
	removed := 0
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || !isFileblobTemp(e.Name(), info.ModTime()) || start.Sub(info.ModTime()) <= staleShared {
			continue
		}
		p := filepath.Join(tmp, e.Name())
		if err := os.Remove(p); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				log.Warn("cannot remove the temporary file of an upload that was killed", "file", p, "error", err.Error())
			}
			continue
		}
		if removed++; removed <= 10 {
			log.Info("removed the temporary file of an upload that was killed", "file", p)
		}
	}
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
