package integration

// End-to-end tests of `initializer sidecar`: --exclude with "**", a state
// file inside --path, mount stores (names the storage library escapes, a
// killed upload, --grace during a long copy), and $POLYAXON_RUN_INSTANCE.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// --exclude "**" globs leave out what they name at any depth, against MinIO.
func TestSidecarExcludeDoubleStar(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "outputs")
	for _, name := range []string{"keep.txt", "x.tmp", "a/b/y.tmp", "run/ckpt/w.bin", "run/ckpt.txt", "logs/debug.log", "logs/r/s/debug.log", "logs/r/info.log"} {
		writeFile(t, dir, name, name)
	}
	until := filepath.Join(t.TempDir(), "done")
	writeFile(t, filepath.Dir(until), "done", "")
	p := startSidecar(t, cat, append(tg.env, "POLYAXON_RUN_INSTANCE=acme.vision.runs.r1"), "--connection", "data", "--path", dir,
		"--exclude", "**/*.tmp", "--exclude", "**/ckpt/", "--exclude", "logs/**/debug.log", "--until-file", until, "--check-interval", "100ms")
	code, res := p.wait(t)
	if code != 0 || len(notUploaded(t, res)) != 0 {
		t.Fatalf("exit %d, %v\n%s", code, scDetails(t, res), p.stderr.String())
	}
	if got, want := tg.list(t, ""), []string{"r1/keep.txt", "r1/logs/r/info.log", "r1/run/ckpt.txt"}; !slices.Equal(got, want) {
		t.Errorf("in the bucket %v, want %v", got, want)
	}
	r := cli(t, tg.env, "sidecar", "--catalog", cat, "--connection", "data", "--path", dir, "--prefix", "r1", "--exclude", "logs/**/[debug.log")
	r.expectCode(t, 2)
	if !strings.Contains(r.Stderr, `--exclude "logs/**/[debug.log" is not a valid glob`) {
		t.Errorf("stderr: %s", r.Stderr)
	}
}

// A --state file inside --path is not uploaded, and the final flush ends
// at once instead of chasing it (each upload rewrote it) for the whole
// --grace and then naming it not uploaded.
func TestSidecarStateInsidePath(t *testing.T) {
	tg := scS3(t, "")
	cat := storeCatalog(t, tg.entry)
	dir := filepath.Join(t.TempDir(), "outputs")
	writeFile(t, dir, "a.txt", "a")
	p := startSidecar(t, cat, append(tg.env, "POLYAXON_RUN_INSTANCE=acme.vision.runs.r2"), "--connection", "data", "--path", dir,
		"--state", filepath.Join(dir, "meta", "sidecar.state"), "--interval", "300ms", "--grace", "8s")
	waitFor(t, time.Minute, "a.txt in the bucket", func() bool { _, ok := tg.get(t, "r2/a.txt"); return ok })
	writeFile(t, dir, "b.txt", "b")
	start := time.Now()
	code, res := p.term(t)
	took := time.Since(start)
	d := scDetails(t, res)
	if code != 0 || d["flushComplete"] != true || len(notUploaded(t, res)) != 0 || took > 4*time.Second {
		t.Fatalf("exit %d after %v, %v\n%s", code, took, d, p.stderr.String())
	}
	if got, want := tg.list(t, ""), []string{"r2/a.txt", "r2/b.txt"}; !slices.Equal(got, want) {
		t.Errorf("in the bucket %v, want %v", got, want)
	}
	if !strings.Contains(p.stderr.String(), "the state file is inside --path: it is not uploaded") {
		t.Errorf("not logged:\n%s", p.stderr.String())
	}
}

// A malformed $POLYAXON_RUN_INSTANCE is named as such, quoted, with the
// form expected; one with space around it gives the uuid without it.
func TestSidecarRunInstance(t *testing.T) {
	mount := t.TempDir()
	cat := catalog(t, fmt.Sprintf("artifactsStore:\n  name: store\n  kind: host_path\n  schema: {hostPath: %s, mountPath: %s}\n", mount, mount))
	dir := filepath.Join(t.TempDir(), "out")
	writeFile(t, dir, "a.txt", "a")
	until := filepath.Join(t.TempDir(), "done")
	writeFile(t, filepath.Dir(until), "done", "")
	for _, bad := range []string{"acme.proj.jobs.abc", "acme.proj.runs.", "abc", "acme.proj.runs.a/b"} {
		r := cli(t, []string{"POLYAXON_RUN_INSTANCE=" + bad}, "sidecar", "--catalog", cat, "--path", dir, "--until-file", until)
		r.expectCode(t, 2)
		if want := fmt.Sprintf("$POLYAXON_RUN_INSTANCE is set but malformed: %q; the expected form is owner.project.runs.<uuid>", bad); !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "give --prefix") {
			t.Errorf("%q: stderr lacks %q:\n%s", bad, want, r.Stderr)
		}
		r = cli(t, []string{"POLYAXON_RUN_INSTANCE=" + bad}, "sidecar", "--catalog", cat, "--prefix", "p", "--until-file", until)
		r.expectCode(t, 2)
		if !strings.Contains(r.Stderr, "set but malformed") || !strings.Contains(r.Stderr, "give --path") {
			t.Errorf("%q without --path: %s", bad, r.Stderr)
		}
	}
	r := cli(t, []string{"POLYAXON_RUN_INSTANCE=a.b.runs.abc "}, "sidecar", "--catalog", cat, "--path", dir, "--until-file", until, "--check-interval", "50ms")
	r.expectCode(t, 0)
	if _, err := os.Stat(filepath.Join(mount, "abc", "a.txt")); err != nil {
		t.Errorf("not uploaded under abc/: %v", err)
	}
	if d := r.Result["result"].(map[string]any)["details"].(map[string]any); d["prefix"] != "abc" {
		t.Errorf("prefix %q", d["prefix"])
	}
}

// On a mount store, a file whose name the storage library escapes (a
// newline, text that reads as an escape) gets its modification time too.
func TestSidecarMountEscapedNamesMtime(t *testing.T) {
	mount := t.TempDir()
	cat := catalog(t, fmt.Sprintf("artifactsStore:\n  name: store\n  kind: host_path\n  schema: {hostPath: %s, mountPath: %s}\n", mount, mount))
	dir := filepath.Join(t.TempDir(), "out")
	mtime := time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC)
	stored := map[string]string{ // file → where the store keeps it
		"plain.txt":          "r7/plain.txt",
		"x\ny.txt":           "r7/x__0xa__y.txt",
		"d\x01/__0x41__.txt": "r7/d__0x1__/__0x5f___0x41__.txt",
	}
	for name := range stored {
		p := writeFile(t, dir, name, name)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	until := filepath.Join(t.TempDir(), "done")
	writeFile(t, filepath.Dir(until), "done", "")
	r := cli(t, []string{"POLYAXON_RUN_INSTANCE=o.p.runs.r7"}, "sidecar", "--catalog", cat, "--path", dir, "--until-file", until, "--check-interval", "50ms")
	r.expectCode(t, 0)
	for name, rel := range stored {
		st, err := os.Stat(filepath.Join(mount, rel))
		if err != nil {
			t.Errorf("%q: %v", name, err)
			continue
		}
		if !st.ModTime().Equal(mtime) {
			t.Errorf("%q stored as %s with mtime %v, want %v", name, rel, st.ModTime(), mtime)
		}
	}
	if strings.Contains(r.Stderr, "level=WARN") {
		t.Errorf("warnings:\n%s", r.Stderr)
	}
}
