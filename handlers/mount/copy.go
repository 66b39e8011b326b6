package mount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/transfer"
)

// Options tune a copy.
type Options struct {
	Workers int          // files copied in parallel; 0 means 8
	Log     *slog.Logger // progress and warnings
	Conn    string       // names the connection in errors
	// ProgressEvery is how often a progress line is logged; 0 means 5 s.
	ProgressEvery time.Duration
	Terminal      io.Writer // when set, a live progress bar is drawn there
	// Checksum: a file already there is up to date when its content is
	// the same, whatever its time.
	Checksum bool
	// Force removes what stands in the way: a file (or link) where the
	// source has a folder, a folder where it has a file or a link, a file
	// at --path itself; never what is or holds a mount point.
	Force bool

	beforeFile func(src string) // test hook, called as each file copy starts
	afterCopy  func(src string) // test hook, called as each file's bytes are copied
}

// Stats count what a copy did.
type Stats struct {
	Files   int64    // files written
	Bytes   int64    // bytes written
	Skipped int64    // files already identical (size and mtime, or content with Checksum)
	Links   int64    // symbolic links recreated
	Dirs    int64    // folders created
	Ignored []string // entries not copied (links leaving the root, special files)
}

// maxIgnored bounds the list of ignored entries kept for the result.
const maxIgnored = 100

type copier struct {
	opts    Options
	srcRoot string // real path of the source root, symlinks resolved
	dstRoot string // absolute --path
	// repl: --force's replacement of a file at --path, until the end.
	repl     *fsutil.Replacement
	files    atomic.Int64
	skipped  atomic.Int64
	links    atomic.Int64
	dirs     atomic.Int64
	mu       sync.Mutex
	ignored  []string
	dirModes []dirMode
	made     *fsutil.MadeDirs // folders made: removed if still empty when the copy fails
	block    int64            // the allocation unit at --path: a file takes whole blocks
	prog     *transfer.Progress
	maps     []srcDst // every mapping's source (real path) and destination
}

// srcDst is a mapping resolved: what is copied, to where.
type srcDst struct{ src, dst string }

type dirMode struct {
	path string
	mode fs.FileMode
}

type job struct {
	src, dst string
	info     fs.FileInfo
}

// CopyMappings copies each mapping's Src below srcRoot to its Dst below
// dstRoot. Files are written atomically (temporary file, then rename) with
// their mode and modification time; files already identical (same size and
// mtime) are skipped; symbolic links are recreated only when they point
// inside srcRoot; temporary files left by a killed earlier run are removed
// first, and on error or cancellation nothing half-written is left. The
// file system is synced once at the end.
func CopyMappings(ctx context.Context, srcRoot, dstRoot string, mappings []handlers.Mapping, opts Options) (Stats, error) {
	created := ""
	if abs, err := filepath.Abs(dstRoot); err == nil {
		created = fsutil.FirstMissing(abs)
	}
	st, err := copyMappings(ctx, srcRoot, dstRoot, mappings, opts)
	if err != nil && created != "" {
		// A --path this run created: no empty folders are left of it.
		abs, _ := filepath.Abs(dstRoot)
		fsutil.RemoveEmptyDirs(abs) // abs included, when empty
		if _, err := os.Lstat(abs); err != nil && abs != created {
			fsutil.RemoveEmptyUpTo(filepath.Dir(abs), created)
		}
	}
	return st, err
}

