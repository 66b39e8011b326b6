package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
)

// Selection is one part of a bucket to download.
type Selection struct {
	// Key is the object key (Dir false) or key prefix (Dir true), relative to
	// the bucket root, without a trailing slash; "" with Dir is the whole bucket.
	Key string
	// Dst is where it goes, relative to the download's root: the file (Dir
	// false) or the folder the prefix's contents go into (Dir true).
	Dst string
	Dir bool
	// Attrs are the object's attributes (Dir false) when the caller has just
	// read them, so that the download does not read them again; nil: it does.
	Attrs *blob.Attributes
	// Flag names what asked for it in errors (`--dirs "train"`). A
	// selection with a Flag that holds no object fails as not found; one
	// without (the connection's own prefix) only warns when it is empty.
	Flag string
	// Hint, when set, ends an error that says it names nothing.
	Hint string
}

// object is one planned download.
type object struct {
	key     string // as the blob API lists it
	real    string // the store's own key when the blob API cannot address it (RealKeys), else ""
	path    string // absolute local path
	size    int64
	modTime time.Time
	md5     []byte
	crc     uint32
	hasCRC  bool
	marker  bool   // a zero-byte "folder" key
	old     int64  // size of the local file it replaces, 0 when none
	counted bool   // its space is counted against --path's free space
	held    *int64 // the blocks reserved for it (see grow)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type downloader struct {
	b    *blob.Bucket
	root string
	// repl: --force's replacement of a file at --path, until the end.
	repl    *fsutil.Replacement
	opts    Options
	retry   *retrier
	streams chan struct{} // bounds open streams across files and parts
	prog    *Progress

	free  uint64 // free bytes at the start
	block int64  // the file system's block: a file takes whole blocks
	fresh bool   // root was empty at the start: no file can be up to date
	// The space planned: reserved is what the files written and being
	// written take; credit is what the replacements being written give back
	// once in place (the blocks of the copies they replace). spaceChanged
	// is closed (and replaced) whenever either goes down.
	spaceMu      sync.Mutex
	reserved     int64
	credit       int64
	spaceChanged chan struct{}
	dev          uint64   // the device of --path's file system
	dirDev       sync.Map // folder → whether it is on dev (through links already there)
	dirDevs      atomic.Int64

	files, bytes, skipped, dirs, objects, retries atomic.Int64
	planned                                       atomic.Int64 // bytes of the objects planned
	start                                         time.Time    // when the download started: what --force may replace is older

	clearing sync.Mutex       // --force clears the way for one object at a time
	made     *fsutil.MadeDirs // folders created for files and markers: removed if empty when the download fails
	// escapedNames maps the local paths of objects whose store key is not
	// their listed name (RealKeys) to that key: two such objects, one
	// written by another tool, one by gocloud, can claim the same name.
	escapedNames map[string]string
	noHash       atomic.Int64 // --checksum: objects compared by size and time, for want of a hash
}

// Download copies the selections from b into the folder root. When it
// fails, the folders it created for root are removed again if they are
// still empty: a failed run leaves no empty --path behind.
func Download(ctx context.Context, b *blob.Bucket, sels []Selection, root string, opts Options) (Stats, error) {
	created := fsutil.FirstMissing(root)
	d := &downloader{b: b, root: root, start: time.Now(), spaceChanged: make(chan struct{}), made: fsutil.NewMadeDirs()}
	st, err := d.run(ctx, sels, opts)
	if err != nil {
		// Folders this run made for files that never came: nothing
		// partial, empty folders included, is left behind.
		d.removeMade()
		if created != "" {
			fsutil.RemoveEmptyUpTo(root, created)
		}
	}
	return st, err
}

