package git

import (
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/hash"
	"golang.org/x/sync/errgroup"
)

// The pack indexer works like git index-pack. Pass 1 reads the pack as it
// arrives and notes each entry's offset, CRC-32 and, for whole objects, id
// (hashing the inflated content as it streams: nothing is kept). Pass 2
// resolves the deltas depth-first from each whole object, on every core:
// it inflates the base once, then each delta against it, hashes the result
// and goes on to that object's own deltas, holding only the buffers of the
// chain it is in. go-git's packfile.Parser instead keeps up to 96 MiB of
// inflated bases in a cache and resolves on one core.

// maxDeltaDepth bounds delta chains, as git's pack-objects does.
const maxDeltaDepth = 4095

// maxPrealloc bounds what is allocated for an object before its data is
// seen to be as big as its header says.
const maxPrealloc = 16 << 20

// keptBuffer: a resolver's buffers larger than this are let go after each
// tree of deltas, so that one big object does not hold its memory for the
// rest of the pack.
const keptBuffer = 4 << 20

// packObject is what the indexer knows of one entry of the pack.
type packObject struct {
	offset int64               // of its entry in the pack
	hash   plumbing.Hash       // its id; zero for a delta not yet resolved
	crc    uint32              // CRC-32 of its entry, as the .idx records it
	base   int32               // an OFS delta's base (index in the pack's entries)
	typ    plumbing.ObjectType // for a delta, its kind until resolved, then its base's type
}

// packIndex is the outcome of pass 1 and, once resolved, of pass 2.
type packIndex struct {
	objects []packObject
	// first and kids list the OFS deltas against each entry: those against
	// entry i are kids[first[i]:first[i+1]], in pack order.
	first, kids []int32
	// refs lists the REF deltas against each id, in pack order.
	refs map[plumbing.Hash][]int32
	end  int64 // where the last entry ends: the pack's trailer starts there
}

// scanPack is pass 1: it reads the pack's entries from r, up to the
// trailer (which it may read into its buffer, but leaves to the caller to
// check).
func scanPack(r io.Reader) (*packIndex, error) {
	rd := newPackReader(64 << 10)
	rd.reset(r, 0)
	var head [12]byte
	if _, err := io.ReadFull(rd, head[:]); err != nil {
		return nil, noEOF(err)
	}
	if string(head[:4]) != "PACK" {
		return nil, packfile.ErrBadSignature
	}
	if v := be32(head[4:]); v != 2 && v != 3 {
		return nil, fmt.Errorf("%w: version %d", packfile.ErrUnsupportedVersion, v)
	}
	count := be32(head[8:])
	if count > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d objects", packfile.ErrMalformedPackFile, count)
	}
	ix := &packIndex{objects: make([]packObject, 0, min(count, 1<<16)), refs: map[plumbing.Hash][]int32{}}
	h := newObjectHasher()
	buf := make([]byte, 32<<10)
	var ofsDeltas int
	for range count {
		rd.markCRC()
		e, err := rd.entryHeader()
		if err != nil {
			return nil, err
		}
		o := packObject{offset: e.offset, typ: e.typ, base: -1}
		var w io.Writer = io.Discard
		switch e.typ {
		case plumbing.OFSDeltaObject:
			o.base = ix.find(e.baseOffset)
			if o.base < 0 {
				return nil, fmt.Errorf("%w: the delta at %d is against %d, not an entry", packfile.ErrMalformedPackFile, e.offset, e.baseOffset)
			}
			ofsDeltas++
		case plumbing.REFDeltaObject:
			ix.refs[e.baseID] = append(ix.refs[e.baseID], int32(len(ix.objects)))
		default:
			h.start(e.typ, e.size)
			w = h
		}
		if err := rd.inflateTo(w, e, buf); err != nil {
			return nil, err
		}
		if !e.typ.IsDelta() {
			o.hash = h.sum()
		}
		o.crc = rd.sumCRC()
		ix.objects = append(ix.objects, o)
	}
	ix.end = rd.pos()
	ix.link(ofsDeltas)
	return ix, nil
}