func copyMappings(ctx context.Context, srcRoot, dstRoot string, mappings []handlers.Mapping, opts Options) (Stats, error) {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 5 * time.Second
	}
	real, err := filepath.EvalSymlinks(srcRoot)
	if err != nil {
		return Stats{}, fault.FromSystem(fmt.Errorf("%s: %w", opts.Conn, err))
	}
	dstAbs, err := filepath.Abs(dstRoot)
	if err != nil {
		return Stats{}, fault.FromSystem(err)
	}
	// Compared as they really are: a --path reached through a link into
	// the mount (or the mount's) overlaps as much as one given plainly.
	if dstReal := fsutil.Resolve(dstAbs); fsutil.Within(real, dstAbs) || fsutil.Within(dstAbs, real) ||
		fsutil.Within(real, dstReal) || fsutil.Within(dstReal, real) {
		return Stats{}, fault.New(fault.Usage, "%s: --path %s and the mount %s overlap; copy into a folder outside the mount", opts.Conn, dstRoot, srcRoot)
	}
	c := &copier{opts: opts, srcRoot: real, dstRoot: dstAbs, made: fsutil.NewMadeDirs()}
	if err := c.makeRoot(dstRoot); err != nil {
		return Stats{}, err
	}
	defer c.repl.Settle(false, opts.Log) // a return before the end: failed
	if r, err := filepath.EvalSymlinks(dstAbs); err == nil && r != dstAbs {
		// A --path that is a link to a folder (a volume mounted elsewhere)
		// is that folder: the copy goes into it, never over the link.
		dstAbs, c.dstRoot = r, r
	}
	held := fsutil.Hold(dstAbs)
	defer held.Close()
	if n, err := fsutil.RemoveTemps(dstAbs); err != nil {
		return Stats{}, fault.FromSystem(err)
	} else if n > 0 {
		opts.Log.Info("removed temporary files left by an earlier run", "count", n, "path", dstRoot)
	}

	// Plan: resolve every mapping, then check free space for what must be written.
	var plan []srcDst
	var need int64
	for _, m := range mappings {
		src, isFile, err := resolveSrc(real, m, opts.Conn)
		if err != nil {
			return Stats{}, err
		}
		dst := filepath.Join(dstAbs, filepath.FromSlash(m.Dst))
		if isFile {
			dst = filepath.Join(dstAbs, filepath.FromSlash(m.FileDst())) // src:dir/ puts a file into dir
		}
		plan = append(plan, srcDst{src, dst})
	}
	c.maps = plan // links lead to what any of them copies
	space, serr := fsutil.FreeSpace(dstAbs)
	c.block = int64(space.Block)
	var size, files int64 // of what must be copied, for the progress
	for _, p := range plan {
		pd, err := c.pending(ctx, p.src, p.dst)
		if err != nil {
			return Stats{}, err
		}
		need, size, files = need+pd.room, size+pd.size, files+pd.files
	}
	if serr == nil && uint64(need) > space.Free {
		return Stats{}, fault.New(fault.LocalDisk, "%s: not enough space at %s: %s to copy, %s free; give the volume more room or copy fewer --paths", opts.Conn, dstRoot, human(uint64(need)), human(space.Free))
	}

	c.prog = transfer.NewProgress(transfer.ProgressOptions{Log: opts.Log, Every: opts.ProgressEvery, Terminal: opts.Terminal,
		Message: "copying", Files: &c.files, Skipped: &c.skipped})
	c.prog.Planned(files, size)
	defer c.prog.Stop()
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan job, opts.Workers*4)
	for range opts.Workers {
		g.Go(func() error {
			for j := range jobs {
				if err := c.copyFile(gctx, j); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		for _, p := range plan {
			if err := c.walk(gctx, p.src, p.dst, jobs); err != nil {
				return err
			}
		}
		return nil
	})
	err = g.Wait()
	if rerr := held.Replaced(); rerr != nil && ctx.Err() == nil {
		err = fault.New(fault.LocalDisk, "%s: %v while the copy wrote into it (by another container or process?): files may be missing; run again, with nothing else removing --path", opts.Conn, rerr)
	}
	if err == nil {
		err = c.applyDirModes()
	}
	if err == nil {
		if serr := fsutil.Syncfs(dstAbs); serr != nil {
			err = fault.FromSystem(serr)
		}
	}
	st := Stats{Files: c.files.Load(), Bytes: c.prog.Live.Load(), Skipped: c.skipped.Load(), Links: c.links.Load(), Dirs: c.dirs.Load(), Ignored: c.ignored}
	if err != nil {
		c.made.RemoveEmpty() // nothing half-copied, empty folders included
		c.repl.Settle(false, opts.Log)
		if ctx.Err() != nil {
			return st, fault.Wrap(fault.Interrupted, fmt.Errorf("%s: copy interrupted after %s: %w", opts.Conn, transfer.Count(st.Files, "file"), ctx.Err()))
		}
		return st, err
	}
	c.repl.Settle(true, opts.Log)
	return st, nil
}

// resolveSrc finds m's source below real, the mount's real path: its real
// path (a link named, or on the way, is followed, so that the copy is of
// what it leads to), and whether it is a file. It refuses a source that
// is not there (exit 4), that leads out of the mount through a link, or a
// file whose destination is empty (exit 2). conn names the connection.
func resolveSrc(real string, m handlers.Mapping, conn string) (src string, isFile bool, err error) {
	name := m.Name("--paths")
	if m.Whole != "" {
		if _, err := os.Lstat(filepath.Join(real, filepath.FromSlash(m.Whole))); err == nil {
			return "", false, m.Ambiguous(connName(conn), "--paths", "a path")
		}
	}
	src = filepath.Join(real, filepath.FromSlash(m.Src))
	resolved, err := filepath.EvalSymlinks(src)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, fault.New(fault.NotFound, "%s: %s: %s does not exist in the mount%s", conn, name, src, m.ColonHint())
	case err != nil:
		return "", false, fault.FromSystem(fmt.Errorf("%s: %w", conn, err))
	case !fsutil.Within(real, resolved):
		return "", false, fault.New(fault.Usage, "%s: %s leads outside the mount through a link (to %s); name a path inside it", conn, name, resolved)
	}
	if st, err := os.Stat(resolved); err == nil && !st.IsDir() {
		if m.SrcDir {
			return "", false, fault.New(fault.Usage, "%s: %s: %s is a file, and a name ending with a slash is a folder; name the file without the slash", conn, name, src)
		}
		if m.FileDst() == "" {
			return "", false, fault.New(fault.Usage, "%s: %s names a file, and the destination is empty; give a file name (src:dst) or a folder (src:dir/)", conn, name)
		}
		return resolved, true, nil
	}
	return resolved, false, nil
}

