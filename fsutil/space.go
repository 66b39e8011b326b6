package fsutil

import (
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Space is the size of a file system, in bytes.
type Space struct {
	Total      uint64 // size of the file system
	Free       uint64 // available to an unprivileged user
	Inodes     uint64 // file slots of the file system (0 when it has no fixed number)
	FreeInodes uint64 // file slots free
}

// FreeSpace reports the size and free space of the file system holding path.
func FreeSpace(path string) (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Space{}, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	bs := uint64(st.Bsize)
	return Space{Total: st.Blocks * bs, Free: st.Bavail * bs, Inodes: st.Files, FreeInodes: st.Ffree}, nil
}

// Syncfs flushes the whole file system holding path to stable storage: one
// call at the end of a transfer instead of an fsync per file.
func Syncfs(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}

// Now returns the time the file system holding dir gives a file created
// now: the kernel stamps files with a clock that lags the process's by up
// to a tick, so "created before now" compares with this, not time.Now.
func Now(dir string) (time.Time, error) {
	f, err := CreateTemp(filepath.Join(dir, "now"))
	if err != nil {
		return time.Time{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return time.Time{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec), nil
}
