package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSidecarMountStoreSharedByUsers: two sidecars, as two users of one
// group (the pod's fsGroup), upload to nested prefixes of one volume
// store that the group may write (root's, setgid, group-writable): both
// land, and the second is not kept out of the folders the first made.
func TestSidecarMountStoreSharedByUsers(t *testing.T) {
	base, err := os.MkdirTemp("", "sidecar-users-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	bin := filepath.Join(base, "initializer")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, data, 0o755)
	store := filepath.Join(base, "store")
	os.Mkdir(store, 0o775)
	os.Chown(store, 0, 2000)
	os.Chmod(store, 0o775|os.ModeSetgid)
	cat := filepath.Join(base, "catalog.yaml")
	os.WriteFile(cat, []byte(fmt.Sprintf("connections:\n- {name: out, kind: volume_claim, schema: {volumeClaim: shared, mountPath: %s}}\n", store)), 0o644)
	for i, uid := range []string{"65532", "65533"} {
		out := filepath.Join(base, "out"+uid)
		os.MkdirAll(filepath.Join(out, "m"), 0o755)
		os.WriteFile(filepath.Join(out, "m", "f.txt"), []byte(uid), 0o644)
		os.Chown(out, 65532+i, 65532+i)
		os.Chown(filepath.Join(out, "m"), 65532+i, 65532+i)
		os.Chown(filepath.Join(out, "m", "f.txt"), 65532+i, 65532+i)
		done := filepath.Join(base, "done")
		os.WriteFile(done, nil, 0o644)
		cmd := exec.Command("setpriv", "--reuid", uid, "--regid", uid, "--groups", "2000", bin, "sidecar", "--catalog", cat, "-c", "out",
			"--path", out, "--prefix", "exp/run"+uid, "--state", "none", "--until-file", done, "--strict")
		cmd.Env = baseEnv([]string{"HOME=" + base})
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("uid %s: %v\n%s", uid, err, b)
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
	base, err := os.MkdirTemp("", "sidecar-until-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	bin := filepath.Join(base, "initializer")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, data, 0o755)
	store, out, sig := filepath.Join(base, "store"), filepath.Join(base, "out"), filepath.Join(base, "sig")
	os.Mkdir(store, 0o777)
	os.Mkdir(out, 0o777)
	os.Mkdir(sig, 0o700) // root's
	cat := filepath.Join(base, "catalog.yaml")
	os.WriteFile(cat, []byte(fmt.Sprintf("connections:\n- {name: out, kind: volume_claim, schema: {volumeClaim: shared, mountPath: %s}}\n", store)), 0o644)
	// (Bounded: a sidecar that does not refuse it never ends.)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", bin, "sidecar", "--catalog", cat, "-c", "out",
		"--path", out, "--prefix", "p", "--state", "none", "--until-file", filepath.Join(sig, "done"))
	cmd.Env = baseEnv([]string{"HOME=" + base})
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(b), "--until-file "+filepath.Join(sig, "done")+" cannot be looked for by this container's user (uid 65534)") {
		t.Errorf("%v\n%s", err, b)
	}
}
