package connections

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initializer/initializer/fault"
)

func TestParseUpstreamAgentConfig(t *testing.T) {
	cat, err := LoadPath("../examples/catalog/upstream.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		kind Kind
		role string
	}{
		{"azure", WASB, "artifactsStore"},
		{"repo-test", Git, "connections"},
		{"docker-connection", Registry, "connections"},
		{"my-slack", Slack, "notificationConnections"},
	}
	if len(cat.Connections) != len(want) {
		t.Fatalf("got %d connections", len(cat.Connections))
	}
	for i, w := range want {
		c := cat.Connections[i]
		if c.Name != w.name || c.Kind != w.kind || c.Role != w.role {
			t.Errorf("connection %d = %s/%s/%s, want %+v", i, c.Name, c.Kind, c.Role, w)
		}
	}
	if b := cat.Connections[0].Bucket(); b == nil || b.Bucket != "wasbs://container@account.blob.core.windows.net/" {
		t.Errorf("bucket schema = %+v", b)
	}
	if g := cat.Connections[1].Git(); g == nil || g.URL != "https://gitlab.com/org/test" {
		t.Errorf("git schema = %+v", g)
	}
	if h := cat.Connections[2].Host(); h == nil || h.URL != "org/repo" || cat.Connections[2].Secret.MountPath != "/kaniko/.docker" {
		t.Errorf("registry = %+v %+v", h, cat.Connections[2].Secret)
	}
	if cat.ArtifactsStore().Name != "azure" {
		t.Error("artifacts store")
	}
	if _, err := cat.Get("nope"); fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), "repo-test") {
		t.Errorf("Get(nope) = %v", err)
	}
}

func TestParseShapes(t *testing.T) {
	one := `{"name":"a","kind":"s3","schema":{"bucket":"s3://b"}}`
	for name, doc := range map[string]string{
		"single":      one,
		"list":        "[" + one + "]",
		"connections": `{"connections":[` + one + `]}`,
		"yaml":        "- name: a\n  kind: s3\n  schema: {bucket: 's3://b'}\n",
		"snake":       `{"connections":[{"name":"a","kind":"s3","schema":{"bucket":"s3://b","kind":"s3"}}]}`,
	} {
		cat, err := Parse([]byte(doc), name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		c, err := cat.Get("a")
		if err != nil || c.Bucket().Bucket != "s3://b" {
			t.Errorf("%s: %+v %v", name, c, err)
		}
	}
}

func TestParseFields(t *testing.T) {
	doc := `
- name: claim
  kind: volume_claim
  schema: {volume_claim: pvc-1, mount_path: /data, read_only: "true"}
  config_map: {name: cm, mount_path: /etc/cm, items: [A, B], default_mode: 0600}
  env: [{name: X, value: "1"}]
  annotations: {a: b}
  tags: [t1]
  is_alias: true
- name: hp
  kind: host_path
  schema: {hostPath: /mnt/h, mountPath: /h}
  secret: {name: s, defaultMode: "0640"}
- name: repo
  kind: git
  schema: {url: "https://h/r", revision: main, flags: '["--depth 1","--no-tags"]'}
- name: repo2
  kind: git
  schema: {flags: "--depth 1,--no-tags"}
- name: repo3
  kind: git
- name: pg
  kind: postgres
  schema: {host: db, port: 5432}
- name: pd
  kind: pager_duty
`
	cat, err := Parse([]byte(doc), "doc")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cat.Get("claim")
	m := c.Mount()
	if m.VolumeClaim != "pvc-1" || m.MountPath != "/data" || !m.ReadOnly {
		t.Errorf("claim = %+v", m)
	}
	if c.ConfigMap.Name != "cm" || *c.ConfigMap.DefaultMode != 0o600 || len(c.ConfigMap.Items) != 2 || !c.IsAlias || c.Tags[0] != "t1" || c.Annotations["a"] != "b" || c.Env[0]["name"] != "X" {
		t.Errorf("claim fields = %+v %+v", c, c.ConfigMap)
	}
	c, _ = cat.Get("hp")
	if c.Mount().HostPath != "/mnt/h" || *c.Secret.DefaultMode != 0o640 {
		t.Errorf("hp = %+v", c.Mount())
	}
	for _, n := range []string{"repo", "repo2"} {
		c, _ = cat.Get(n)
		if f := c.Git().Flags; len(f) != 2 || f[0] != "--depth 1" || f[1] != "--no-tags" {
			t.Errorf("%s flags = %q", n, f)
		}
	}
	c, _ = cat.Get("repo3")
	if c.Git() == nil || c.Git().URL != "" {
		t.Errorf("repo3 = %+v", c.Git())
	}
	c, _ = cat.Get("pg")
	if c.Fields()["host"] != "db" {
		t.Errorf("pg = %+v", c.Fields())
	}
	c, _ = cat.Get("pd")
	if c.Kind != PagerDuty {
		t.Errorf("pd kind = %q", c.Kind)
	}
	// The wire form is camelCase.
	c, _ = cat.Get("claim")
	js := string(c.JSON())
	for _, want := range []string{`"volumeClaim":"pvc-1"`, `"mountPath":"/etc/cm"`, `"isAlias":true`, `"configMap"`} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON %s lacks %s", js, want)
		}
	}
}

