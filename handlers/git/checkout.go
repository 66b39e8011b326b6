package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
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

// checkoutWorkers is how many files checkoutFresh writes at once.
func checkoutWorkers() int {
	n := runtime.GOMAXPROCS(0)
	return min(max(n, 2), 8)
}

// checkoutFresh writes the tree of commit h into the empty work tree of the
// new clone at dir and writes its index: go-git's checkout for a fresh
// clone, without its diff of the index against the work tree (there is
// nothing to compare with) and in parallel. Each worker reads objects
// through storage of its own, since go-git's storage is not safe for
// concurrent use. Symbolic links are made last, so that no file is ever
// written through one.
func checkoutFresh(ctx context.Context, dir string, r *gogit.Repository, h plumbing.Hash) error {
	c, err := r.CommitObject(h)
	if err != nil {
		return fault.New(fault.NotFound, "commit %s: %v", h, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return fault.New(fault.NotFound, "tree of commit %s: %v", h, err)
	}
	type item struct {
		name string
		hash plumbing.Hash
		mode filemode.FileMode
	}
	var files, links, gitlinks []item
	dirs := map[string]bool{}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fault.New(fault.Integrity, "reading the tree of %s: %v", h, err)
		}
		if err := validTreePath(name); err != nil {
			return fault.New(fault.Integrity, "commit %s: %v", h, err)
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
			return fault.New(fault.Integrity, "commit %s: %s has an unknown file mode %o", h, name, uint32(e.Mode))
		}
		if d := path.Dir(name); d != "." {
			dirs[d] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
			return fault.FromSystem(err)
		}
	}

	entries := make([]*index.Entry, len(files)+len(links)+len(gitlinks))
	workers := checkoutWorkers()
	g, gctx := errgroup.WithContext(ctx)
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			st, _ := storage(dir)
			defer st.Close()
			for i := w; i < len(files); i += workers {
				if err := gctx.Err(); err != nil {
					return err
				}
				f := files[i]
				p := filepath.Join(dir, filepath.FromSlash(f.name))
				obj, err := st.EncodedObject(plumbing.BlobObject, f.hash)
				if err != nil {
					return fault.New(fault.Integrity, "blob %s (%s): %v", f.hash, f.name, err)
				}
				if err := writeBlob(p, obj, f.mode); err != nil {
					return err
				}
				if entries[i], err = indexEntry(p, f.name, f.hash, f.mode); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, l := range links {
		p := filepath.Join(dir, filepath.FromSlash(l.name))
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
		if err := os.Symlink(string(target), p); err != nil {
			return fault.FromSystem(err)
		}
		if entries[len(files)+i], err = indexEntry(p, l.name, l.hash, l.mode); err != nil {
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

// writeBlob writes a blob's content to a new file at p.
func writeBlob(p string, obj plumbing.EncodedObject, mode filemode.FileMode) error {
	perm := os.FileMode(0o644)
	if mode == filemode.Executable {
		perm = 0o755
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
	if _, err := io.Copy(f, rd); err != nil {
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