// connName is a connection's name in messages, as a fmt.Stringer.
type connName string

func (c connName) String() string { return string(c) }

// pendingCopy is what the regular files under a source take: the room
// (whole blocks) of those that differ at their destination, for the free
// space; the bytes and the files of all, for the progress.
type pendingCopy struct{ room, size, files int64 }

// pending sums what the regular files under src take (pendingCopy).
func (c *copier) pending(ctx context.Context, src, dst string) (pendingCopy, error) {
	var n pendingCopy
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return c.walkErr(p, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ok, skip := ownTemp(src, p, d); ok {
			return skip // not copied (walk): nothing to plan for
		}
		var info fs.FileInfo
		switch {
		case d.Type().IsRegular():
			if info, err = d.Info(); err != nil {
				return c.walkErr(p, err)
			}
		case d.Type()&fs.ModeSymlink != 0:
			// A link copied as the file it leads to (linkAction).
			if _, file, _ := c.linkAction(p, target(src, dst, p), src); file != nil {
				info = file
			}
		}
		if info != nil && info.Mode().IsRegular() {
			n.size += info.Size()
			n.files++
			if !upToDate(info, target(src, dst, p)) {
				n.room += fsutil.Blocks(fsutil.Allocated(info), c.block) // a sparse file's copy keeps its holes
			}
		}
		return nil
	})
	return n, err
}

func target(src, dst, p string) string {
	rel, _ := filepath.Rel(src, p)
	return filepath.Join(dst, rel)
}

// walkErr is the error for p, met in the mount while walking or copying
// it, which could not be read. Every source was there when the copy began:
// one missing now was removed since.
func (c *copier) walkErr(p string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fault.New(fault.Auth, "%s: cannot read %s in the mount: %v; fix its permissions or the pod's securityContext", c.opts.Conn, p, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fault.New(fault.NotFound, "%s: %s was removed from the mount while the copy ran; run again once nothing removes files from it", c.opts.Conn, p)
	}
	return fault.FromSystem(fmt.Errorf("%s: %w", c.opts.Conn, err))
}

// ownTemp reports whether p, met walking src, is this tool's own temporary
// file or folder (an upload or a copy killed midway, the sidecar's folder
// of them): never data, never copied. skip is what the walk returns for it.
func ownTemp(src, p string, d fs.DirEntry) (ok bool, skip error) {
	if p == src || !strings.HasPrefix(d.Name(), fsutil.TempPrefix) {
		return false, nil
	}
	if d.IsDir() {
		return true, filepath.SkipDir
	}
	return true, nil
}

func (c *copier) walk(ctx context.Context, src, dst string, jobs chan<- job) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return c.walkErr(p, err)
		}
		if ok, skip := ownTemp(src, p, d); ok {
			c.opts.Log.Info("not copied: this tool's temporary files (.initializer-tmp-*)", "path", p)
			return skip
		}
		to := target(src, dst, p)
		info, err := d.Info()
		if err != nil {
			return c.walkErr(p, err)
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			return c.makeDir(to, mode.Perm())
		case mode.IsRegular():
			select {
			case jobs <- job{src: p, dst: to, info: info}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		case mode&fs.ModeSymlink != 0:
			rel, file, why := c.linkAction(p, to, src)
			switch {
			case why != "":
				c.ignore(p, why)
				return nil
			case file != nil:
				select {
				case jobs <- job{src: p, dst: to, info: file}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return c.copyLink(p, to, rel)
		default:
			c.ignore(p, "not a regular file, folder or link")
			return nil
		}
	})
}

