package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers/store"
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
	if err := os.Mkdir(dir, 0o777); err == nil {
		// Shared as /tmp is: the sidecars of other users of the volume
		// (another runAsUser, the same fsGroup) write theirs there too,
		// and none may remove another's. (Mkdir's mode lost the umask;
		// an inherited setgid bit stays, so that files keep the group.)
		setgid := os.FileMode(0)
		if st, err := os.Stat(dir); err == nil {
			setgid = st.Mode() & os.ModeSetgid
		}
		_ = os.Chmod(dir, 0o777|os.ModeSticky|setgid)
	} else if !errors.Is(err, fs.ErrExist) {
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

// MountUploader writes the uploads of a mount store itself (it is a
// transfer.Provider, transfer.StreamUploader and transfer.BytesUploader):
// fileblob's writer names its temporary file after the target plus 21
// bytes, so a file whose name has more than 234 of the 255 bytes a name
// may have could not be uploaded. Its temporary files have short names of
// fileblob's pattern (which removeStaleTemps knows), in the mount's shared
// folder of them, or beside the target when there is none (hidden there as
// this tool's: host_path downloads and the sidecar's scans skip them). The
// target is the file fileblob would read for the key (escaped names
// included), so that fileblob's listing and deletions see the same store.
type MountUploader struct {
	bucket *blob.Bucket
	dir    string // the mount
	tmp    string // the shared folder of temporary files; "" for beside the targets
}

// PinVersion, CRC32C and BeforeWrite: a mount has no versions or CRC32C,
// and no options to add.
func (MountUploader) PinVersion(*blob.Attributes) func(func(any) bool) error { return nil }
func (MountUploader) CRC32C(func(any) bool) (uint32, bool)                   { return 0, false }
func (MountUploader) BeforeWrite() func(func(any) bool) error                { return nil }

// UploadBytes writes data to key.
func (m MountUploader) UploadBytes(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) (bool, error) {
	return m.upload(ctx, b, key, opts, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// copyBuffers are the buffers of UploadStream's copies.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// UploadStream writes what r yields to key: to a temporary file, then
// renamed into place; on failure or when ctx ends (checked between
// buffers), nothing is left. It declines another bucket, and refuses
// (a usage error) keys that fileblob reserves (".attrs" at the end: its
// attribute files).
func (m MountUploader) UploadStream(ctx context.Context, b *blob.Bucket, key string, r io.Reader, opts *blob.WriterOptions, _ int64, _ int) (bool, error) {
	return m.upload(ctx, b, key, opts, func(f *os.File) error {
		buf := copyBuffers.Get().(*[]byte)
		defer copyBuffers.Put(buf)
		_, err := io.CopyBuffer(f, fsutil.ContextReader(ctx, r), *buf)
		return err
	})
}

// upload writes key with write: to a temporary file, renamed into place.
func (m MountUploader) upload(ctx context.Context, b *blob.Bucket, key string, opts *blob.WriterOptions, write func(*os.File) error) (bool, error) {
	if b != m.bucket || opts.IfNotExist || opts.BeforeWrite != nil {
		return false, nil
	}
	if strings.HasSuffix(key, ".attrs") {
		// The storage library keeps its attribute files under such names:
		// it would neither list nor delete the file.
		return true, fault.New(fault.Usage, "%s: a name ending in .attrs cannot be stored in a host_path/volume_claim store (the storage library reserves it); rename the file or leave it out with --exclude '*.attrs'", key)
	}
	target := store.FileblobPath(m.dir, key)
	if !fsutil.Within(m.dir, target) || target == m.dir {
		return false, nil // fileblob refuses it, with its own error
	}
	if err := mkdirShared(filepath.Dir(target)); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) {
			return true, fault.New(fault.Usage, "%s: a file of an earlier upload has the name of one of its folders in the store (%w); it is kept: remove it from the store (--delete removes the objects of files this sidecar saw deleted)", key, err)
		}
		return true, mountFault(err)
	}
	dir := m.tmp
	if dir == "" {
		dir = filepath.Dir(target)
	}
	f, err := createUploadTemp(dir)
	if errors.Is(err, fs.ErrNotExist) && dir == m.tmp {
		// The shared folder was removed meanwhile: made again.
		if err = os.Mkdir(dir, 0o777); err == nil || errors.Is(err, fs.ErrExist) {
			f, err = createUploadTemp(dir)
		}
	}
	if err != nil {
		return true, err
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return true, err
	}
	if err := f.Close(); err != nil {
		return true, err
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	if err := os.Rename(f.Name(), target); err != nil {
		if st, serr := os.Lstat(target); serr == nil && st.IsDir() {
			return true, fault.New(fault.Usage, "%s: a folder of earlier uploads has its name in the store (%s); it is kept: remove it from the store (--delete removes the objects of files this sidecar saw deleted)", key, target)
		}
		return true, mountFault(err)
	}
	committed = true
	return true, nil
}

// mkdirShared makes dir and the folders above it that are missing, each
// group-writable (the umask left aside) and keeping the setgid bit it
// inherits: the volume's other users (the pod's fsGroup) upload there too.
func mkdirShared(dir string) error {
	top := fsutil.FirstMissing(dir)
	if err := os.MkdirAll(dir, 0o777); err != nil || top == "" {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil {
			_ = os.Chmod(d, st.Mode()&(os.ModePerm|os.ModeSetgid)|0o770)
		}
		if d == top || d == filepath.Dir(d) {
			return nil
		}
	}
}

// mountFault explains a mount store's refusal to this user, or its file
// system's being read-only: not the store's credentials, the volume's
// owner and mode.
func mountFault(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fault.New(fault.Auth, "%v; let this container's user (uid %d) write there: the volume's owner or mode, or the pod's securityContext (fsGroup, runAsUser)", err, os.Getuid())
	case errors.Is(err, syscall.EROFS):
		return fault.New(fault.LocalDisk, "%v; mount the volume read-write", err)
	}
	return err
}

// createUploadTemp creates a temporary file in dir named like fileblob's
// (prefix, a dot, the time in 16 hexadecimal digits, ".tmp"), readable as
// fileblob makes its files (0666 less the umask).
func createUploadTemp(dir string) (*os.File, error) {
	for try := 0; ; try++ {
		name := filepath.Join(dir, fmt.Sprintf("%sup.%016x.tmp", fsutil.TempPrefix, time.Now().UnixNano()))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) && try < 10000 {
			continue
		}
		return f, err
	}
}
