package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
)

func TestRunUUID(t *testing.T) {
	for in, want := range map[string]string{
		"acme.vision.runs.0c0ffee":       "0c0ffee",
		" acme.vision.runs.0c0ffee \n":   "0c0ffee",
		"acme.vision.runs.abc ":          "abc",
		"":                               "",
		"  ":                             "",
		"acme.vision.runs.":              "malformed",
		"acme.vision.jobs.0c0ffee":       "malformed",
		"0c0ffee":                        "malformed",
		"acme.vision.runs.a b":           "malformed",
		"acme.vision.runs.a/b":           "malformed",
		".vision.runs.0c0ffee":           "malformed",
		"acme.vision.runs.0c0ffee.extra": "malformed",
	} {
		got, err := RunUUID(in)
		if want == "malformed" {
			if err == nil || got != "" || !strings.Contains(err.Error(), fmt.Sprintf("set but malformed: %q", in)) || !strings.Contains(err.Error(), "owner.project.runs.<uuid>") {
				t.Errorf("RunUUID(%q) = %q, %v; want an error quoting it", in, got, err)
			}
			continue
		}
		if got != want || err != nil {
			t.Errorf("RunUUID(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
}

func TestStatePath(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "outputs")
	if got := StatePath("", dir, "s3://b", "run"); got != filepath.Join(parent, ".initializer-sidecar-outputs.state") {
		t.Errorf("beside the folder: %s", got)
	}
	if got := StatePath("none", dir, "s3://b", "run"); got != "" {
		t.Errorf("none: %q", got)
	}
	if got := StatePath("/x/state", dir, "s3://b", "run"); got != "/x/state" {
		t.Errorf("flag: %q", got)
	}
	// A parent that cannot be written falls back to $TMPDIR, one file per target.
	a := StatePath("", "/proc/outputs", "s3://b", "run-a")
	b := StatePath("", "/proc/outputs", "s3://b", "run-b")
	if !strings.HasPrefix(a, os.TempDir()) || a == b {
		t.Errorf("fallback: %q %q", a, b)
	}
}

func TestOpenMount(t *testing.T) {
	t.Setenv("TMPDIR", os.TempDir()) // OpenMount sets it
	dir := t.TempDir()
	local := t.TempDir()
	for _, tt := range []struct {
		doc   string
		class fault.Class
	}{
		{`{"name":"out","kind":"host_path","schema":{"hostPath":"/h","mountPath":"` + dir + `"}}`, fault.OK},
		{`{"name":"out","kind":"host_path","schema":{"hostPath":"/h","mountPath":"` + dir + `/missing"}}`, fault.NotFound},
		{`{"name":"out","kind":"host_path","schema":{"hostPath":"/h","mountPath":"` + dir + `","readOnly":true}}`, fault.Usage},
	} {
		cat, err := connections.Parse([]byte(tt.doc), "test")
		if err != nil {
			t.Fatal(err)
		}
		m, err := OpenMount(cat.Connections[0], "run", local, nil)
		if fault.ClassOf(err) != tt.class {
			t.Errorf("%s: %v", tt.doc, err)
		}
		if err == nil {
			if m.Path != dir || m.TempDir != filepath.Join(dir, mountTempDir) || os.Getenv("TMPDIR") != m.TempDir {
				t.Errorf("%+v, $TMPDIR %s", m, os.Getenv("TMPDIR"))
			}
			m.Bucket.Close()
		}
	}
	cat, _ := connections.Parse([]byte(`{"name":"out","kind":"host_path","schema":{"hostPath":"/h","mountPath":"`+dir+`"}}`), "test")
	if _, err := OpenMount(cat.Connections[0], "run", filepath.Join(dir, "run", "sub"), nil); fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("overlap: %v", err)
	}
}