// makeRoot creates --path. A file there is replaced with --force; a file
// on its path is refused.
func (c *copier) makeRoot(shown string) error {
	c.repl = fsutil.NewReplacement(c.dstRoot, "copy", c.opts.Force)
	err := os.MkdirAll(c.dstRoot, 0o755)
	if err != nil && (errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST)) {
		st, lerr := os.Lstat(c.dstRoot)
		if lerr != nil || st.IsDir() || !c.opts.Force {
			return fault.New(fault.Usage, "%s: --path %s is a file, or a name on its path is: give a folder, remove the file, or pass --force to replace a file at --path", c.opts.Conn, shown)
		}
		// Set aside, not removed, until the copy has succeeded: a failed
		// one (a --paths not in the mount, no room) puts it back.
		aerr := c.repl.SetAside()
		var mp *fsutil.MountPointError
		switch {
		case errors.As(aerr, &mp):
			return fault.New(fault.Usage, "%s: --force will not remove %s: %s; unmount it, or choose another --path", c.opts.Conn, c.dstRoot, aerr)
		case aerr != nil:
			return fault.FromSystem(fmt.Errorf("%s: --force: %w", c.opts.Conn, aerr))
		}
		if err = os.Mkdir(c.dstRoot, 0o755); err != nil {
			c.repl.Settle(false, c.opts.Log)
		}
	}
	if err != nil {
		return fault.FromSystem(fmt.Errorf("%s: cannot create --path %s: %w", c.opts.Conn, shown, err))
	}
	return nil
}

// clear removes p, which stands where the source puts a want ("folder",
// "file" or "link"), for --force: a file or a link (never what it points
// to), or a folder with all it holds, unless it is or holds a mount point.
// root is where the copy writes (for the mount check).
func (c *copier) clear(p, root string, st fs.FileInfo, want string) error {
	what, err := fsutil.RemoveInTheWay(root, p, st)
	var mp *fsutil.MountPointError
	switch {
	case errors.As(err, &mp):
		return fault.New(fault.Usage, "%s: --force will not remove %s: %s; unmount it, or choose another --path", c.opts.Conn, p, err)
	case err != nil:
		return fault.FromSystem(fmt.Errorf("%s: --force: %w", c.opts.Conn, err))
	}
	c.opts.Log.Warn("--force: removed a "+what+" that stood where the mount has a "+want, "path", p)
	return nil
}

// inTheWay refuses p, which stands where the source src puts a want
// ("folder", "file" or "link"), or clears it with --force.
func (c *copier) inTheWay(p string, st fs.FileInfo, src, want string) error {
	if !c.opts.Force {
		if want == "folder" {
			return fault.New(fault.Usage, "%s: %s exists and is not a folder, but the source has a folder there; remove it, or pass --force", c.opts.Conn, p)
		}
		return fault.New(fault.Usage, "%s: %s is a folder, but the source %s is a %s; remove it, or pass --force", c.opts.Conn, p, src, want)
	}
	return c.clear(p, c.dstRoot, st, want)
}

func (c *copier) makeDir(dst string, perm fs.FileMode) error {
	st, err := os.Lstat(dst)
	if err == nil && !st.IsDir() {
		if err := c.inTheWay(dst, st, "", "folder"); err != nil {
			return err
		}
		err = fs.ErrNotExist
	}
	var now fs.FileMode // the mode it has while the copy runs
	switch {
	case err == nil:
		now = st.Mode().Perm()
		if dst != c.dstRoot && now&0o300 != 0o300 {
			// A folder an earlier copy gave a read-only mode: owner-writable
			// again while this one fills it (the source's mode is set at the
			// end). Not this user's: the writes say what to do.
			_ = os.Chmod(dst, st.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky)|0o300)
			now |= 0o300
		}
	default:
		// Owner-writable while the copy fills it; the source's mode is set at the end.
		top := fsutil.FirstMissing(dst)
		if err := os.MkdirAll(dst, perm|0o700); err != nil {
			return fault.FromSystem(fmt.Errorf("%s: %w", c.opts.Conn, err))
		}
		if dst != c.dstRoot {
			c.made.Add(top)
		}
		c.dirs.Add(1)
		now = fsutil.Created(perm | 0o700)
	}
	if dst == c.dstRoot || now == perm {
		// --path keeps its own mode: it is often a folder the pod made
		// for several users (an emptyDir, group-writable), which this
		// user may not chmod, and others must still write in. A folder
		// with its mode already is not kept in memory until the end.
		return nil
	}
	c.mu.Lock()
	c.dirModes = append(c.dirModes, dirMode{dst, perm})
	c.mu.Unlock()
	return nil
}

