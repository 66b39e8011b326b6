package sidecar

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/bmatcuk/doublestar/v4"
	"golang.org/x/sys/unix"

	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/transfer"
)

// entry is what the index knows of one file below the watched folder.
type entry struct {
	cur      transfer.FileState // as seen by the latest scan
	up       transfer.FileState // the version whose content is in the store
	uploaded bool
	gen      uint32 // the scan that last saw the file
}

func (e *entry) dirty() bool { return !e.uploaded || e.up != e.cur }

// index keeps, per file, the state seen and the state uploaded. A scan is a
// stat walk: an unchanged file costs one fstatat and one map look-up that
// allocates nothing.
type index struct {
	root  string
	real  string // root with its links resolved, "" until it exists
	excl  *excluder
	files map[string]*entry
	gen   uint32
	buf   []byte // the rel path being built during a scan
	// changed is set when the uploaded set, or the deletions waiting,
	// changed since the state was saved.
	changed bool
	// dels are the keys whose deletion was waiting when the state file
	// that load read was saved.
	dels []string
}

func newIndex(root string, excl *excluder) *index {
	return &index{root: root, excl: excl, files: map[string]*entry{}}
}

// scanResult is what a scan found.
type scanResult struct {
	dirty   []string // files new or changed since their upload, or never uploaded
	gone    []string // files in the index no longer below the root
	files   int      // files seen
	missing bool     // the root does not exist
	// unreadable are the folders (relative, "" for the root) that could
	// not be read, and why: their files are neither seen nor gone.
	unreadable map[string]error
	// linksOut are the symbolic links to files outside the root, which
	// are not uploaded: the job's code must not be able to make the
	// sidecar upload what only the sidecar can read (its credentials).
	linksOut []string
	// dangling are the symbolic links that lead to nothing: not uploaded.
	dangling []string
}

// scan walks the root and updates the index. A file that vanishes during
// the walk is simply not seen; an unreadable folder is an error (the files
// below it are not reported gone).
func (ix *index) scan() (scanResult, error) {
	ix.gen++
	var res scanResult
	var errs []error
	if _, err := os.Stat(ix.root); errors.Is(err, fs.ErrNotExist) {
		res.missing = true
		return res, nil
	}
	if ix.real == "" {
		if abs, err := filepath.Abs(ix.root); err == nil {
			ix.real = fsutil.Resolve(abs)
		}
	}
	skipped := map[string]error{} // unreadable folders: their files are not gone
	ix.buf = ix.buf[:0]
	ix.walk(ix.root, &res, &errs, skipped)
	if len(skipped) > 0 {
		res.unreadable = skipped
	}
	for rel, e := range ix.files {
		if e.gen == ix.gen {
			if e.dirty() {
				res.dirty = append(res.dirty, rel)
			}
			continue
		}
		if underAny(rel, skipped) {
			e.gen = ix.gen
			continue
		}
		res.gone = append(res.gone, rel)
	}
	return res, errors.Join(errs...)
}

