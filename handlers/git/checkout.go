package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/sync/errgroup"

	"github.com/initializer/initializer/fault"
)

// checkoutWorkers is how many files checkoutTree writes at once.
func checkoutWorkers() int {
	n := runtime.GOMAXPROCS(0)
	return min(max(n, 2), 8)
}

// item is a tree entry to check out: a file, a link or a submodule.
type item struct {
	name string
	hash plumbing.Hash
	mode filemode.FileMode
}

// listTree lists the files, links and submodules of commit h's tree, and
// the folders that hold them (sorted, parents first).
func listTree(r *gogit.Repository, h plumbing.Hash) (files, links, gitlinks []item, dirList []string, err error) {
	c, err := r.CommitObject(h)
	if err != nil {
		return nil, nil, nil, nil, fault.New(fault.NotFound, "commit %s: %v", h, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, nil, nil, nil, fault.New(fault.NotFound, "tree of commit %s: %v", h, err)
	}
	dirs := map[string]bool{}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, nil, fault.New(fault.Integrity, "reading the tree of %s: %v", h, err)
		}
		if err := validTreePath(name); err != nil {
			return nil, nil, nil, nil, fault.New(fault.Integrity, "commit %s: %v", h, err)
		}
		it := item{name: name, hash: e.Hash, mode: e.Mode}
		switch e.Mode {
		case filemode.Dir:
			continue
		case filemode.Symlink:
			links = append(links, it)
		case filemode.Submodule:
			gitlinks = append(gitlinks, it)
			dirs[name] = true
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			files = append(files, it)
		default:
			return nil, nil, nil, nil, fault.New(fault.Integrity, "commit %s: %s has an unknown file mode %o", h, name, uint32(e.Mode))
		}
		if d := path.Dir(name); d != "." {
			dirs[d] = true
		}
	}
	dirList = make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	return files, links, gitlinks, dirList, nil
}

