package connections

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/initializer/initializer/fault"
)

// EnvCatalog is the environment variable upstream passes the catalog in (JSON).
const EnvCatalog = "POLYAXON_CONNECTIONS_CATALOG"

// DefaultPath is where the catalog is read from when neither --catalog nor
// POLYAXON_CONNECTIONS_CATALOG is given: a file, or a mounted ConfigMap folder.
const DefaultPath = "/etc/initializer/catalog"

// Catalog is a validated set of connections with unique names.
type Catalog struct {
	Source      string
	Connections []*Connection // in the order they were declared
	byName      map[string]*Connection
}

// Get returns the connection called name, or a Usage error that lists the
// names the catalog has.
func (c *Catalog) Get(name string) (*Connection, error) {
	if conn, ok := c.byName[name]; ok {
		return conn, nil
	}
	names := make([]string, 0, len(c.Connections))
	for _, conn := range c.Connections {
		names = append(names, conn.Name)
	}
	known := "it has no connections"
	if len(names) > 0 {
		known = "it has: " + strings.Join(names, ", ")
	}
	return nil, fault.New(fault.Usage, "connection %q is not in the catalog %s (%s); check --connection or add it to the catalog", name, c.Source, known)
}

// ArtifactsStore returns the connection declared as artifactsStore, if any.
func (c *Catalog) ArtifactsStore() *Connection {
	for _, conn := range c.Connections {
		if conn.Role == "artifactsStore" {
			return conn
		}
	}
	return nil
}

// Load reads the catalog from path (a file or a directory) when it is not
// empty, else from the POLYAXON_CONNECTIONS_CATALOG variable (looked up with
// getenv), else from DefaultPath.
func Load(path string, getenv func(string) (string, bool)) (*Catalog, error) {
	if path != "" {
		return LoadPath(path)
	}
	if v, ok := getenv(EnvCatalog); ok && strings.TrimSpace(v) != "" {
		return Parse([]byte(v), "$"+EnvCatalog)
	}
	if _, err := os.Stat(DefaultPath); err == nil || errors.Is(err, fs.ErrPermission) {
		return LoadPath(DefaultPath)
	}
	return nil, fault.New(fault.Usage, "no connection catalog: pass --catalog PATH, set %s to the catalog's JSON, or mount it at %s", EnvCatalog, DefaultPath)
}

// LoadPath reads a catalog file, or every .yaml, .yml and .json file of a
// directory (a mounted ConfigMap: its hidden ..data plumbing is skipped).
func LoadPath(path string) (*Catalog, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, unreadable(err)
	}
	if !st.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, unreadable(err)
		}
		return Parse(data, path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, unreadable(err)
	}
	var docs []document
	var hidden []string
	for _, e := range entries {
		name := e.Name()
		switch strings.ToLower(filepath.Ext(name)) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		if strings.HasPrefix(name, ".") {
			if !strings.HasPrefix(name, "..") {
				hidden = append(hidden, name)
			}
			// Hidden: the kubelet's own (..data, ..2026_…), and the
			// configuration of tools in a folder a repository fills
			// (.yamllint.yml, .pre-commit-config.yaml), macOS's ._ twins.
			continue
		}
		file := filepath.Join(path, name)
		if fi, err := os.Stat(file); err != nil || !fi.Mode().IsRegular() {
			continue // a dangling link or a folder with a catalog-like name
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, unreadable(err)
		}
		docs = append(docs, document{name: file, data: data})
	}
	if len(docs) == 0 {
		if len(hidden) > 0 {
			return nil, fault.New(fault.Usage, "the connection catalog folder %s has no .yaml, .yml or .json file but hidden ones (%s), which are not read; name the catalog's files without a leading dot", path, strings.Join(hidden, ", "))
		}
		return nil, fault.New(fault.Usage, "the connection catalog folder %s has no .yaml, .yml or .json file", path)
	}
	return parseDocuments(path, docs)
}

