package sidecar

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
)

// RunUUID returns the run's uuid, the last part of instance
// ($POLYAXON_RUN_INSTANCE, owner.project.runs.uuid), with the space around
// it trimmed. An empty instance gives "" and no error; one that is not of
// that form, or whose uuid could not be one folder name, gives an error
// that quotes it.
func RunUUID(instance string) (string, error) {
	v := strings.TrimSpace(instance)
	if v == "" {
		return "", nil
	}
	parts := strings.Split(v, ".")
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[2] != "runs" || parts[3] == "" ||
		strings.ContainsAny(parts[3], "/\\ \t\r\n\x00") {
		return "", fmt.Errorf("$POLYAXON_RUN_INSTANCE is set but malformed: %q; the expected form is owner.project.runs.<uuid> (e.g. acme.vision.runs.0c0ffee)", instance)
	}
	return parts[3], nil
}

// Mount is a host_path/volume_claim store opened for uploads.
type Mount struct {
	Bucket *blob.Bucket
	Path   string // the mounted folder (schema.mountPath)
	// TempDir is where uploads are written before they are renamed into
	// place (see mountTempDir); "" when they are written beside their
	// files.
	TempDir string
	// Uploader writes the uploads (the transfer's Provider).
	Uploader MountUploader
}

// OpenMount opens a host_path/volume_claim mount for uploads below prefix
// of the files of the folder localRoot, as a bucket that writes no
// attribute files. It refuses a target and a folder that overlap.
//
// fileblob writes each upload to a temporary file, then renames it into
// place. Those files go to a hidden folder at the mount's root (on the
// same file system, out of every run's folder), so that an upload killed
// (SIGKILL) leaves nothing beside the files; fileblob takes that folder
// from os.TempDir, so OpenMount points $TMPDIR at it, for the whole
// process. When that folder cannot be used, they are written beside their
// files (and a killed upload can leave one there). The temporary files
// that killed uploads left in that folder are removed (removeStaleTemps).
func OpenMount(conn *connections.Connection, prefix, localRoot string, log *slog.Logger) (*Mount, error) {
	m := conn.Mount()
	st, err := os.Stat(m.MountPath)
	if err != nil || !st.IsDir() {
		return nil, fault.New(fault.NotFound, "%s: schema.mountPath %s is not a mounted folder: %v; mount the volume in the sidecar container", conn, m.MountPath, err)
	}
	if m.ReadOnly {
		return nil, fault.New(fault.Usage, "%s is read-only (schema.readOnly): the sidecar cannot upload to it", conn)
	}
	top := filepath.Join(m.MountPath, filepath.FromSlash(prefix))
	rd, rt := fsutil.Resolve(localRoot), fsutil.Resolve(top) // through symbolic links
	if fsutil.Within(rd, rt) || fsutil.Within(rt, rd) {
		return nil, fault.New(fault.Usage, "%s: the upload target %s and --path %s overlap: the sidecar would upload its own uploads; pick another --prefix or --path", conn, top, localRoot)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	tmp, err := mountTemps(m.MountPath, top)
	if err != nil {
		log.Info("the uploads' temporary files are written beside their files: a killed upload can leave one there (hidden as this tool's, and not removed)", "error", err.Error())
	} else if err := os.Setenv("TMPDIR", tmp); err != nil {
		return nil, fault.Wrap(fault.Internal, fmt.Errorf("setting $TMPDIR for the uploads' temporary files: %w", err))
	}
	b, err := fileblob.OpenBucket(m.MountPath, &fileblob.Options{NoTempDir: tmp == "", Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		return nil, fault.Wrap(fault.LocalDisk, fmt.Errorf("%s: %w", conn, err))
	}
	removeStaleTemps(tmp, start, log)
	return &Mount{Bucket: b, Path: m.MountPath, TempDir: tmp, Uploader: MountUploader{bucket: b, dir: m.MountPath, tmp: tmp}}, nil
}

// startTempDir is the process's temporary folder as it started, before
// OpenMount pointed $TMPDIR at a mount.
var startTempDir = os.TempDir()

// StatePath picks where the uploaded set is kept: --state, else beside the
// folder (outside it), else in $TMPDIR when the parent is not writable.
func StatePath(flag, dir, storeURL, prefix string) string {
	switch flag {
	case "none":
		return ""
	case "":
	default:
		return flag
	}
	name := ".initializer-sidecar-" + filepath.Base(dir) + ".state"
	parent := filepath.Dir(dir)
	if f, err := os.CreateTemp(parent, fsutil.TempPrefix+"probe-*"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return filepath.Join(parent, name)
	}
	return filepath.Join(startTempDir, "initializer-sidecar-"+shortID(dir+"\x00"+storeURL+"\x00"+prefix)+".state")
}

func shortID(s string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return fmt.Sprintf("%016x", h)
}
