package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDownloadFullVolumeBehindLink downloads a large object into a folder
// of --path that is a link to a small file system (a tmpfs in a private
// mount namespace), whose space the start's free-space check of --path
// does not count: the preallocation fails, and the run stops there with
// the local-disk exit code, naming that folder, before writing anything.
func TestDownloadFullVolumeBehindLink(t *testing.T) {
	st := minioStore(t, "")
	bucket := st.newBucket(t)
	const size = 70 << 20 // read in ranges, into a preallocated file
	st.put(t, bucket, "ds/big/blob.bin", randomReader(size, 3), size)
	entry, env := st.connection(t, bucket, "ds", false)
	cat := storeCatalog(t, entry)

	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	dst := filepath.Join(dir, "dst")
	for _, d := range []string{mnt, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(mnt, filepath.Join(dst, "big")); err != nil {
		t.Fatal(err)
	}
	// After the run, what it left on the small file system (ls -A).
	wrapper := "unshare -m sh -c " + shellQuote(fmt.Sprintf("mount -t tmpfs -o size=8m tmpfs %q && {} ; code=$?; ls -A %q; exit $code", mnt, mnt))
	r := cliCmd(t, env, wrapper, "--catalog", cat, "--connection", "data", "--path", dst)
	r.expectCode(t, 7)
	if want := "the disk at " + filepath.Join(dst, "big") + " is full: fallocate "; !strings.Contains(r.Stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
	}
	if strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("the failed run left %q on the small file system", r.Stdout)
	}
}