// checkoutTree writes the tree of commit h into the work tree at dir and
// writes its index, in parallel: each worker reads objects through storage
// of its own, since go-git's storage is not safe for concurrent use.
// Symbolic links are made last, so that no file is ever written through
// one.
//
// With old, the index of the clone's checkout, it is git checkout --force:
// a tracked file whose content and stat data are unchanged is kept, any
// other is written again; tracked files the new tree drops are removed;
// untracked files are left alone (the driver refused, before, those the new
// tree would replace, unless --force). Without, the work tree is empty (a
// fresh clone): there is nothing to compare with.
func checkoutTree(ctx context.Context, dir string, r *gogit.Repository, h plumbing.Hash, old []*index.Entry) error {
	files, links, gitlinks, dirList, err := listTree(r, h)
	if err != nil {
		return err
	}
	attrs := readAttributes(r, dir, files)
	oldBy := make(map[string]*index.Entry, len(old))
	for _, e := range old {
		oldBy[e.Name] = e
	}
	if len(old) == 0 {
		if err := makeDirs(dir, dirList); err != nil {
			return err
		}
	}

	// What must be written: everything on a fresh clone; on an update, what
	// changed, or what no longer matches its index entry.
	entries := make([]*index.Entry, len(files)+len(links)+len(gitlinks))
	var todo []int
	for i, f := range append(append([]item{}, files...), links...) {
		if e := oldBy[f.name]; e != nil && e.Hash == f.hash && e.Mode == f.mode && unchanged(filepath.Join(dir, filepath.FromSlash(f.name)), e) {
			entries[i] = e
			continue
		}
		todo = append(todo, i)
	}
	// A fresh clone's files are written in place (the driver removes the
	// staging clone if the run stops). An update writes the new contents
	// beside, in .git, first, where a stop leaves nothing to undo, then
	// moves them into place and removes what the new tree drops in one
	// pass that is not interrupted: the work tree is never half one
	// revision and half the other.
	update := len(old) > 0
	staged := ""
	if update {
		staged = filepath.Join(dir, ".git", "initializer-checkout")
		os.RemoveAll(staged)
		if err := os.Mkdir(staged, 0o700); err != nil {
			return fault.FromSystem(err)
		}
		defer os.RemoveAll(staged)
	}
	workers := checkoutWorkers()
	g, gctx := errgroup.WithContext(ctx)
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			st, _ := storage(dir)
			defer st.Close()
			for k := w; k < len(todo); k += workers {
				i := todo[k]
				if i >= len(files) {
					break // the links, in order, below
				}
				if err := gctx.Err(); err != nil {
					return err
				}
				f := files[i]
				p := filepath.Join(dir, filepath.FromSlash(f.name))
				if update {
					p = filepath.Join(staged, strconv.Itoa(i))
				}
				obj, err := st.EncodedObject(plumbing.BlobObject, f.hash)
				if err != nil {
					return fault.New(fault.Integrity, "blob %s (%s): %v", f.hash, f.name, err)
				}
				if err := writeBlob(p, obj, f.mode, attrs.eolOf(f.name)); err != nil {
					return err
				}
				if !update {
					if entries[i], err = indexEntry(p, f.name, f.hash, f.mode); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	targets := make(map[int]string)
	for _, i := range todo {
		if i < len(files) {
			continue
		}
		if !update {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		l := links[i-len(files)]
		obj, err := r.Storer.EncodedObject(plumbing.BlobObject, l.hash)
		if err != nil {
			return fault.New(fault.Integrity, "blob %s (%s): %v", l.hash, l.name, err)
		}
		rd, err := obj.Reader()
		if err != nil {
			return fault.New(fault.Integrity, "blob %s: %v", l.hash, err)
		}
		target, err := io.ReadAll(rd)
		rd.Close()
		if err != nil {
			return fault.New(fault.Integrity, "blob %s: %v", l.hash, err)
		}
		targets[i] = string(target)
	}
	if update {
		// From here on, not interrupted: a few renames and removals.
		if err := moveStaged(dir, staged, old, files, links, gitlinks, dirList, todo, entries); err != nil {
			return err
		}
	}
	for _, i := range todo {
		if i < len(files) {
			continue
		}
		l := links[i-len(files)]
		p := filepath.Join(dir, filepath.FromSlash(l.name))
		if update {
			if err := clearPath(p); err != nil {
				return err
			}
		}
		if err := os.Symlink(targets[i], p); err != nil {
			return fault.FromSystem(err)
		}
		var err error
		if entries[i], err = indexEntry(p, l.name, l.hash, l.mode); err != nil {
			return err
		}
	}
	for i, s := range gitlinks {
		entries[len(files)+len(links)+i] = &index.Entry{Name: s.name, Hash: s.hash, Mode: filemode.Submodule}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	if err := r.Storer.SetIndex(&index.Index{Version: 2, Entries: entries}); err != nil {
		return fault.FromSystem(fmt.Errorf("writing the index: %w", err))
	}
	return nil
}

// moveStaged is an update's last pass: it removes what the new tree drops,
// makes its folders and moves the staged files (todo's, below len(files))
// into place, filling their index entries.
func moveStaged(dir, staged string, old []*index.Entry, files, links, gitlinks []item, dirList []string, todo []int, entries []*index.Entry) error {
	if err := removeDropped(dir, old, files, links, gitlinks); err != nil {
		return err
	}
	if err := makeDirs(dir, dirList); err != nil {
		return err
	}
	for _, i := range todo {
		if i >= len(files) {
			break // the links, made by the caller
		}
		f := files[i]
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := clearPath(p); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(staged, strconv.Itoa(i)), p); err != nil {
			return fault.FromSystem(err)
		}
		var err error
		if entries[i], err = indexEntry(p, f.name, f.hash, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// removeDropped removes the files and links of the old checkout that the
// new tree does not have at their path (as git does: submodules' folders
// stay), and the folders that leaves empty.
func removeDropped(dir string, old []*index.Entry, items ...[]item) error {
	kept := map[string]bool{}
	for _, list := range items {
		for _, it := range list {
			kept[it.name] = true
		}
	}
	for _, e := range old {
		if kept[e.Name] || e.Mode == filemode.Submodule {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		if st, err := os.Lstat(p); err != nil || st.IsDir() {
			continue // gone already, or a folder the job made there: left alone
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fault.FromSystem(err)
		}
		for d := filepath.Dir(p); d != dir && len(d) > len(dir); d = filepath.Dir(d) {
			if os.Remove(d) != nil {
				break // not empty
			}
		}
	}
	return nil
}

// inTheWay lists (up to max) the untracked files and folders of the work
// tree at dir that checking out next would replace: a file or link where
// next has one with other content, anything where next has a submodule's
// folder or a file's folder, a folder holding untracked files where next
// has a file. tracked is what the index holds now. git checkout refuses
// them as "would be overwritten"; they are the job's (or the user's).
func inTheWay(dir string, tracked map[string]bool, next []item, max int) []string {
	var found []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			found = append(found, name)
		}
	}
	folders := map[string]bool{} // the folders on the way already looked at
	for _, it := range next {
		if len(found) >= max {
			break
		}
		// A file or a link (to a folder, or to nothing) where the revision
		// has a folder on the way: in the way unless tracked (it goes).
		for a := path.Dir(it.name); a != "." && !folders[a]; a = path.Dir(a) {
			folders[a] = true
			if st, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(a))); err == nil && !st.IsDir() && !tracked[a] {
				add(a)
			}
		}
		if tracked[it.name] {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(it.name))
		st, err := os.Lstat(p)
		switch {
		case err != nil:
		case it.mode == filemode.Submodule:
			if !st.IsDir() {
				add(it.name)
			}
		case st.IsDir():
			if untrackedUnder(dir, it.name, tracked) {
				add(it.name + "/")
			}
		case !sameBlob(p, st, it):
			add(it.name)
		}
	}
	return found
}

// untrackedUnder reports whether the folder name of the work tree at dir
// holds anything the index does not track.
func untrackedUnder(dir, name string, tracked map[string]bool) bool {
	found := false
	filepath.WalkDir(filepath.Join(dir, filepath.FromSlash(name)), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if !tracked[filepath.ToSlash(rel)] {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// sameBlob reports whether the file or link at p (st) holds its content
// already (what a stopped run left there, say): nothing of the user's.
func sameBlob(p string, st fs.FileInfo, it item) bool {
	switch {
	case it.mode == filemode.Symlink && st.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		return err == nil && plumbing.ComputeHash(plumbing.BlobObject, []byte(target)) == it.hash
	case it.mode != filemode.Symlink && st.Mode().IsRegular():
		f, err := os.Open(p)
		if err != nil {
			return false
		}
		defer f.Close()
		h := plumbing.NewHasher(plumbing.BlobObject, st.Size())
		_, err = io.Copy(h, f)
		return err == nil && h.Sum() == it.hash
	}
	return false
}

// makeDirs makes the folders of the tree (parents first), replacing a file
// or link that stands where one goes (a tracked file that is a folder now,
// or, with --force, an untracked one in the way).
func makeDirs(dir string, dirList []string) error {
	for _, d := range dirList {
		p := filepath.Join(dir, filepath.FromSlash(d))
		if st, err := os.Lstat(p); err == nil && !st.IsDir() {
			if err := os.Remove(p); err != nil {
				return fault.FromSystem(err)
			}
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fault.FromSystem(err)
		}
	}
	return nil
}

// unchanged reports whether the file or link at p still matches its index
// entry's stat data (git's test for a clean work tree file).
func unchanged(p string, e *index.Entry) bool {
	st, err := os.Lstat(p)
	if err != nil || int64(e.Size) != st.Size()&0xffffffff || !st.ModTime().Equal(e.ModifiedAt) {
		return false
	}
	switch e.Mode {
	case filemode.Symlink:
		return st.Mode()&fs.ModeSymlink != 0
	case filemode.Executable:
		return st.Mode().IsRegular() && st.Mode().Perm()&0o100 != 0
	default:
		return st.Mode().IsRegular() && st.Mode().Perm()&0o100 == 0
	}
}

// clearPath removes what stands at p before a file or link is written
// there: a file or a link, or a folder (emptied of tracked files, or one
// --force lets this run replace).
func clearPath(p string) error {
	st, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fault.FromSystem(err)
	case st.IsDir():
		return fault.FromSystem(os.RemoveAll(p))
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fault.FromSystem(err)
	}
	return nil
}

// writeBlob writes a blob's content to a new file at p, with the line
// endings conv asks.
func writeBlob(p string, obj plumbing.EncodedObject, mode filemode.FileMode, conv eol) error {
	perm := os.FileMode(0o644)
	if mode == filemode.Executable {
		perm = 0o755
	}
	if conv == eolAutoCRLF {
		// Converted only if it is text with no CR yet: read it once first.
		rd, err := obj.Reader()
		if err != nil {
			return fault.New(fault.Integrity, "blob %s: %v", obj.Hash(), err)
		}
		var st textStats
		_, err = io.Copy(&st, rd)
		rd.Close()
		if err != nil {
			return fault.New(fault.Integrity, "blob %s: %v", obj.Hash(), err)
		}
		conv = eolNone
		if st.converts() {
			conv = eolCRLF
		}
	}
	rd, err := obj.Reader()
	if err != nil {
		return fault.New(fault.Integrity, "blob %s: %v", obj.Hash(), err)
	}
	defer rd.Close()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fault.FromSystem(err)
	}
	var w io.Writer = f
	if conv == eolCRLF {
		w = &crlfWriter{w: f}
	}
	if _, err := io.Copy(w, rd); err != nil {
		f.Close()
		return fault.FromSystem(fmt.Errorf("writing %s: %w", p, err))
	}
	return fault.FromSystem(f.Close())
}

// indexEntry is the index entry of the file just written at p, with the
// stat data git compares to see the work tree is clean.
func indexEntry(p, name string, h plumbing.Hash, mode filemode.FileMode) (*index.Entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, fault.FromSystem(err)
	}
	e := &index.Entry{Name: name, Hash: h, Mode: mode, Size: uint32(fi.Size()), ModifiedAt: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.CreatedAt = time.Unix(st.Ctim.Unix())
		e.Dev, e.Inode = uint32(st.Dev), uint32(st.Ino)
		e.UID, e.GID = st.Uid, st.Gid
	}
	return e, nil
}

// validTreePath refuses tree paths that could write outside the work tree
// or into .git (as git does).
func validTreePath(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("invalid path %q in the tree", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." || strings.EqualFold(strings.TrimRight(part, ". "), ".git") {
			return fmt.Errorf("invalid path %q in the tree", name)
		}
	}
	return nil
}