// applyDirModes gives folders their source modes, deepest first.
func (c *copier) applyDirModes() error {
	for i := len(c.dirModes) - 1; i >= 0; i-- {
		d := c.dirModes[i]
		mode := d.mode
		if st, err := os.Stat(d.path); err == nil {
			// A setgid bit inherited from --path (an emptyDir's, for the
			// pod's fsGroup) stays: files made there later keep the group.
			mode |= st.Mode() & os.ModeSetgid
		}
		if err := os.Chmod(d.path, mode); err != nil {
			return fault.FromSystem(fmt.Errorf("%s: giving %s its mode in the mount: %w", c.opts.Conn, d.path, err))
		}
	}
	return nil
}

// upToDate reports whether dst is a regular file with src's size and
// modification time. Copies keep times to the nanosecond, so the times
// must be equal; to the second only where dst's file system keeps whole
// seconds (its time has no fraction).
func upToDate(src fs.FileInfo, dst string) bool {
	st, err := os.Lstat(dst)
	if err != nil || !st.Mode().IsRegular() || st.Size() != src.Size() {
		return false
	}
	a, b := src.ModTime(), st.ModTime()
	return a.Equal(b) || b.Nanosecond() == 0 && a.Unix() == b.Unix()
}

// sameContent reports whether the files src and dst (of src's size) hold
// the same bytes, for --checksum; dst then gets src's time (best-effort),
// so that a later run without --checksum finds it up to date too.
func (c *copier) sameContent(ctx context.Context, src fs.FileInfo, srcPath, dst string) (bool, error) {
	st, err := os.Lstat(dst)
	if err != nil || !st.Mode().IsRegular() || st.Size() != src.Size() {
		return false, nil
	}
	a, err := os.Open(srcPath)
	if err != nil {
		return false, c.walkErr(srcPath, err)
	}
	defer a.Close()
	b, err := os.Open(dst)
	if err != nil {
		return false, nil // replaced below, as any file that differs
	}
	defer b.Close()
	bufA, bufB := make([]byte, 256<<10), make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		n, errA := io.ReadFull(a, bufA)
		m, errB := io.ReadFull(b, bufB)
		if n != m || !bytes.Equal(bufA[:n], bufB[:m]) {
			return false, nil
		}
		if errA != nil || errB != nil {
			if (errA == io.EOF || errA == io.ErrUnexpectedEOF) && errA == errB {
				break
			}
			if errA != nil && errA != io.EOF && errA != io.ErrUnexpectedEOF {
				return false, c.walkErr(srcPath, errA)
			}
			return false, nil
		}
	}
	if !st.ModTime().Equal(src.ModTime()) {
		if err := os.Chtimes(dst, src.ModTime(), src.ModTime()); err != nil {
			c.opts.Log.Warn("same content, but its time cannot be set", "path", dst, "error", err.Error())
		}
	}
	return true, nil
}

func (c *copier) copyFile(ctx context.Context, j job) error {
	if c.opts.beforeFile != nil {
		c.opts.beforeFile(j.src)
	}
	if st, err := os.Lstat(j.dst); err == nil && st.IsDir() {
		if err := c.inTheWay(j.dst, st, j.src, "file"); err != nil {
			return err
		}
	} else if err == nil {
		same := upToDate(j.info, j.dst)
		if c.opts.Checksum {
			var err error
			if same, err = c.sameContent(ctx, j.info, j.src, j.dst); err != nil {
				return err
			}
		}
		if same {
			if st.Mode().Perm() != j.info.Mode().Perm() {
				if err := os.Chmod(j.dst, j.info.Mode().Perm()); err != nil {
					return fault.FromSystem(err)
				}
			}
			c.skipped.Add(1)
			c.prog.Skip(j.info.Size())
			return nil
		}
	}
	// A file changed while it was copied is copied once more, from what
	// it is then; one that changes again fails the run (exit 6).
	for try := 0; ; try++ {
		n, changed, err := c.copyOnce(ctx, j)
		if err != nil {
			return err
		}
		if changed == "" {
			c.files.Add(1)
			c.prog.Live.Add(n) // the bytes written, for the progress and the stats
			return nil
		}
		if try == 1 {
			return fault.New(fault.Integrity, "%s: %s changed while it was copied, twice (%s); copy it once nothing writes it (a log or a file still being written: leave it out with --paths)", c.opts.Conn, j.src, changed)
		}
		c.opts.Log.Warn("changed while it was copied, copying it again", "path", j.src, "change", changed)
	}
}

