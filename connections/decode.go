package connections

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// object reads the fields of one JSON object, accepting camelCase and
// snake_case spellings of each key, and records every mistake (wrong type,
// missing, unknown, given twice) in errs with the field's full path.
type object struct {
	errs   *[]FieldError
	origin string
	conn   string
	prefix string // path of this object, e.g. "schema."
	fields map[string]any
	keys   map[string]string // normalized key -> key as written
	used   map[string]bool
}

// normKey folds camelCase and snake_case spellings together.
func normKey(k string) string { return strings.ToLower(strings.ReplaceAll(k, "_", "")) }

func (o *object) fail(field, format string, args ...any) {
	*o.errs = append(*o.errs, FieldError{Origin: o.origin, Connection: o.conn, Field: o.prefix + field, Message: fmt.Sprintf(format, args...)})
}

// newObject checks that v is an object. field is v's own name, used in the
// error when it is not.
func newObject(errs *[]FieldError, origin, conn, prefix string, v any, field string) (*object, bool) {
	o := &object{errs: errs, origin: origin, conn: conn, prefix: prefix, keys: map[string]string{}, used: map[string]bool{}}
	m, ok := v.(map[string]any)
	if !ok {
		parent := &object{errs: errs, origin: origin, conn: conn}
		parent.fail(field, "expected an object, got %s", describe(v))
		return o, false
	}
	o.fields = m
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		n := normKey(k)
		if prev, dup := o.keys[n]; dup {
			o.fail(k, "given twice (also as %q); keep one spelling", prev)
			continue
		}
		o.keys[n] = k
	}
	return o, true
}

// get returns the raw value of field (camelCase name) and whether it is set
// (a JSON null counts as unset).
func (o *object) get(field string) (any, bool) {
	n := normKey(field)
	o.used[n] = true
	k, ok := o.keys[n]
	if !ok || o.fields[k] == nil {
		return nil, false
	}
	return o.fields[k], true
}

func (o *object) str(field string, required bool) string {
	v, ok := o.get(field)
	if !ok {
		if required {
			o.fail(field, "is required (a string)")
		}
		return ""
	}
	s, isStr := v.(string)
	if !isStr {
		o.fail(field, "expected a string, got %s", describe(v))
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		o.fail(field, "must not be empty")
	}
	return s
}

func (o *object) absPath(field string, required bool) string {
	s := o.str(field, required)
	if s != "" && !path.IsAbs(s) {
		o.fail(field, "expected an absolute path, got %q", s)
	}
	return s
}

func (o *object) boolean(field string) bool {
	v, ok := o.get(field)
	if !ok {
		return false
	}
	switch b := v.(type) {
	case bool:
		return b
	case string:
		switch strings.ToLower(b) {
		case "true":
			return true
		case "false":
			return false
		}
	}
	o.fail(field, "expected true or false, got %s", describe(v))
	return false
}

// strList accepts a list of strings (or, when splitString is set, one string
// in either of upstream's list encodings).
func (o *object) strList(field string, splitString bool) []string {
	v, ok := o.get(field)
	if !ok {
		return nil
	}
	if s, isStr := v.(string); isStr && splitString {
		l, err := ParseFlagList(s)
		if err != nil {
			o.fail(field, "%v", err)
		}
		return l
	}
	l, isList := v.([]any)
	if !isList {
		o.fail(field, "expected a list of strings, got %s", describe(v))
		return nil
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, isStr := e.(string)
		if !isStr {
			o.fail(fmt.Sprintf("%s[%d]", field, i), "expected a string, got %s", describe(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

func (o *object) strMap(field string) map[string]string {
	v, ok := o.get(field)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		o.fail(field, "expected an object of strings, got %s", describe(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, isStr := e.(string)
		if !isStr {
			o.fail(field+"."+k, "expected a string, got %s", describe(e))
			continue
		}
		out[k] = s
	}
	return out
}

// mode reads a file mode given as a number (YAML 0600 is octal) or a string
// ("0600", "384").
func (o *object) mode(field string) *int {
	v, ok := o.get(field)
	if !ok {
		return nil
	}
	var m int64
	var err error
	switch x := v.(type) {
	case json.Number:
		m, err = x.Int64()
	case string:
		m, err = strconv.ParseInt(x, 0, 32)
		if err == nil && len(x) > 1 && x[0] == '0' && x[1] != 'x' && x[1] != 'o' {
			m, err = strconv.ParseInt(x, 8, 32)
		}
	default:
		err = fmt.Errorf("wrong type")
	}
	if err != nil || m < 0 || m > 0o777 {
		o.fail(field, "expected a file mode between 0 and 0777 (e.g. 0600 or 384), got %s", describe(v))
		return nil
	}
	mi := int(m)
	return &mi
}

// rest returns the fields not read yet, as given.
func (o *object) rest() map[string]any {
	out := map[string]any{}
	for n, k := range o.keys {
		if !o.used[n] {
			out[k] = o.fields[k]
		}
	}
	return out
}

// done reports every field that was not read as unknown, naming the valid ones.
func (o *object) done(valid ...string) {
	var unknown []string
	for n, k := range o.keys {
		if !o.used[n] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		o.fail(k, "unknown field; valid fields are %s", strings.Join(valid, ", "))
	}
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		// YAML reads y, yes, on, true (and their opposites) as booleans.
		return fmt.Sprintf("%v (in YAML, y, yes, on and the like are booleans: quote a value meant as text, such as \"y\")", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
