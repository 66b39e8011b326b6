package handlers

import (
	"slices"
	"strings"
	"testing"

	"github.com/initializer/initializer/fault"
)

type name string

func (n name) String() string { return string(n) }

func TestCheckTargets(t *testing.T) {
	for _, tt := range []struct {
		dsts []string
		ok   bool
	}{
		{[]string{"a", "b", "ab", "a.txt"}, true},
		{[]string{"x", "x"}, false},
		{[]string{"all", "all/sub"}, false},
		{[]string{"q/g.bin", "q"}, false},
		{[]string{"", "a"}, false},
		{[]string{""}, true},
	} {
		names := make([]string, len(tt.dsts))
		for i := range names {
			names[i] = "--files \"f" + string(rune('0'+i)) + "\""
		}
		err := CheckTargets(name(`connection "c"`), names, tt.dsts)
		if (err == nil) != tt.ok {
			t.Errorf("%q: %v", tt.dsts, err)
		}
		if err != nil && (fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), `connection "c"`)) {
			t.Errorf("%q: %v", tt.dsts, err)
		}
	}
}

func TestParseMappingsInto(t *testing.T) {
	m, err := ParseMappings(name("c"), "--files", []string{"a/b.txt:dir/", "c.txt:d", "e"})
	if err != nil {
		t.Fatal(err)
	}
	if !m[0].Into || m[0].Dst != "dir" || m[1].Into || m[2].Into || m[2].Dst != "e" {
		t.Errorf("%+v", m)
	}
}

// ProxyHint blames the proxy only when the host and port that could not
// be reached are the proxy's, whole.
func TestProxyHint(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
	t.Setenv("http_proxy", "http://127.0.0.1:3128")
	t.Setenv("HTTP_PROXY", "")
	for msg, want := range map[string]string{
		`Post "https://x": proxyconnect tcp: dial tcp 127.0.0.1:3128: connect: connection refused`: "the proxy in HTTPS_PROXY / HTTP_PROXY could not be reached",
		"Failed to connect to 127.0.0.1 port 3128 after 0 ms: Couldn't connect to server":          "the proxy in $HTTPS_PROXY / $http_proxy could not be reached",
		"Failed to connect to 127.0.0.12 port 3128 after 0 ms: Couldn't connect to server":         "",
		"Failed to connect to 127.0.0.1 port 31280 after 0 ms: Couldn't connect to server":         "",
		"Could not resolve host: git.example.com":                                                  "",
	} {
		got := ProxyHint(msg)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("ProxyHint(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestParseMappingsEscapes(t *testing.T) {
	m, err := ParseMappings(name("c"), "--files", []string{`ck/model\:v2,a\,b.txt:xx\:y`, "d/:e", `f\\`})
	if err == nil {
		t.Fatalf("a backslash left in a name was taken: %+v", m)
	}
	m, err = ParseMappings(name("c"), "--files", []string{`ck/model\:v2,a\,b.txt:xx\:y`, "d/:e", "gg:./h"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{Src: "ck/model:v2", Dst: "ck/model:v2", Entry: `ck/model\:v2`},
		{Src: "a,b.txt", Dst: "xx:y", Entry: `a\,b.txt:xx\:y`, Whole: "a,b.txt:xx:y"},
		{Src: "d", Dst: "e", SrcDir: true, Entry: "d/:e", Whole: "d/:e"},
		{Src: "gg", Dst: "h", Entry: "gg:./h", Whole: "gg:./h"},
	}
	if !slices.Equal(m, want) {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
	for _, v := range [][]string{{""}, {"a,"}, {",a"}, {"a,,b"}} {
		if _, err := ParseMappings(name("c"), "--files", v); fault.ClassOf(err) != fault.Usage {
			t.Errorf("%q: %v", v, err)
		}
	}
}

// Name quotes the entry as given: a backslash is shown once.
func TestMappingName(t *testing.T) {
	m, err := ParseMappings(name("c"), "--files", []string{`a\,b:c\:d`})
	if err != nil {
		t.Fatal(err)
	}
	if got := m[0].Name("--files"); got != `--files "a\,b:c\:d"` {
		t.Errorf("Name = %s", got)
	}
}

// An entry split at a colon into a refused destination says it was split.
func TestParseMappingsColonHint(t *testing.T) {
	_, err := ParseMappings(name("c"), "--paths", []string{"rt/C:/y.txt"})
	if fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), `--paths "rt/C:/y.txt": `) || !strings.Contains(err.Error(), `for a colon in a name write \:`) {
		t.Errorf("%v", err)
	}
	_, err = ParseMappings(name("c"), "--paths", []string{`a\:b:../x`})
	if err == nil || !strings.Contains(err.Error(), `--paths "a\:b:../x": `) || !strings.Contains(err.Error(), `read as src:dst, source "a:b"`) {
		t.Errorf("%v", err)
	}
	// Control characters are shown escaped, never sent to the terminal.
	_, err = ParseMappings(name("c"), "--paths", []string{"x,,\x1b[31mRED"})
	if err == nil || strings.Contains(err.Error(), "\x1b") || !strings.Contains(err.Error(), `\x1b[31mRED`) {
		t.Errorf("%q", err)
	}
}