func underAny(rel string, dirs map[string]error) bool {
	for d := range dirs {
		if d == "" || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// openDir opens a folder for the scan (a test makes one unreadable with it,
// where file modes do not stop root).
var openDir = os.Open

// walk scans the folder dir, whose path relative to the root is ix.buf.
func (ix *index) walk(dir string, res *scanResult, errs *[]error, skipped map[string]error) {
	f, err := openDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			*errs = append(*errs, err)
			skipped[string(ix.buf)] = err
		}
		return
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		err = fmt.Errorf("reading %s: %w", dir, err)
		*errs = append(*errs, err)
		skipped[string(ix.buf)] = err
	}
	fd := int(f.Fd())
	base := len(ix.buf)
	for _, name := range names {
		ix.buf = ix.buf[:base]
		if base > 0 {
			ix.buf = append(ix.buf, '/')
		}
		ix.buf = append(ix.buf, name...)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // gone since the listing
			}
			// A folder that may be listed but not searched (read without
			// execute permission): none of its entries can be looked at.
			// It is skipped as unreadable, and what it held keeps its
			// objects; it is not taken as emptied.
			dirRel := string(ix.buf[:base])
			if _, seen := skipped[dirRel]; !seen {
				err = &fs.PathError{Op: "stat", Path: dir + "/" + name, Err: err}
				*errs = append(*errs, err)
				skipped[dirRel] = err
			}
			continue
		}
		mode := st.Mode & unix.S_IFMT
		if mode == unix.S_IFLNK {
			// A link to a file below the root is uploaded as the file;
			// links to folders are not followed (no loops, nothing twice),
			// links leading out of the root are left out and reported.
			lst := st
			err := unix.Fstatat(fd, name, &st, 0)
			switch {
			case errors.Is(err, unix.EACCES):
				// Its target's folder is not searchable by this user. A
				// link that leads below the root, as far as it can be
				// followed, is taken as a file that cannot be read (its
				// upload fails and says so, its object is kept); one that
				// leads outside is left out.
				if ix.excl.file(name, ix.buf) {
					continue
				}
				if !ix.insideAsFar(dir + "/" + name) {
					res.linksOut = append(res.linksOut, string(ix.buf))
					continue
				}
				st = lst
			case err != nil:
				// To nothing, or not to be followed (a loop, a path
				// through a file): left out, and named once.
				if !ix.excl.file(name, ix.buf) {
					res.dangling = append(res.dangling, string(ix.buf))
				}
				continue
			case st.Mode&unix.S_IFMT != unix.S_IFREG, ix.excl.file(name, ix.buf):
				continue
			case !ix.inside(dir + "/" + name):
				res.linksOut = append(res.linksOut, string(ix.buf))
				continue
			}
			mode = unix.S_IFREG
		}
		switch mode {
		case unix.S_IFDIR:
			if ix.excl.dir(name, ix.buf) {
				continue
			}
			ix.walk(dir+"/"+name, res, errs, skipped)
		case unix.S_IFREG:
			if ix.excl.file(name, ix.buf) {
				continue
			}
			res.files++
			cur := transfer.FileState{Size: st.Size, ModTime: st.Mtim.Nano(), Ino: st.Ino}
			e, ok := ix.files[string(ix.buf)] // no allocation
			if !ok {
				e = &entry{}
				ix.files[string(ix.buf)] = e
			}
			e.cur, e.gen = cur, ix.gen
		}
	}
	ix.buf = ix.buf[:base]
}

// insideAsFar reports whether the link p leads below the root as far as
// its links can be followed (its target cannot be looked at): the chain of
// links is followed, and the path it ends at resolved as far as it goes.
func (ix *index) insideAsFar(p string) bool {
	abs, err := filepath.Abs(p)
	if err != nil || ix.real == "" {
		return false
	}
	return fsutil.Within(ix.real, fsutil.Resolve(fsutil.FollowLinks(abs)))
}

// inside reports whether the link p leads to a file below the root.
func (ix *index) inside(p string) bool {
	target, err := filepath.EvalSymlinks(p)
	return err == nil && ix.real != "" && fsutil.Within(ix.real, target)
}

// uploaded records that the file rel is in the store as version st.
func (ix *index) uploaded(rel string, st transfer.FileState) {
	e, ok := ix.files[rel]
	if !ok {
		return // gone meanwhile
	}
	if !e.uploaded || e.up != st {
		e.up, e.uploaded = st, true
		ix.changed = true
	}
}

// remove forgets a file.
func (ix *index) remove(rel string) {
	if e, ok := ix.files[rel]; ok {
		if e.uploaded {
			ix.changed = true
		}
		delete(ix.files, rel)
	}
}

// stateHeader starts a state file; the identity line that follows ties it
// to one store location and one folder.
const stateHeader = "initializer-sidecar-state 1"

func stateID(storeURL, prefix, root string) string {
	h := sha256.Sum256([]byte(storeURL + "\x00" + prefix + "\x00" + root))
	return hex.EncodeToString(h[:16])
}

// save writes the uploaded set to path atomically: a header, the identity,
// then one line per file: inode, size, mtime in ns, quoted path.
func (ix *index) save(path, id string, dels map[string]error) error {
	var b strings.Builder
	b.Grow(64 * len(ix.files))
	b.WriteString(stateHeader + "\n" + id + "\n")
	var line []byte
	for key := range dels {
		// A deletion that waits for the store outlives a restart.
		line = append(append(line[:0], delLine...), strconv.Quote(key)...)
		line = append(line, '\n')
		b.Write(line)
	}
	for rel, e := range ix.files {
		if !e.uploaded {
			continue
		}
		line = line[:0]
		line = strconv.AppendUint(line, e.up.Ino, 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, e.up.Size, 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, e.up.ModTime, 10)
		line = append(line, ' ')
		line = strconv.AppendQuote(line, rel)
		line = append(line, '\n')
		b.Write(line)
	}
	if _, err := fsutil.WriteFileAtomic(context.Background(), path, strings.NewReader(b.String()), fsutil.FileMeta{Mode: 0o600}); err != nil {
		return err
	}
	ix.changed = false
	return nil
}

// delLine starts a state file's line naming a key whose deletion waits.
const delLine = "delete "