// find returns the index of the entry at offset, or -1.
func (ix *packIndex) find(offset int64) int32 {
	i := sort.Search(len(ix.objects), func(i int) bool { return ix.objects[i].offset >= offset })
	if i < len(ix.objects) && ix.objects[i].offset == offset {
		return int32(i)
	}
	return -1
}

// link fills first and kids from the OFS deltas' bases.
func (ix *packIndex) link(ofsDeltas int) {
	ix.first = make([]int32, len(ix.objects)+1)
	for _, o := range ix.objects {
		if o.base >= 0 {
			ix.first[o.base+1]++
		}
	}
	for i := 1; i < len(ix.first); i++ {
		ix.first[i] += ix.first[i-1]
	}
	ix.kids = make([]int32, ofsDeltas)
	next := append([]int32(nil), ix.first[:len(ix.objects)]...)
	for i, o := range ix.objects {
		if o.base >= 0 {
			ix.kids[next[o.base]] = int32(i)
			next[o.base]++
		}
	}
}

// packFile is a pack file open for reading.
type packFile interface {
	io.ReaderAt
	io.Closer
}

// resolve is pass 2: it resolves the deltas of the pack, on as many
// goroutines as Go has processors, each reading the file through its own
// open. It returns how many deltas are left unresolved: REF deltas against
// objects not in the pack (a thin pack), and any deltas against those.
func (ix *packIndex) resolve(open func() (packFile, error)) (int, error) {
	var roots []int32
	for i, o := range ix.objects {
		if !o.typ.IsDelta() && (ix.first[i+1] > ix.first[i] || len(ix.refs[o.hash]) > 0) {
			roots = append(roots, int32(i))
		}
	}
	var claimed []atomic.Bool
	if len(ix.refs) > 0 {
		claimed = make([]atomic.Bool, len(ix.objects))
	}
	var next atomic.Int64
	g, ctx := errgroup.WithContext(context.Background())
	for range min(runtime.GOMAXPROCS(0), len(roots)) {
		g.Go(func() error {
			f, err := open()
			if err != nil {
				return err
			}
			defer f.Close()
			r := &resolver{ix: ix, claimed: claimed, pack: f, rd: newPackReader(16 << 10), h: newObjectHasher()}
			for {
				if ctx.Err() != nil {
					return nil // another resolver failed
				}
				i := next.Add(1) - 1
				if i >= int64(len(roots)) {
					return nil
				}
				if err := r.tree(roots[i]); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	left := 0
	for _, o := range ix.objects {
		if o.typ.IsDelta() {
			left++
		}
	}
	return left, nil
}

// resolver resolves trees of deltas, one at a time, on one goroutine. Each
// entry is resolved by the one resolver that reaches it: an OFS delta
// through its base, a REF delta through the first base with its id (claimed
// makes sure of that when a pack has the same object twice).
type resolver struct {
	ix      *packIndex
	claimed []atomic.Bool
	pack    io.ReaderAt
	rd      *packReader
	h       *objectHasher
	delta   []byte   // the delta being applied
	chain   [][]byte // chain[d]: the content of the object at depth d
}

// tree resolves the deltas based, directly or not, on the whole object i.
func (r *resolver) tree(i int32) error {
	data, err := r.read(i, r.buffer(0))
	if err != nil {
		return err
	}
	r.chain[0] = data
	err = r.deltas(i, data, 0)
	for d, b := range r.chain {
		if cap(b) > keptBuffer {
			r.chain[d] = nil
		}
	}
	if cap(r.delta) > keptBuffer {
		r.delta = nil
	}
	return err
}

// deltas resolves the deltas against entry i, whose content is data, at
// depth d of its chain, and theirs.
func (r *resolver) deltas(i int32, data []byte, d int) error {
	o := &r.ix.objects[i]
	for _, k := range r.ix.kids[r.ix.first[i]:r.ix.first[i+1]] {
		if err := r.apply(k, o.typ, data, d+1); err != nil {
			return err
		}
	}
	for _, k := range r.ix.refs[o.hash] {
		if r.claimed[k].CompareAndSwap(false, true) {
			if err := r.apply(k, o.typ, data, d+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// apply resolves delta k against base, an object of type t, at depth d,
// then the deltas against it.
func (r *resolver) apply(k int32, t plumbing.ObjectType, base []byte, d int) error {
	o := &r.ix.objects[k]
	if d > maxDeltaDepth {
		return fmt.Errorf("%w: the delta at %d is more than %d deep", packfile.ErrMalformedPackFile, o.offset, maxDeltaDepth)
	}
	delta, err := r.read(k, r.delta[:0])
	r.delta = delta
	if err != nil {
		return err
	}
	data, err := patchDelta(r.buffer(d), base, delta)
	if err != nil {
		return fmt.Errorf("%w: the delta at %d: %w", packfile.ErrMalformedPackFile, o.offset, err)
	}
	r.chain[d] = data
	r.h.start(t, int64(len(data)))
	r.h.Write(data)
	o.hash, o.typ = r.h.sum(), t
	return r.deltas(k, data, d)
}

// buffer returns the (empty) buffer for depth d of the chain.
func (r *resolver) buffer(d int) []byte {
	for len(r.chain) <= d {
		r.chain = append(r.chain, nil)
	}
	return r.chain[d][:0]
}

// read inflates entry i (for a delta, the delta) into buf's memory.
func (r *resolver) read(i int32, buf []byte) ([]byte, error) {
	r.rd.seek(r.pack, r.ix.objects[i].offset, r.ix.end)
	e, err := r.rd.entryHeader()
	if err != nil {
		return buf, err
	}
	return r.rd.inflate(buf, e)
}

// entry is the header of a pack entry.
type entry struct {
	offset     int64
	typ        plumbing.ObjectType
	size       int64         // inflated size (of the delta, for a delta)
	baseOffset int64         // an OFS delta's base
	baseID     plumbing.Hash // a REF delta's base
}

// packReader reads a pack's entries through a buffer, from a stream (pass 1)
// or from any offset of a file (pass 2). It is the io.ByteReader that zlib
// reads the entries' data through, byte by byte, so that it never reads
// past the end of an entry; and it keeps the CRC-32 of the bytes read since
// markCRC.
type packReader struct {
	src     io.Reader
	buf     []byte
	off     int64 // pack offset of buf[0]
	r, w    int   // next byte to read in buf; end of the data in buf
	crcFrom int   // buf[crcFrom:r] is not in crc yet
	crc     uint32
	z       io.ReadCloser // zlib reader, reset for each entry
}

func newPackReader(size int) *packReader {
	return &packReader{buf: make([]byte, size)}
}

// reset reads on from src, which is at pack offset off.
func (p *packReader) reset(src io.Reader, off int64) {
	p.src, p.off, p.r, p.w, p.crcFrom = src, off, 0, 0, 0
}

// seek moves to offset off of pack, whose entries end at end.
func (p *packReader) seek(pack io.ReaderAt, off, end int64) {
	if off >= p.off && off < p.off+int64(p.w) {
		p.r, p.crcFrom = int(off-p.off), int(off-p.off)
		return
	}
	p.reset(io.NewSectionReader(pack, off, end-off), off)
}

func (p *packReader) pos() int64 { return p.off + int64(p.r) }

func (p *packReader) fill() error {
	p.crc = crc32.Update(p.crc, crc32.IEEETable, p.buf[p.crcFrom:p.r])
	p.off += int64(p.w)
	p.r, p.w, p.crcFrom = 0, 0, 0
	for {
		n, err := p.src.Read(p.buf)
		if n > 0 {
			p.w = n
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (p *packReader) ReadByte() (byte, error) {
	if p.r == p.w {
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	b := p.buf[p.r]
	p.r++
	return b, nil
}

func (p *packReader) Read(b []byte) (int, error) {
	if p.r == p.w {
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(b, p.buf[p.r:p.w])
	p.r += n
	return n, nil
}

func (p *packReader) markCRC() {
	p.crc, p.crcFrom = 0, p.r
}

func (p *packReader) sumCRC() uint32 {
	p.crc = crc32.Update(p.crc, crc32.IEEETable, p.buf[p.crcFrom:p.r])
	p.crcFrom = p.r
	return p.crc
}

// entryHeader reads the header of the entry at the current offset.
func (p *packReader) entryHeader() (entry, error) {
	e := entry{offset: p.pos()}
	c, err := p.ReadByte()
	if err != nil {
		return e, noEOF(err)
	}
	e.typ = plumbing.ObjectType(c >> 4 & 7)
	e.size = int64(c & 15)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if shift > 56 {
			return e, fmt.Errorf("%w: the size of the entry at %d overflows", packfile.ErrMalformedPackFile, e.offset)
		}
		if c, err = p.ReadByte(); err != nil {
			return e, noEOF(err)
		}
		e.size |= int64(c&0x7f) << shift
	}
	switch e.typ {
	case plumbing.CommitObject, plumbing.TreeObject, plumbing.BlobObject, plumbing.TagObject:
	case plumbing.OFSDeltaObject:
		// Big-endian base-128, each continuation adding one (git's
		// encoding): the distance back to the base.
		if c, err = p.ReadByte(); err != nil {
			return e, noEOF(err)
		}
		back := int64(c & 0x7f)
		for c&0x80 != 0 {
			if back >= 1<<55 {
				return e, fmt.Errorf("%w: the base offset of the delta at %d overflows", packfile.ErrMalformedPackFile, e.offset)
			}
			if c, err = p.ReadByte(); err != nil {
				return e, noEOF(err)
			}
			back = (back+1)<<7 | int64(c&0x7f)
		}
		if back <= 0 || back > e.offset {
			return e, fmt.Errorf("%w: the delta at %d has a base offset out of range", packfile.ErrMalformedPackFile, e.offset)
		}
		e.baseOffset = e.offset - back
	case plumbing.REFDeltaObject:
		if _, err := io.ReadFull(p, e.baseID[:]); err != nil {
			return e, noEOF(err)
		}
	default:
		return e, fmt.Errorf("%w: the entry at %d has the unknown type %d", packfile.ErrMalformedPackFile, e.offset, e.typ)
	}
	return e, nil
}

// inflateTo streams the data of entry e, whose header was just read, to w
// through buf, and checks it is as long as the header says.
func (p *packReader) inflateTo(w io.Writer, e entry, buf []byte) error {
	if err := p.startZlib(e); err != nil {
		return err
	}
	// Up to the end of the stream (where zlib checks its checksum), or
	// one byte too many.
	n, err := io.CopyBuffer(w, io.LimitReader(p.z, e.size+1), buf)
	if err != nil {
		return fmt.Errorf("%w: the entry at %d: %w", packfile.ErrMalformedPackFile, e.offset, noEOF(err))
	}
	if n != e.size {
		return fmt.Errorf("%w: the entry at %d is not %d bytes long", packfile.ErrMalformedPackFile, e.offset, e.size)
	}
	return nil
}

// inflate returns the data of entry e, whose header was just read, in buf's
// memory (grown if need be).
func (p *packReader) inflate(buf []byte, e entry) ([]byte, error) {
	if err := p.startZlib(e); err != nil {
		return buf, err
	}
	if int64(cap(buf)) < e.size {
		buf = make([]byte, e.size) // the size is true: pass 1 inflated the entry
	}
	buf = buf[:e.size]
	// The data, then the end of the stream (where zlib checks its
	// checksum).
	_, err := io.ReadFull(p.z, buf)
	if err == nil {
		var one [1]byte
		if _, err = io.ReadFull(p.z, one[:]); err == nil {
			return buf, fmt.Errorf("%w: the entry at %d is longer than %d bytes", packfile.ErrMalformedPackFile, e.offset, e.size)
		}
		if err == io.EOF {
			return buf, nil
		}
	}
	return buf, fmt.Errorf("%w: the entry at %d: %w", packfile.ErrMalformedPackFile, e.offset, noEOF(err))
}

// startZlib sets the zlib reader at the start of entry e's data.
func (p *packReader) startZlib(e entry) error {
	var err error
	if p.z == nil {
		p.z, err = zlib.NewReader(p)
	} else {
		err = p.z.(zlib.Resetter).Reset(p, nil)
	}
	if err != nil {
		return fmt.Errorf("%w: the entry at %d: %w", packfile.ErrMalformedPackFile, e.offset, noEOF(err))
	}
	return nil
}

// noEOF turns io.EOF, which inside a pack means that it was cut short, into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// objectHasher computes object ids with go-git's registered SHA-1 (the
// collision-detecting sha1cd), reused from object to object.
type objectHasher struct {
	hash.Hash
	head []byte
}

func newObjectHasher() *objectHasher {
	return &objectHasher{Hash: hash.New(hash.CryptoType)}
}

// start begins the id of an object of type t and size bytes.
func (h *objectHasher) start(t plumbing.ObjectType, size int64) {
	h.Reset()
	h.head = append(h.head[:0], t.String()...)
	h.head = append(h.head, ' ')
	h.head = strconv.AppendInt(h.head, size, 10)
	h.head = append(h.head, 0)
	h.Write(h.head)
}

func (h *objectHasher) sum() (id plumbing.Hash) {
	h.head = h.Sum(h.head[:0])
	copy(id[:], h.head)
	return id
}

// patchDelta applies a git delta to base and returns the result in dst's
// memory (grown if need be). It is go-git's packfile.PatchDelta, which
// allocates every result, with a buffer that is reused.
func patchDelta(dst, base, delta []byte) ([]byte, error) {
	if len(delta) < 4 {
		return dst, errors.New("a delta shorter than its header") // as git's patch_delta says
	}
	srcSize, delta, err := deltaSize(delta)
	if err != nil {
		return dst, err
	}
	if srcSize != uint64(len(base)) {
		return dst, fmt.Errorf("the base is %d bytes, not %d", len(base), srcSize)
	}
	size, delta, err := deltaSize(delta)
	if err != nil {
		return dst, err
	}
	// Each byte of delta makes at most 64 KiB of result.
	if size > uint64(len(delta))<<16 {
		return dst, fmt.Errorf("a result of %d bytes from %d bytes of delta", size, len(delta))
	}
	if uint64(cap(dst)) < size {
		// Beyond maxPrealloc, the result grows as it is made, so that a
		// size in a header does not get memory before the delta's
		// instructions show it is real.
		dst = make([]byte, 0, min(size, maxPrealloc))
	}
	dst = dst[:0]
	for len(delta) > 0 {
		cmd := delta[0]
		delta = delta[1:]
		switch {
		case cmd&0x80 != 0: // copy from base
			var off, n uint64
			for b := range 7 {
				if cmd&(1<<b) == 0 {
					continue
				}
				if len(delta) == 0 {
					return dst, errors.New("a copy instruction is cut short")
				}
				if b < 4 {
					off |= uint64(delta[0]) << (8 * b)
				} else {
					n |= uint64(delta[0]) << (8 * (b - 4))
				}
				delta = delta[1:]
			}
			if n == 0 {
				n = 0x10000
			}
			if off+n > uint64(len(base)) || uint64(len(dst))+n > size {
				return dst, errors.New("a copy instruction out of range")
			}
			dst = append(dst, base[off:off+n]...)
		case cmd != 0: // insert the next cmd bytes
			n := uint64(cmd)
			if n > uint64(len(delta)) || uint64(len(dst))+n > size {
				return dst, errors.New("an insert instruction out of range")
			}
			dst = append(dst, delta[:n]...)
			delta = delta[n:]
		default:
			return dst, errors.New("the reserved instruction 0")
		}
	}
	if uint64(len(dst)) != size {
		return dst, fmt.Errorf("the result is %d bytes, not %d", len(dst), size)
	}
	return dst, nil
}

// deltaSize reads a size at the start of a delta (little-endian base-128).
func deltaSize(delta []byte) (uint64, []byte, error) {
	var size uint64
	for i, shift := 0, 0; i < len(delta); i, shift = i+1, shift+7 {
		if shift > 63 {
			break
		}
		size |= uint64(delta[i]&0x7f) << shift
		if delta[i]&0x80 == 0 {
			return size, delta[i+1:], nil
		}
	}
	return 0, delta, errors.New("a bad size in the delta's header")
}
