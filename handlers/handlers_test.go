package handlers

import (
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