func (d *downloader) run(ctx context.Context, sels []Selection, opts Options) (Stats, error) {
	opts.defaults()
	// A stream holds a connection and a file, and the pool may keep one
	// more connection idle.
	opts.Workers = fitWorkers(opts.Workers, 3, opts.Log)
	start := d.start
	root := d.root
	d.opts, d.streams = opts, make(chan struct{}, opts.Workers)
	d.retry = &retrier{opts: &d.opts, retries: &d.retries}
	if err := d.makeRoot(); err != nil {
		return Stats{}, err
	}
	defer d.repl.Settle(false, opts.Log) // a return before the end: failed
	held := fsutil.Hold(root)
	defer held.Close()
	if err := d.removeTemps(sels); err != nil {
		return Stats{}, err
	}
	if sp, err := fsutil.FreeSpace(root); err == nil {
		d.free, d.block = sp.Free, int64(sp.Block)
	}
	if dev, err := d.devOf(root); err == nil {
		d.dev = dev
	}
	d.fresh = emptyDir(root)
	if opts.freeBytes > 0 {
		d.free = opts.freeBytes
	}
	d.prog = newProgress(&opts, &d.files, &d.skipped, &d.objects)
	defer d.prog.Stop()

	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan object, opts.Workers*2)
	g.Go(func() error {
		defer close(jobs)
		for i, s := range sels {
			if err := d.plan(gctx, s, jobs, i == len(sels)-1); err != nil {
				return err
			}
		}
		d.prog.Planned(d.objects.Load(), d.planned.Load())
		return nil
	})
	for range opts.Workers {
		g.Go(func() error {
			for o := range jobs {
				if err := d.fetch(gctx, o); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	if rerr := held.Replaced(); rerr != nil && ctx.Err() == nil {
		// The cause of whatever else failed (a rename into a folder
		// that is gone), or of files missing from a "successful" run.
		err = fault.New(fault.LocalDisk, "%s: %v while the download wrote into it (by another container or process?): files may be missing; run again, with nothing else removing --path", opts.Conn, rerr)
	}
	if n := d.noHash.Load(); n > 0 {
		opts.Log.Warn("--checksum: the store keeps no hash of some objects (S3 multipart uploads or objects encrypted with KMS or a customer key, Azure blobs uploaded in blocks); they were compared by size and modification time", "objects", n)
	}
	if err == nil {
		if serr := fsutil.Syncfs(root); serr != nil {
			err = d.localFault(serr)
		}
	}
	d.repl.Settle(err == nil, opts.Log)
	st := Stats{Objects: d.objects.Load(), Files: d.files.Load(), Bytes: d.bytes.Load(), Skipped: d.skipped.Load(),
		Dirs: d.dirs.Load(), Retries: d.retries.Load(), Duration: time.Since(start)}
	if err != nil && ctx.Err() != nil {
		err = fault.Wrap(fault.Interrupted, fmt.Errorf("%s: download interrupted after %s: %w", opts.Conn, Count(st.Files, "file"), ctx.Err()))
	}
	return st, err
}

// makeRoot creates --path. A file (or a link that leads to none) there is
// replaced with --force; a file on its path is refused.
func (d *downloader) makeRoot() error {
	root := d.root
	d.repl = fsutil.NewReplacement(root, "download", d.opts.Force)
	err := os.MkdirAll(root, 0o755)
	if err != nil && (errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST)) {
		st, lerr := os.Lstat(root)
		switch {
		case lerr != nil || st.IsDir():
			return fault.New(fault.Usage, "%s: a name on the path of --path %s is a file: give a folder, or remove the file", d.opts.Conn, root)
		case !d.opts.Force:
			return fault.New(fault.Usage, "%s: --path %s is a file: give a folder, remove the file, or pass --force to replace it", d.opts.Conn, root)
		}
		// Set aside, not removed, until the download has succeeded: a
		// failed one (a missing bucket, a refusal) puts it back.
		aerr := d.repl.SetAside()
		var mp *fsutil.MountPointError
		switch {
		case errors.As(aerr, &mp):
			return fault.New(fault.Usage, "%s: --force will not remove %s: %s; unmount it, or choose another --path", d.opts.Conn, root, aerr)
		case aerr != nil:
			return d.localFault(fmt.Errorf("--force: %w", aerr))
		}
		if err = os.Mkdir(root, 0o755); err != nil {
			d.repl.Settle(false, d.opts.Log)
		}
	}
	if err != nil {
		return d.localFault(fmt.Errorf("cannot create --path %s: %w", root, err))
	}
	return nil
}

// removeTemps removes the temporary files an earlier, killed run left where
// the selections go: the whole folder of a prefix, only the folder itself
// of a single object (its neighbours' subfolders are not this download's).
func (d *downloader) removeTemps(sels []Selection) error {
	total := 0
	for _, s := range sels {
		dst, err := fsutil.SafeJoin(d.root, s.Dst)
		if err != nil {
			continue // refused by plan, with the reason
		}
		var n int
		if s.Dir {
			n, err = fsutil.RemoveTemps(dst)
		} else {
			n, err = fsutil.RemoveTempsIn(filepath.Dir(dst))
		}
		if err != nil {
			return d.localFault(err)
		}
		total += n
	}
	if total > 0 {
		d.opts.Log.Info("removed temporary files left by an earlier run", "count", total)
	}
	return nil
}

// escapedKey reports a key the storage library escapes before sending it
// (on Azure one holding %, on all stores one holding "__0x"): an object of that very name cannot be read
// by its key alone, only found by listing the folder above it.
func escapedKey(p Provider, key string) bool {
	rk, ok := p.(RealKeys)
	return ok && key != "" && rk.RealPrefix(key) != key
}

// EscapedKeyHint is what a "no object has the key" error adds for such a
// key.
func EscapedKeyHint(p Provider, key string) string {
	if escapedKey(p, key) {
		return "; its name holds characters the storage library (gocloud.dev) escapes on this store, so an object of that name cannot be named alone: take the folder above it (--dirs, or the bucket URL)"
	}
	return "; check the name and schema.bucket"
}

// plan lists a selection and sends its objects to jobs.
func (d *downloader) plan(ctx context.Context, s Selection, jobs chan<- object, last bool) error {
	dst, err := fsutil.SafeJoin(d.root, s.Dst)
	if err != nil {
		return fault.New(fault.Usage, "%s: target %q: %w", d.opts.Conn, s.Dst, err)
	}
	if !s.Dir {
		attrs := s.Attrs
		if attrs == nil {
			if attrs, err = d.head(ctx, s.Key); err != nil {
				if s.Flag != "" && fault.ClassOf(err) == fault.NotFound {
					return fault.New(fault.NotFound, "%s: %s: no object has the key %q%s%s", d.opts.Conn, s.Flag, s.Key, EscapedKeyHint(d.opts.Provider, s.Key), s.Hint)
				}
				return err
			}
		}
		o := object{key: s.Key, path: dst}
		d.setAttrs(&o, attrs)
		d.objects.Add(1)
		d.planned.Add(o.size)
		if last {
			d.prog.Planned(d.objects.Load(), d.planned.Load())
		}
		return send(ctx, jobs, o)
	}
	prefix := s.Key
	if prefix != "" {
		prefix += "/"
	}
	token := blob.FirstPageToken
	listed := 0
	for {
		var page []*blob.ListObject
		var next []byte
		err := d.retry.do(ctx, "LIST "+prefix, func() (err error) {
			page, next, err = d.b.ListPage(ctx, token, d.opts.PageSize, &blob.ListOptions{Prefix: prefix})
			return err
		})
		if err != nil {
			if prefix == "" {
				return d.remoteFault(err, "listing the bucket")
			}
			return d.remoteFault(err, "listing prefix %q", prefix)
		}
		listed += len(page)
		// The page is counted before its objects are queued (the queue is
		// short): once the last page is in, the totals are known, and the
		// progress has an ETA while most of the page is still to come.
		objs := make([]object, 0, len(page))
		for _, lo := range page {
			o, ok, err := d.planObject(dst, prefix, lo)
			if err != nil {
				return err
			}
			if ok {
				objs = append(objs, o)
				d.objects.Add(1)
				d.planned.Add(o.size)
			}
		}
		if last && len(next) == 0 {
			d.prog.Planned(d.objects.Load(), d.planned.Load())
		}
		for _, o := range objs {
			if err := send(ctx, jobs, o); err != nil {
				return err
			}
		}
		if len(next) == 0 {
			break
		}
		token = next
	}
	switch {
	case listed > 0:
	case s.Flag != "":
		return fault.New(fault.NotFound, "%s: %s: no object has the key or prefix %q; check the name and schema.bucket%s", d.opts.Conn, s.Flag, s.Key, s.Hint)
	case escapedKey(d.opts.Provider, strings.TrimSuffix(prefix, "/")):
		d.opts.Log.Warn("nothing to download: no object under the prefix; its name holds characters the storage library (gocloud.dev) escapes on this store, so an object of that name cannot be named alone: take the folder above it", "prefix", prefix)
	default:
		d.opts.Log.Warn("nothing to download: no object under the prefix", "prefix", prefix)
	}
	return nil
}

func send(ctx context.Context, jobs chan<- object, o object) error {
	select {
	case jobs <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// planObject maps a listed object to its local path, refusing keys that
// would leave the target folder.
func (d *downloader) planObject(dst, prefix string, lo *blob.ListObject) (object, bool, error) {
	if lo.IsDir {
		return object{}, false, nil
	}
	rel := strings.TrimPrefix(lo.Key, prefix)
	real, storeKey, escaped := "", lo.Key, false
	if rk, ok := d.opts.Provider.(RealKeys); ok {
		k, differs := rk.RealKey(lo)
		storeKey, escaped = k, differs || k != lo.Key
		if differs {
			p := rk.RealPrefix(prefix)
			if !strings.HasPrefix(k, p) {
				return object{}, false, fault.New(fault.Usage, "%s: object key %q is refused: it does not start with the prefix %q it was listed under", d.opts.Conn, k, p)
			}
			real, rel = k, strings.TrimPrefix(k, p)
		}
	}
	marker := strings.HasSuffix(rel, "/")
	if marker && lo.Size != 0 {
		return object{}, false, fault.New(fault.Usage, "%s: object %q ends with a slash but is not empty, so it cannot be a file; rename it in the bucket", d.opts.Conn, lo.Key)
	}
	clean, err := fsutil.CleanRel(rel)
	if err != nil && prefix != "" && strings.HasPrefix(rel, "/") {
		// An empty part right after the prefix ("lead//x") leaves a
		// relative name that starts with a slash, but no absolute key:
		// refused below for its empty part.
		if c, cerr := fsutil.CleanRel(strings.TrimLeft(rel, "/")); cerr == nil {
			clean, err = c, nil
		}
	}
	if err != nil {
		return object{}, false, fault.New(fault.Usage, "%s: object key %q is refused: %v; nothing was written outside --path", d.opts.Conn, lo.Key, err)
	}
	if clean != strings.TrimSuffix(rel, "/") {
		// "a/./b" and "a//b" would be written where "a/b" is: one would
		// silently replace the other.
		return object{}, false, fault.New(fault.Usage, "%s: object key %q is refused: it has an empty or \".\" part, so it would be written where the key %q goes; rename it in the bucket", d.opts.Conn, lo.Key, prefix+clean)
	}
	if clean == "" && !marker {
		// The object is the prefix itself with a trailing slash ("dir/"):
		// when empty, the folder marker of the selected folder.
		if lo.Size != 0 {
			return object{}, false, nil
		}
		marker = true
	}
	o := object{key: lo.Key, real: real, path: filepath.Join(dst, filepath.FromSlash(clean)), size: lo.Size, modTime: lo.ModTime, md5: lo.MD5, marker: marker}
	if escaped && !marker {
		if d.escapedNames == nil {
			d.escapedNames = map[string]string{}
		}
		if other, ok := d.escapedNames[o.path]; ok {
			return object{}, false, fault.New(fault.Usage, "%s: objects %q and %q would both be written to %s (one was stored by a tool that escapes names, the other by one that does not); rename one of them in the bucket", d.opts.Conn, other, storeKey, o.path)
		}
		d.escapedNames[o.path] = storeKey
	}
	if d.opts.Provider != nil {
		o.crc, o.hasCRC = d.opts.Provider.CRC32C(lo.As)
	}
	return o, true, nil
}

// fetch brings one object to its local path, unless it is already there.
func (d *downloader) fetch(ctx context.Context, o object) (err error) {
	if o.marker {
		return d.makeDir(ctx, o)
	}
	if d.opts.beforeObject != nil {
		d.opts.beforeObject(o.key)
	}
	if !d.fresh {
		same, old, err := d.upToDate(ctx, o)
		if err != nil {
			return err
		}
		if same {
			d.skipped.Add(1)
			d.prog.Skip(o.size)
			return nil
		}
		o.old = old
	}
	o.counted = d.free != 0 && d.onRootFS(o.path)
	held, err := d.reserve(ctx, o)
	if err != nil {
		return err
	}
	o.held = &held
	defer func() {
		if err != nil && o.counted {
			d.release(held, o.old) // nothing was written: the space is free again
		}
	}()
	err = d.download(ctx, o)
	var me *mismatchError
	if errors.As(err, &me) {
		// Once more, from fresh attributes: the object may have been replaced
		// after it was listed.
		d.retries.Add(1)
		d.opts.Log.Warn("checksum mismatch, downloading again", "key", o.name(), "error", me.Error())
		if err = d.refresh(ctx, &o); err == nil {
			err = d.download(ctx, o)
		}
		if errors.As(err, &me) {
			return fault.New(fault.Integrity, "%s: object %q: %v, twice; the store returned corrupt data, run again or check the object", d.opts.Conn, o.name(), me)
		}
	}
	return err
}

func (d *downloader) makeDir(ctx context.Context, o object) error {
	top := fsutil.FirstMissing(o.path)
	err := os.MkdirAll(o.path, 0o755)
	if err != nil {
		if cleared, cerr := d.clearWay(ctx, o, err); cerr != nil {
			return cerr
		} else if cleared {
			top = fsutil.FirstMissing(o.path)
			err = os.MkdirAll(o.path, 0o755)
		}
	}
	if err != nil {
		return d.conflictOrLocal(o, err)
	}
	d.madeDir(top)
	d.dirs.Add(1)
	return nil
}

// madeDir records a folder this download created (top of a MkdirAll). On
// a --path empty at the start, everything in it is this run's: nothing to
// record.
func (d *downloader) madeDir(top string) {
	if top == "" || top == filepath.Clean(d.root) || d.fresh {
		return
	}
	d.made.Add(top)
}

// removeMade removes the folders the failed download created that are
// still empty: on a --path empty at the start, every empty folder in it.
func (d *downloader) removeMade() {
	if d.fresh {
		entries, _ := os.ReadDir(d.root)
		for _, e := range entries {
			if e.IsDir() {
				fsutil.RemoveEmptyDirs(filepath.Join(d.root, e.Name()))
			}
		}
		return
	}
	d.made.RemoveEmpty()
}

// clearWay, with --force, removes what stands where o goes and is not the
// bucket's: a folder (or a link to one) where o's file goes, or a file (or
// a link) where a folder of o's path goes. cause is the error that met it
// (nil: a folder found where the file goes); only a name conflict counts.
// The bucket is asked first: when it has keys below that folder, or an
// object where that file stands, the conflict is its own ("a" and "a/b")
// and stays an error, whatever this run already wrote; so does one whose
// name the storage library escapes (the bucket could not be asked
// reliably). Nothing below a link, nothing that is or holds a mount point,
// is removed. Workers clear one at a time; it reports true when the way
// is clear now (another worker may have cleared it), so that the caller
// tries once more.
func (d *downloader) clearWay(ctx context.Context, o object, cause error) (bool, error) {
	if !d.opts.Force {
		return false, nil
	}
	okey := o.key
	if o.real != "" {
		// A name the storage library escapes is not cleared, except a
		// folder marker whose only escape is its trailing slash (gocloud's
		// Azure driver escapes that one): its real key serves.
		rk, _ := d.opts.Provider.(RealKeys)
		if !o.marker || rk == nil || rk.RealPrefix(o.real) != o.real {
			return false, nil
		}
		okey = o.real
	}
	if cause != nil && !errors.Is(cause, syscall.ENOTDIR) && !errors.Is(cause, syscall.EEXIST) && !errors.Is(cause, syscall.EISDIR) {
		return false, nil
	}
	rel, err := filepath.Rel(d.root, o.path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return false, nil
	}
	d.clearing.Lock()
	defer d.clearing.Unlock()
	parts := strings.Split(rel, string(filepath.Separator))
	p := d.root
	for i, part := range parts {
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		if err != nil {
			// Nothing further in the way: cleared, by another worker
			// perhaps; or a name that cannot be looked at.
			return errors.Is(err, fs.ErrNotExist), nil
		}
		wantDir := i < len(parts)-1 || o.marker
		isDir := isDirOrLink(p, st)
		if isDir == wantDir {
			if st.Mode()&fs.ModeSymlink != 0 {
				return false, nil // below a link: not --path's to clear
			}
			continue
		}
		// The key p stands for: o's key without the names below p.
		key := strings.TrimSuffix(okey, "/")
		if rest := parts[i+1:]; len(rest) > 0 {
			suffix := "/" + strings.Join(rest, "/")
			if !strings.HasSuffix(key, suffix) {
				return false, nil // above the selection: not the bucket's to say
			}
			key = strings.TrimSuffix(key, suffix)
		}
		if rk, ok := d.opts.Provider.(RealKeys); ok && rk.RealPrefix(key+"/") != key+"/" {
			return false, nil // a name the storage library escapes
		}
		theirs, err := d.bucketHas(ctx, key, isDir)
		if err != nil || theirs {
			return false, err
		}
		what, err := fsutil.RemoveInTheWay(d.root, p, st)
		var mp *fsutil.MountPointError
		switch {
		case errors.As(err, &mp):
			return false, fault.New(fault.Usage, "%s: --force will not remove %s: %s; unmount it, or choose another --path", d.opts.Conn, p, err)
		case err != nil:
			return false, d.localFault(err)
		}
		d.opts.Log.Warn("--force: removed a "+what+" that stood where the bucket puts a "+map[bool]string{true: "folder", false: "file"}[wantDir], "path", p)
		return true, nil
	}
	return true, nil // nothing in the way (any more)
}

// isDirOrLink reports a folder, or a link to one (which serves as the
// folder: the download writes through it).
func isDirOrLink(p string, st fs.FileInfo) bool {
	if st.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Stat(p)
		return err == nil && t.IsDir()
	}
	return st.IsDir()
}

// bucketHas reports whether the bucket itself has key as a folder (keys
// below it) when dir, or as an object otherwise.
func (d *downloader) bucketHas(ctx context.Context, key string, dir bool) (bool, error) {
	var has bool
	err := d.retry.do(ctx, "LIST "+key+"/", func() error {
		if !dir {
			ok, err := d.b.Exists(ctx, key)
			has = ok
			return err
		}
		page, _, err := d.b.ListPage(ctx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: key + "/"})
		has = len(page) > 0
		return err
	})
	if err != nil {
		return false, d.remoteFault(err, "checking %q before --force replaces what is in its way", key)
	}
	return has, nil
}

// upToDate compares the local file with the object: size and modification
// time (sameTime), or the hash with --checksum.
// It also returns the size of the regular file it would replace.
func (d *downloader) upToDate(ctx context.Context, o object) (same bool, old int64, err error) {
	st, err := os.Lstat(o.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return false, 0, nil
		}
		return false, 0, d.localFault(err)
	}
	if isDirOrLink(o.path, st) {
		if cleared, err := d.clearWay(ctx, o, nil); err != nil || cleared {
			return false, 0, err
		}
		force := "; or pass --force to replace a folder that was there before"
		if d.opts.Force {
			force = ""
		}
		return false, 0, fault.New(fault.Usage, "%s: object %q would replace the folder %s: the key is both an object and a \"folder\" prefix in the bucket (or the folder was there before); remove one of them%s", d.opts.Conn, o.name(), o.path, force)
	}
	if !st.Mode().IsRegular() {
		return false, 0, nil
	}
	if st.Size() != o.size {
		return false, st.Size(), nil
	}
	if !d.opts.Checksum || (o.md5 == nil && !o.hasCRC) {
		if d.opts.Checksum {
			d.noHash.Add(1)
		}
		return sameTime(st.ModTime(), o.modTime), st.Size(), nil
	}
	f, err := os.Open(o.path)
	if err != nil {
		return false, 0, d.localFault(err)
	}
	defer f.Close()
	h := newVerifier(o)
	if _, err := io.Copy(h, f); err != nil {
		return false, 0, d.localFault(err)
	}
	if h.check() != nil {
		if _, ok := d.opts.Provider.(ETagDigests); ok && o.md5 != nil {
			// The listed MD5 may be no MD5 at all (an encrypted object's
			// ETag): the object's attributes tell.
			usable, err := d.listedMD5Usable(ctx, o)
			if err != nil {
				return false, 0, err
			}
			if !usable {
				d.noHash.Add(1)
				return sameTime(st.ModTime(), o.modTime), st.Size(), nil
			}
		}
		return false, st.Size(), nil
	}
	if !sameTime(st.ModTime(), o.modTime) {
		// Identical content: the file gets the object's time, as a
		// download would have given it (a later run by size and time
		// then finds it up to date too).
		if err := os.Chtimes(o.path, o.modTime, o.modTime); err != nil {
			// A read-only or shared volume: the content is verified, the
			// time only helps later runs.
			d.opts.Log.Warn("--checksum: the file matches, but its modification time cannot be set", "path", o.path, "error", err.Error())
		}
	}
	return true, st.Size(), nil
}

// emptyDir reports whether dir holds nothing. Downloading into an empty
// folder skips the per-file comparison with what is already there (one
// failing stat per file); a key conflict then shows when the file is
// renamed into place.
func emptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && err == io.EOF
}

