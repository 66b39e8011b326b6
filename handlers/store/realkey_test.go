package store

import "testing"

func TestEscapedBy(t *testing.T) {
	for _, tt := range []struct {
		key            string
		s3, gcs, azure bool
	}{
		{"ds/plain name ü.txt", false, false, false},
		{"ds/pct%20.txt", false, false, true},
		{"ds/hash#.txt", false, false, true},
		{"ds/q?.txt", false, false, true},
		{`ds/quote".txt`, false, false, true},
		{"ds/v1../file.txt", true, true, true},
		{"ds/esc__0x41__b", true, true, true},
		{"ds/line\nbreak", true, true, true},
		{"ds/tab\tin", true, false, true},
		{"ds/bad\xffutf8", true, true, true},
	} {
		if got := escapedBy(tt.key, s3Special); got != tt.s3 {
			t.Errorf("s3 %q: %v", tt.key, got)
		}
		if got := escapedBy(tt.key, gcsSpecial); got != tt.gcs {
			t.Errorf("gcs %q: %v", tt.key, got)
		}
		if got := escapedBy(tt.key, azureSpecial); got != tt.azure {
			t.Errorf("azure %q: %v", tt.key, got)
		}
	}
}