// unreadable is the error for a catalog that cannot be read: one this user
// may not read is a permission fault (exit 3), like any mount it may not
// read; anything else (missing, not a catalog) is the spec's (exit 2).
func unreadable(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fault.New(fault.Auth, "cannot read the connection catalog: %w; let this container's user (uid %d) read it: the file's owner or mode (a ConfigMap volume's defaultMode), or the pod's securityContext (runAsUser, fsGroup)", err, os.Getuid())
	}
	return fault.New(fault.Usage, "cannot read the connection catalog: %w", err)
}

type document struct {
	name string
	data []byte
}

// Parse reads a catalog in any of the shapes users have: upstream's agent
// config (artifactsStore, connections, notificationConnections), an object
// with "connections", a bare list, or a single connection; YAML or JSON.
func Parse(data []byte, source string) (*Catalog, error) {
	return parseDocuments(source, []document{{name: source, data: data}})
}

func parseDocuments(source string, docs []document) (*Catalog, error) {
	cat := &Catalog{Source: source, byName: map[string]*Connection{}}
	var errs []FieldError
	for _, d := range docs {
		for _, c := range parseDocument(&errs, d) {
			if prev, dup := cat.byName[c.Name]; dup && c.Name != "" {
				errs = append(errs, FieldError{Origin: c.Origin, Connection: c.Name, Field: "name",
					Message: fmt.Sprintf("is used twice (also by %s); names must be unique across the catalog", prev.Origin)})
				continue
			}
			cat.byName[c.Name] = c
			cat.Connections = append(cat.Connections, c)
		}
	}
	if err := asError(source, errs); err != nil {
		return nil, err
	}
	return cat, nil
}

var topLevelFields = []string{"artifactsStore", "connections", "notificationConnections"}

// agentFields are the other fields of upstream's agent config, read and
// ignored, so that the agent's config serves as it is; any other field is
// refused (a misspelt "connections" must not read as an empty catalog).
var agentFields = []string{"namespace", "isReplica", "compressedLogs", "sidecar", "init", "notifier", "cleaner",
	"useProxyEnvVarsInOps", "defaultScheduling", "defaultImagePullSecrets", "appSecretName", "agentSecretName",
	"runsSa", "executorRefreshInterval", "spawnerRefreshInterval"}

func parseDocument(errs *[]FieldError, d document) []*Connection {
	vs, err := decode(d.data)
	if err != nil {
		msg := "not valid YAML or JSON: " + err.Error()
		if strings.Contains(err.Error(), "already set in map") {
			msg = "a key is given twice in one mapping (YAML would keep the last one silently; keep one): " + err.Error()
		}
		*errs = append(*errs, FieldError{Origin: d.name, Message: msg})
		return nil
	}
	var out []*Connection
	for _, v := range vs {
		name := d.name
		if len(vs) > 1 {
			name = fmt.Sprintf("%s (document at line %d)", d.name, v.line)
		}
		out = append(out, parseValue(errs, name, v.v)...)
	}
	return out
}

// parseValue reads the connections of one decoded document.
func parseValue(errs *[]FieldError, origin string, v any) []*Connection {
	var out []*Connection
	add := func(role, at string, v any) {
		where := origin
		if at != "" {
			where += " " + at
		}
		if c := parseConnection(errs, where, v); c != nil {
			c.Role = role
			out = append(out, c)
		}
	}
	addList := func(role string, v any) {
		l, ok := v.([]any)
		if !ok {
			*errs = append(*errs, FieldError{Origin: origin, Field: role, Message: "expected a list of connections, got " + describe(v)})
			return
		}
		for i, e := range l {
			add(role, fmt.Sprintf("%s[%d]", role, i), e)
		}
	}
	switch x := v.(type) {
	case nil:
		return nil // an empty file
	case []any:
		for i, e := range x {
			add("connections", fmt.Sprintf("[%d]", i), e)
		}
	case map[string]any:
		if !isCatalogObject(x) {
			add("connections", "", x)
			return out
		}
		o, _ := newObject(errs, origin, "", "", x, "")
		if s, ok := o.get("artifactsStore"); ok {
			add("artifactsStore", "artifactsStore", s)
		}
		if l, ok := o.get("connections"); ok {
			addList("connections", l)
		}
		if l, ok := o.get("notificationConnections"); ok {
			addList("notificationConnections", l)
		}
		for _, k := range agentFields {
			o.get(k) // upstream's agent config: not about connections
		}
		o.done(topLevelFields...)
	default:
		*errs = append(*errs, FieldError{Origin: origin, Message: "expected a connection, a list of connections, or an object with artifactsStore/connections/notificationConnections; got " + describe(v)})
	}
	return out
}

