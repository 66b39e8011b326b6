package store

import (
	"context"
	"os"
	"testing"

	"gocloud.dev/blob/fileblob"
)

func TestGocloudEscape(t *testing.T) {
	for _, tt := range []struct {
		key, s3, gcs, azure string
	}{
		{"ds/plain name ü.txt", "ds/plain name ü.txt", "ds/plain name ü.txt", "ds/plain name ü.txt"},
		{"ds/pct%20.txt", "ds/pct%20.txt", "ds/pct%20.txt", "ds/pct__0x25__20.txt"},
		{`ds/#?".txt`, `ds/#?".txt`, `ds/#?".txt`, "ds/__0x23____0x3f____0x22__.txt"},
		{"ds/v1../file.txt", "ds/v1..__0x2f__file.txt", "ds/v1..__0x2f__file.txt", "ds/v1..__0x2f__file.txt"},
		{"ds/esc__0x41__b", "ds/esc__0x5f___0x41__b", "ds/esc__0x5f___0x41__b", "ds/esc__0x5f___0x41__b"},
		{"ds/not__0xzz__esc", "ds/not__0xzz__esc", "ds/not__0xzz__esc", "ds/not__0xzz__esc"},
		{"ds/line\nbreak", "ds/line__0xa__break", "ds/line__0xa__break", "ds/line__0xa__break"},
		{"ds/tab\tin", "ds/tab__0x9__in", "ds/tab\tin", "ds/tab__0x9__in"},
		{"dir/", "dir/", "dir/", "dir__0x2f__"},
	} {
		if got := gocloudEscape(tt.key, s3Rule); got != tt.s3 {
			t.Errorf("s3 %q: %q, want %q", tt.key, got, tt.s3)
		}
		if got := gocloudEscape(tt.key, gcsRule); got != tt.gcs {
			t.Errorf("gcs %q: %q, want %q", tt.key, got, tt.gcs)
		}
		if got := gocloudEscape(tt.key, azureRule); got != tt.azure {
			t.Errorf("azure %q: %q, want %q", tt.key, got, tt.azure)
		}
	}
	if plainKey("ds/bad\xffutf8") || !plainKey("ds/ok ü") {
		t.Error("plainKey")
	}
}

// FileblobPath names the very file fileblob writes, for keys it escapes too.
func TestFileblobPathIsFileblobs(t *testing.T) {
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
		p := FileblobPath(dir, k)
		got, err := os.ReadFile(p)
		if err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Errorf("%q: FileblobPath %q: %v %v", k, p, got, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { gocloudEscape("run/some/deeper/path/to/the/model-checkpoint.bin", fileblobRule) }); n > 1 {
		t.Errorf("%v allocations for a key with nothing to escape", n) // the runes
	}
}
