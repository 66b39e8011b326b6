package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

// leftAside finds only the names setAside gives, for that path, written
// with a trailing slash or not.
func TestLeftAside(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"dl", ".dl.initializer-aside-0123456789ab", ".dl.initializer-aside-keepme-notme",
		".dl2.initializer-aside-0123456789ab", ".dl.initializer-aside-0123456789AB", ".dl.initializer-aside-README.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := filepath.Join(dir, ".dl.initializer-aside-0123456789ab")
	for _, p := range []string{filepath.Join(dir, "dl"), filepath.Join(dir, "dl") + "/"} {
		if got := leftAside(p); len(got) != 1 || got[0] != want {
			t.Errorf("leftAside(%q) = %v, want [%s]", p, got, want)
		}
	}
}
