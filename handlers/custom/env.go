package custom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/secret"
)

// maxEnvValue is the largest key value passed as an environment variable;
// Linux refuses a single one above 128 KiB (MAX_ARG_STRLEN).
const maxEnvValue = 100 << 10

// envName turns a key name into an environment variable name: every
// character other than a letter, a digit or _ becomes _, and a leading digit
// gets a _ in front (config.json → config_json, .dockerconfigjson →
// _dockerconfigjson).
func envName(key string) string {
	b := []byte(key)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

// passed describes the keys given to the handler, for the log.
type passed struct {
	Vars    []string // variable names set from keys
	Skipped []string // keys not passed, with the reason
	Secrets []string // the secret's values passed, for the relay
}

// environment builds the handler's environment: the initializer's own, the
// connection's env entries with literal values (when not already set), the
// keys of its mounted secret and configMap (the secret winning), then the
// protocol's INITIALIZER_* variables.
func (h *Handler) environment(req *handlers.Request, resultFile string) ([]string, passed, error) {
	c := req.Conn
	var info passed
	base := h.environ()
	have := map[string]bool{}
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		have[name] = true
	}
	env := append([]string(nil), base...)
	for _, e := range c.Env {
		name, _ := e["name"].(string)
		value, isStr := e["value"].(string)
		if name != "" && isStr && !have[name] {
			env = append(env, name+"="+value)
		}
	}
	// configMap first, so that a secret key of the same name overrides it.
	res := resources(c)
	fromKeys := map[string]string{}
	for i := len(res) - 1; i >= 0; i-- {
		kind, r := res[i].kind, res[i].r
		if r.MountPath == "" {
			continue
		}
		keys, err := mountedKeys(r)
		if err != nil {
			return nil, info, err
		}
		keyOf := map[string]string{} // variable name → the key of this resource that set it
		for _, k := range keys {
			name := envName(k)
			p := filepath.Join(r.MountPath, k)
			if strings.HasPrefix(name, "INITIALIZER_") {
				info.Skipped = append(info.Skipped, fmt.Sprintf("%s (the INITIALIZER_ prefix is the protocol's; read the file %s)", k, p))
				continue
			}
			if other, taken := keyOf[name]; taken {
				info.Skipped = append(info.Skipped, fmt.Sprintf("%s (its variable %s is the key %s's; read the file %s)", k, name, other, p))
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, info, fmt.Errorf("%s: reading %s key %s: %w", c, kind, p, err)
			}
			data = bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
			if len(data) > maxEnvValue || bytes.IndexByte(data, 0) >= 0 {
				info.Skipped = append(info.Skipped, fmt.Sprintf("%s (binary or over %d KiB; read the file %s)", k, maxEnvValue>>10, p))
				continue
			}
			// Secret values are remembered so that they are blanked from
			// the relayed output and from every log line.
			v := secret.New(string(data), kind == "secret", p).Reveal()
			fromKeys[name], keyOf[name] = v, k
			if t := strings.TrimSpace(v); kind == "secret" && t != "" {
				info.Secrets = append(info.Secrets, t) // trimmed, as secret.Register keeps it
			}
		}
	}
	names := make([]string, 0, len(fromKeys))
	for n := range fromKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		env = append(env, n+"="+fromKeys[n])
	}
	info.Vars = names

	paths := make([]map[string]string, 0, len(req.Paths))
	for _, m := range req.Paths {
		src := m.Src
		if m.SrcDir && src != "" {
			src += "/" // given as a folder
		}
		paths = append(paths, map[string]string{"src": src, "dst": m.Dst})
	}
	pathsJSON, _ := json.Marshal(paths)
	proto := []string{
		"INITIALIZER_CONNECTION=" + string(c.JSON()),
		"INITIALIZER_CONNECTION_NAME=" + c.Name,
		"INITIALIZER_KIND=" + string(c.Kind),
		"INITIALIZER_PATH=" + req.Path,
		"INITIALIZER_PATHS=" + string(pathsJSON),
		"INITIALIZER_WORKERS=" + strconv.Itoa(req.Workers),
		"INITIALIZER_FORCE=" + strconv.FormatBool(req.Force),
		"INITIALIZER_CHECKSUM=" + strconv.FormatBool(req.Checksum),
		"INITIALIZER_RESULT=" + resultFile,
	}
	dirVar := map[string]string{"secret": "INITIALIZER_SECRET_DIR", "configMap": "INITIALIZER_CONFIG_MAP_DIR"}
	for _, d := range res {
		if d.r.MountPath != "" {
			proto = append(proto, dirVar[d.kind]+"="+d.r.MountPath)
		}
	}
	proto = append(proto, schemaVars(c.Fields())...)
	return append(env, proto...), info, nil
}

// schemaVars flattens a free-form schema into INITIALIZER_SCHEMA_<FIELD>
// variables (upper-cased envName): strings as they are, numbers and booleans
// as written, objects and lists as JSON. Shell handlers need no JSON parser.
func schemaVars(fields map[string]any) []string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		var s string
		switch v := fields[k].(type) {
		case nil:
			continue
		case string:
			s = v
		case json.Number:
			s = v.String()
		case bool:
			s = strconv.FormatBool(v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				continue
			}
			s = string(b)
		}
		out = append(out, "INITIALIZER_SCHEMA_"+schemaVarName(k)+"="+s)
	}
	return out
}

// schemaVarName upper-cases a schema field name, splitting camelCase:
// connectionString → CONNECTION_STRING, db_name → DB_NAME.
func schemaVarName(field string) string {
	var b strings.Builder
	prevLower := false
	for _, r := range envName(field) {
		isUpper := r >= 'A' && r <= 'Z'
		if isUpper && prevLower {
			b.WriteByte('_')
		}
		prevLower = r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
