package git

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"golang.org/x/sys/unix"
)

// dest is the --path a run clones into, and where the clone is staged.
//
// A fresh clone is made in a staging folder next to the target (same file
// system) and renamed into place once complete, so a failed or interrupted
// clone leaves nothing at the target. When the target is a mount point (or
// its parent is not writable) the staging folder is made inside the target
// and its content moved up at the end. An existing clone of the same remote
// is updated in place: git's fetch and checkout leave it valid if they fail.
type dest struct {
	conn    *connections.Connection
	path    string
	fresh   bool   // a new clone (staged), not an update in place
	replace bool   // --force over a folder that is not a clone of this remote
	inside  bool   // staging folder inside path (path is a mount point)
	staging string // the staging folder of a fresh clone
}

// stagingPrefix starts the staging folders' names (fsutil's temp prefix, so
// the leftovers of a killed run are recognisable).
func stagingPrefix(path string) string {
	return fsutil.TempPrefix + "git-" + filepath.Base(path) + "-"
}

// inspectDest decides what to do with path for the remote u.
func inspectDest(conn *connections.Connection, path string, u remote, force bool) (*dest, error) {
	path = filepath.Clean(path)
	if li, err := os.Lstat(path); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		// A link to a folder (a volume linked into place): the clone goes
		// into the folder it leads to, staged next to that folder (its file
		// system); a rename onto the link itself would fail.
		real, err := filepath.EvalSymlinks(path)
		switch {
		case err == nil && isDir(real):
			path = real
		case errors.Is(err, fs.ErrNotExist):
			if force {
				return &dest{conn: conn, path: path, fresh: true, replace: true}, nil
			}
			to, _ := os.Readlink(path)
			return nil, fault.New(fault.Usage, "%s: --path %s is a link to %s, which does not exist; create that folder, choose another --path, or pass --force to replace the link", conn, path, to)
		}
	}
	d := &dest{conn: conn, path: path, fresh: true}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return d, nil
	case err != nil:
		return nil, fault.FromSystem(fmt.Errorf("%s: --path %s: %w", conn, path, err))
	case !st.IsDir():
		if !force {
			return nil, fault.New(fault.Usage, "%s: --path %s is a file, not a folder; remove it, choose another --path, or pass --force to replace it", conn, path)
		}
		d.replace = true
		return d, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fault.FromSystem(fmt.Errorf("%s: --path %s: %w", conn, path, err))
	}
	var names []string
	for _, e := range entries {
		if e.Name() == "lost+found" || strings.HasPrefix(e.Name(), fsutil.TempPrefix) {
			continue
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return d, nil
	}
	if origin, ok := originOf(path); ok {
		if o, err := parseRemote(origin); err == nil && o.canonical() == u.canonical() {
			d.fresh = false
			return d, nil
		}
		if !force {
			return nil, fault.New(fault.Usage, "%s: --path %s holds a clone of another remote (%s, not %s); choose another --path, or pass --force to replace it", conn, path, redactURL(origin), u.origin())
		}
	} else if !force {
		more := ""
		if len(names) > 3 {
			more = fmt.Sprintf(" and %d more", len(names)-3)
			names = names[:3]
		}
		return nil, fault.New(fault.Usage, "%s: --path %s is not empty (%s%s) and is not a clone of %s; empty it, choose another --path, or pass --force to replace its content", conn, path, strings.Join(names, ", "), more, u.origin())
	}
	d.replace = true
	return d, nil
}

// redactURL drops the credentials a foreign clone's config may hold.
func redactURL(s string) string {
	if r, err := parseRemote(s); err == nil {
		return r.String()
	}
	return "(an unreadable URL)"
}

// originOf reads remote.origin.url from path/.git/config, without running git.
func originOf(path string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(path, ".git", "config"))
	if err != nil {
		return "", false
	}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = strings.ToLower(strings.Join(strings.Fields(strings.Trim(line, "[]")), " "))
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && section == `remote "origin"` && strings.TrimSpace(strings.ToLower(k)) == "url" {
			return strings.Trim(strings.TrimSpace(v), `"`), true
		}
	}
	return "", false
}

// prepare returns the folder to work in: the existing clone, or a new
// staging folder.
func (d *dest) prepare() (string, error) {
	if !d.fresh {
		return d.path, nil
	}
	parent := filepath.Dir(d.path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fault.FromSystem(fmt.Errorf("%s: cannot create the parent folder of --path %s: %w", d.conn, d.path, err))
	}
	removeStale(parent, stagingPrefix(d.path))
	d.inside = isMountPoint(d.path)
	if !d.inside {
		dir, err := os.MkdirTemp(parent, stagingPrefix(d.path))
		if err == nil {
			d.staging = dir
			fsutil.Lock(dir) // another run's removeStale leaves it
			// MkdirTemp makes it 0700; the clone is for the job's user too.
			return dir, os.Chmod(dir, 0o755)
		}
		if !isDir(d.path) || !(errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)) {
			return "", fault.FromSystem(fmt.Errorf("%s: cannot create a staging folder next to --path %s: %w", d.conn, d.path, err))
		}
		d.inside = true // parent not writable, the target is: stage inside it
	}
	removeStale(d.path, stagingPrefix(d.path))
	dir, err := os.MkdirTemp(d.path, stagingPrefix(d.path))
	if err != nil {
		return "", fault.FromSystem(fmt.Errorf("%s: cannot create a staging folder in --path %s: %w", d.conn, d.path, err))
	}
	d.staging = dir
	fsutil.Lock(dir)
	return dir, nil
}

// removeStale removes staging folders a killed run left in dir (not those
// of a run still cloning).
func removeStale(dir, prefix string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), prefix) && !fsutil.InUse(filepath.Join(dir, e.Name())) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// abandon removes the staging folder of a failed run.
func (d *dest) abandon() {
	if d.staging != "" {
		os.RemoveAll(d.staging)
	}
}