// reserve counts o's blocks against the free space measured at the start,
// so a download that cannot fit stops before the disk is full, and returns
// what it counted. When o does not fit but replacements being written will
// give back the space of the copies they replace, it waits for them: a
// refreshed dataset fits where its old copy fits, whatever the workers.
func (d *downloader) reserve(ctx context.Context, o object) (int64, error) {
	if !o.counted {
		return 0, nil
	}
	need := d.blocks(o.size)
	for {
		d.spaceMu.Lock()
		if total := d.reserved + need; total <= 0 || uint64(total) <= d.free {
			d.reserved = total
			d.credit += d.blocks(o.old)
			d.spaceMu.Unlock()
			return need, nil
		}
		if d.credit == 0 {
			total := d.reserved + need
			d.spaceMu.Unlock()
			return 0, fault.New(fault.LocalDisk, "%s: not enough space at %s: the download needs more than %d bytes, %d were free; give the volume more room or download fewer paths", d.opts.Conn, d.root, total, d.free)
		}
		changed := d.spaceChanged
		d.spaceMu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// grow reserves more for o when the object turns out bigger than listed
// (replaced since): what does not fit fails now, before it is written, and
// without waiting (the replacements that could give space back may be
// waiting too).
func (d *downloader) grow(o object, size int64) error {
	if !o.counted || o.held == nil {
		return nil
	}
	extra := d.blocks(size) - *o.held
	if extra <= 0 {
		return nil
	}
	d.spaceMu.Lock()
	defer d.spaceMu.Unlock()
	if total := d.reserved + extra; total > 0 && uint64(total) > d.free {
		return fault.New(fault.LocalDisk, "%s: not enough space at %s: object %q grew to %d bytes since it was listed, and the download now needs more than %d bytes, %d were free; give the volume more room or download fewer paths", d.opts.Conn, d.root, o.name(), size, total, d.free)
	}
	d.reserved += extra
	*o.held += extra
	return nil
}

// onRootFS reports whether the file p goes to --path's own file system:
// a link already in --path may lead to another volume, whose space the
// free space measured at the start does not count.
func (d *downloader) onRootFS(p string) bool {
	if d.fresh {
		return true // nothing, links included, was in --path
	}
	dir := filepath.Dir(p)
	if v, ok := d.dirDev.Load(dir); ok {
		return v.(bool)
	}
	same := true
	for q := dir; ; q = filepath.Dir(q) {
		if dev, err := d.devOf(q); err == nil {
			same = dev == d.dev
			break
		}
		if q == filepath.Dir(q) {
			break
		}
	}
	if d.dirDevs.Add(1) > 4096 {
		// A folder per object: the cache would grow with them.
		d.dirDev.Clear()
		d.dirDevs.Store(0)
	}
	d.dirDev.Store(dir, same)
	return same
}

// devOf returns the device of the file system p is on, through links.
func (d *downloader) devOf(p string) (uint64, error) {
	if d.opts.devOf != nil {
		return d.opts.devOf(p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return st.Sys().(*syscall.Stat_t).Dev, nil
}

// release gives back held blocks reserved for a download that wrote
// nothing, and the credit of the copy of old bytes it would have replaced.
func (d *downloader) release(held, old int64) {
	d.spaceMu.Lock()
	d.reserved -= held
	d.credit -= d.blocks(old)
	d.spaceSignal()
	d.spaceMu.Unlock()
}

// spaceSignal wakes the downloads waiting for space; spaceMu is held.
func (d *downloader) spaceSignal() {
	close(d.spaceChanged)
	d.spaceChanged = make(chan struct{})
}

// blocks is the space a file of size bytes takes: whole blocks.
func (d *downloader) blocks(size int64) int64 { return fsutil.Blocks(size, d.block) }

// head reads the attributes of key, with retries.
func (d *downloader) head(ctx context.Context, key string) (*blob.Attributes, error) {
	var attrs *blob.Attributes
	err := d.retry.do(ctx, "HEAD "+key, func() (err error) {
		attrs, err = d.b.Attributes(ctx, key)
		return err
	})
	if err != nil {
		return nil, d.remoteFault(err, "object %q", key)
	}
	return attrs, nil
}

// sameTime compares a file's modification time with an object's: to the
// nanosecond, or to the second where either side keeps only whole seconds
// (most stores' times; some file systems').
func sameTime(local, remote time.Time) bool {
	if local.Equal(remote) {
		return true
	}
	return local.Unix() == remote.Unix() && (local.Nanosecond() == 0 || remote.Nanosecond() == 0)
}

// setAttrs gives o the size, time and checksums of attrs. A listed time
// finer than attrs' whole second (S3's and Azure's HEAD) in the same
// second is kept: the file gets it, and re-runs compare it with listings.
func (d *downloader) setAttrs(o *object, attrs *blob.Attributes) {
	mod := attrs.ModTime
	if mod.Nanosecond() == 0 && o.modTime.Nanosecond() != 0 && o.modTime.Unix() == mod.Unix() {
		mod = o.modTime
	}
	o.size, o.modTime, o.md5 = attrs.Size, mod, attrs.MD5
	if !d.md5Usable(attrs.As) {
		o.md5 = nil
	}
	o.crc, o.hasCRC = 0, false
	if d.opts.Provider != nil {
		o.crc, o.hasCRC = d.opts.Provider.CRC32C(attrs.As)
	}
}

// listedMD5Usable asks the store whether o's listed MD5 is one of its
// content: a HEAD, or for an object read by its real key (which the blob
// API cannot address) the answer to a read of it, closed at once.
func (d *downloader) listedMD5Usable(ctx context.Context, o object) (bool, error) {
	if o.real == "" {
		attrs, err := d.head(ctx, o.key)
		if err != nil {
			return false, err
		}
		return d.md5Usable(attrs.As), nil
	}
	var usable bool
	err := d.retry.do(ctx, "GET "+o.name(), func() error {
		r, err := d.open(ctx, o)
		if err != nil {
			return err
		}
		defer r.Close()
		usable = d.readerMD5Usable(r)
		return nil
	})
	if err != nil {
		return false, d.remoteFault(err, "object %q", o.name())
	}
	return usable, nil
}

// readerMD5Usable is md5Usable from a reader's answer, where the reader
// gives one (As).
func (d *downloader) readerMD5Usable(r ObjectReader) bool {
	ar, ok := r.(interface{ As(any) bool })
	return !ok || d.md5Usable(ar.As)
}

// md5Usable reports whether an object's MD5 is one of its content, from the
// As function of its attributes or of a reader (ETagDigests).
func (d *downloader) md5Usable(as func(any) bool) bool {
	ed, ok := d.opts.Provider.(ETagDigests)
	return !ok || ed.MD5Usable(as)
}

// refresh reloads o's attributes. An object read by its real key
// (RealKeys) keeps those it was listed with: the blob API cannot read them.
func (d *downloader) refresh(ctx context.Context, o *object) error {
	if o.real != "" {
		return nil
	}
	attrs, err := d.head(ctx, o.key)
	if err != nil {
		return err
	}
	d.setAttrs(o, attrs)
	return nil
}

func (d *downloader) download(ctx context.Context, o object) error {
	// An object read by its real key is read whole: its ranges could not be
	// pinned to a version without the attributes the blob API cannot read.
	if o.size >= d.opts.LargeObject && o.real == "" {
		return d.downloadRanges(ctx, o)
	}
	return d.downloadWhole(ctx, o)
}

// downloadWhole streams a small object into a temporary file while hashing it.
func (d *downloader) downloadWhole(ctx context.Context, o object) error {
	var modTime time.Time
	f, err := d.create(ctx, o)
	if err != nil {
		return err
	}
	published := false
	defer func() { cleanup(f, published) }()
	first := true
	err = d.retry.do(ctx, "GET "+o.name(), func() error {
		d.streams <- struct{}{}
		defer func() { <-d.streams }()
		// Rewind only for a retry: truncating a fresh file would make ext4
		// flush it on close (its auto_da_alloc heuristic), one write-out per file.
		if !first {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return local(err)
			}
			if err := f.Truncate(0); err != nil {
				return local(err)
			}
		}
		first = false
		r, err := d.open(ctx, o)
		if err != nil {
			return err
		}
		defer r.Close()
		if err := d.grow(o, r.Size()); err != nil {
			return err
		}
		modTime = r.ModTime()
		if o.md5 != nil && !d.readerMD5Usable(r) {
			o.md5 = nil // encrypted with KMS or a customer key: the ETag is no MD5
		}
		h := newVerifier(o)
		n, err := copyPooled(io.MultiWriter(f, h), r, &d.prog.Live, false)
		if errors.Is(err, ErrChecksumMismatch) || err != nil && d.opts.Classify(err) == fault.Integrity {
			// The store's own check of what it sent failed (GCS: CRC32C).
			return &mismatchError{err}
		}
		if err != nil {
			return err
		}
		if n != r.Size() {
			return fmt.Errorf("read %d bytes of %d: %w", n, r.Size(), io.ErrUnexpectedEOF)
		}
		o.size = n
		if err := h.check(); err != nil {
			return err
		}
		if n >= writebackMin {
			startWriteback(f, 0, n)
		}
		return nil
	})
	if err != nil {
		return d.remoteFault(err, "object %q", o.name())
	}
	err = d.publish(f, o, modTime)
	published = err == nil
	return err
}

// open opens o for reading from its start: by its real key when the blob
// API cannot address it (RealKeys), through the Provider when it has a
// cheaper way (WholeReader), else through the bucket.
func (d *downloader) open(ctx context.Context, o object) (ObjectReader, error) {
	key := o.key
	if o.real != "" {
		return d.opts.Provider.(RealKeys).OpenReal(ctx, d.b, o.key, o.real)
	}
	if wr, ok := d.opts.Provider.(WholeReader); ok {
		r, ok, err := wr.ReadWhole(ctx, d.b, key)
		if ok || err != nil {
			return r, err
		}
	}
	r, err := d.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// downloadRanges reads a large object as parallel ranges pinned to one
// version and written at their offsets, then verifies the whole file.
func (d *downloader) downloadRanges(ctx context.Context, o object) error {
	for restart := 0; ; restart++ {
		err := d.downloadRangesOnce(ctx, o)
		if err == nil || gcerrors.Code(err) != gcerrors.FailedPrecondition {
			return err
		}
		if restart >= 2 {
			return fault.New(fault.Transient, "%s: object %q kept changing while it was downloaded (replaced %d times); download it again once nothing writes it", d.opts.Conn, o.name(), restart+1)
		}
		// The object was replaced between ranges: start over with the new version.
		d.retries.Add(1)
		d.opts.Log.Warn("object changed during the download, starting over", "key", o.name())
		if err := d.refresh(ctx, &o); err != nil {
			return err
		}
	}
}

func (d *downloader) downloadRangesOnce(ctx context.Context, o object) error {
	attrs, err := d.head(ctx, o.key)
	if err != nil {
		return err
	}
	// Verify against the version the ranges are pinned to.
	d.setAttrs(&o, attrs)
	if err := d.grow(o, o.size); err != nil {
		return err
	}
	var pin func(func(any) bool) error
	if d.opts.Provider != nil {
		pin = d.opts.Provider.PinVersion(attrs)
	}
	f, err := d.create(ctx, o)
	if err != nil {
		return err
	}
	published := false
	defer func() { cleanup(f, published) }()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, o.size); err != nil {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) || errors.Is(err, unix.EFBIG) {
			// No room (a volume behind a link, whose space the start
			// did not count, or taken since): fail now, not once the
			// writes have filled it.
			return d.localFault(&fs.PathError{Op: "fallocate", Path: f.Name(), Err: err})
		}
		// Not supported there: the writes allocate.
		if err := f.Truncate(o.size); err != nil {
			return d.localFault(err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for off := int64(0); off < o.size; off += d.opts.PartSize {
		n := min(d.opts.PartSize, o.size-off)
		select {
		case d.streams <- struct{}{}:
		case <-gctx.Done():
			// Cancelled: by a part's failure, which partsDone returns, or
			// by the run's context, with every part started done. Either
			// way the file is incomplete and must not count as downloaded.
			if err := d.partsDone(g, o); err != nil {
				return err
			}
			return gctx.Err()
		}
		g.Go(func() error {
			defer func() { <-d.streams }()
			return d.retry.do(gctx, fmt.Sprintf("GET %s bytes %d-%d", o.key, off, off+n-1), func() error {
				r, err := d.b.NewRangeReader(gctx, o.key, off, n, &blob.ReaderOptions{BeforeRead: pin})
				if err != nil {
					return err
				}
				defer r.Close()
				w := io.NewOffsetWriter(f, off)
				got, err := copyPooled(w, io.LimitReader(r, n), &d.prog.Live, false)
				if err != nil {
					return err
				}
				if got != n {
					return fmt.Errorf("range at %d: %d bytes, expected %d: %w", off, got, n, io.ErrUnexpectedEOF)
				}
				if err := rangeEnded(r, o, off, n, d.opts.Conn); err != nil {
					return err
				}
				startWriteback(f, off, n)
				return nil
			})
		})
	}
	if err := d.partsDone(g, o); err != nil {
		return err
	}
	if o.md5 != nil || o.hasCRC {
		h := newVerifier(o)
		if _, err := io.Copy(h, fsutil.ContextReader(ctx, io.NewSectionReader(f, 0, o.size))); err != nil {
			return d.localFault(err)
		}
		if err := h.check(); err != nil {
			return err
		}
	}
	err = d.publish(f, o, attrs.ModTime)
	published = err == nil
	return err
}

// rangeEnded checks that the reader of the range of o at off, of which n
// bytes were read, has no more: a store (or a proxy) that ignores the
// Range header answers with the whole object, whose bytes past the range
// would have been written over the other ranges.
func rangeEnded(r io.Reader, o object, off, n int64, conn string) error {
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k == 0 {
		return nil
	}
	return fault.New(fault.Integrity, "%s: object %q: the store answered the read of bytes %d-%d with more than them: it (or a proxy on the way) ignores ranged reads; give --part-size a size beyond the object's (in MiB, up to 5120) to read it whole", conn, o.name(), off, off+n-1)
}

func (d *downloader) partsDone(g *errgroup.Group, o object) error {
	if err := g.Wait(); err != nil {
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return err
		}
		return d.remoteFault(err, "object %q", o.name())
	}
	return nil
}

// writebackMin is the smallest whole file whose write-out is started at
// once: for small files it costs more than the final syncfs saves.
const writebackMin = 4 << 20

// startWriteback asks the kernel to start writing a finished range to disk
// now, without waiting: the disk works while the next bytes arrive, and the
// one syncfs at the end has little left to flush.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// create opens a temporary file in o's folder.
func (d *downloader) create(ctx context.Context, o object) (*os.File, error) {
	f, top, err := fsutil.CreateTempTracked(o.path, 0o644)
	if err != nil {
		if cleared, cerr := d.clearWay(ctx, o, err); cerr != nil {
			return nil, cerr
		} else if cleared {
			f, top, err = fsutil.CreateTempTracked(o.path, 0o644)
		}
	}
	d.madeDir(top)
	if err != nil {
		return nil, d.conflictOrLocal(o, err)
	}
	return f, nil
}

// publish gives the file the object's modification time and renames it into place.
func (d *downloader) publish(f *os.File, o object, modTime time.Time) error {
	if modTime.IsZero() || modTime.Unix() == o.modTime.Unix() && o.modTime.Nanosecond() != 0 {
		// The listing's time, finer than a reader's Last-Modified (whole
		// seconds) where the store keeps one (GCS, MinIO).
		modTime = o.modTime
	}
	if err := fsutil.Publish(f, o.path, fsutil.FileMeta{Mode: 0o644, ModTime: modTime, Created: 0o644}); err != nil {
		return d.conflictOrLocal(o, err)
	}
	if o.old > 0 && o.counted {
		// The file it replaced freed its blocks.
		d.spaceMu.Lock()
		d.reserved -= d.blocks(o.old)
		d.credit -= d.blocks(o.old)
		d.spaceSignal()
		d.spaceMu.Unlock()
	}
	d.files.Add(1)
	d.bytes.Add(o.size)
	return nil
}

// cleanup closes and removes a temporary file, unless it was published
// (renamed into place, and closed).
func cleanup(f *os.File, published bool) {
	if published {
		return
	}
	f.Close()
	os.Remove(f.Name())
}

// conflictOrLocal names the key conflict behind ENOTDIR/EISDIR errors, or
// classifies a local failure.
func (d *downloader) conflictOrLocal(o object, err error) error {
	if errors.Is(err, syscall.ENAMETOOLONG) {
		return fault.New(fault.Usage, "%s: object %q cannot be written to %s: a name on its path is longer than the file system allows (255 bytes); rename it in the bucket, or take it with --files src:shorter-name", d.opts.Conn, o.name(), o.path)
	}
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EEXIST) {
		force := "; or, if that file or folder was there before the download, pass --force to replace it"
		if d.opts.Force {
			force = ""
		}
		return fault.New(fault.Usage, "%s: object %q cannot be written to %s: a name on its path is both a file and a folder (the bucket has both \"a\" and \"a/…\" keys, or the local folder holds a file or folder of that name); remove one of them%s", d.opts.Conn, o.name(), o.path, force)
	}
	return d.localFault(err)
}

func (d *downloader) localFault(err error) error {
	c := fault.ClassOf(fault.FromSystem(err))
	switch c {
	case fault.LocalDisk:
		where := d.diskOf(err)
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			return fault.New(c, "%s: %w; lower --workers, or raise the container's open-files limit (ulimit -n)", d.opts.Conn, err)
		}
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			if sp, serr := fsutil.FreeSpace(where); serr == nil && sp.FreeInodes == 0 && sp.Inodes > 0 {
				return fault.New(c, "%s: the file system at %s has no free inodes (room for no more files, %d bytes free): %w; give the volume more inodes (mkfs -N, or a larger volume) or download fewer files", d.opts.Conn, where, sp.Free, err)
			}
			return fault.New(c, "%s: the disk at %s is full: %w; give the volume more room or download fewer paths", d.opts.Conn, where, err)
		}
		return fault.New(c, "%s: cannot write to %s: %w; mount it read-write", d.opts.Conn, where, err)
	case fault.Auth:
		return fault.New(fault.Auth, "%s: cannot write to %s as uid %d: %w; fix its permissions or the pod's securityContext (runAsUser, fsGroup)", d.opts.Conn, d.root, os.Getuid(), err)
	}
	return fault.Wrap(c, fmt.Errorf("%s: %w", d.opts.Conn, err))
}

// diskOf names the file system a failed write went to: --path, or the
// folder written in when it is on another volume (behind a link).
func (d *downloader) diskOf(err error) string {
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path == "" || d.dev == 0 || d.onRootFS(pe.Path) {
		return d.root
	}
	return filepath.Dir(pe.Path)
}

// remoteFault classifies a store error and names what was being done.
func (d *downloader) remoteFault(err error, format string, args ...any) error {
	var le *localError
	if errors.As(err, &le) {
		return d.localFault(le.err)
	}
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Class != fault.Transient {
		return err
	}
	var me *mismatchError
	if errors.As(err, &me) || errors.Is(err, context.Canceled) {
		return err
	}
	what := fmt.Sprintf(format, args...)
	c := d.opts.Classify(err)
	if d.opts.Explain != nil && (c == fault.Auth || c == fault.Usage) {
		if e := d.opts.Explain(err, what); e != nil {
			return e
		}
	}
	err = d.opts.cause(err)
	switch c {
	case fault.NotFound:
		if strings.HasPrefix(what, "object ") {
			// It was listed, or checked, before: it went since.
			return fault.New(c, "%s: %s is gone: it was deleted or renamed after the run listed it: %w; run again to download the objects as they are now", d.opts.Conn, what, err)
		}
		return fault.New(c, "%s: %s not found: %w; check the bucket and prefix in schema.bucket and --paths", d.opts.Conn, what, err)
	case fault.Auth:
		return fault.New(c, "%s: %s: access denied: %w; check the connection's credentials (secret) and their permissions on the bucket", d.opts.Conn, what, err)
	case fault.Transient:
		return fault.New(c, "%s: %s: the store did not answer: %w; it may be down or unreachable, try again later", d.opts.Conn, what, err)
	}
	return fault.Wrap(c, fmt.Errorf("%s: %s: %w", d.opts.Conn, what, err))
}

// cause returns err as messages show it: on one line through Brief, the
// error itself still reachable (errors.As).
func (o *Options) cause(err error) error {
	if o.Brief == nil {
		return err
	}
	return &briefError{msg: o.Brief(err), err: err}
}

// briefError shows a store error's cause on one line (Options.Brief) and
// keeps the error itself reachable.
type briefError struct {
	msg string
	err error
}

func (e *briefError) Error() string { return e.msg }
func (e *briefError) Unwrap() error { return e.err }

// verifier hashes what it is written and checks the object's checksums.
type verifier struct {
	o   object
	md5 hash.Hash
	crc hash.Hash32
}

func newVerifier(o object) *verifier {
	v := &verifier{o: o}
	if o.md5 != nil {
		v.md5 = md5.New()
	} else if o.hasCRC {
		v.crc = crc32.New(crcTable)
	}
	return v
}

func (v *verifier) Write(p []byte) (int, error) {
	if v.md5 != nil {
		v.md5.Write(p)
	}
	if v.crc != nil {
		v.crc.Write(p)
	}
	return len(p), nil
}

func (v *verifier) check() error {
	if v.md5 != nil {
		if got := v.md5.Sum(nil); !bytes.Equal(got, v.o.md5) {
			return &mismatchError{fmt.Errorf("%w: MD5 %s, expected %s", ErrChecksumMismatch, hex.EncodeToString(got), hex.EncodeToString(v.o.md5))}
		}
	}
	if v.crc != nil {
		if got := v.crc.Sum32(); got != v.o.crc {
			return &mismatchError{fmt.Errorf("%w: CRC32C %08x, expected %08x", ErrChecksumMismatch, got, v.o.crc)}
		}
	}
	return nil
}

// mismatchError is a download whose content did not match its checksum
// (it wraps ErrChecksumMismatch): never retried as such, downloaded once
// more by fetch.
type mismatchError struct{ err error }

func (e *mismatchError) Error() string { return e.err.Error() }
func (e *mismatchError) Unwrap() error { return e.err }

// copyPooled copies r to w with a pooled buffer, adding to live (when set)
// as it goes. The errors of the local side, the reads with localReads and
// the writes without, are marked local (see local).
func copyPooled(w io.Writer, r io.Reader, live *atomic.Int64, localReads bool) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				if !localReads {
					werr = local(werr)
				}
				return n, werr
			}
			n += int64(m)
			if live != nil {
				live.Add(int64(m))
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			if localReads {
				rerr = local(rerr)
			}
			return n, rerr
		}
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// name is the object's key as the store has it, for messages.
func (o *object) name() string {
	if o.real != "" {
		return o.real
	}
	return o.key
}