// copyOnce copies j's file as it is when opened (its size, mode and time
// then, not the walk's), and says how it changed during the copy, if it
// did: the copy is then removed.
func (c *copier) copyOnce(ctx context.Context, j job) (n int64, changed string, err error) {
	f, err := os.Open(j.src)
	if err != nil {
		return 0, "", c.walkErr(j.src, err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return 0, "", c.walkErr(j.src, err)
	}
	n, err = fsutil.CopyFileAtomic(ctx, j.dst, f, before.Size(), fsutil.FileMeta{Mode: before.Mode().Perm(), ModTime: before.ModTime()})
	if err != nil {
		if ctx.Err() != nil {
			return n, "", ctx.Err()
		}
		return n, "", fault.FromSystem(fmt.Errorf("%s: copying %s to %s: %w", c.opts.Conn, j.src, j.dst, err))
	}
	if c.opts.afterCopy != nil {
		c.opts.afterCopy(j.src)
	}
	after, err := f.Stat()
	switch {
	case err != nil:
		return n, "", c.walkErr(j.src, err)
	case n != before.Size():
		changed = fmt.Sprintf("%d bytes when opened, %d read", before.Size(), n)
	case after.Size() != n || !after.ModTime().Equal(before.ModTime()):
		changed = fmt.Sprintf("written to during the copy: %d bytes now", after.Size())
	default:
		return n, "", nil
	}
	os.Remove(j.dst)
	return n, changed, nil
}

// linkAction decides what the copy (at dst) of the link at src, met while
// copying the folder root, is: a link to what it leads to, when that is
// copied too (inside root, or by another mapping, wherever that one puts
// it), as the relative link rel; else, for a file elsewhere in the mount,
// that file (file, read through the link), as rsync's --copy-unsafe-links
// does; anything else is left out, why saying why: a link out of the
// mount, a dangling link, a link to a folder no mapping copies (to be
// copied with its own --paths).
func (c *copier) linkAction(src, dst, root string) (rel string, file fs.FileInfo, why string) {
	resolved, err := filepath.EvalSymlinks(src)
	if err != nil {
		return "", nil, "dangling link"
	}
	if !fsutil.Within(c.srcRoot, resolved) {
		return "", nil, "link points outside the mount"
	}
	if !fsutil.Within(root, resolved) {
		// Copied by another mapping: a link to where that one puts it.
		for _, m := range c.maps {
			if m.src != root && fsutil.Within(m.src, resolved) {
				if rel, err := filepath.Rel(filepath.Dir(dst), target(m.src, m.dst, resolved)); err == nil {
					return rel, nil, ""
				}
			}
		}
		st, err := os.Stat(resolved)
		switch {
		case err != nil:
			return "", nil, "link target cannot be read: " + err.Error()
		case st.Mode().IsRegular():
			return "", st, ""
		}
		return "", nil, "link to a folder outside the paths copied (name it in --paths to copy it)"
	}
	rel, err = filepath.Rel(filepath.Dir(src), resolved)
	if err != nil {
		return "", nil, "link target cannot be made relative"
	}
	return rel, nil, ""
}

// copyLink writes the link dst -> rel (linkAction).
func (c *copier) copyLink(src, dst, rel string) error {
	if cur, err := os.Readlink(dst); err == nil && cur == rel {
		return nil // up to date; links are no files, and counted only when written
	}
	if st, err := os.Lstat(dst); err == nil && st.IsDir() {
		if err := c.inTheWay(dst, st, src, "link"); err != nil {
			return err
		}
	}
	tmp := filepath.Join(filepath.Dir(dst), fmt.Sprintf("%slink-%d", fsutil.TempPrefix, time.Now().UnixNano()))
	if err := os.Symlink(rel, tmp); err != nil {
		return fault.FromSystem(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fault.FromSystem(err)
	}
	c.links.Add(1)
	return nil
}

func (c *copier) ignore(p, why string) {
	c.opts.Log.Warn("not copied", "path", p, "reason", why)
	c.mu.Lock()
	if len(c.ignored) < maxIgnored {
		c.ignored = append(c.ignored, p+": "+why)
	}
	c.mu.Unlock()
}
