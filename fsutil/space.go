package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Space is the size of a file system, in bytes.
type Space struct {
	Total      uint64 // size of the file system
	Free       uint64 // available to an unprivileged user
	Inodes     uint64 // file slots of the file system (0 when it has no fixed number)
	FreeInodes uint64 // file slots free
	Block      uint64 // the allocation unit: a file takes whole blocks
}

// FreeSpace reports the size and free space of the file system holding path.
func FreeSpace(path string) (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Space{}, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	bs := uint64(st.Bsize)
	return Space{Total: st.Blocks * bs, Free: st.Bavail * bs, Inodes: st.Files, FreeInodes: st.Ffree, Block: bs}, nil
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

// MountID identifies the mount p is on (p itself when it is a mount
// point): its mount ID where the kernel gives one (bind mounts of one file
// system share a device, and a rename between them fails all the same),
// else its device.
func MountID(p string) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, &os.PathError{Op: "statx", Path: p, Err: err}
	}
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		return stx.Mnt_id, nil
	}
	return uint64(stx.Dev_major)<<32 | uint64(stx.Dev_minor), nil
}

// MountPointError is returned by NoMountIn for the mount point it met.
type MountPointError struct{ Path string }

func (e *MountPointError) Error() string { return e.Path + " is a mount point (another volume)" }

// NoMountIn returns a *MountPointError when p is, or (a folder) holds, the
// mount point of another file system than root's: what may not be removed
// to clear the way for a copy into root.
func NoMountIn(root, p string) error {
	rootID, err := MountID(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(p, func(q string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		m, err := MountID(q)
		if err != nil {
			return err
		}
		if m != rootID {
			return &MountPointError{Path: q}
		}
		return nil
	})
}

// RemoveInTheWay removes p (st is its Lstat), which stands where a copy
// into root puts something else: a file or a link (never what it points
// to), or a folder with all it holds. It refuses, with a *MountPointError,
// what is or holds the mount point of another file system than root's. It
// returns what p was: "file", "link" or "folder".
func RemoveInTheWay(root, p string, st fs.FileInfo) (string, error) {
	if err := NoMountIn(root, p); err != nil {
		return "", err
	}
	what, err := "file", error(nil)
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		what, err = "link", os.Remove(p)
	case st.IsDir():
		what, err = "folder", os.RemoveAll(p)
	default:
		err = os.Remove(p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return what, err
}

// MountPoints lists the mount points of this process's mount namespace:
// field 5 of /proc/self/mountinfo, its octal escapes (\040 for a space)
// undone.
func MountPoints() ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			points = append(points, unescapeMountinfo(f[4]))
		}
	}
	return points, nil
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

// PrivateTempDir makes a folder only this user may enter, for files that
// may be secret (a key's copy, a handler's result): under $TMPDIR (or
// /tmp), else under /dev/shm, which a container with a read-only root
// file system still has. Its error says to set TMPDIR.
func PrivateTempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err == nil {
		return dir, nil
	}
	if shm, serr := os.MkdirTemp("/dev/shm", pattern); serr == nil {
		return shm, nil
	}
	return "", fmt.Errorf("%w; set TMPDIR to a writable folder (an emptyDir with a read-only root file system)", err)
}
