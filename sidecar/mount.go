package sidecar

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// MountFile returns the path of the file that a fileblob bucket rooted at
// mount (OpenMount's) writes for key. fileblob escapes keys as gocloud's
// internal/escape.HexEscape does with its rule: a control character, the
// slash of "../", the second slash of "//", a trailing slash, and the start
// of any text that reads as an escape ("__0x41__") become "__0x<hex>__".
// The common key, with nothing to escape, costs one pass and no string but
// the joined path.
func MountFile(mount, key string) string {
	return filepath.Join(mount, filepath.FromSlash(fileblobEscape(key)))
}

// fileblobEscape is fileblob's escapeKey on a system whose separator is
// "/". As HexEscape, it returns key itself when nothing is to be escaped
// (an invalid UTF-8 key included), and otherwise rebuilds it from its
// runes (invalid bytes become U+FFFD, as there).
func fileblobEscape(key string) string {
	r := []rune(key)
	first := -1
	for i := range r {
		if fileblobRule(r, i) || escapeLike(r, i) {
			first = i
			break
		}
	}
	if first < 0 {
		return key
	}
	var b strings.Builder
	b.WriteString(string(r[:first]))
	for i := first; i < len(r); i++ {
		if fileblobRule(r, i) || escapeLike(r, i) {
			fmt.Fprintf(&b, "__%#x__", r[i])
		} else {
			b.WriteRune(r[i])
		}
	}
	return b.String()
}

// fileblobRule is fileblob's shouldEscape on Linux.
func fileblobRule(r []rune, i int) bool {
	c := r[i]
	switch {
	case c < 32:
		return true
	case i > 1 && c == '/' && r[i-1] == '.' && r[i-2] == '.': // the slash of "../"
		return true
	case i > 0 && c == '/' && r[i-1] == '/': // the second slash of "//"
		return true
	case c == '/' && i == len(r)-1: // a trailing slash
		return true
	}
	return false
}

// escapeLike reports whether r[i:] starts with "__0x<hex>__", as gocloud's
// HexUnescape would read it (HexEscape escapes its first rune).
func escapeLike(r []rune, i int) bool {
	if len(r)-i < 4 || r[i] != '_' || r[i+1] != '_' || r[i+2] != '0' || r[i+3] != 'x' {
		return false
	}
	j := i + 4
	for j < len(r) && r[j] != '_' {
		j++
	}
	if j+1 >= len(r) || r[j+1] != '_' {
		return false
	}
	_, err := strconv.ParseInt(string(r[i+4:j]), 16, 32)
	return err == nil
}
