package git

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/gitattributes"
)

// eol is the line-ending conversion git applies to a file it checks out,
// as its attributes ask (.gitattributes: text, eol, and the older crlf;
// the binary macro): on Linux, with no core.autocrlf or core.eol of the
// user's, only eol=crlf converts anything.
type eol int

const (
	eolNone     eol = iota
	eolCRLF         // text with eol=crlf: every lone LF becomes CRLF
	eolAutoCRLF     // text=auto with eol=crlf: the same, for a blob that is text and has no CR yet
)

// attributes are the gitattributes rules of a tree, lowest priority first
// (the root's .gitattributes, those of folders below, deeper ones winning,
// then .git/info/attributes), and the macros they define ([attr]name).
type attributes struct {
	rules  []gitattributes.MatchAttribute
	macros map[string][]gitattributes.Attribute
}

// readAttributes reads the rules of the tree's .gitattributes files (blobs
// among files) and of the clone at dir's .git/info/attributes; nil when
// none of them is about line endings, the usual case.
func readAttributes(r *gogit.Repository, dir string, files []item) *attributes {
	type source struct {
		depth int
		rules []gitattributes.MatchAttribute
	}
	var sources []source
	eolRules := false
	add := func(depth int, domain []string, rd io.Reader) {
		var rules []gitattributes.MatchAttribute
		sc := bufio.NewScanner(rd)
		for sc.Scan() {
			// A line git would ignore (a bad name, a macro outside the
			// root) is ignored, not the whole file.
			m, err := gitattributes.ParseAttributesLine(sc.Text(), domain, depth == 0)
			if err != nil || m.Name == "" {
				continue
			}
			for _, a := range m.Attributes {
				if a.Name() == "eol" || a.Name() == "crlf" {
					eolRules = true
				}
			}
			rules = append(rules, m)
		}
		sources = append(sources, source{depth, rules})
	}
	for _, f := range files {
		if path.Base(f.name) != ".gitattributes" {
			continue
		}
		obj, err := r.Storer.EncodedObject(plumbing.BlobObject, f.hash)
		if err != nil {
			continue
		}
		rd, err := obj.Reader()
		if err != nil {
			continue
		}
		var domain []string
		if d := path.Dir(f.name); d != "." {
			domain = strings.Split(d, "/")
		}
		add(len(domain), domain, rd)
		rd.Close()
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".git", "info", "attributes")); err == nil {
		add(1<<30, nil, bytes.NewReader(b))
	}
	if !eolRules {
		return nil
	}
	sort.SliceStable(sources, func(i, j int) bool { return sources[i].depth < sources[j].depth })
	as := &attributes{macros: map[string][]gitattributes.Attribute{}}
	for _, s := range sources {
		for _, m := range s.rules {
			if m.Pattern == nil {
				as.macros[m.Name] = m.Attributes // a later definition wins
				continue
			}
			as.rules = append(as.rules, m)
		}
	}
	return as
}

// lookup returns the state of attribute name for the path p (split on
// "/"): the highest-priority rule that names it, itself or through a macro
// it sets, decides (the built-in binary macro unsets text). nil when no
// rule does.
func (as *attributes) lookup(p []string, name string) gitattributes.Attribute {
	for i := len(as.rules) - 1; i >= 0; i-- {
		m := as.rules[i]
		if !m.Pattern.Match(p) {
			continue
		}
		for j := len(m.Attributes) - 1; j >= 0; j-- {
			a := m.Attributes[j]
			if a.Name() == name {
				return a
			}
			if !a.IsSet() {
				continue
			}
			if macro, ok := as.macros[a.Name()]; ok {
				for k := len(macro) - 1; k >= 0; k-- {
					if macro[k].Name() == name {
						return macro[k]
					}
				}
			} else if name == "text" && a.Name() == "binary" {
				return unsetText{}
			}
		}
	}
	return nil
}

// unsetText is "-text", which the binary macro implies.
type unsetText struct{}

func (unsetText) Name() string        { return "text" }
func (unsetText) IsSet() bool         { return false }
func (unsetText) IsUnset() bool       { return true }
func (unsetText) IsUnspecified() bool { return false }
func (unsetText) IsValueSet() bool    { return false }
func (unsetText) Value() string       { return "" }
func (unsetText) String() string      { return "text: unset" }

// eolOf is the conversion for the file name of the tree, as git decides it
// (convert.c convert_attrs: the text attribute, else the older crlf; then
// eol, which wins over all but -text and text=auto).
func (as *attributes) eolOf(name string) eol {
	if as == nil {
		return eolNone
	}
	p := strings.Split(name, "/")
	e := as.lookup(p, "eol")
	if e == nil || !e.IsValueSet() || e.Value() != "crlf" {
		return eolNone
	}
	text := as.lookup(p, "text")
	if text == nil || text.IsUnspecified() || text.IsValueSet() && text.Value() != "auto" && text.Value() != "input" {
		text = as.lookup(p, "crlf") // git reads the older name when text says nothing
	}
	switch {
	case text != nil && text.IsUnset():
		return eolNone // -text, binary
	case text != nil && text.IsValueSet() && text.Value() == "auto":
		return eolAutoCRLF
	}
	return eolCRLF
}

// textStats are git's counts over a blob (convert.c gather_stats) that
// decide whether text=auto converts it.
type textStats struct {
	lonecr, lonelf, crlf, nul, printable, nonprintable int
	last                                               byte // the previous byte, across reads
	seen                                               bool
}

func (s *textStats) Write(p []byte) (int, error) {
	for _, c := range p {
		if s.seen && s.last == '\r' {
			if c == '\n' {
				s.crlf++
				s.last, s.seen = c, true
				continue
			}
			s.lonecr++
		}
		switch {
		case c == '\r':
		case c == '\n':
			s.lonelf++
		case c == 127:
			s.nonprintable++
		case c < 32:
			switch c {
			case '\b', '\t', 033, 014:
				s.printable++
			case 0:
				s.nul++
				s.nonprintable++
			default:
				s.nonprintable++
			}
		default:
			s.printable++
		}
		s.last, s.seen = c, true
	}
	return len(p), nil
}

// converts reports whether text=auto with eol=crlf converts a blob with
// these counts: it has lone LFs, no CR of its own, and is not binary.
func (s *textStats) converts() bool {
	if s.seen && s.last == '\r' {
		s.lonecr++ // a final CR
		s.seen = false
	}
	return s.lonelf > 0 && s.lonecr == 0 && s.crlf == 0 && s.nul == 0 && s.printable>>7 >= s.nonprintable
}

// crlfWriter writes what it is given with every LF not preceded by a CR
// made CRLF (git's lf_to_crlf).
type crlfWriter struct {
	w    io.Writer
	last byte
	buf  []byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	c.buf = c.buf[:0]
	for _, b := range p {
		if b == '\n' && c.last != '\r' {
			c.buf = append(c.buf, '\r')
		}
		c.buf = append(c.buf, b)
		c.last = b
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
