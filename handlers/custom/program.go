package custom

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
)

// program is a resolved handler program.
type program struct {
	Path string
	Args []string // from --handler "PROGRAM ARG…"
	How  string   // "--handler" or "PATH"
}

func (p program) describe() string {
	s := p.Path
	if len(p.Args) > 0 {
		s += " " + strings.Join(p.Args, " ")
	}
	return fmt.Sprintf("%s (from %s)", s, p.How)
}

// readmeSection is the README's heading that documents the handler protocol,
// which the missing-handler error points at (a test keeps them in step).
const readmeSection = "Every other kind: your own handler"

// programNames are the names looked up on PATH for kind: the kind as is, and
// with dashes for underscores (initializer-handler-hive-cli).
func programNames(kind connections.Kind) []string {
	names := []string{ProgramPrefix + string(kind)}
	if dashed := ProgramPrefix + strings.ReplaceAll(string(kind), "_", "-"); dashed != names[0] {
		names = append(names, dashed)
	}
	return names
}

// resolve finds the handler program for c: --handler, else
// initializer-handler-<kind> on PATH.
func (h *Handler) resolve(c *connections.Connection) (program, error) {
	if flag := strings.TrimSpace(h.programFlag()); flag != "" {
		return h.resolveFlag(c, flag)
	}
	names := programNames(c.Kind)
	for _, name := range names {
		if p, err := h.lookPath(name); err == nil {
			return program{Path: p, How: "PATH"}, nil
		}
	}
	path, _ := h.getenv("PATH")
	if found := notExecutable(names, path); found != "" {
		return program{}, fault.New(fault.Usage, "%s: kind %s: the handler program %s is on PATH but this user (uid %d) may not run it; make it executable for all (chmod a+rx, as an image built as root needs)",
			c, c.Kind, found, os.Getuid())
	}
	return program{}, fault.New(fault.Usage,
		"%s: kind %s has no built-in handler and no handler program was found; give one with --handler PROGRAM, "+
			"or install an executable named %s on PATH (PATH=%s). The program gets the connection as JSON in $INITIALIZER_CONNECTION "+
			"and the target folder in $INITIALIZER_PATH; see %q in the README",
		c, c.Kind, strings.Join(names, " or "), path, readmeSection)
}

// notExecutable returns a file named after one of names in a folder of
// path that is there but that this user may not run ("" when none): a
// handler installed without its execute bits, or only for its owner.
func notExecutable(names []string, path string) string {
	for _, dir := range filepath.SplitList(path) {
		for _, name := range names {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && unix.Access(p, unix.X_OK) != nil {
				return fmt.Sprintf("%s (mode %v)", p, st.Mode().Perm())
			}
		}
	}
	return ""
}

// resolveFlag reads --handler: a path or a name on PATH, optionally followed
// by arguments separated by spaces (a path that exists as given wins);
// quotes and backslashes, which a shell would read, are refused.
func (h *Handler) resolveFlag(c *connections.Connection, flag string) (program, error) {
	name, args := flag, []string(nil)
	if _, err := os.Stat(flag); err != nil {
		if strings.ContainsAny(flag, `'"\`) {
			// Split as a shell would, "my db" would be one argument; split
			// at spaces it would be two, with the quotes in them.
			return program{}, fault.New(fault.Usage, "%s: --handler %s: quotes and backslashes are not read as a shell reads them (the program and its arguments are split at spaces); put the command in a script and give that", c, flag)
		}
		if fields := strings.Fields(flag); len(fields) > 1 {
			name, args = fields[0], fields[1:]
		}
	}
	if strings.ContainsRune(name, filepath.Separator) {
		st, err := os.Stat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return program{}, fault.New(fault.Usage, "%s: --handler %s does not exist", c, name)
		case err != nil:
			return program{}, fault.New(fault.Usage, "%s: --handler %s: %v", c, name, err)
		case st.IsDir():
			return program{}, fault.New(fault.Usage, "%s: --handler %s is a folder, not a program", c, name)
		case st.Mode().Perm()&0o111 == 0:
			return program{}, fault.New(fault.Usage, "%s: --handler %s is not executable; chmod +x it", c, name)
		}
		abs, err := filepath.Abs(name)
		if err != nil {
			abs = name
		}
		return program{Path: abs, Args: args, How: "--handler"}, nil
	}
	p, err := h.lookPath(name)
	if err != nil {
		path, _ := h.getenv("PATH")
		return program{}, fault.New(fault.Usage, "%s: --handler %s: no such program on PATH (%s); give its full path", c, name, path)
	}
	return program{Path: p, Args: args, How: "--handler"}, nil
}
