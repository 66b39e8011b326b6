package git

import (
	"fmt"
	"strconv"
	"strings"
)

// Options are the clone flags a connection (schema.flags) or --flags gives.
type Options struct {
	Depth             int    // --depth N; 0 is the whole history
	SingleBranch      bool   // --single-branch
	Branch            string // --branch B / -b B
	NoTags            bool   // --no-tags
	RecurseSubmodules bool   // --recurse-submodules
	ShallowSubmodules bool   // --shallow-submodules
	Filter            string // --filter=SPEC (git CLI engine only)
	ExperimentalFetch bool   // --experimental-fetch: upstream's init + fetch + checkout FETCH_HEAD
}

// supportedFlags is listed in the error for an unknown flag.
const supportedFlags = "--depth N, --single-branch, --branch B, --no-tags, --recurse-submodules, --shallow-submodules, --filter=SPEC, --experimental-fetch"

// single reports whether only the revision's own ref is fetched, as git clone
// does with --depth or --single-branch.
func (o Options) single() bool { return o.Depth > 0 || o.SingleBranch || o.ExperimentalFetch }

// ParseOptions reads clone flags. Each item is a flag with or without its
// value ("--depth 1", "--depth=1") or a flag followed by its value as the
// next item ("--depth", "1"): upstream's JSON and comma-separated encodings
// disagree, so both are accepted.
func ParseOptions(items []string) (Options, error) {
	var tokens []string
	for _, it := range items {
		tokens = append(tokens, strings.Fields(it)...)
	}
	var o Options
	for i := 0; i < len(tokens); i++ {
		name, value, hasValue := strings.Cut(tokens[i], "=")
		// takeValue returns the flag's value from "--flag=v" or the next token.
		takeValue := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(tokens) || strings.HasPrefix(tokens[i+1], "-") && !isNumber(tokens[i+1][1:]) {
				return "", fmt.Errorf("flag %s needs a value (e.g. %s)", name, example[name])
			}
			i++
			return tokens[i], nil
		}
		noValue := func() error {
			if hasValue {
				return fmt.Errorf("flag %s takes no value, got %q", name, tokens[i])
			}
			return nil
		}
		var err error
		switch name {
		case "--depth":
			var v string
			if v, err = takeValue(); err == nil {
				o.Depth, err = strconv.Atoi(v)
				if err != nil || o.Depth < 1 {
					err = fmt.Errorf("flag --depth needs a positive number of commits, got %q", v)
				}
			}
		case "--branch", "-b":
			o.Branch, err = takeValue()
		case "--filter":
			o.Filter, err = takeValue()
		case "--single-branch":
			err = noValue()
			o.SingleBranch = true
		case "--no-tags":
			err = noValue()
			o.NoTags = true
		case "--recurse-submodules":
			// git accepts --recurse-submodules[=<pathspec>]; only the whole
			// tree is supported here.
			if hasValue && value != "" && value != "." && value != "yes" && value != "true" {
				err = fmt.Errorf("flag --recurse-submodules=%s: only all submodules are supported; use --recurse-submodules", value)
			}
			o.RecurseSubmodules = true
		case "--shallow-submodules":
			err = noValue()
			o.ShallowSubmodules = true
		case "--experimental-fetch":
			err = noValue()
			o.ExperimentalFetch = true
		default:
			err = fmt.Errorf("unknown flag %q; supported flags are %s", tokens[i], supportedFlags)
		}
		if err != nil {
			return Options{}, err
		}
	}
	return o, nil
}

var example = map[string]string{"--depth": "--depth 1", "--branch": "--branch main", "-b": "-b main", "--filter": "--filter=blob:none"}

// isNumber reports whether s is decimal digits (a value such as the -1
// of "--depth -1", not a flag).
func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil && s != "" && s[0] != '+' && s[0] != '-'
}
