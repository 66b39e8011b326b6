package fsutil

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TempPrefix starts the name of every temporary file this tool writes, so a
// later run can find and remove what a killed run left behind.
const TempPrefix = ".initializer-tmp-"

// CreateTemp creates a temporary file next to path (same directory, so the
// final rename is atomic), creating the directory when needed.
func CreateTemp(path string) (*os.File, error) {
	return CreateTempMode(path, 0o600)
}

// CreateTempMode is CreateTemp with the file created with perm (less the
// umask) instead of 0600: Publish then has no mode to change when
// FileMeta.Created says so.
func CreateTempMode(path string, perm fs.FileMode) (*os.File, error) {
	f, _, err := CreateTempTracked(path, perm)
	return f, err
}

// CreateTempTracked is CreateTempMode, and returns the outermost folder it
// created for the file ("" when it created none), even when it fails after
// creating it: the caller can remove it again.
func CreateTempTracked(path string, perm fs.FileMode) (f *os.File, created string, err error) {
	dir := filepath.Dir(path)
	f, err = createTemp(dir, perm)
	if errors.Is(err, fs.ErrNotExist) {
		created = FirstMissing(dir)
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return nil, created, err
		}
		f, err = createTemp(dir, perm)
	}
	return f, created, err
}

// createTemp is os.CreateTemp(dir, TempPrefix+"*") without registering the
// file with the runtime's poller, which a regular file refuses anyway: two
// to four fewer system calls per file, which count over many small files.
func createTemp(dir string, perm fs.FileMode) (*os.File, error) {
	for try := 0; ; try++ {
		name := filepath.Join(dir, TempPrefix+strconv.FormatUint(rand.Uint64(), 36))
		fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(perm.Perm()))
		if err == nil {
			lock(fd)
			return os.NewFile(uintptr(fd), name), nil
		}
		if err == unix.EINTR || (err == unix.EEXIST && try < 100) {
			continue
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
}

// FileMeta is what WriteFileAtomic sets on the published file.
type FileMeta struct {
	Mode    fs.FileMode // permission bits, as given (0 is no access)
	ModTime time.Time   // zero means now
	// Created is the perm the file was created with by CreateTempMode;
	// 0 means CreateTemp's 0600.
	Created fs.FileMode
}

// Created is the mode a file or folder created with perm gets: perm less
// the process's umask.
func Created(perm fs.FileMode) fs.FileMode { return perm &^ umask }

// umask is the process's file mode creation mask, read once at start.
var umask = func() fs.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return fs.FileMode(m)
}()

// WriteFileAtomic writes r to path through a temporary file in the same
// directory, sets the mode and modification time, then renames it into place.
// On any error, including a cancelled ctx, the temporary file is removed and
// path is left as it was. It returns the number of bytes written. It does not
// fsync: callers sync the file system once at the end (Syncfs).
func WriteFileAtomic(ctx context.Context, path string, r io.Reader, meta FileMeta) (n int64, err error) {
	f, err := CreateTemp(path)
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err = io.Copy(f, ContextReader(ctx, r))
	if err != nil {
		return n, err
	}
	return n, Publish(f, path, meta)
}

// Publish applies meta to the temporary file f, closes it and renames it
// to path. The caller removes f's file when Publish fails.
func Publish(f *os.File, path string, meta FileMeta) error {
	mode := meta.Mode.Perm()
	created := meta.Created.Perm()
	if created == 0 {
		created = 0o600
	}
	if created&^umask != mode {
		if err := f.Chmod(mode); err != nil {
			return err
		}
	}
	mt := meta.ModTime
	if mt.IsZero() {
		mt = time.Now()
	}
	if err := futimens(f, mt); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// rename(2) directly: os.Rename first stats path to refuse replacing a
	// folder, which rename(2) refuses too (EISDIR), one call less per file.
	if err := unix.Rename(f.Name(), path); err != nil {
		return &os.LinkError{Op: "rename", Old: f.Name(), New: path, Err: err}
	}
	return nil
}

