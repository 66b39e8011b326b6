package fsutil

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// maxMade is how many created folders MadeDirs records one by one.
const maxMade = 4096

// MadeDirs records the folders a run creates (the outermost of each
// MkdirAll), so that those still empty when it fails are removed: each, up
// to maxMade; beyond, the folders they were made in, whose children made
// since the start go (memory bounded with a folder per file). Safe for
// concurrent use.
type MadeDirs struct {
	mu      sync.Mutex
	start   time.Time
	dirs    []string
	parents map[string]bool
}

// NewMadeDirs starts recording, now.
func NewMadeDirs() *MadeDirs { return &MadeDirs{start: time.Now()} }

// Add records top, a folder this run created.
func (m *MadeDirs) Add(top string) {
	if top == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.dirs) < maxMade {
		m.dirs = append(m.dirs, top)
		return
	}
	if m.parents == nil {
		m.parents = map[string]bool{}
	}
	if len(m.parents) < maxMade {
		m.parents[filepath.Dir(top)] = true
	}
}

// RemoveEmpty removes the recorded folders that are (or hold only) empty
// folders.
func (m *MadeDirs) RemoveEmpty() {
	m.mu.Lock()
	defer m.mu.Unlock()
	slices.SortFunc(m.dirs, func(a, b string) int { return len(b) - len(a) })
	for _, dir := range m.dirs {
		RemoveEmptyDirs(dir)
	}
	for parent := range m.parents {
		// Those made in parent since the start: their change time says so.
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || !e.IsDir() {
				continue
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && !time.Unix(st.Ctim.Unix()).Before(m.start) {
				RemoveEmptyDirs(filepath.Join(parent, e.Name()))
			}
		}
	}
}

// Blocks is size rounded up to whole blocks of block bytes: the room a file
// of that size takes.
func Blocks(size, block int64) int64 {
	if block <= 1 || size <= 0 {
		return size
	}
	return (size + block - 1) / block * block
}
