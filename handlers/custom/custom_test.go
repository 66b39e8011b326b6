package custom

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/secret"
)

func TestEnvNames(t *testing.T) {
	for in, want := range map[string]string{
		"password": "password", "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "config.json": "config_json",
		".dockerconfigjson": "_dockerconfigjson", "azure-secret.json": "azure_secret_json", "1st": "_1st",
	} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"host": "HOST", "connectionString": "CONNECTION_STRING", "db_name": "DB_NAME", "url": "URL",
		"oauth2Token": "OAUTH2_TOKEN", "URL": "URL", "x-y": "X_Y",
	} {
		if got := schemaVarName(in); got != want {
			t.Errorf("schemaVarName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSchemaVars(t *testing.T) {
	got := schemaVars(map[string]any{"host": "db", "port": json.Number("5432"), "ssl": true, "opts": map[string]any{"a": 1}, "none": nil})
	want := []string{"INITIALIZER_SCHEMA_HOST=db", `INITIALIZER_SCHEMA_OPTS={"a":1}`, "INITIALIZER_SCHEMA_PORT=5432", "INITIALIZER_SCHEMA_SSL=true"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("schemaVars = %q, want %q", got, want)
	}
}

func TestSchemaAddress(t *testing.T) {
	for _, tc := range []struct {
		kind   connections.Kind
		schema map[string]any
		addr   string
		note   string
		err    string
	}{
		{kind: connections.Postgres, schema: map[string]any{"host": "db", "port": json.Number("6432")}, addr: "db:6432"},
		{kind: connections.Postgres, schema: map[string]any{"host": "db"}, addr: "db:5432"},
		{kind: connections.MySQL, schema: map[string]any{"Host": "db:3307"}, addr: "db:3307"},
		{kind: connections.Redis, schema: map[string]any{"hostname": "::1", "port": "6380"}, addr: "[::1]:6380"},
		{kind: connections.HTTP, schema: map[string]any{"url": "https://api.example.com/v1"}, addr: "api.example.com:443"},
		{kind: connections.JDBC, schema: map[string]any{"url": "jdbc:postgresql://db:5433/x"}, addr: "db:5433"},
		{kind: connections.GRPC, schema: map[string]any{"endpoint": "grpc://svc/x", "port": json.Number("50051")}, addr: "svc:50051"},
		{kind: connections.Custom, schema: map[string]any{"host": "svc"}, note: "no well-known one"},
		{kind: connections.Slack, schema: map[string]any{"channel": "#x"}},
		{kind: connections.Custom, schema: map[string]any{"url": "not a url"}, note: "not a URL"},
		{kind: connections.Postgres, schema: map[string]any{"host": "db", "port": json.Number("70000")}, err: "not a port number"},
		{kind: connections.Postgres, schema: map[string]any{"host": "db", "port": "abc"}, err: "not a port number"},
	} {
		c := &connections.Connection{Name: "c", Kind: tc.kind, Schema: tc.schema}
		a, err := schemaAddress(c)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) || fault.ClassOf(err) != fault.Usage {
				t.Errorf("%v: error %v, want usage error with %q", tc.schema, err, tc.err)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.schema, err)
		case a.Addr != tc.addr || !strings.Contains(a.Note, tc.note):
			t.Errorf("%v: %+v, want addr %q note %q", tc.schema, a, tc.addr, tc.note)
		}
	}
}

func TestScrubWriter(t *testing.T) {
	secret.Register("hunter2-secret")
	var b strings.Builder
	w := newScrubWriter(&b, []string{"hunter2-secret"})
	for _, chunk := range []string{"pass: hun", "ter2-secret\nprogress 10%\r", "progress 20%\rno newline hunter2-secret"} {
		w.Write([]byte(chunk))
	}
	if got := b.String(); got != "pass: [redacted]\nprogress 10%\rprogress 20%\r" {
		t.Errorf("before flush: %q", got)
	}
	w.Flush()
	if got := b.String(); !strings.HasSuffix(got, "no newline [redacted]") {
		t.Errorf("after flush: %q", got)
	}
}

func TestProgramNames(t *testing.T) {
	if got := programNames(connections.HiveCLI); strings.Join(got, ",") != "initializer-handler-hive_cli,initializer-handler-hive-cli" {
		t.Errorf("hive_cli: %v", got)
	}
	if got := programNames(connections.Slack); len(got) != 1 || got[0] != "initializer-handler-slack" {
		t.Errorf("slack: %v", got)
	}
}

