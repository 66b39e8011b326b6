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
	if missing := fsutil.FirstMissing(top); missing != "" {
		near = filepath.Dir(missing)
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
// none.
func mountBelow(dir string) (string, error) {
	points, err := fsutil.MountPoints()
	if err != nil {
		return "", err
	}
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for _, mp := range points {
		if strings.HasPrefix(mp, prefix) {
			return mp, nil
		}
	}
	return "", nil
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
