package git

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers"
)

// lfsPointerPrefix starts every Git LFS pointer file.
const lfsPointerPrefix = "version https://git-lfs.github.com/spec/v1"

// lfsReport says what became of a repository's LFS files.
type lfsReport struct {
	used     bool     // a .gitattributes uses filter=lfs
	smudged  bool     // git lfs pull replaced the pointers
	pointers []string // pointer files left in the checkout
}

func (r lfsReport) details() map[string]any {
	if !r.used {
		return nil
	}
	d := map[string]any{"lfs": true, "lfsSmudged": r.smudged}
	if len(r.pointers) > 0 {
		d["lfsPointers"] = r.pointers
	}
	return d
}

// checkLFS smudges the LFS files of the checkout at dir when the engine can,
// and otherwise warns, naming the pointer files left: never ship pointers
// silently.
func checkLFS(ctx context.Context, req *handlers.Request, eng engine, dir string, attrs []string) (lfsReport, error) {
	var r lfsReport
	if !usesLFS(attrs) {
		return r, nil
	}
	r.used = true
	smudged, err := eng.lfsPull(ctx, dir)
	if err != nil {
		return r, lfsPullError(err, lfsPointers(dir))
	}
	r.smudged = smudged
	r.pointers = lfsPointers(dir)
	switch {
	case len(r.pointers) == 0:
		req.Log.Info("git: LFS files fetched")
	case smudged:
		req.Log.Warn("git: some LFS files are still pointers after git lfs pull", "count", len(r.pointers), "files", first(r.pointers, 20))
	default:
		why := "the go-git engine cannot fetch LFS content"
		if eng.name() == EngineCLI {
			why = "git lfs is not installed"
		}
		req.Log.Warn("git: the repository uses Git LFS but "+why+"; these files are LFS pointers, not their content (install git-lfs in the image and use the git CLI engine)", "count", len(r.pointers), "files", first(r.pointers, 20))
	}
	return r, nil
}

// lfsPullError names the files that git lfs pull left as pointers, and
// makes an object missing from the LFS server a NotFound (git-lfs's
// standalone file agent says "remote missing object", an LFS server's batch
// answer "object does not exist" with a 404).
func lfsPullError(err error, pointers []string) error {
	class := fault.ClassOf(err)
	m := strings.ToLower(err.Error())
	if strings.Contains(m, "missing object") || strings.Contains(m, "does not exist") || strings.Contains(m, "[404]") {
		class = fault.NotFound
	}
	if len(pointers) == 0 {
		return fault.Wrap(class, fmt.Errorf("git lfs pull: %w", err))
	}
	return fault.Wrap(class, fmt.Errorf("the Git LFS content of %d file(s) could not be fetched (%s): %w",
		len(pointers), strings.Join(first(pointers, 20), ", "), err))
}

func first(l []string, n int) []string {
	if len(l) > n {
		return l[:n]
	}
	return l
}

// usesLFS reports whether one of the .gitattributes files sets filter=lfs.
func usesLFS(attrs []string) bool {
	for _, p := range attrs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte("filter=lfs")) {
			return true
		}
	}
	return false
}

// lfsPointers lists the files (relative to dir) that are LFS pointers.
func lfsPointers(dir string) []string {
	var out []string
	buf := make([]byte, len(lfsPointerPrefix))
	_ = walkTree(dir, func(p string, info os.FileInfo) {
		// Pointer files are about 130 bytes.
		if !info.Mode().IsRegular() || info.Size() > 1024 || info.Size() < int64(len(buf)) {
			return
		}
		f, err := os.Open(p)
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := io.ReadFull(f, buf); err == nil && string(buf) == lfsPointerPrefix {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
	})
	return out
}
