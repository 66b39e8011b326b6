package git

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/hash"
	gogitstorage "github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// PackStorage is go-git's file system storage of a repository with a pack
// indexer of this package in place of go-git's: fetches write the pack they
// receive and index it in the manner of git index-pack (see packindex.go),
// in bounded memory and on every core. go-git's own indexer holds up to
// 96 MiB of inflated objects and runs on one core.
//
// go-git writes packs through it as it is the storer the repository was
// opened with (packfile.UpdateObjectStorage asks it for a
// storer.PackfileWriter). Submodules' storage, which go-git gets through
// Module, is a PackStorage too.
type PackStorage struct {
	*filesystem.Storage
	modules []*PackStorage // opened through Module; Close closes them
}

// NewPackStorage returns st with this package's pack indexer. It is
// exported for bench/git/gogitprof, which compares it with go-git's.
func NewPackStorage(st *filesystem.Storage) *PackStorage {
	return &PackStorage{Storage: st}
}

// Module returns the storage of submodule name (in .git/modules), with the
// go-git engine's options and pack indexer.
func (s *PackStorage) Module(name string) (gogitstorage.Storer, error) {
	m, err := s.Storage.Module(name)
	if err != nil {
		return nil, err
	}
	fs, ok := m.(interface{ Filesystem() billy.Filesystem })
	if !ok {
		return m, nil // not on a file system: as go-git made it
	}
	sub := newStorage(fs.Filesystem())
	s.modules = append(s.modules, sub)
	return sub, nil
}

// Close releases the storage's open files, and its submodules'.
func (s *PackStorage) Close() error {
	for _, m := range s.modules {
		m.Close()
	}
	s.modules = nil
	return s.Storage.Close()
}

// PackfileWriter returns a writer of a pack into the repository: Close
// indexes what was written and moves the pack and its index into
// objects/pack.
func (s *PackStorage) PackfileWriter() (io.WriteCloser, error) {
	return newPackWriter(s.Storage)
}

// packWriter writes a pack to a temporary file in objects/pack while
// pass 1 of the indexer reads it through a pipe; Close checks the pack's
// checksum, runs pass 2 and writes the index.
type packWriter struct {
	st   *filesystem.Storage
	fs   billy.Filesystem // the .git folder
	file billy.File
	size int64
	sum  hash.Hash // of all but the last 20 bytes so far
	tail []byte    // the last 20 bytes so far: the checksum, in the end
	pipe *io.PipeWriter
	scan chan scanResult // pass 1's outcome
}

type scanResult struct {
	ix  *packIndex
	err error
}

const packDir = "objects/pack"

func newPackWriter(st *filesystem.Storage) (*packWriter, error) {
	fs := st.Filesystem()
	f, err := fs.TempFile(packDir, "tmp_pack_")
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &packWriter{st: st, fs: fs, file: f, sum: hash.New(hash.CryptoType), tail: make([]byte, 0, 2*hash.Size),
		pipe: pw, scan: make(chan scanResult, 1)}
	go func() {
		ix, err := scanPack(pr)
		if err != nil {
			err = fmt.Errorf("index the pack: %w", err)
			pr.CloseWithError(err) // Write fails with it
		} else {
			_, _ = io.Copy(io.Discard, pr) // the trailer (Close checks it)
		}
		w.scan <- scanResult{ix, err}
	}()
	return w, nil
}

// Write writes p to the file, adds it to the checksum and hands it to
// pass 1.
func (w *packWriter) Write(p []byte) (int, error) {
	if _, err := w.file.Write(p); err != nil {
		return 0, err
	}
	w.size += int64(len(p))
	if len(p) >= hash.Size {
		w.sum.Write(w.tail)
		w.sum.Write(p[:len(p)-hash.Size])
		w.tail = append(w.tail[:0], p[len(p)-hash.Size:]...)
	} else {
		w.tail = append(w.tail, p...)
		if extra := len(w.tail) - hash.Size; extra > 0 {
			w.sum.Write(w.tail[:extra])
			w.tail = append(w.tail[:0], w.tail[extra:]...)
		}
	}
	return w.pipe.Write(p)
}

