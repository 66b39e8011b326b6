package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestGitCloneAsAnotherUser clones, as an unprivileged user, into a mount
// point root owns and lets everyone write in (as an emptyDir is, for a
// container that runs as another uid), with both engines: the clone is
// checked out (git would otherwise refuse the folder as of "dubious
// ownership").
func TestGitCloneAsAnotherUser(t *testing.T) {
	f := newGitFixture(t)
	base := sharedDir(t, 0o777)
	cat := filepath.Join(base, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf("connections:\n  - {name: repo, kind: git, schema: {url: %q}}\n", f.env.DaemonURL+"/"+f.name)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			empty := filepath.Join(base, "empty-"+eng) // root's, writable by all
			if err := os.Mkdir(empty, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(empty, 0o777)
			// A mount point, as an emptyDir is: the clone cannot take its
			// place, and the folder stays root's.
			code, out := runCmd(t, []string{"HOME=" + base}, "unshare", "-m", "sh", "-c",
				`mount --bind "$1" "$1" && exec setpriv --reuid 65534 --regid 65534 --clear-groups "$2" --catalog "$3" --connection repo --path "$1" --git-engine "$4"`,
				"sh", empty, binary, cat, eng)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if got, err := os.ReadFile(filepath.Join(empty, "b.txt")); err != nil || string(got) != "three\n" {
				t.Errorf("b.txt: %q, %v\n%s", got, err, out)
			}
		})
	}
}
