package store

import "testing"

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