func TestValidationReportsEveryMistake(t *testing.T) {
	_, err := LoadPath("../examples/catalog/mistakes.yaml")
	if fault.ClassOf(err) != fault.Usage {
		t.Fatalf("class = %v (%v)", fault.ClassOf(err), err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("not a ValidationError: %v", err)
	}
	want := []struct{ conn, field, msg string }{
		{"data", "kind", "valid kinds are: host_path"},
		{"models", "schema.bucket", "is required"},
		{"models", "schema.bukket", "unknown field; valid fields are bucket"},
		{"scratch", "schema.mountPath", "absolute path"},
	}
	if len(ve.Errors) != len(want) {
		t.Fatalf("got %d errors:\n%v", len(ve.Errors), err)
	}
	for i, w := range want {
		e := ve.Errors[i]
		if e.Connection != w.conn || e.Field != w.field || !strings.Contains(e.Message, w.msg) {
			t.Errorf("error %d = %+v, want %+v", i, e, w)
		}
	}
}

// TestParseDocuments reads every document of a YAML stream, as kubectl
// would: none is dropped.
func TestParseDocuments(t *testing.T) {
	for _, doc := range []string{
		"- {name: a, kind: slack}\n---\n- {name: b, kind: slack}\n",
		"---\n# the first\nname: a\nkind: slack\n--- # the second\nname: b\nkind: slack\n...\n",
		"--- {name: a, kind: slack}\n--- {name: b, kind: slack}\n---\n",
		"connections:\n  - name: a\n    kind: slack\n---\n\n---\nconnections: [{name: b, kind: slack}]\n",
		// YAML that starts like JSON (a quoted key), merge keys that
		// override a merged key, a comment before the first marker.
		"\"connections\":\n  - \"name\": \"a\"\n    \"kind\": \"slack\"\n  - {\"name\": \"b\", \"kind\": \"slack\"}\n",
		"connections:\n  - &base\n    name: a\n    kind: slack\n  - <<: *base\n    name: b\n",
		"# a header\n---\n- {name: a, kind: slack}\n---\n- {name: b, kind: slack}\n",
	} {
		cat, err := Parse([]byte(doc), "doc")
		if err != nil {
			t.Errorf("Parse(%q): %v", doc, err)
			continue
		}
		if got := strings.Join(cat.Names(), ","); got != "a,b" {
			t.Errorf("Parse(%q) has %s, want a,b", doc, got)
		}
	}
	// A line that only starts with dashes is content, not a marker.
	cat, err := Parse([]byte("name: a\nkind: slack\ndescription: |\n  ---not a marker\n"), "doc")
	if err != nil || cat.Connections[0].Description != "---not a marker\n" {
		t.Errorf("block scalar with dashes: %v %+v", err, cat)
	}
}

func TestValidationErrors(t *testing.T) {
	for _, tt := range []struct{ doc, want string }{
		{`[{"kind":"s3","schema":{"bucket":"s3://b"}}]`, `[0]: field name: is required`},
		{`[{"name":"a"}]`, `field kind: is required`},
		{`[{"name":"a","kind":"s3"}]`, `field schema: is required for kind s3`},
		{`[{"name":"a","kind":"s3","schema":{"bucket":"gs://b"}}]`, `scheme gs:// is not valid for kind s3`},
		{`[{"name":"a","kind":"gcs","schema":{"bucket":"gs://my bucket/x"}}]`, `field schema.bucket: bucket name: "my bucket" may not contain ' '`},
		{`[{"name":"a","kind":"wasb","schema":{"bucket":"wasbs://@acct.blob.core.windows.net/x"}}]`, `wasbs url must be of the form <container>@<account>.blob.core.windows.net`},
		{`[{"name":"a","kind":"wasb","schema":{"bucket":"wasbs://data/pre"}}]`, `wasbs url must be of the form`},
		{`[{"name":"a","kind":"wasb","schema":{"bucket":"https://acct.blob.core.windows.net"}}]`, `expected https://<account>.blob.core.windows.net/<container>/<path>`},
		{`[{"name":"a","kind":"wasb","schema":{"bucket":"https://acct.blob.core.windows.net/c?sv=1&sig"}}]`, `can only be a SAS token (sv=…&sig=…) (got "https://acct.blob.core.windows.net/c?[redacted]")`},
		{`[{"name":"a","kind":"gcs","schema":{"bucket":"bucket-only"}}]`, `expected a URL like gs://bucket/prefix`},
		{`[{"name":"a","kind":"s3","schema":{"bucket":"s3://b","kind":"gcs"}}]`, `field schema.kind: is "gcs"`},
		{`[{"name":"a","kind":"registry","schema":{"url":3}}]`, `field schema.url: expected a string, got the number 3`},
		{`[{"name":"a","kind":"git","schema":{"flags":[1]}}]`, `field schema.flags[0]: expected a string`},
		{`[{"name":"a","kind":"host_path","schema":{"hostPath":"/a","mountPath":"/b","readOnly":"maybe"}}]`, `schema.readOnly: expected true or false`},
		{`[{"name":"a","kind":"slack","secret":{"mountPath":"/s"}}]`, `field secret.name: is required`},
		{`[{"name":"a","kind":"slack","secret":{"name":"s","defaultMode":"rw"}}]`, `secret.defaultMode: expected a file mode`},
		{`[{"name":"a","kind":"slack","secret":"s"}]`, `field secret: expected an object, got the string "s"`},
		{`[{"name":"a","kind":"slack","env":[{"value":"x"}]}]`, `field env[0].name: is required`},
		{`[{"name":"a","kind":"slack","mountPath":"/x"}]`, `field mountPath: unknown field`},
		{`[{"name":"a","kind":"slack"},{"name":"a","kind":"ssh"}]`, `field name: is used twice`},
		{`[{"name":"a","kind":"slack","isAlias":true,"is_alias":false}]`, `given twice`},
		{`{"conections":[]}`, `field conections: unknown field; valid fields are artifactsStore`},
		{`{"namespace":"polyaxon","isReplica":false,"conections":[]}`, `field conections: unknown field`},
		{"- {name: a, kind: gcs, schema: {bucket: 'gs://a', bucket: 'gs://b'}}", `a key is given twice in one mapping`},
		{`{"connections":{"name":"a"}}`, `field connections: expected a list of connections`},
		{`"just a string"`, `expected a connection, a list of connections`},
		{"a: [b", `not valid YAML or JSON`},
		{"- {name: a, kind: gcs, schema: {bucket: 'gs://a', bucket: 'gs://b'}}", `key "bucket" already set`},
		{`[{"name":"a","kind":"gcs","schema":{"bucket":"gs://a","bucket":"gs://b"}}]`, `key "bucket" already set`},
		{`{"name":"a","kind":"slack"} {"name":"b","kind":"slack"}`, `more follows the first JSON value`},
		{"- {name: a, kind: slack}\n---\n- {name: b, kind: slack, bad: 1}\n", `(doc (document at line 2) [0]): field bad: unknown field`},
		{"- {name: a, kind: slack}\n---\n- {name: b, kind: [\n", `not valid YAML or JSON: the document starting at line 2: yaml: line 3:`},
		{"- {name: a, kind: slack}\n---\n- name: b\n  kind: slack\n  kind: ssh\n", `line 5: key "kind" already set`},
		{"# header\n---\n- {name: a, kind: slack, bad: 1}\n", `(doc [0]): field bad: unknown field`},
	} {
		_, err := Parse([]byte(tt.doc), "doc")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%s) = %v\nwant it to contain %q", tt.doc, err, tt.want)
		}
		if err != nil && fault.ClassOf(err) != fault.Usage {
			t.Errorf("Parse(%s): class %v", tt.doc, fault.ClassOf(err))
		}
	}
}