// load reads a state file written by save for the same identity. It
// returns false when there is none or it belongs to another store, prefix
// or folder.
func (ix *index) load(path, id string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return false, sc.Err() // empty: none yet
	}
	if sc.Text() != stateHeader {
		return false, fmt.Errorf("%s is not a sidecar state file", path)
	}
	if !sc.Scan() || sc.Text() != id {
		return false, nil
	}
	for n := 3; sc.Scan(); n++ {
		if q, ok := strings.CutPrefix(sc.Text(), delLine); ok {
			key, err := strconv.Unquote(q)
			if err != nil {
				return false, fmt.Errorf("%s line %d: %w", path, n, err)
			}
			ix.dels = append(ix.dels, key)
			continue
		}
		fields := strings.SplitN(sc.Text(), " ", 4)
		if len(fields) != 4 {
			return false, fmt.Errorf("%s line %d: malformed", path, n)
		}
		ino, err1 := strconv.ParseUint(fields[0], 10, 64)
		size, err2 := strconv.ParseInt(fields[1], 10, 64)
		mt, err3 := strconv.ParseInt(fields[2], 10, 64)
		rel, err4 := strconv.Unquote(fields[3])
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return false, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		st := transfer.FileState{Size: size, ModTime: mt, Ino: ino}
		ix.files[rel] = &entry{up: st, uploaded: true}
	}
	return true, sc.Err()
}

// excluder decides which names the scan skips: .git folders, the engine's
// temporary files, the state file when it lies below the root, and the
// user's globs. A glob without a slash matches a name at any depth; one
// with a slash (or a leading one) matches the path from the root; a
// trailing slash restricts a glob to folders. "**" matches zero or more
// whole path segments, as in .gitignore: "**/x" is x at any depth,
// "a/**/b" is b anywhere below a (a/b too), "a/**" everything below a.
type excluder struct {
	names, paths       []string // globs for any entry
	dirNames, dirPaths []string // globs for folders only
	exact              []string // files excluded by their paths from the root
}

func newExcluder(globs []string) (*excluder, error) {
	x := &excluder{dirNames: []string{".git"}, names: []string{fsutil.TempPrefix + "*"}}
	for _, orig := range globs {
		g := strings.TrimPrefix(orig, "./")
		dirOnly := strings.HasSuffix(g, "/")
		anchored := strings.HasPrefix(g, "/")
		g = strings.Trim(g, "/")
		// A glob that starts with "**/" and has no other slash is a name
		// at any depth: matched against the name alone, which is cheaper.
		rest := g
		for strings.HasPrefix(rest, "**/") {
			rest = rest[len("**/"):]
		}
		if rest != g && !strings.Contains(rest, "/") {
			g, anchored = rest, false
		}
		if g == "" {
			continue
		}
		if base, ok := strings.CutSuffix(g, "/**"); ok && base != "" && base != "**" {
			// As in .gitignore, "a/**" is what is inside a, not a itself
			// (the matcher's "**" may match nothing).
			g = base + "/**/*"
		}
		if !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("--exclude %q is not a valid glob (unbalanced [ ] or { }, or a trailing \\); globs are made of *, **, ?, [abc], [!abc], {a,b} and \\ to escape", orig)
		}
		isPath := anchored || strings.Contains(g, "/")
		switch {
		case dirOnly && isPath:
			x.dirPaths = append(x.dirPaths, g)
		case dirOnly:
			x.dirNames = append(x.dirNames, g)
		case isPath:
			x.paths = append(x.paths, g)
		default:
			x.names = append(x.names, g)
		}
	}
	return x, nil
}

// matchAny reports whether s matches one of the globs, which are valid.
// It allocates nothing (unless a glob has {a,b} alternatives).
func matchAny(globs []string, s string) bool {
	for _, g := range globs {
		if doublestar.MatchUnvalidated(g, s) {
			return true
		}
	}
	return false
}

// view is rel as a string, without a copy: the matchers do not keep it.
func view(rel []byte) string { return unsafe.String(unsafe.SliceData(rel), len(rel)) }

func (x *excluder) file(name string, rel []byte) bool {
	if matchAny(x.names, name) {
		return true
	}
	for _, e := range x.exact {
		if string(rel) == e { // no allocation
			return true
		}
	}
	return len(x.paths) > 0 && matchAny(x.paths, view(rel))
}

func (x *excluder) dir(name string, rel []byte) bool {
	if matchAny(x.dirNames, name) || matchAny(x.names, name) {
		return true
	}
	if len(x.paths)+len(x.dirPaths) == 0 {
		return false
	}
	r := view(rel)
	return matchAny(x.dirPaths, r) || matchAny(x.paths, r)
}
