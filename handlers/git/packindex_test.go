package git

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// gitOut runs git in dir with stdin and returns its standard output.
func gitOut(t *testing.T, dir string, stdin io.Reader, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// deltaRepo makes a bare repository whose pack has long delta chains: many
// revisions of the same text files (some in nested folders), a binary file
// that changes a little, an annotated tag; repacked with
// git repack -adf --depth=50. commits is the number of commits.
func deltaRepo(t *testing.T, commits int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src.git")
	gitOut(t, "", nil, "init", "-q", "--bare", "-b", "main", dir)
	var s strings.Builder
	rng := rand.New(rand.NewSource(1))
	files := make([][]string, 12)
	for i := range files {
		for range 40 + rng.Intn(40) {
			files[i] = append(files[i], fmt.Sprintf("line %d of file %d: %x\n", rng.Intn(1000), i, rng.Int63()))
		}
	}
	bin := make([]byte, 200<<10)
	rng.Read(bin)
	data := func(b string) { fmt.Fprintf(&s, "data %d\n%s\n", len(b), b) }
	for c := 1; c <= commits; c++ {
		fmt.Fprintf(&s, "commit refs/heads/main\nmark :%d\ncommitter T <t@example.com> %d +0000\n", c, 1600000000+c*60)
		data(fmt.Sprintf("change %d", c))
		if c > 1 {
			fmt.Fprintf(&s, "from :%d\n", c-1)
		}
		for k := 0; k < len(files); k++ {
			if c > 1 && rng.Intn(3) != 0 {
				continue
			}
			f := files[k]
			f[rng.Intn(len(f))] = fmt.Sprintf("changed in %d: %x\n", c, rng.Int63())
			if rng.Intn(3) == 0 {
				files[k] = append(f, fmt.Sprintf("added in %d\n", c))
			}
			fmt.Fprintf(&s, "M 100644 inline dir%d/sub/f%d.txt\n", k%3, k)
			data(strings.Join(files[k], ""))
		}
		if c == 1 || c%10 == 0 {
			bin[rng.Intn(len(bin))] ^= 0xff
			s.WriteString("M 100755 inline tools/blob.bin\n")
			data(string(bin))
		}
	}
	fmt.Fprintf(&s, "tag v1\nfrom :%d\ntagger T <t@example.com> 1700000000 +0000\n", commits/2)
	data("release 1")
	gitOut(t, dir, strings.NewReader(s.String()), "fast-import", "--quiet")
	gitOut(t, dir, nil, "repack", "-q", "-a", "-d", "-f", "--depth=50")
	return dir
}

// packObjects is git pack-objects of every object of the repository at dir
// (with OFS deltas when ofs is set, else REF deltas).
func packObjects(t *testing.T, dir string, ofs bool) []byte {
	t.Helper()
	args := []string{"pack-objects", "--all", "--stdout", "-q", "--no-reuse-delta", "--depth=50"}
	if ofs {
		args = append(args, "--delta-base-offset")
	}
	return gitOut(t, dir, strings.NewReader(""), args...)
}

// objectList is git cat-file --batch-all-objects --batch-check of dir:
// "id type size" lines.
func objectList(t *testing.T, dir string) []string {
	t.Helper()
	return strings.Split(strings.TrimSpace(string(gitOut(t, dir, nil, "cat-file", "--batch-all-objects", "--batch-check"))), "\n")
}

// checkObjects checks that every object of the repository at src is in st,
// of the same type and size, with content that hashes to its id.
func checkObjects(t *testing.T, src string, st *PackStorage) {
	t.Helper()
	lines := objectList(t, src)
	if len(lines) < 50 {
		t.Fatalf("only %d objects in the source", len(lines))
	}
	for _, line := range lines {
		f := strings.Fields(line)
		h := plumbing.NewHash(f[0])
		o, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			t.Fatalf("object %s: %v", line, err)
		}
		r, err := o.Reader()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if o.Type().String() != f[1] || strconv.Itoa(len(b)) != f[2] || plumbing.ComputeHash(o.Type(), b) != h {
			t.Fatalf("object %s: read %s of %d bytes, hashing to %s", line, o.Type(), len(b), plumbing.ComputeHash(o.Type(), b))
		}
	}
}

