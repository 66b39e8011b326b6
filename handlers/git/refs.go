package git

import (
	"fmt"
	"sort"
	"strings"

	"github.com/initializer/initializer/fault"
)

// remoteRefs is what the remote advertises.
type remoteRefs struct {
	head   string            // the default branch's ref (refs/heads/main), "" when not advertised
	refs   map[string]string // full ref name → the object it points at
	peeled map[string]string // annotated tag ref → the commit it points at
}

func newRemoteRefs() *remoteRefs {
	return &remoteRefs{refs: map[string]string{}, peeled: map[string]string{}}
}

// commitOf returns the commit a ref points at (tags peeled).
func (r *remoteRefs) commitOf(ref string) string {
	if c, ok := r.peeled[ref]; ok {
		return c
	}
	return r.refs[ref]
}

// target is a revision resolved against the remote's refs.
type target struct {
	kind   string // "branch", "tag", "ref" or "commit"
	name   string // branch or tag short name, the full ref, or the revision as given
	ref    string // the remote ref to fetch; "" for a commit at no ref's tip
	commit string // the commit expected, when known
	prefix bool   // an abbreviated commit hash found at no ref's tip
}

func (t target) String() string {
	switch t.kind {
	case "commit":
		return "commit " + t.name
	default:
		return t.kind + " " + t.name
	}
}

// resolve finds rev (a branch, a tag, a full ref, a full or abbreviated
// commit hash, or "" for the default branch) among the remote's refs.
func resolve(refs *remoteRefs, rev, url string) (target, error) {
	if rev == "" || rev == "HEAD" {
		head := refs.head
		if head == "" {
			// Servers that do not advertise HEAD's target: fall back on the
			// usual names.
			for _, b := range []string{"refs/heads/main", "refs/heads/master"} {
				if _, ok := refs.refs[b]; ok {
					head = b
					break
				}
			}
		}
		if head == "" {
			if len(refs.refs) == 0 {
				return target{}, fault.New(fault.NotFound, "the repository %s is empty (it has no branch)", url)
			}
			return target{}, fault.New(fault.NotFound, "the repository %s does not say which branch is its default; set schema.revision (or --revision) to one of its branches: %s", url, list(refs, "refs/heads/"))
		}
		return target{kind: "branch", name: strings.TrimPrefix(head, "refs/heads/"), ref: head, commit: refs.commitOf(head)}, nil
	}
	if strings.HasPrefix(rev, "refs/") {
		if _, ok := refs.refs[rev]; !ok {
			return target{}, notFound(refs, rev, url)
		}
		switch {
		case strings.HasPrefix(rev, "refs/heads/"):
			return target{kind: "branch", name: strings.TrimPrefix(rev, "refs/heads/"), ref: rev, commit: refs.commitOf(rev)}, nil
		case strings.HasPrefix(rev, "refs/tags/"):
			return target{kind: "tag", name: strings.TrimPrefix(rev, "refs/tags/"), ref: rev, commit: refs.commitOf(rev)}, nil
		}
		return target{kind: "ref", name: rev, ref: rev, commit: refs.commitOf(rev)}, nil
	}
	if r := "refs/heads/" + rev; refs.refs[r] != "" {
		return target{kind: "branch", name: rev, ref: r, commit: refs.commitOf(r)}, nil
	}
	if r := "refs/tags/" + rev; refs.refs[r] != "" {
		return target{kind: "tag", name: rev, ref: r, commit: refs.commitOf(r)}, nil
	}
	if isHex(rev) && len(rev) >= 4 {
		rev = strings.ToLower(rev)
		full := len(rev) == 40 || len(rev) == 64
		// A ref whose tip is that commit: fetching it is cheap on every server.
		var ref, commit string
		commits := map[string]bool{}
		for _, name := range sortedRefs(refs) {
			c := refs.commitOf(name)
			if c == "" || !strings.HasPrefix(c, rev) {
				continue
			}
			commits[c] = true
			if ref == "" {
				ref, commit = name, c
			}
		}
		if len(commits) > 1 {
			return target{}, fault.New(fault.Usage, "the abbreviated commit %q is ambiguous in %s; give more of its hex digits", rev, url)
		}
		if ref != "" {
			return target{kind: "commit", name: rev, ref: ref, commit: commit}, nil
		}
		if full {
			return target{kind: "commit", name: rev, commit: rev}, nil
		}
		return target{kind: "commit", name: rev, prefix: true}, nil
	}
	return target{}, notFound(refs, rev, url)
}

func notFound(refs *remoteRefs, rev, url string) error {
	return fault.New(fault.NotFound, "revision %q is not a branch, tag, ref or commit of %s; its branches are %s and its tags %s; fix schema.revision (or --revision)", rev, url, list(refs, "refs/heads/"), list(refs, "refs/tags/"))
}

// sortedRefs lists the ref names, branches first, then tags, then the rest,
// so that a commit found at several tips is fetched through a branch.
func sortedRefs(refs *remoteRefs) []string {
	names := make([]string, 0, len(refs.refs))
	for n := range refs.refs {
		names = append(names, n)
	}
	rank := func(n string) int {
		switch {
		case strings.HasPrefix(n, "refs/heads/"):
			return 0
		case strings.HasPrefix(n, "refs/tags/"):
			return 1
		case n == "HEAD":
			return 3
		}
		return 2
	}
	sort.Slice(names, func(i, j int) bool {
		if ri, rj := rank(names[i]), rank(names[j]); ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	return names
}

// list names up to 10 refs under prefix, for error messages.
func list(refs *remoteRefs, prefix string) string {
	var out []string
	for _, n := range sortedRefs(refs) {
		if strings.HasPrefix(n, prefix) {
			out = append(out, strings.TrimPrefix(n, prefix))
		}
	}
	if len(out) == 0 {
		return "(none)"
	}
	more := ""
	if len(out) > 10 {
		more = fmt.Sprintf(" and %d more", len(out)-10)
		out = out[:10]
	}
	return strings.Join(out, ", ") + more
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}
