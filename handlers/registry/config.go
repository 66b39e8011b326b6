package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/initializer/initializer/secret"
)

// configFile is a docker config.json kept as raw JSON, so that every key this
// tool does not know (credsStore, HttpHeaders, proxies, plugins' settings…)
// is written back exactly as it was read.
type configFile map[string]json.RawMessage

// parseConfig reads a docker config. "auths" and "credHelpers", when
// present, must be objects. An empty file (or one of white space only) is an
// empty config, as the docker CLI reads it. Errors complete a sentence about
// the file: "the existing config.json " + err.
func parseConfig(data []byte) (configFile, error) {
	var c configFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return configFile{}, nil
		case errors.As(err, &te):
			return nil, fmt.Errorf("is a JSON %s, not an object", te.Value)
		}
		return nil, fmt.Errorf("is not valid JSON (%v)", err)
	}
	if c == nil {
		return nil, errors.New("is not a JSON object")
	}
	if dec.More() || len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		// The docker CLI refuses such a file; merging would drop the rest.
		return nil, errors.New("is not valid JSON (more follows the first object)")
	}
	for _, k := range []string{"auths", "credHelpers"} {
		if _, err := c.section(k); err != nil {
			return nil, fmt.Errorf("is not a valid docker config: %w", err)
		}
	}
	return c, nil
}

// readConfig reads the docker config at path; a missing file is an empty
// config and exists is false.
func readConfig(path string) (c configFile, exists bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return configFile{}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	c, err = parseConfig(data)
	return c, true, err
}

// section returns the object under key ("auths", "credHelpers"), empty when
// absent.
func (c configFile) section(key string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	raw, ok := c[key]
	if !ok || string(raw) == "null" {
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%q is not a JSON object", key)
	}
	return out, nil
}

func (c configFile) setSection(key string, m map[string]json.RawMessage) {
	if len(m) == 0 {
		delete(c, key)
		return
	}
	b, err := json.Marshal(m)
	if err != nil { // raw messages that were valid when read
		panic(err)
	}
	c[key] = b
}

// keysFor returns the keys of section whose canonical form is canonical,
// the exact key first.
func keysFor(section map[string]json.RawMessage, canonical string) []string {
	var out []string
	for k := range section {
		if canonicalKey(k) == canonical {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i] == canonical) != (out[j] == canonical) {
			return out[i] == canonical
		}
		return out[i] < out[j]
	})
	return out
}

// put sets section[key] = value after removing every other spelling of the
// same registry (https://host, host/v1/, …), so no stale entry is left for a
// client to find first. It returns the keys it removed.
func put(section map[string]json.RawMessage, key string, value json.RawMessage) []string {
	var removed []string
	for _, k := range keysFor(section, canonicalKey(key)) {
		if k != key {
			delete(section, k)
			removed = append(removed, k)
		}
	}
	section[key] = value
	return removed
}

// mergeResult says what a merge changed, for the log.
type mergeResult struct {
	Set            []string // auths keys written
	Replaced       []string // auths keys that held other spellings of a written registry
	HelpersDropped []string // credHelpers entries removed because they would shadow a written auth
	HelpersSet     []string // credHelpers keys copied from the source config
	CredsStore     string   // the existing credsStore, which clients ask before auths
}

// merge writes into dst the auths (and credHelpers) of src: each registry in
// src replaces dst's entry for the same registry; everything else in dst is
// kept. A credHelpers entry in dst for a registry src gives auths for (and no
// helper) is removed, since clients would ask the helper instead.
func merge(dst configFile, src configFile) (mergeResult, error) {
	var res mergeResult
	dstAuths, err := dst.section("auths")
	if err != nil {
		return res, err
	}
	dstHelpers, err := dst.section("credHelpers")
	if err != nil {
		return res, err
	}
	srcAuths, err := src.section("auths")
	if err != nil {
		return res, err
	}
	srcHelpers, err := src.section("credHelpers")
	if err != nil {
		return res, err
	}
	for _, k := range sortedKeys(srcAuths) {
		res.Replaced = append(res.Replaced, put(dstAuths, k, srcAuths[k])...)
		res.Set = append(res.Set, k)
		if len(keysFor(srcHelpers, canonicalKey(k))) == 0 {
			for _, hk := range keysFor(dstHelpers, canonicalKey(k)) {
				delete(dstHelpers, hk)
				res.HelpersDropped = append(res.HelpersDropped, hk)
			}
		}
	}
	for _, k := range sortedKeys(srcHelpers) {
		put(dstHelpers, k, srcHelpers[k])
		res.HelpersSet = append(res.HelpersSet, k)
	}
	dst.setSection("auths", dstAuths)
	dst.setSection("credHelpers", dstHelpers)
	if raw, ok := dst["credsStore"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			res.CredsStore = s
		}
	}
	return res, nil
}

// encode returns the config as the docker CLI writes it: tab-indented.
func (c configFile) encode() []byte {
	b, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// authEntry is one "auths" entry of a docker config.
type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// credentialsOf reads the credentials of an auths entry; source names the
// file and key, for messages.
func credentialsOf(raw json.RawMessage, source string) (*credentials, error) {
	var e authEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("%s is not an object with auth, username/password or identitytoken", source)
	}
	c := &credentials{Source: source}
	user, pass := e.Username, e.Password
	if e.Auth != "" {
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Auth))
		if err != nil {
			return nil, fmt.Errorf("%s: auth is not base64 (it must be base64 of username:password)", source)
		}
		u, p, ok := strings.Cut(string(dec), ":")
		if !ok {
			return nil, fmt.Errorf("%s: auth does not decode to username:password", source)
		}
		user, pass = u, p
	}
	if user != "" {
		c.Username = secret.New(user, false, source)
	}
	if pass != "" {
		c.Password = secret.New(pass, true, source)
	}
	if e.IdentityToken != "" {
		c.IdentityToken = secret.New(e.IdentityToken, true, source)
	}
	if e.RegistryToken != "" {
		c.RegistryToken = secret.New(e.RegistryToken, true, source)
	}
	return c, nil
}