// Close indexes the pack written and moves it and its index into
// objects/pack; nothing is left behind if that fails. A pack with no
// objects is dropped.
func (w *packWriter) Close() error {
	w.pipe.Close()
	scan := <-w.scan
	tmp := w.file.Name()
	err := w.file.Close()
	if err == nil && w.size > 0 {
		err = scan.err
		if err == nil {
			err = w.index(tmp, scan.ix)
		}
	}
	if rmErr := w.fs.Remove(tmp); rmErr != nil && !os.IsNotExist(rmErr) && err == nil {
		err = rmErr
	}
	return err
}

// index checks the pack at tmp against its checksum, resolves its deltas
// and moves it and its index in place.
func (w *packWriter) index(tmp string, ix *packIndex) error {
	var checksum plumbing.Hash
	copy(checksum[:], w.sum.Sum(nil))
	if ix.end != w.size-hash.Size || string(checksum[:]) != string(w.tail) {
		return fmt.Errorf("index the pack: %w: its checksum does not match its content", packfile.ErrMalformedPackFile)
	}
	if len(ix.objects) == 0 {
		return nil
	}
	left, err := ix.resolve(func() (packFile, error) { return w.fs.Open(tmp) })
	if err != nil {
		return fmt.Errorf("index the pack: %w", err)
	}
	if left > 0 {
		return w.fallBack(tmp) // a thin pack
	}
	base := path.Join(packDir, "pack-"+checksum.String())
	if _, err := w.fs.Lstat(base + ".pack"); err == nil {
		return nil // the repository has this pack already
	}
	idx, err := w.writeIdx(ix, checksum)
	if err != nil {
		return err
	}
	if err := w.place(tmp, base+".pack"); err != nil {
		w.fs.Remove(idx)
		return err
	}
	if err := w.place(idx, base+".idx"); err != nil {
		w.fs.Remove(idx)
		w.fs.Remove(base + ".pack")
		return err
	}
	w.st.Reindex()
	return nil
}

// writeIdx writes the pack's index to a temporary file and returns its name.
func (w *packWriter) writeIdx(ix *packIndex, checksum plumbing.Hash) (string, error) {
	iw := new(idxfile.Writer)
	if err := iw.OnHeader(uint32(len(ix.objects))); err != nil {
		return "", err
	}
	for _, o := range ix.objects {
		iw.Add(o.hash, uint64(o.offset), o.crc)
	}
	if err := iw.OnFooter(checksum); err != nil {
		return "", err
	}
	idx, err := iw.Index()
	if err != nil {
		return "", err
	}
	f, err := w.fs.TempFile(packDir, "tmp_idx_")
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	_, err = idxfile.NewEncoder(bw).Encode(idx)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.fs.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// place renames from to to, read-only as git makes pack files.
func (w *packWriter) place(from, to string) error {
	if err := w.fs.Rename(from, to); err != nil {
		return err
	}
	if ch, ok := w.fs.(billy.Chmod); ok {
		_ = ch.Chmod(to, 0o444)
	}
	return nil
}

// fallBack stores the objects of the pack at tmp as loose objects through
// go-git's parser, which takes the bases that a thin pack leaves out from
// the repository. (go-git's own pack writer cannot: its parser has no
// storage to take them from.) go-git does not ask servers for thin packs:
// this is for robustness, not speed.
func (w *packWriter) fallBack(tmp string) error {
	f, err := w.fs.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := packfile.NewParserWithStorage(packfile.NewScanner(f), w.st)
	if err == nil {
		_, err = p.Parse()
	}
	if err != nil {
		return fmt.Errorf("index the thin pack: %w", err)
	}
	return nil
}
