package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/initializer/initializer/cmd/initializer/internal/sigearly"
)

// A SIGTERM caught while the packages initialised (before run installs its
// own handling) stops the run at once: exit 130, --result written, nothing
// copied.
func TestSignalBeforeMain(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf("connections:\n- {name: data, kind: host_path, schema: {hostPath: %[1]s, mountPath: %[1]s}}\n", src)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, dst := filepath.Join(dir, "result.json"), filepath.Join(dir, "out")
	sigearly.C <- syscall.SIGTERM
	if code := run([]string{"--catalog", cat, "--connection", "data", "--path", dst, "--result", res}); code != 130 {
		t.Fatalf("exit %d, want 130", code)
	}
	b, err := os.ReadFile(res)
	var out outcome
	if err != nil || json.Unmarshal(b, &out) != nil || out.ExitCode != 130 || out.Status != "failed" || !strings.Contains(out.Error, "stopped by a signal") {
		t.Errorf("--result %s: %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "a.txt")); err == nil {
		t.Error("the run copied after the signal")
	}
}