func TestScrubJSON(t *testing.T) {
	const pw = "S3cretPGpass!"
	secret.Register(pw)
	var details map[string]any
	dec := json.NewDecoder(strings.NewReader(`{
		"leak": "sum ` + pw + `",
		"nested": {"list": ["a", "` + pw + `", {"deeper": "` + pw + `"}], "n": 5, "ok": true, "none": null},
		"` + pw + `": "as a key",
		"[redacted]": "a key that already reads so",
		"pin": 12345678
	}`))
	dec.UseNumber()
	if err := dec.Decode(&details); err != nil {
		t.Fatal(err)
	}
	secret.Register("12345678")
	got := scrubJSON(details).(map[string]any)
	b, _ := json.Marshal(got)
	if strings.Contains(string(b), pw) || strings.Contains(string(b), "12345678") {
		t.Fatalf("a secret survived: %s", b)
	}
	want := `{"[redacted]":"a key that already reads so","[redacted] #2":"as a key","leak":"sum [redacted]",` +
		`"nested":{"list":["a","[redacted]",{"deeper":"[redacted]"}],"n":5,"none":null,"ok":true},"pin":"[redacted]"}`
	if string(b) != want {
		t.Errorf("scrubbed:\n%s\nwant\n%s", b, want)
	}
}

// The missing-handler error sends users to a README section: it must exist.
func TestMissingHandlerNamesREADMESection(t *testing.T) {
	h := &Handler{lookPath: func(string) (string, error) { return "", errors.New("not found") }, environ: func() []string { return nil }}
	_, err := h.resolve(&connections.Connection{Name: "alerts", Kind: connections.Slack})
	if err == nil || fault.ClassOf(err) != fault.Usage {
		t.Fatalf("resolve: %v, want a usage error", err)
	}
	readme, rerr := os.ReadFile("../../README.md")
	if rerr != nil {
		t.Fatal(rerr)
	}
	var named []string
	for _, line := range strings.Split(string(readme), "\n") {
		if title, ok := strings.CutPrefix(line, "#"); ok {
			title = strings.TrimSpace(strings.TrimLeft(title, "#"))
			if strings.Contains(err.Error(), fmt.Sprintf("see %q in the README", title)) {
				named = append(named, title)
			}
		}
	}
	if len(named) != 1 {
		t.Errorf("the error names no README section (or several: %q):\n%v", named, err)
	}
}

// A secret that spans lines is blanked whole, however the handler's output
// is cut into writes; a line of it alone is blanked as a line.
func TestScrubWriterMultiLineSecret(t *testing.T) {
	const key = "-----BEGIN KEY-----\nMIIEpAIBAAKCAQEA7xQ2w3E4\nqL9zZ0b3rt\n-----END KEY-----"
	secret.Register(key)
	const long = "0123456789-long-line-secret"
	secret.Register(long)
	secrets := []string{key, long}
	const blanked = "key:\n[redacted]\ndone\n"
	for _, tc := range []struct {
		chunks []string
		want   string
	}{
		{[]string{"key:\n-----BEGIN KEY-----\n", "MIIEpAIBAAKCAQEA7xQ2w3E4\n", "qL9zZ0b3rt\n", "-----END KEY-----\ndone\n"}, blanked},
		{[]string{"key:\n-----BEGIN KEY-----\nMIIEpAIBAAKCAQEA7xQ2w3E4\nqL9z", "Z0b3rt\n-----END KEY-----\ndone\n"}, blanked},
		{[]string{"key:\n" + key + "\ndone\n"}, blanked},
		// Only the first lines: relayed once the next line differs, the
		// line of the key's body blanked (its armour is no secret).
		{[]string{"key:\n-----BEGIN KEY-----\n", "MIIEpAIBAAKCAQEA7xQ2w3E4\n", "other\n", "done\n"},
			"key:\n-----BEGIN KEY-----\n[redacted]\nother\ndone\n"},
	} {
		var b strings.Builder
		w := newScrubWriter(&b, secrets)
		for _, c := range tc.chunks {
			w.Write([]byte(c))
			if strings.Contains(b.String(), "MIIEpAIBAAKCAQEA7xQ2w3E4\nqL9z") || strings.Contains(b.String(), "qL9zZ0b3rt") {
				t.Fatalf("%q: a line of the secret was written: %q", tc.chunks, b.String())
			}
		}
		w.Flush()
		if b.String() != tc.want {
			t.Errorf("%q: relayed %q, want %q", tc.chunks, b.String(), tc.want)
		}
	}

	// A line longer than the relay holds is written in pieces: never
	// through a secret.
	var b strings.Builder
	w := newScrubWriter(&b, secrets)
	line := strings.Repeat("x", maxPending-10) + long + "y\n"
	for i := 0; i < len(line); i += 4096 {
		w.Write([]byte(line[i:min(i+4096, len(line))]))
	}
	w.Flush()
	if got := b.String(); got != strings.Repeat("x", maxPending-10)+"[redacted]y\n" {
		t.Errorf("long line: %d bytes, ends %q", len(got), got[max(0, len(got)-40):])
	}
}
