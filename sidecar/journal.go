package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"

	"gocloud.dev/blob"

	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/transfer"
)

// journalSuffix names the file, beside the state file, that records the
// multipart uploads begun and not yet ended.
const journalSuffix = ".uploads"

// uploadJournal is that file (transfer.UploadJournal): a sidecar killed
// while it sends a large file's parts (SIGKILL, an OOM kill) leaves their
// upload unfinished in the store, not listed but billed, and the next
// sidecar aborts the uploads it finds there. Only this sidecar's own are
// recorded, so that nothing another process uploads is touched.
type uploadJournal struct {
	mu     sync.Mutex
	path   string
	open   map[string]string // upload id → key
	log    *slog.Logger
	warned bool // that it cannot be written: said once
}

// journalPath names the record of a store's uploads beside the state file:
// one per store (connection, endpoint, URL, prefix: id), so that a state
// path given to a sidecar of another store never aborts in one store what
// was begun in another.
func journalPath(statePath, id string) string {
	return statePath + "." + id[:12] + journalSuffix
}

type journalEntry struct {
	Key string `json:"key"`
	ID  string `json:"id"`
}

func (j *uploadJournal) Begun(key, id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.open[id] = key
	j.write()
}

func (j *uploadJournal) Ended(_, id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.open, id)
	j.write()
}

// write replaces the file with the uploads open now (none: no file). It
// is written before the parts are sent, and a process killed keeps what it
// wrote: only a crash of the machine loses it.
func (j *uploadJournal) write() {
	if len(j.open) == 0 {
		if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			j.log.Debug("upload journal not removed", "file", j.path, "error", err.Error())
		}
		return
	}
	entries := make([]journalEntry, 0, len(j.open))
	for id, key := range j.open {
		entries = append(entries, journalEntry{Key: key, ID: id})
	}
	b, _ := json.Marshal(entries)
	if _, err := fsutil.WriteFileAtomic(context.Background(), j.path, strings.NewReader(string(b)+"\n"), fsutil.FileMeta{Mode: 0o600}); err != nil && !j.warned {
		j.warned = true
		j.log.Warn("the record of unfinished uploads cannot be written: a sidecar killed now would leave its upload for the store's lifecycle rules", "file", j.path, "error", err.Error())
	}
}

// load reads the uploads an earlier sidecar recorded and never ended, and
// keeps them in the record (this sidecar's writes keep them there) until
// abortLeft has aborted them.
func (j *uploadJournal) load() []journalEntry {
	data, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var entries []journalEntry
	if err == nil {
		err = json.Unmarshal(data, &entries)
	}
	if err != nil {
		j.log.Warn("the record of unfinished uploads is not readable; they are left to the store's lifecycle rules", "file", j.path, "error", err.Error())
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range entries {
		j.open[e.ID] = e.Key
	}
	return entries
}

// entries returns the uploads recorded now.
func (j *uploadJournal) entries() []journalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]journalEntry, 0, len(j.open))
	for id, key := range j.open {
		out = append(out, journalEntry{Key: key, ID: id})
	}
	return out
}

// abortLeft aborts the recorded uploads given (which a killed sidecar
// left, or whose abort failed: whose), and forgets each one aborted. Those
// it cannot abort (the store down, ctx ended) stay in the record, for the
// next sidecar.
func (j *uploadJournal) abortLeft(ctx context.Context, b *blob.Bucket, ab transfer.UploadAborter, entries []journalEntry, whose string) {
	aborted := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			j.log.Warn("the unfinished uploads "+whose+" are not all aborted: the sidecar is stopping; the next sidecar tries again", "left", len(entries)-aborted)
			return
		}
		if err := ab.AbortUpload(ctx, b, e.Key, e.ID); err != nil {
			j.log.Warn("an unfinished upload "+whose+" is not aborted yet; the next sidecar tries again", "key", e.Key, "error", err.Error())
			continue
		}
		aborted++
		j.Ended(e.Key, e.ID)
	}
	if aborted > 0 {
		j.log.Info("aborted the unfinished multipart uploads "+whose, "uploads", aborted)
	}
}