// publish moves a staged clone into place; an update in place has nothing
// to move.
func (d *dest) publish() error {
	if !d.fresh {
		return nil
	}
	fail := func(err error) error {
		var fe *fault.Error
		if errors.As(err, &fe) {
			return err // says it all
		}
		return fault.FromSystem(fmt.Errorf("%s: cannot move the clone into --path %s: %w", d.conn, d.path, err))
	}
	if d.inside {
		// Empty the target (when replacing) except the staging folder, then
		// move the staged entries up.
		if d.replace {
			if err := clearDir(d.path, d.staging); err != nil {
				return fail(err)
			}
		}
		if err := d.moveUp(); err != nil {
			return fail(err)
		}
		return nil
	}
	if d.replace {
		// Move the old content aside first, so the rename cannot meet a
		// non-empty folder; remove it once the clone is in place.
		old := d.staging + ".old"
		if err := os.Rename(d.path, old); err != nil {
			return fail(err)
		}
		if err := os.Rename(d.staging, d.path); err != nil {
			os.Rename(old, d.path)
			return fail(err)
		}
		d.staging = ""
		os.RemoveAll(old)
		return nil
	}
	// Renaming onto nothing creates the folder. An empty folder is replaced
	// by the clone with rename(2), which os.Rename refuses, and the clone
	// takes its mode and owner. Where it cannot be replaced, the clone's
	// entries are moved into it: it holds lost+found or a killed run's
	// leftovers, it is a link, or it may not be replaced by this user (a
	// folder of another owner in a sticky parent) or at all (busy).
	if st, err := os.Stat(d.path); err == nil && st.IsDir() {
		keepMode(d.staging, st)
		err := unix.Rename(d.staging, d.path)
		switch {
		case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTDIR),
			errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.EBUSY):
			err = d.moveUp()
		}
		if err != nil {
			return fail(err)
		}
		d.staging = ""
		return nil
	}
	if err := os.Rename(d.staging, d.path); err != nil {
		return fail(err)
	}
	d.staging = ""
	return nil
}

// moveUp moves the staged entries into the target folder and removes the
// staging folder. .git goes last: a run cut off half-way leaves a folder
// that is not taken for a clone, which the next run refuses, rather than
// an incomplete checkout it would update in place.
func (d *dest) moveUp() error {
	entries, err := os.ReadDir(d.staging)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Name() != ".git" {
			names = append(names, e.Name())
		}
	}
	if len(names) < len(entries) {
		names = append(names, ".git")
	}
	// Nothing of --path is replaced: a name there now came from elsewhere
	// while the clone ran (another run into the same --path, a folder put
	// in its place), and is refused before anything moves.
	var taken []string
	for _, name := range names {
		if _, err := os.Lstat(filepath.Join(d.path, name)); err == nil {
			taken = append(taken, name)
		}
	}
	if len(taken) > 0 {
		return fault.New(fault.Usage, "%s: --path %s received %s from elsewhere while the clone ran (another run into the same --path?); nothing of the clone was moved over it: empty --path, or pass --force, and run again",
			d.conn, d.path, strings.Join(taken, ", "))
	}
	var moved []string
	for _, name := range names {
		err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(d.staging, name), unix.AT_FDCWD, filepath.Join(d.path, name), unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			// A file system without RENAME_NOREPLACE: the check above stands.
			err = os.Rename(filepath.Join(d.staging, name), filepath.Join(d.path, name))
		}
		if err != nil {
			// Back where they were: nothing of a clone is left half-moved.
			for _, m := range moved {
				os.Rename(filepath.Join(d.path, m), filepath.Join(d.staging, m))
			}
			if errors.Is(err, unix.EEXIST) {
				return fault.New(fault.Usage, "%s: --path %s received %s from elsewhere while the clone ran (another run into the same --path?); nothing of the clone was moved over it: empty --path, or pass --force, and run again", d.conn, d.path, name)
			}
			return err
		}
		moved = append(moved, name)
	}
	if err := os.Remove(d.staging); err != nil {
		return err
	}
	d.staging = ""
	return nil
}

// keepMode gives the staging folder the mode and owner of the empty folder
// it replaces (the owner only where this process may set it).
func keepMode(staging string, st fs.FileInfo) {
	os.Chmod(staging, st.Mode().Perm()|st.Mode()&(fs.ModeSetgid|fs.ModeSticky))
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		os.Lchown(staging, int(s.Uid), int(s.Gid))
	}
}

// clearDir removes everything in dir but keep.
func clearDir(dir, keep string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if p == keep {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// isMountPoint reports a folder that is a mount point (a volume mounted at
// --path, a bind mount): it cannot be renamed over. A device other than its
// parent's says so; /proc/self/mountinfo also catches bind mounts from the
// same file system.
func isMountPoint(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	if pst, err := os.Stat(filepath.Dir(path)); err == nil {
		a, ok1 := st.Sys().(*syscall.Stat_t)
		b, ok2 := pst.Sys().(*syscall.Stat_t)
		if ok1 && ok2 && a.Dev != b.Dev {
			return true
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	points, err := fsutil.MountPoints()
	if err != nil {
		return false
	}
	return slices.Contains(points, abs)
}

// walkTree calls f for every entry under root, .git folders excluded.
func walkTree(root string, f func(path string, info os.FileInfo)) error {
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() && e.Name() == ".git" {
			return filepath.SkipDir
		}
		if e.Name() == ".git" { // a submodule's gitfile
			return nil
		}
		info, err := e.Info()
		if err == nil {
			f(p, info)
		}
		return nil
	})
}