// TestLoadConfigMapFolder lays a folder out the way the kubelet mounts a
// ConfigMap: files are links into a timestamped ..data folder.
func TestLoadConfigMapFolder(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_11_27_10_00_00.123")
	os.Mkdir(ts, 0o755)
	os.WriteFile(filepath.Join(ts, "stores.yaml"), []byte("- {name: a, kind: s3, schema: {bucket: 's3://a'}}\n"), 0o644)
	os.WriteFile(filepath.Join(ts, "git.json"), []byte(`{"connections":[{"name":"b","kind":"git"}]}`), 0o644)
	os.WriteFile(filepath.Join(ts, "README.txt"), []byte("not a catalog"), 0o644)
	// Hidden files are not read: a tool's configuration in a folder a
	// repository fills.
	os.WriteFile(filepath.Join(ts, ".yamllint.yml"), []byte("extends: default\n"), 0o644)
	os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data"))
	for _, f := range []string{"stores.yaml", "git.json", "README.txt", ".yamllint.yml"} {
		os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f))
	}
	// macOS's metadata twin of a file copied from a Mac: not a catalog.
	os.WriteFile(filepath.Join(dir, "._stores.yaml"), []byte("\x00\x05\x16\x07"), 0o644)
	cat, err := LoadPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cat.Names(), ","); got != "a,b" {
		t.Errorf("names = %s", got)
	}
	// A folder of hidden files only: named, with why they are not read.
	only := t.TempDir()
	os.WriteFile(filepath.Join(only, ".conns.yaml"), []byte("- {name: c, kind: slack}\n"), 0o644)
	if _, err := LoadPath(only); err == nil || !strings.Contains(err.Error(), "hidden ones (.conns.yaml), which are not read") {
		t.Errorf("a folder of hidden files: %v", err)
	}
	// Names are unique across files.
	os.WriteFile(filepath.Join(dir, "dup.yml"), []byte("name: a\nkind: slack\n"), 0o644)
	if _, err := LoadPath(dir); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Errorf("duplicate across files: %v", err)
	}
}

