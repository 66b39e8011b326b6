package registry

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		url                      string
		key, canonical, api, sch string
		hub                      bool
		err                      string
	}{
		{url: "registry.example.com/org/repo", key: "registry.example.com", canonical: "registry.example.com", api: "registry.example.com"},
		{url: "https://Registry.Example.com:5000/org", key: "registry.example.com:5000", canonical: "registry.example.com:5000", api: "registry.example.com:5000", sch: "https"},
		{url: "http://127.0.0.1:5000", key: "127.0.0.1:5000", canonical: "127.0.0.1:5000", api: "127.0.0.1:5000", sch: "http"},
		{url: "localhost:5000/x", key: "localhost:5000", canonical: "localhost:5000", api: "localhost:5000"},
		{url: "localhost/x", key: "localhost", canonical: "localhost", api: "localhost"},
		{url: "[::1]:5000/x", key: "[::1]:5000", canonical: "[::1]:5000", api: "[::1]:5000"},
		{url: "aws_account_id.dkr.ecr.region.amazonaws.com", key: "aws_account_id.dkr.ecr.region.amazonaws.com", canonical: "aws_account_id.dkr.ecr.region.amazonaws.com", api: "aws_account_id.dkr.ecr.region.amazonaws.com"},
		{url: "docker.io/myorg/app", key: hubConfigKey, canonical: "index.docker.io", api: "registry-1.docker.io", sch: "https", hub: true},
		{url: "https://index.docker.io/v1/", key: hubConfigKey, canonical: "index.docker.io", api: "registry-1.docker.io", sch: "https", hub: true},
		{url: "registry-1.docker.io", key: hubConfigKey, canonical: "index.docker.io", api: "registry-1.docker.io", sch: "https", hub: true},
		{url: "myorg/app", key: hubConfigKey, canonical: "index.docker.io", api: "registry-1.docker.io", sch: "https", hub: true},
		{url: "myorg", key: hubConfigKey, canonical: "index.docker.io", api: "registry-1.docker.io", sch: "https", hub: true},
		{url: "ftp://host", err: "scheme"},
		{url: "https://user:pw@host", err: "credentials"},
		{url: "http://docker.io/x", err: "https only"},
		{url: "host:99999", err: "port"},
		{url: "::1/x", err: "brackets"},
		{url: "/org", err: "no registry host"},
	} {
		ep, err := parseEndpoint(tc.url)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one containing %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		want := endpoint{ConfigKey: tc.key, Canonical: tc.canonical, APIHost: tc.api, Scheme: tc.sch, Hub: tc.hub}
		if ep != want {
			t.Errorf("%s: %+v, want %+v", tc.url, ep, want)
		}
	}
}