// packFiles lists objects/pack of the .git folder dotGit.
func packFiles(t *testing.T, dotGit string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dotGit, "objects", "pack"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// checkIdx checks that objects/pack of dotGit has one pack, whose index is
// the one git index-pack makes of it, byte for byte.
func checkIdx(t *testing.T, dotGit string) {
	t.Helper()
	names := packFiles(t, dotGit)
	if len(names) != 2 || !strings.HasSuffix(names[0], ".idx") || !strings.HasSuffix(names[1], ".pack") {
		t.Fatalf("objects/pack = %v, want one pack and its index", names)
	}
	pack := filepath.Join(dotGit, "objects", "pack", names[1])
	other := filepath.Join(t.TempDir(), "other.idx")
	gitOut(t, "", nil, "index-pack", "-o", other, pack)
	want, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(strings.TrimSuffix(pack, ".pack") + ".idx")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the index differs from git index-pack's (%d and %d bytes)", len(got), len(want))
	}
}

// writePack writes pack through st's pack writer as go-git's fetch does
// (packfile.UpdateObjectStorage) and returns the error of the write or of
// Close.
func writePack(st *PackStorage, pack []byte) error {
	return packfile.UpdateObjectStorage(st, bytes.NewReader(pack))
}

// newRepo makes an empty repository through the go-git engine's storage.
func newRepo(t *testing.T) (string, *PackStorage) {
	t.Helper()
	dir := t.TempDir()
	st, wt := storage(dir)
	t.Cleanup(func() { st.Close() })
	if _, err := gogit.Init(st, wt); err != nil {
		t.Fatal(err)
	}
	return dir, st
}

