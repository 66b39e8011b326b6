package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedStoreCatalog writes, in base, a catalog whose connection "out" is a
// volume_claim store at store, readable by every user.
func sharedStoreCatalog(t *testing.T, base, store string) string {
	t.Helper()
	cat := filepath.Join(base, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf("connections:\n- {name: out, kind: volume_claim, schema: {volumeClaim: shared, mountPath: %s}}\n", store)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestSidecarMountStoreSharedByUsers: two sidecars, as two users of one
// group (the pod's fsGroup), upload to nested prefixes of one volume
// store that the group may write (root's, setgid, group-writable): both
// land, and the second is not kept out of the folders the first made.
func TestSidecarMountStoreSharedByUsers(t *testing.T) {
	base := sharedDir(t, 0o755)
	store := filepath.Join(base, "store")
	os.Mkdir(store, 0o775)
	os.Chown(store, 0, 2000)
	os.Chmod(store, 0o775|os.ModeSetgid)
	cat := sharedStoreCatalog(t, base, store)
	for i, uid := range []string{"65532", "65533"} {
		out := filepath.Join(base, "out"+uid)
		os.MkdirAll(filepath.Join(out, "m"), 0o755)
		os.WriteFile(filepath.Join(out, "m", "f.txt"), []byte(uid), 0o644)
		os.Chown(out, 65532+i, 65532+i)
		os.Chown(filepath.Join(out, "m"), 65532+i, 65532+i)
		os.Chown(filepath.Join(out, "m", "f.txt"), 65532+i, 65532+i)
		done := filepath.Join(base, "done")
		os.WriteFile(done, nil, 0o644)
		code, b := runCmd(t, []string{"HOME=" + base}, "setpriv", "--reuid", uid, "--regid", uid, "--groups", "2000", binary, "sidecar", "--catalog", cat, "-c", "out",
			"--path", out, "--prefix", "exp/run"+uid, "--state", "none", "--until-file", done, "--strict")
		if code != 0 {
			t.Fatalf("uid %s: exit %d\n%s", uid, code, b)
		}
		got, err := os.ReadFile(filepath.Join(store, "exp", "run"+uid, "m", "f.txt"))
		if err != nil || string(got) != uid {
			t.Errorf("uid %s: %q, %v", uid, got, err)
		}
	}
}

// TestSidecarUntilFileOutOfSight: an --until-file in a folder this user may
// not enter would never be seen: refused at the start (exit 2), naming it.
func TestSidecarUntilFileOutOfSight(t *testing.T) {
	base := sharedDir(t, 0o755)
	store, out, sig := filepath.Join(base, "store"), filepath.Join(base, "out"), filepath.Join(base, "sig")
	os.Mkdir(store, 0o777)
	os.Mkdir(out, 0o777)
	os.Mkdir(sig, 0o700) // root's
	cat := sharedStoreCatalog(t, base, store)
	// (Bounded: a sidecar that does not refuse it never ends.)
	code, b := runCmd(t, []string{"HOME=" + base}, "timeout", "30", "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", binary, "sidecar", "--catalog", cat, "-c", "out",
		"--path", out, "--prefix", "p", "--state", "none", "--until-file", filepath.Join(sig, "done"))
	if code != 2 || !strings.Contains(b, "--until-file "+filepath.Join(sig, "done")+" cannot be looked for by this container's user (uid 65534)") {
		t.Errorf("exit %d\n%s", code, b)
	}
}

// TestSidecarDeleteKeepsWhatItCannotSee: with --delete, a folder the
// sidecar may list but not enter (read without execute, as `chmod -R 644`
// leaves folders) is reported as not uploaded, and its files keep their
// objects (they were taken as gone and deleted); a file replaced by a link
// the sidecar does not follow is gone, and its object is deleted (it was
// kept, stale, for ever).
func TestSidecarDeleteKeepsWhatItCannotSee(t *testing.T) {
	base := sharedDir(t, 0o755)
	store, out := filepath.Join(base, "store"), filepath.Join(base, "out")
	os.Mkdir(store, 0o777)
	os.Chmod(store, 0o777)
	for _, f := range []string{"sub/b.txt", "sub/c.txt", "top.txt", "top2.txt", "linked.txt"} {
		writeFile(t, out, f, f)
	}
	// A link to a file in that folder: uploaded as the file, then, once the
	// folder may not be entered, a file that cannot be read.
	os.Symlink("sub/b.txt", filepath.Join(out, "latest.txt"))
	// A link out of the folder, into one this user may not enter: left
	// out, as every link out is, not a file that cannot be read.
	private := filepath.Join(base, "private")
	writeFile(t, private, "f", "root's")
	os.Chmod(private, 0o700)
	os.Symlink(filepath.Join(private, "f"), filepath.Join(out, "outside.txt"))
	os.Symlink("outside.txt", filepath.Join(out, "chain.txt")) // out, through another link
	os.Chmod(out, 0o777)
	cat := sharedStoreCatalog(t, base, store)
	done := filepath.Join(base, "done")
	os.WriteFile(done, nil, 0o644)
	stateDir := filepath.Join(base, "state")
	os.Mkdir(stateDir, 0o777)
	os.Chmod(stateDir, 0o777)
	state := filepath.Join(stateDir, "state")
	sidecar := func() (int, string) {
		return runCmd(t, []string{"HOME=" + base}, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", binary, "sidecar", "--catalog", cat, "-c", "out",
			"--path", out, "--prefix", "p", "--state", state, "--until-file", done, "--delete", "--strict")
	}
	if code, b := sidecar(); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, b)
	}
	os.Chmod(filepath.Join(out, "sub"), 0o744) // root's: listed, not searched, by uid 65534
	os.Remove(filepath.Join(out, "linked.txt"))
	os.Symlink("/etc/hostname", filepath.Join(out, "linked.txt"))
	// A file replaced by a link out, into a folder this user may not enter:
	// gone as well.
	os.Remove(filepath.Join(out, "top2.txt"))
	os.Symlink(filepath.Join(private, "f"), filepath.Join(out, "top2.txt"))
	code, b := sidecar()
	if code != 3 || !strings.Contains(b, "NOT uploaded: latest.txt, sub/") || !strings.Contains(b, "cannot read latest.txt as uid 65534") {
		t.Errorf("second run: exit %d, want 3 naming latest.txt and sub/\n%s", code, b)
	}
	for f, want := range map[string]string{"sub/b.txt": "sub/b.txt", "sub/c.txt": "sub/c.txt", "top.txt": "top.txt", "latest.txt": "sub/b.txt"} {
		if got, err := os.ReadFile(filepath.Join(store, "p", f)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v (deleted though still there?)\n%s", f, got, err, b)
		}
	}
	if _, err := os.Lstat(filepath.Join(store, "p", "top2.txt")); err == nil {
		t.Errorf("the object of a file replaced by a link out into a folder this user may not enter was kept\n%s", b)
	}
	if _, err := os.Lstat(filepath.Join(store, "p", "linked.txt")); err == nil {
		t.Errorf("the object of a file replaced by a link out of the folder was kept\n%s", b)
	}
}