// ContextReader returns a reader that fails with ctx.Err() once ctx is done.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// lock takes an advisory lock on the open file or folder fd for as long as
// it is open: it marks a live run's temporary file or folder, which InUse
// then tells from one a killed run left behind.
func lock(fd int) { _ = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) }

// Lock marks the temporary folder p as in use by this run, until the
// process ends.
func Lock(p string) {
	if fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECTORY, 0); err == nil {
		lock(fd) // held until exit: the descriptor is not closed
	}
}

// freshTemp is how recent a temporary file's last change must be for
// InUse to take it for a live run's without asking its lock: one made an
// instant ago may not be locked yet (its run locks it right after).
const freshTemp = 2 * time.Second

// InUse reports whether the temporary file or folder p is held by a live
// run (another process: a second run into the same --path, or into a
// folder around it), which must not lose it: it is locked, or it changed
// in the last moments.
func InUse(p string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	if time.Since(time.Unix(st.Mtim.Unix())) < freshTemp {
		return true
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == unix.EWOULDBLOCK
}

// RemoveTemps removes every file under root whose name starts with
// TempPrefix (left by an earlier run that was killed; not those of a run
// still writing, see InUse) and returns how many it removed. A missing root
// is not an error.
func RemoveTemps(root string) (int, error) {
	removed := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil // nothing there (or a file where a folder is): no temporary file either
			}
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), TempPrefix) && !InUse(p) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			removed++
		}
		return nil
	})
	return removed, err
}

// RemoveTempsIn removes the temporary files an earlier run left in dir
// itself, not in its subfolders, and returns how many it removed. A missing
// dir is not an error.
func RemoveTempsIn(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return 0, nil
		}
		return 0, err
	}
	removed := 0
	for _, e := range entries {
		if p := filepath.Join(dir, e.Name()); !e.IsDir() && strings.HasPrefix(e.Name(), TempPrefix) && !InUse(p) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// futimens sets f's access and modification times to t through its
// descriptor (utimensat(2) with no path: nothing to look up).
func futimens(f *os.File, t time.Time) error {
	ts, err := unix.TimeToTimespec(t)
	if err != nil {
		return os.Chtimes(f.Name(), t, t) // out of the kernel's range: as os does
	}
	times := [2]unix.Timespec{ts, ts}
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&times[0])), 0, 0, 0); e != 0 {
		return &fs.PathError{Op: "futimens", Path: f.Name(), Err: e}
	}
	return nil
}

// Allocated is the room a file takes on its file system: its size, or less
// for a sparse file (one with holes), whose copy by CopyFileAtomic keeps them.
func Allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Blocks*512 < info.Size() {
		return st.Blocks * 512
	}
	return info.Size()
}

// CopyFileAtomic is WriteFileAtomic of the file src, of size bytes (its
// size when opened), from its start. A sparse src is copied with its holes
// (they read as zeros and take no room): only its data is read and
// written. It returns the number of bytes the copy holds.
func CopyFileAtomic(ctx context.Context, path string, src *os.File, size int64, meta FileMeta) (n int64, err error) {
	info, err := src.Stat()
	if err != nil || Allocated(info) >= size {
		return WriteFileAtomic(ctx, path, src, meta)
	}
	f, err := CreateTemp(path)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	fd := int(src.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO || err == nil && data >= size {
			break // holes to the end
		}
		if err != nil {
			return 0, &fs.PathError{Op: "seek", Path: src.Name(), Err: err}
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return 0, &fs.PathError{Op: "seek", Path: src.Name(), Err: err}
		}
		hole = min(hole, size)
		if _, err := io.Copy(io.NewOffsetWriter(f, data), ContextReader(ctx, io.NewSectionReader(src, data, hole-data))); err != nil {
			return 0, err
		}
		off = hole
	}
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	return size, Publish(f, path, meta)
}
