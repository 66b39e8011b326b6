// Package mount handles host_path and volume_claim connections: it checks
// the mount (exists, is a readable folder, writable unless readOnly, free
// space) and copies data out of it into --path when asked.
package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/transfer"
)

// Handler is the host_path and volume_claim handler.
type Handler struct{}

// Kinds are the kinds this handler serves.
var Kinds = []connections.Kind{connections.HostPath, connections.VolumeClaim}

// Check verifies the mount without writing anything but a removed probe file.
func (Handler) Check(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	return check(req)
}

// copyFlagsWithoutPath refuses the flags of a copy where there is none to
// make (no --path), rather than drop them.
func copyFlagsWithoutPath(req *handlers.Request) error {
	if req.Path != "" {
		return nil
	}
	for _, f := range []struct {
		name  string
		given bool
	}{{"--workers", req.Workers > 0}, {"--checksum", req.Checksum}, {"--force", req.Force}} {
		if f.given {
			return fault.New(fault.Usage, "%s: %s applies to the copy into --path, and no --path is given (without it the mount is only checked); give --path, or remove %s", req.Conn, f.name, f.name)
		}
	}
	return nil
}

func check(req *handlers.Request) (*handlers.Result, error) {
	m, err := schema(req.Conn)
	if err != nil {
		return nil, err
	}
	st, err := checkMount(req.Conn, m)
	if err != nil {
		return nil, err
	}
	// What a run would refuse of --paths: a path that is not there, or
	// that leads out of the mount.
	if real, err := filepath.EvalSymlinks(m.MountPath); err == nil {
		for _, mp := range req.Paths {
			if _, _, err := resolveSrc(real, mp, req.Conn.String()); err != nil {
				return nil, err
			}
		}
	}
	names, dsts := make([]string, len(req.Paths)), make([]string, len(req.Paths))
	for i, mp := range req.Paths {
		names[i], dsts[i] = mp.Name("--paths"), mp.Dst
	}
	if err := handlers.CheckTargets(req.Conn, names, dsts); err != nil {
		return nil, err
	}
	access := "readable, writable"
	if m.ReadOnly {
		access = "readable (read-only)"
	}
	req.Log.Info("mount checked", "mountPath", m.MountPath, "access", access, "freeBytes", st.Free, "totalBytes", st.Total)
	return &handlers.Result{
		Summary: fmt.Sprintf("%s: %s is %s, %s free of %s", req.Conn, m.MountPath, access, human(st.Free), human(st.Total)),
		Details: map[string]any{"mountPath": m.MountPath, "readOnly": m.ReadOnly, "freeBytes": st.Free, "totalBytes": st.Total},
	}, nil
}

// Run checks the mount, then copies it (or the --paths asked) into --path.
func (h Handler) Run(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	if err := copyFlagsWithoutPath(req); err != nil {
		return nil, err
	}
	res, err := check(req)
	if err != nil || req.Path == "" {
		return res, err
	}
	m := req.Conn.Mount()
	mappings := req.Paths // checked by Check
	if len(mappings) == 0 {
		mappings = []handlers.Mapping{{}}
	}
	stats, err := CopyMappings(ctx, m.MountPath, req.Path, mappings, Options{Workers: req.Workers, Log: req.Log, Conn: req.Conn.String(), Terminal: req.Terminal, Checksum: req.Checksum, Force: req.Force})
	res.Path = req.Path
	res.Files, res.Bytes, res.Skipped = stats.Files, stats.Bytes, stats.Skipped
	res.Details["links"] = stats.Links
	res.Details["dirs"] = stats.Dirs
	if len(stats.Ignored) > 0 {
		res.Details["ignored"] = stats.Ignored
	}
	if err != nil {
		// What was done before the failure, for --result.
		res.Summary = fmt.Sprintf("%s: failed after copying %s (%s) from %s to %s, %d already up to date", req.Conn, transfer.Count(stats.Files, "file"), human(uint64(stats.Bytes)), m.MountPath, req.Path, stats.Skipped)
		return res, err
	}
	res.Summary = fmt.Sprintf("%s: copied %s (%s) from %s to %s, %d already up to date", req.Conn, transfer.Count(stats.Files, "file"), human(uint64(stats.Bytes)), m.MountPath, req.Path, stats.Skipped)
	return res, nil
}

func schema(c *connections.Connection) (*connections.MountSchema, error) {
	m := c.Mount()
	if m == nil || m.MountPath == "" {
		return nil, fault.New(fault.Usage, "%s: schema.mountPath is required", c)
	}
	return m, nil
}

// source names what should be mounted, for messages.
func source(c *connections.Connection, m *connections.MountSchema) string {
	if m.VolumeClaim != "" {
		return fmt.Sprintf("the volume claim %q", m.VolumeClaim)
	}
	return fmt.Sprintf("the host path %s", m.HostPath)
}

func checkMount(c *connections.Connection, m *connections.MountSchema) (fsutil.Space, error) {
	root := m.MountPath
	st, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fsutil.Space{}, fault.New(fault.NotFound, "%s: schema.mountPath %s does not exist in this container; mount %s there (the pod's volumeMounts) or fix schema.mountPath", c, root, source(c, m))
	case err != nil:
		return fsutil.Space{}, fault.FromSystem(fmt.Errorf("%s: schema.mountPath %s: %w", c, root, err))
	case !st.IsDir():
		return fsutil.Space{}, fault.New(fault.Usage, "%s: schema.mountPath %s is not a folder; mount %s there, not a file", c, root, source(c, m))
	}
	d, err := os.Open(root)
	if err == nil {
		_, err = d.Readdirnames(1)
		d.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fsutil.Space{}, fault.New(fault.Auth, "%s: schema.mountPath %s is not readable by uid %d: %v; fix the volume's permissions or the pod's securityContext (runAsUser, fsGroup)", c, root, os.Getuid(), err)
	}
	if !m.ReadOnly {
		if err := probeWrite(root); err != nil {
			switch {
			case errors.Is(err, syscall.EROFS):
				return fsutil.Space{}, fault.New(fault.LocalDisk, "%s: schema.mountPath %s is mounted read-only but schema.readOnly is false; set readOnly: true in the connection's schema, or mount it read-write", c, root)
			case errors.Is(err, fs.ErrPermission):
				return fsutil.Space{}, fault.New(fault.Auth, "%s: schema.mountPath %s is not writable by uid %d; set readOnly: true if it is meant to be read-only, or fix its permissions (fsGroup)", c, root, os.Getuid())
			default:
				return fsutil.Space{}, fault.FromSystem(fmt.Errorf("%s: cannot write to schema.mountPath %s: %w", c, root, err))
			}
		}
	}
	space, err := fsutil.FreeSpace(root)
	if err != nil {
		return fsutil.Space{}, fault.FromSystem(fmt.Errorf("%s: %w", c, err))
	}
	return space, nil
}

// probeWrite creates and removes a temporary file in dir.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, fsutil.TempPrefix+"probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func human(n uint64) string { return transfer.HumanBytes(float64(n)) }
