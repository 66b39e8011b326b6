package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

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

// OpenMount opens a host_path/volume_claim mount as a bucket that writes no
// attribute files and keeps its temporary files beside their targets (the
// mount is usually another file system than $TMPDIR).
func OpenMount(conn *connections.Connection) (*blob.Bucket, string, error) {
	m := conn.Mount()
	st, err := os.Stat(m.MountPath)
	if err != nil || !st.IsDir() {
		return nil, "", fault.New(fault.NotFound, "%s: schema.mountPath %s is not a mounted folder: %v; mount the volume in the sidecar container", conn, m.MountPath, err)
	}
	if m.ReadOnly {
		return nil, "", fault.New(fault.Usage, "%s is read-only (schema.readOnly): the sidecar cannot upload to it", conn)
	}
	b, err := fileblob.OpenBucket(m.MountPath, &fileblob.Options{NoTempDir: true, Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		return nil, "", fault.Wrap(fault.LocalDisk, fmt.Errorf("%s: %w", conn, err))
	}
	return b, m.MountPath, nil
}

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
	return filepath.Join(os.TempDir(), "initializer-sidecar-"+shortID(dir+"\x00"+storeURL+"\x00"+prefix)+".state")
}

func shortID(s string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return fmt.Sprintf("%016x", h)
}
