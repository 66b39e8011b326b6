// Package connections implements the connection spec: the Connection type,
// its per-kind schemas, loading and validating a catalog, and the credential
// look-up (Keys) that upstream's handlers use.
package connections

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Connection is one entry of the catalog.
type Connection struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Kind        Kind              `json:"kind"`
	Schema      any               `json:"schema,omitempty"` // *BucketSchema, *MountSchema, *HostSchema, *GitSchema or map[string]any
	Secret      *Resource         `json:"secret,omitempty"`
	ConfigMap   *Resource         `json:"configMap,omitempty"`
	Env         []map[string]any  `json:"env,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	IsAlias     bool              `json:"isAlias,omitempty"`

	// Role says where the catalog declared it: "artifactsStore",
	// "connections" or "notificationConnections".
	Role string `json:"-"`
	// Origin names the file (or variable) and position it was read from.
	Origin string `json:"-"`
}

// Resource is a Kubernetes Secret or ConfigMap a connection refers to.
type Resource struct {
	Name        string   `json:"name"`
	MountPath   string   `json:"mountPath,omitempty"`
	Items       []string `json:"items,omitempty"`
	DefaultMode *int     `json:"defaultMode,omitempty"`
	HostPath    string   `json:"hostPath,omitempty"`
	IsRequested bool     `json:"isRequested,omitempty"`
}

// BucketSchema is the schema of s3, gcs and wasb connections.
type BucketSchema struct {
	Bucket string `json:"bucket"`
}

// MountSchema is the schema of host_path (HostPath set) and volume_claim
// (VolumeClaim set) connections.
type MountSchema struct {
	HostPath    string `json:"hostPath,omitempty"`
	VolumeClaim string `json:"volumeClaim,omitempty"`
	MountPath   string `json:"mountPath"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// HostSchema is the schema of registry connections.
type HostSchema struct {
	URL      string `json:"url"`
	Insecure bool   `json:"insecure,omitempty"`
}

// GitSchema is the schema of git connections.
type GitSchema struct {
	URL      string   `json:"url,omitempty"`
	Revision string   `json:"revision,omitempty"`
	Flags    []string `json:"flags,omitempty"`
}

// Bucket returns the bucket schema, or nil for other kinds.
func (c *Connection) Bucket() *BucketSchema { s, _ := c.Schema.(*BucketSchema); return s }

// Mount returns the mount schema, or nil for other kinds.
func (c *Connection) Mount() *MountSchema { s, _ := c.Schema.(*MountSchema); return s }

// Host returns the registry schema, or nil for other kinds.
func (c *Connection) Host() *HostSchema { s, _ := c.Schema.(*HostSchema); return s }

// Git returns the git schema (empty when the connection gave none), or nil
// for other kinds.
func (c *Connection) Git() *GitSchema {
	if c.Kind != Git {
		return nil
	}
	if s, ok := c.Schema.(*GitSchema); ok {
		return s
	}
	return &GitSchema{}
}

// Fields returns a free-form schema (kinds without a built-in one), or nil.
func (c *Connection) Fields() map[string]any { m, _ := c.Schema.(map[string]any); return m }

// String names the connection for messages.
func (c *Connection) String() string { return fmt.Sprintf("connection %q (%s)", c.Name, c.Kind) }

// JSON returns the connection in upstream's wire form (camelCase, no nulls).
func (c *Connection) JSON() []byte {
	b, err := json.Marshal(c)
	if err != nil { // every field is plain data
		panic(err)
	}
	return b
}

// ParseFlagList reads a list of flags given as a JSON array
// (`["--depth 1","--no-tags"]`) or comma-separated (`--depth 1,--no-tags`),
// the two encodings upstream uses.
func ParseFlagList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var out []string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("flags %q: not a JSON array of strings: %v", s, err)
		}
		return out, nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out, nil
}