// isCatalogObject tells an agent-config/catalog object from a single
// connection: a connection has a name or a kind at the top.
func isCatalogObject(m map[string]any) bool {
	for k := range m {
		switch normKey(k) {
		case "artifactsstore", "connections", "notificationconnections":
			return true
		}
	}
	_, hasName := m["name"]
	_, hasKind := m["kind"]
	return !hasName && !hasKind
}

// decoded is one document of a catalog file.
type decoded struct {
	v    any
	line int // the file's line the document starts on
}

// decode turns YAML or JSON into generic values, keeping numbers exact: one
// value for each YAML document (a file may hold several, separated by
// "---"; those holding nothing are left out). A key given twice in a
// mapping is an error, not the last one's win.
func decode(data []byte) ([]decoded, error) {
	docs := splitDocuments(data)
	var out []decoded
	for _, doc := range docs {
		v, err := decodeOne(doc.text)
		if err != nil {
			if len(docs) > 1 {
				return nil, fmt.Errorf("the document starting at line %d: %w", doc.line, err)
			}
			return nil, err
		}
		if v != nil {
			out = append(out, decoded{v, doc.line})
		}
	}
	return out, nil
}

// decodeOne decodes one YAML document.
func decodeOne(text []byte) (any, error) {
	trimmed := bytes.TrimSpace(text)
	if len(trimmed) == 0 {
		return nil, nil
	}
	j, err := yaml.YAMLToJSONStrict(text)
	if err != nil && bytes.Contains(text, []byte("<<")) {
		// The strict reading takes a key that overrides a merged one
		// (<<: *anchor, then name: b) for a key given twice: a document
		// with merge keys is read as YAML reads it.
		j, err = yaml.YAMLToJSON(text)
	}
	if err != nil {
		return nil, err
	}
	if (trimmed[0] == '{' || trimmed[0] == '[') && afterJSON(trimmed) {
		return nil, errors.New("more follows the first JSON value; give one value (a list of connections, or an object)")
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// afterJSON reports a JSON value followed by more than a comment, such as
// two objects one after the other: YAML reads the first and drops the rest.
func afterJSON(doc []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(doc))
	var v any
	if dec.Decode(&v) != nil {
		return false
	}
	rest := bytes.TrimSpace(doc[dec.InputOffset():])
	return len(rest) > 0 && rest[0] != '#'
}

// yamlDoc is one document of a YAML stream.
type yamlDoc struct {
	text []byte
	line int // the stream's line the text starts on
}

// splitDocuments splits a YAML stream at its document markers: a line that
// is "---" or starts with "--- " begins a document, a line "..." ends one.
func splitDocuments(data []byte) []yamlDoc {
	var docs []yamlDoc
	cur := yamlDoc{line: 1}
	n := 0
	for line := range bytes.Lines(data) {
		n++
		t := bytes.TrimRight(line, " \t\r\n")
		switch {
		case bytes.Equal(t, []byte("---")) || bytes.HasPrefix(line, []byte("--- ")) || bytes.HasPrefix(line, []byte("---\t")):
			docs = append(docs, cur)
			// Blank lines in place of those before it: the parser's line
			// numbers are the stream's.
			cur = yamlDoc{text: append(bytes.Repeat([]byte("\n"), n-1), line[3:]...), line: n}
		case bytes.Equal(t, []byte("...")):
			docs = append(docs, cur)
			cur = yamlDoc{text: bytes.Repeat([]byte("\n"), n), line: n + 1}
		default:
			cur.text = append(cur.text, line...)
		}
	}
	return append(docs, cur)
}

// Names returns the connection names, sorted.
func (c *Catalog) Names() []string {
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// IsValidation reports whether err is a catalog validation error.
func IsValidation(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve)
}
