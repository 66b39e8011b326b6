package mount

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers"
)

type countingHandler struct {
	slog.Handler
	n *atomic.Int32
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "copying" {
		h.n.Add(1)
	}
	return nil
}

func newCountingLogger(n *atomic.Int32) *slog.Logger {
	return slog.New(countingHandler{slog.DiscardHandler, n})
}

func conn(t *testing.T, kind, mountPath string, readOnly bool) *connections.Connection {
	t.Helper()
	doc := `{"name":"data","kind":"` + kind + `","schema":{"hostPath":"/srv","volumeClaim":"pvc","mountPath":"` + mountPath + `","readOnly":` + map[bool]string{true: "true", false: "false"}[readOnly] + `}}`
	if kind == "host_path" {
		doc = strings.Replace(doc, `"volumeClaim":"pvc",`, "", 1)
	} else {
		doc = strings.Replace(doc, `"hostPath":"/srv",`, "", 1)
	}
	cat, err := connections.Parse([]byte(doc), "test")
	if err != nil {
		t.Fatal(err)
	}
	return cat.Connections[0]
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		kind, path string
		readOnly   bool
		class      fault.Class
		msg        string
	}{
		{"host_path", dir, false, fault.OK, "writable"},
		{"volume_claim", dir, true, fault.OK, "read-only"},
		{"volume_claim", filepath.Join(dir, "missing"), false, fault.NotFound, `does not exist in this container; mount the volume claim "pvc" there`},
		{"host_path", filepath.Join(dir, "missing"), false, fault.NotFound, "mount the host path /srv there"},
		{"host_path", file, false, fault.Usage, "is not a folder"},
	} {
		res, err := Handler{}.Check(context.Background(), &handlers.Request{Conn: conn(t, tt.kind, tt.path, tt.readOnly), Log: log})
		if fault.ClassOf(err) != tt.class {
			t.Errorf("%+v: class %v (%v)", tt, fault.ClassOf(err), err)
			continue
		}
		text := ""
		if err != nil {
			text = err.Error()
		} else {
			text = res.Summary
			if res.Details["freeBytes"].(uint64) == 0 {
				t.Errorf("no free space reported: %+v", res)
			}
		}
		if !strings.Contains(text, tt.msg) || !strings.Contains(text, `connection "data"`) {
			t.Errorf("%+v: %q", tt, text)
		}
	}
	// The probe leaves nothing behind.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("check wrote into the mount: %v", entries)
	}
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

// check refuses what a run would refuse of --paths: a path not in the
// mount (exit 4), one leading out of it through a link (exit 2).
func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "train"), 0o755)
	os.WriteFile(filepath.Join(dir, "train", "a.txt"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("b"), 0o644)
	os.Symlink(t.TempDir(), filepath.Join(dir, "out"))
	c := conn(t, "host_path", dir, true)
	for _, tt := range []struct {
		paths string
		class fault.Class
	}{
		{"train", fault.OK},
		{"nope", fault.NotFound},
		{"out", fault.Usage},
		{"b.txt:", fault.Usage},                      // a file with an empty destination
		{"b.txt:x,train/a.txt:x", fault.Usage},       // two to one place
		{"train:d,train/a.txt:d/a.txt", fault.Usage}, // one inside the other
	} {
		paths, err := handlers.ParseMappings(c, "--paths", strings.Split(tt.paths, ","))
		if err != nil {
			t.Fatal(err)
		}
		req := &handlers.Request{Conn: c, Log: slog.New(slog.DiscardHandler), Paths: paths}
		_, err = Handler{}.Check(context.Background(), req)
		if fault.ClassOf(err) != tt.class && !(tt.class == fault.OK && err == nil) {
			t.Errorf("--paths %s: %v", tt.paths, err)
		}
	}
}
