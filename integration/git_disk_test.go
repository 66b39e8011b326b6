package integration

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGitDiskFull clones a repository larger than the file system --path is
// on (a small tmpfs in a private mount namespace): the run fails at once with
// the local-disk exit code, without fetching again, and leaves nothing.
func TestGitDiskFull(t *testing.T) {
	f := newGitFixture(t)
	// 2 MiB that do not compress, on a 512 KiB file system.
	b := make([]byte, 2<<20)
	rand.Read(b)
	commitFile(t, f.work, "big.bin", string(b), "big")
	gitCmd(t, f.work, "push", "-q", f.bare, "main")
	cat := gitCatalog(t, f.env.DaemonURL+"/"+f.name, "", nil, "")
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			mnt := filepath.Join(t.TempDir(), "mnt")
			os.Mkdir(mnt, 0o755)
			path := filepath.Join(mnt, "code")
			wrapper := "unshare -m sh -c " + shellQuote(fmt.Sprintf("mount -t tmpfs -o size=512k tmpfs %q && {} ; code=$?; ls -A %q; exit $code", mnt, mnt))
			start := time.Now()
			r := cliCmd(t, nil, wrapper, "--catalog", cat, "--connection", "repo", "--path", path, "--git-engine", eng)
			r.expectCode(t, 7)
			if strings.Contains(r.Stderr, "retrying") {
				t.Errorf("a full disk was retried:\n%s", r.Stderr)
			}
			if !strings.Contains(strings.ToLower(r.Stderr), "no space left on device") {
				t.Errorf("the error does not say the disk is full:\n%s", r.Stderr)
			}
			if strings.TrimSpace(r.Stdout) != "" {
				t.Errorf("the failed clone left %q in the file system", r.Stdout)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("the run took %v", d)
			}
		})
	}
}