// A clone through go-git's fetch has every object of the source, and the
// index git index-pack makes.
func TestPackIndexerClone(t *testing.T) {
	src := deltaRepo(t, 150)
	dir, st := newRepo(t)
	r, err := gogit.Open(st, osfs.New(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{src}}); err != nil {
		t.Fatal(err)
	}
	err = r.Fetch(&gogit.FetchOptions{RefSpecs: []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"}})
	if err != nil {
		t.Fatal(err)
	}
	dotGit := filepath.Join(dir, ".git")
	checkIdx(t, dotGit)
	checkObjects(t, src, st)
	gitOut(t, dir, nil, "fsck", "--full", "--strict")
	if got, want := objectList(t, dir), objectList(t, src); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("git sees %d objects in the clone, %d in the source", len(got), len(want))
	}
}

// Packs with OFS or with REF deltas index as git index-pack does.
func TestPackIndexerDeltaKinds(t *testing.T) {
	src := deltaRepo(t, 60)
	for _, ofs := range []bool{true, false} {
		t.Run(fmt.Sprintf("ofs=%v", ofs), func(t *testing.T) {
			pack := packObjects(t, src, ofs)
			ix, err := scanPack(bytes.NewReader(pack))
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[plumbing.ObjectType]int{}
			for _, o := range ix.objects {
				kinds[o.typ]++
			}
			if ofs && (kinds[plumbing.OFSDeltaObject] < 100 || kinds[plumbing.REFDeltaObject] > 0) ||
				!ofs && (kinds[plumbing.REFDeltaObject] < 100 || kinds[plumbing.OFSDeltaObject] > 0) {
				t.Fatalf("entries by type: %v", kinds)
			}
			dir, st := newRepo(t)
			if err := writePack(st, pack); err != nil {
				t.Fatal(err)
			}
			checkIdx(t, filepath.Join(dir, ".git"))
			checkObjects(t, src, st)
		})
	}
}

// A thin pack's deltas against objects it leaves out are resolved against
// the repository's (the objects land as loose objects).
func TestPackIndexerThinPack(t *testing.T) {
	src := deltaRepo(t, 60)
	old := strings.TrimSpace(string(gitOut(t, src, nil, "rev-parse", "main~20")))
	dir, st := newRepo(t)
	base := gitOut(t, src, strings.NewReader(old+"\n"), "pack-objects", "--revs", "--stdout", "-q", "--delta-base-offset")
	if err := writePack(st, base); err != nil {
		t.Fatal(err)
	}
	thin := gitOut(t, src, strings.NewReader("main\n^"+old+"\n"), "pack-objects", "--revs", "--thin", "--stdout", "-q", "--delta-base-offset")
	if err := writePack(st, thin); err != nil {
		t.Fatal(err)
	}
	loose, _ := filepath.Glob(filepath.Join(dir, ".git", "objects", "??", "*"))
	if len(loose) == 0 {
		t.Fatal("no loose objects: the pack was not thin")
	}
	for _, n := range packFiles(t, filepath.Join(dir, ".git")) {
		if strings.HasPrefix(n, "tmp_") {
			t.Errorf("left behind: %s", n)
		}
	}
	main := strings.TrimSpace(string(gitOut(t, src, nil, "rev-parse", "main")))
	if err := st.SetReference(plumbing.NewHashReference("refs/heads/main", plumbing.NewHash(main))); err != nil {
		t.Fatal(err)
	}
	gitOut(t, dir, nil, "fsck", "--full", "--strict", "--no-dangling")
	gitOut(t, dir, nil, "cat-file", "-e", main+"^{tree}")
}

// entryBytes is a pack entry of type typ and content data; an OFS delta's
// base is back bytes before it.
func entryBytes(typ plumbing.ObjectType, data []byte, back int64) []byte {
	size := len(data)
	b := []byte{byte(typ)<<4 | byte(size&15)}
	for size >>= 4; size > 0; size >>= 7 {
		b[len(b)-1] |= 0x80
		b = append(b, byte(size&0x7f))
	}
	if typ == plumbing.OFSDeltaObject {
		enc := []byte{byte(back & 0x7f)}
		for back >>= 7; back > 0; back >>= 7 {
			back--
			enc = append([]byte{0x80 | byte(back&0x7f)}, enc...)
		}
		b = append(b, enc...)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	return append(b, z.Bytes()...)
}

// craftPack is a pack of a blob "abc" and an OFS delta against it.
func craftPack(delta []byte) []byte {
	p := []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x02")
	p = append(p, entryBytes(plumbing.BlobObject, []byte("abc"), 0)...)
	p = append(p, entryBytes(plumbing.OFSDeltaObject, delta, int64(len(p)-12))...)
	return resum(append(p, make([]byte, 20)...))
}

// resum sets the checksum at the end of pack p.
func resum(p []byte) []byte {
	sum := sha1.Sum(p[:len(p)-20])
	copy(p[len(p)-20:], sum[:])
	return p
}

// A damaged pack is an error, and leaves nothing in objects/pack.
func TestPackIndexerDamaged(t *testing.T) {
	pack := packObjects(t, deltaRepo(t, 40), true)
	flip := func(at int) []byte {
		p := bytes.Clone(pack)
		p[at] ^= 0x40
		return p
	}
	for _, tt := range []struct {
		name string
		pack []byte
	}{
		{"a byte flipped", flip(len(pack) / 2)},
		{"a byte flipped, checksum redone", resum(flip(len(pack) / 2))},
		{"the last entry's byte flipped, checksum redone", resum(flip(len(pack) - 30))},
		{"the checksum flipped", flip(len(pack) - 1)},
		{"cut short", pack[:len(pack)-100]},
		{"no checksum", pack[:len(pack)-20]},
		{"extra bytes", append(bytes.Clone(pack), 0)},
		{"not a pack", resum([]byte("PACX\x00\x00\x00\x02\x00\x00\x00\x01xxxxxxxxxxxxxxxxxxxxxx"))},
		{"an unknown type", resum(append([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x01\x55"), make([]byte, 20)...))},
		{"a bad base offset", resum(append([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x01\x65\x7f"), make([]byte, 20)...))},
		{"a delta copying past its base", craftPack([]byte{3, 4, 0x91, 0, 4})},
		{"a delta against a base of another size", craftPack([]byte{5, 3, 0x91, 0, 3})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, st := newRepo(t)
			err := writePack(st, tt.pack)
			t.Log(err)
			if !errors.Is(err, packfile.ErrMalformedPackFile) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, packfile.ErrBadSignature) {
				t.Errorf("error = %v", err)
			}
			if n := packFiles(t, filepath.Join(dir, ".git")); len(n) > 0 {
				t.Errorf("left behind: %v", n)
			}
		})
	}
}

// A pack of no objects writes nothing.
func TestPackIndexerEmpty(t *testing.T) {
	dir, st := newRepo(t)
	p := []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00")
	sum := sha1.Sum(p)
	if err := writePack(st, append(p, sum[:]...)); err != nil {
		t.Fatal(err)
	}
	if n := packFiles(t, filepath.Join(dir, ".git")); len(n) > 0 {
		t.Errorf("objects/pack = %v", n)
	}
}

// Submodules get storage of the same kind, closed with their parent's.
func TestPackStorageModule(t *testing.T) {
	_, st := newRepo(t)
	m, err := st.Module("lib")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*PackStorage); !ok || len(st.modules) != 1 {
		t.Fatalf("Module = %T", m)
	}
}

// Where go-git's packfile.PatchDelta and git differ, patchDelta does as git.
func TestPatchDeltaAsGit(t *testing.T) {
	if got, err := patchDelta(nil, nil, []byte{0, 2, 2, 'x', 'y'}); err != nil || string(got) != "xy" {
		t.Errorf("a delta against an empty base = %q, %v", got, err)
	}
	if _, err := patchDelta(nil, []byte("abc"), []byte{3, 0}); err == nil {
		t.Error("a delta of 2 bytes was applied")
	}
}

// patchDelta gives what go-git's packfile.PatchDelta gives, or an error
// when it does (but see TestPatchDeltaAsGit).
func FuzzPatchDelta(f *testing.F) {
	rng := rand.New(rand.NewSource(2))
	for range 20 {
		base := make([]byte, rng.Intn(3000))
		rng.Read(base)
		target := bytes.Clone(base[rng.Intn(len(base)+1):])
		target = append(target, base[:rng.Intn(len(base)+1)]...)
		target = append(target, "inserted"...)
		f.Add(base, packfile.DiffDelta(base, target))
	}
	f.Add([]byte("abc"), []byte{3, 3, 0x91, 0, 3})                         // a copy
	f.Add([]byte("abc"), []byte{3, 4, 0x91, 0, 4})                         // a copy past the end
	f.Add([]byte("abc"), []byte{3, 2, 2, 'x', 'y'})                        // an insert
	f.Add([]byte("abc"), []byte{3, 2, 3, 'x', 'y'})                        // an insert cut short
	f.Add([]byte("abc"), []byte{3, 1, 0, 0})                               // the reserved instruction
	f.Add([]byte("abc"), []byte{3, 0x80, 0x80, 0x80, 1})                   // a size too large for its delta
	f.Add(make([]byte, 1<<16), []byte{0x80, 0x80, 4, 0x80, 0x80, 4, 0x80}) // a copy of 64 KiB
	f.Fuzz(func(t *testing.T, base, delta []byte) {
		got, err := patchDelta(nil, base, delta)
		if len(base) == 0 || len(delta) < 4 {
			return
		}
		want, werr := packfile.PatchDelta(base, delta)
		if (err != nil) != (werr != nil) || err == nil && !bytes.Equal(got, want) {
			t.Errorf("patchDelta = %q, %v; go-git: %q, %v", got, err, want, werr)
		}
	})
}

// A pack written in small pieces indexes the same (Write keeps the checksum
// apart however the pack is cut).
func TestPackWriterSmallWrites(t *testing.T) {
	pack := packObjects(t, deltaRepo(t, 20), true)
	dir, st := newRepo(t)
	w, err := st.PackfileWriter()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(3))
	for p := pack; len(p) > 0; {
		n := min(1+rng.Intn(40), len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkIdx(t, filepath.Join(dir, ".git"))
}