func TestLoadSources(t *testing.T) {
	env := map[string]string{EnvCatalog: `{"connections":[{"name":"from-env","kind":"slack"}]}`}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cat, err := Load("", getenv)
	if err != nil || cat.Connections[0].Name != "from-env" {
		t.Fatalf("env: %v %v", cat, err)
	}
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`[{"name":"from-file","kind":"slack"}]`), 0o644)
	if cat, err = Load(file, getenv); err != nil || cat.Connections[0].Name != "from-file" {
		t.Fatalf("flag wins: %v %v", cat, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing"), getenv); fault.ClassOf(err) != fault.Usage {
		t.Errorf("missing file: %v", err)
	}
	if _, err := os.Stat(DefaultPath); err != nil {
		_, err := Load("", func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), "--catalog") {
			t.Errorf("no source: %v", err)
		}
	}
}

func FuzzParseCatalog(f *testing.F) {
	for _, s := range []string{
		`{"connections":[{"name":"a","kind":"s3","schema":{"bucket":"s3://b"}}]}`,
		"- name: a\n  kind: host_path\n  schema: {hostPath: /a, mountPath: /b}\n",
		`{"artifactsStore":{"name":"x","kind":"gcs","schema":{"bucket":"gs://x"}},"notificationConnections":[{"name":"n","kind":"slack"}]}`,
		`{"name":"g","kind":"git","schema":{"flags":"[\"--depth 1\"]"}}`,
		`[{"name":"a","kind":"s3","secret":{"name":"s","defaultMode":"0600","items":["K"]}}]`,
		"", "null", "[]", "{", "- - -", `{"name":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cat, err := Parse(data, "fuzz")
		if err != nil {
			if fault.ClassOf(err) != fault.Usage {
				t.Fatalf("error of class %v: %v", fault.ClassOf(err), err)
			}
			return
		}
		seen := map[string]bool{}
		for _, c := range cat.Connections {
			if c.Name == "" || seen[c.Name] {
				t.Fatalf("bad or duplicate name %q", c.Name)
			}
			seen[c.Name] = true
			if _, err := ParseKind(string(c.Kind)); err != nil {
				t.Fatalf("invalid kind accepted: %q", c.Kind)
			}
			if c.Kind.IsMount() && (c.Mount() == nil || !strings.HasPrefix(c.Mount().MountPath, "/")) {
				t.Fatalf("mount without absolute mountPath accepted: %+v", c)
			}
			if c.Kind.IsBucket() && (c.Bucket() == nil || c.Bucket().Bucket == "") {
				t.Fatalf("bucket without bucket accepted: %+v", c)
			}
			// The wire form parses back to the same connection.
			back, err := Parse(c.JSON(), "roundtrip")
			if err != nil || back.Connections[0].Name != c.Name || back.Connections[0].Kind != c.Kind {
				t.Fatalf("round trip of %s: %v", c.JSON(), err)
			}
		}
	})
}

// A catalog that is one connection: its errors name the file alone, with
// no stray space.
func TestSingleConnectionErrorOrigin(t *testing.T) {
	p := filepath.Join(t.TempDir(), "one.yaml")
	os.WriteFile(p, []byte("kind: s3\nschema: {bucket: \"s3://a\"}\n"), 0o644)
	_, err := LoadPath(p)
	if err == nil || !strings.Contains(err.Error(), p+": field name: is required") || strings.Contains(err.Error(), p+" :") {
		t.Errorf("%v", err)
	}
}
