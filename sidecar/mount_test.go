package sidecar

import (
	"context"
	"os"
	"testing"

	"gocloud.dev/blob/fileblob"
)

// MountFile names the very file fileblob writes, for keys it escapes too.
func TestMountFileIsFileblobs(t *testing.T) {
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true, Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys := []string{
		"run/plain.txt", "run/x\ny", "run/tab\there/\x01", "run/__0x41__", "run/a__0x7f__b__0x__c__0xZZ__",
		"run/..a/b", "run/a../b", "run/a//b", "run/dir/x/", "run/ünï\ncødé",
		"run/__0x", "run/_0x41__", "run/__0x41_", "run/__0x110000__", "run/__0x7fffffff__z",
	}
	for i, k := range keys {
		data := []byte{byte(i)}
		if err := b.WriteAll(context.Background(), k, data, nil); err != nil {
			t.Fatalf("%q: %v", k, err)
		}
		p := MountFile(dir, k)
		got, err := os.ReadFile(p)
		if err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Errorf("%q: MountFile %q: %v %v", k, p, got, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { fileblobEscape("run/some/deeper/path/to/the/model-checkpoint.bin") }); n > 1 {
		t.Errorf("%v allocations for a key with nothing to escape", n) // the runes
	}
}