func TestCanonicalKey(t *testing.T) {
	for in, want := range map[string]string{
		"https://index.docker.io/v1/":     "index.docker.io",
		"docker.io":                       "index.docker.io",
		"registry-1.docker.io":            "index.docker.io",
		"https://Registry.example.com/v2": "registry.example.com",
		"http://127.0.0.1:5000":           "127.0.0.1:5000",
		"gcr.io":                          "gcr.io",
	} {
		if got := canonicalKey(in); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMergeKeepsOthersAndReplacesSpellings(t *testing.T) {
	dst, err := parseConfig([]byte(`{
		"auths": {
			"https://reg.example.com/v1/": {"auth": "b2xkOm9sZA=="},
			"reg.example.com": {"auth": "b2xkOm9sZA=="},
			"other.example.com": {"auth": "b3RoZXI6b3RoZXI=", "email": "x@y"}
		},
		"credHelpers": {"reg.example.com": "ecr-login", "gcr.io": "gcloud"},
		"credsStore": "desktop",
		"HttpHeaders": {"User-Agent": "x"},
		"x-unknown": [1, 2, {"a": null}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	src := configFile{}
	src.setSection("auths", map[string]json.RawMessage{"reg.example.com": json.RawMessage(`{"auth":"bmV3Om5ldw=="}`)})
	mr, err := merge(dst, src)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(mr.Set, []string{"reg.example.com"}) || !reflect.DeepEqual(mr.Replaced, []string{"https://reg.example.com/v1/"}) ||
		!reflect.DeepEqual(mr.HelpersDropped, []string{"reg.example.com"}) || mr.CredsStore != "desktop" {
		t.Errorf("merge result %+v", mr)
	}
	var got map[string]any
	if err := json.Unmarshal(dst.encode(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"auths": map[string]any{
			"reg.example.com":   map[string]any{"auth": "bmV3Om5ldw=="},
			"other.example.com": map[string]any{"auth": "b3RoZXI6b3RoZXI=", "email": "x@y"},
		},
		"credHelpers": map[string]any{"gcr.io": "gcloud"},
		"credsStore":  "desktop",
		"HttpHeaders": map[string]any{"User-Agent": "x"},
		"x-unknown":   []any{1.0, 2.0, map[string]any{"a": nil}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged:\n%s", dst.encode())
	}
}

func TestParseConfigRejects(t *testing.T) {
	// The errors complete "the existing config.json …".
	for in, want := range map[string]string{
		`not json`:             "is not valid JSON (invalid character",
		`{"auths": {`:          "is not valid JSON (unexpected EOF)",
		`[]`:                   "is a JSON array, not an object",
		`null`:                 "is not a JSON object",
		`{"auths": []}`:        `is not a valid docker config: "auths" is not a JSON object`,
		`{"credHelpers": "x"}`: `is not a valid docker config: "credHelpers" is not a JSON object`,
		`{"auths":{}} {"x":1}`: "is not valid JSON (more follows the first object)",
		`{"auths":{}} x`:       "is not valid JSON (more follows the first object)",
	} {
		if _, err := parseConfig([]byte(in)); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("parseConfig(%s): %v, want %q", in, err, want)
		}
	}
}

// The docker CLI reads an empty config.json as an empty config.
func TestParseConfigEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", " \t\r\n"} {
		c, err := parseConfig([]byte(in))
		if err != nil || c == nil || len(c) != 0 {
			t.Errorf("parseConfig(%q) = %v, %v; want an empty config", in, c, err)
		}
	}
}

func TestCredentialsOf(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("bob:pa:ss"))
	c, err := credentialsOf(json.RawMessage(`{"auth":"`+auth+`"}`), "f")
	if err != nil || c.Username.Reveal() != "bob" || c.Password.Reveal() != "pa:ss" || c.kind() != "username and password" {
		t.Errorf("auth: %+v %v", c, err)
	}
	if c.Password.String() != "[redacted]" {
		t.Errorf("password prints as %q", c.Password.String())
	}
	c, err = credentialsOf(json.RawMessage(`{"username":"u","password":"p"}`), "f")
	if err != nil || c.Username.Reveal() != "u" || c.Password.Reveal() != "p" {
		t.Errorf("username/password: %+v %v", c, err)
	}
	c, err = credentialsOf(json.RawMessage(`{"identitytoken":"tok"}`), "f")
	if err != nil || c.IdentityToken.Reveal() != "tok" || c.kind() != "identity token" {
		t.Errorf("identitytoken: %+v %v", c, err)
	}
	for _, bad := range []string{`{"auth":"***"}`, `{"auth":"` + base64.StdEncoding.EncodeToString([]byte("nocolon")) + `"}`, `"x"`} {
		if _, err := credentialsOf(json.RawMessage(bad), "f"); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	// An entry written from credentials reads back the same.
	in := &credentials{Username: c.Username, Password: c.IdentityToken}
	back, err := credentialsOf(in.entry(), "f")
	if err != nil || back.Password.Reveal() != "tok" {
		t.Errorf("round trip: %+v %v", back, err)
	}
}

func TestParseChallenges(t *testing.T) {
	got := parseChallenges([]string{
		`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"`,
		`Basic realm="Registry Realm", Other x=1`,
	})
	want := map[string]map[string]string{
		"bearer": {"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull,push"},
		"basic":  {"realm": "Registry Realm"},
		"other":  {"x": "1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// A host DNS does not know: Docker Hub's means the cluster's DNS (or
// egress), any other the url to fix.
func TestNetErrorUnknownHost(t *testing.T) {
	v := &verifier{conn: &connections.Connection{Name: "r", Kind: connections.Registry}, attempts: 1}
	for host, want := range map[string]string{
		"registry-1.docker.io": "check its DNS and network access to Docker Hub",
		"registry.example":     "; fix schema.url",
	} {
		err := v.netError(host, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}, nil)
		if fault.ClassOf(err) != fault.NotFound || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", host, err)
		}
	}
}
