package connections

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/secret"
)

// Keys looks up a connection's credentials and settings the way upstream
// does (vents read_keys): files under the secret's and the configMap's
// mountPath first, then environment variables, then the same names prefixed
// POLYAXON_. Each key is tried as given, upper-case, lower-case and lower-case
// without underscores. A resource's items, when set, restrict which of its
// files may be read.
type Keys struct {
	conn   *Connection
	getenv func(string) (string, bool)

	mu    sync.Mutex
	asked []string        // the keys looked up, as given
	used  map[string]bool // the mounts a key's file or a whole file was found in
	found bool            // a secret value was found (a mount, the environment)
}

// Keys returns the credential look-up of c over the process environment.
func (c *Connection) Keys() *Keys { return NewKeys(c, os.LookupEnv) }

// NewKeys returns the credential look-up of c over getenv.
func NewKeys(c *Connection, getenv func(string) (string, bool)) *Keys {
	return &Keys{conn: c, getenv: getenv}
}

// candidates returns the spellings tried for key, in order, without repeats.
func candidates(key string) []string {
	out := []string{key}
	for _, c := range []string{strings.ToUpper(key), strings.ToLower(key), strings.ReplaceAll(strings.ToLower(key), "_", "")} {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

type mount struct {
	dir    string
	items  []string
	secret bool
	name   string // the secret's or configMap's name, for messages
}

// label names the mount for messages: "secret creds", "configMap ca".
func (m mount) label() string {
	s := "configMap"
	if m.secret {
		s = "secret"
	}
	if m.name != "" {
		s += " " + m.name
	}
	return s
}

func (k *Keys) mounts() []mount {
	var out []mount
	if r := k.conn.Secret; r != nil && r.MountPath != "" {
		out = append(out, mount{dir: r.MountPath, items: r.Items, secret: true, name: r.Name})
	}
	if r := k.conn.ConfigMap; r != nil && r.MountPath != "" {
		out = append(out, mount{dir: r.MountPath, items: r.Items, name: r.Name})
	}
	return out
}

// Missing describes the secret and configMap mounts of the connection
// that are not folders in this container (the volume is not mounted, or
// the mountPath is wrong): their keys can only come from the environment.
func (k *Keys) Missing() []string {
	var out []string
	for _, m := range k.mounts() {
		st, err := os.Stat(m.dir)
		if err == nil && st.IsDir() {
			continue
		}
		what := m.label()
		if err == nil {
			out = append(out, fmt.Sprintf("%s: mountPath %s is a file, not the folder the volume is mounted on", what, m.dir))
			continue
		}
		out = append(out, fmt.Sprintf("%s: mountPath %s does not exist in this container", what, m.dir))
	}
	return out
}

// Lookup returns the first of keys that is set, trying each key through the
// whole look-up order before the next. Values from mounted secret files and
// from the environment (where Kubernetes puts secret keys without a
// mountPath) are secret; values from a configMap mount are not. A file's
// trailing newline is dropped. An unreadable file is an Auth-class error that
// names the file.
func (k *Keys) Lookup(keys ...string) (secret.Value, bool, error) {
	k.mu.Lock()
	for _, key := range keys {
		if !slices.Contains(k.asked, key) {
			k.asked = append(k.asked, key)
		}
	}
	k.mu.Unlock()
	for _, key := range keys {
		v, ok, err := k.lookup(key)
		if err != nil || ok {
			return v, ok, err
		}
	}
	return secret.Value{}, false, nil
}

// Get is Lookup for callers that treat an unreadable file as absent; the
// error is still returned by Lookup to those that ask.
func (k *Keys) Get(keys ...string) (secret.Value, bool) {
	v, ok, err := k.Lookup(keys...)
	return v, ok && err == nil
}

func (k *Keys) lookup(key string) (secret.Value, bool, error) {
	cands := candidates(key)
	for _, name := range cands {
		for _, m := range k.mounts() {
			if len(m.items) > 0 && !slices.Contains(m.items, name) {
				continue
			}
			p := filepath.Join(m.dir, name)
			data, err := os.ReadFile(p)
			switch {
			case errors.Is(err, fs.ErrNotExist), isDirErr(err), errors.Is(err, syscall.ENOTDIR):
				continue // (a mountPath that is no folder: Missing says so)
			case err != nil:
				k.markUsed(m.dir) // named right, but unreadable
				return secret.Value{}, false, fault.New(fault.Auth, "%s: cannot read %s: %w", k.conn, p, err)
			}
			s := strings.TrimRight(string(data), "\r\n")
			if s != "" {
				k.markUsed(m.dir)
				k.markFound(m.secret)
				return secret.New(s, m.secret, p), true, nil
			}
		}
	}
	for _, prefix := range []string{"", "POLYAXON_"} {
		for _, name := range cands {
			if v, ok := k.getenv(prefix + name); ok && v != "" {
				k.markFound(true)
				return secret.New(v, true, "$"+prefix+name), true, nil
			}
		}
	}
	return secret.Value{}, false, nil
}

func isDirErr(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "is a directory")
}

// Dirs returns the mounted secret and configMap folders that exist, for
// handlers that read whole files (SSH keys, docker config) from them.
func (k *Keys) Dirs() []string {
	var out []string
	for _, m := range k.mounts() {
		if st, err := os.Stat(m.dir); err == nil && st.IsDir() {
			out = append(out, m.dir)
			k.markUsed(m.dir) // its files are the handler's to read
		}
	}
	return out
}

func (k *Keys) markFound(isSecret bool) {
	if isSecret {
		k.mu.Lock()
		k.found = true
		k.mu.Unlock()
	}
}

func (k *Keys) markUsed(dir string) {
	k.mu.Lock()
	if k.used == nil {
		k.used = map[string]bool{}
	}
	k.used[dir] = true
	k.mu.Unlock()
}

// Unused describes, when no secret value was found anywhere, the secret
// mounts that are there and hold files, none of which the handler read:
// their files are likely named otherwise than the keys it looked up
// (aws_access_key_id.txt for AWS_ACCESS_KEY_ID). File names are shown,
// never their contents. (A configMap's files are often read by path, a
// CA bundle say: they are not told about.)
func (k *Keys) Unused() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.asked) == 0 || k.found {
		return nil
	}
	var out []string
	for _, m := range k.mounts() {
		if k.used[m.dir] || !m.secret {
			continue
		}
		entries, err := os.ReadDir(m.dir)
		if err != nil {
			continue
		}
		var names []string
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "..") { // the kubelet's own (..data)
				names = append(names, e.Name())
			}
		}
		if len(names) == 0 {
			continue
		}
		if len(names) > 8 {
			names = append(names[:8], "…")
		}
		what := m.label()
		asked := k.asked
		if len(asked) > 10 {
			asked = append(slices.Clip(asked[:10]), "…")
		}
		out = append(out, fmt.Sprintf("%s: mountPath %s holds %s, but none is a key looked up (%s; also lower case, or without underscores)",
			what, m.dir, strings.Join(names, ", "), strings.Join(asked, ", ")))
	}
	return out
}
