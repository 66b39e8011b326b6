// Package custom runs a user's handler program for every connection kind
// without a built-in handler (databases, http, ssh, slack, …, custom): the
// upstream promise that users can build their own handlers.
//
// The program is the one given by --handler, else an executable named
// initializer-handler-<kind> on PATH. It gets the connection as JSON in
// $INITIALIZER_CONNECTION, the target folder in $INITIALIZER_PATH, and the
// keys of the connection's mounted secret and configMap (those its items
// allow) as environment variables: never on its command line. Its output is
// relayed (with known secrets blanked), its exit code becomes the
// initializer's, and SIGTERM/SIGINT are forwarded to it.
//
// check does not run the program: it verifies that the declared secret and
// configMap mounts and keys exist and, when the schema names a host and port
// (or a URL), that the address accepts a TCP connection.
package custom

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/pflag"

	"github.com/initializer/initializer/handlers"
)

const handlerFlag = "handler"

// ProgramPrefix starts the name of the program looked up on PATH for a kind.
const ProgramPrefix = "initializer-handler-"

// Handler runs user handlers.
type Handler struct {
	program  string
	sets     []*pflag.FlagSet
	lookPath func(string) (string, error)
	stdout   io.Writer
	stderr   io.Writer
	environ  func() []string
}

// New returns the custom-kind handler, relaying to the process's stdout and
// stderr.
func New() *Handler {
	return &Handler{lookPath: exec.LookPath, stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ}
}

// Flags adds --handler.
func (h *Handler) Flags(fs *pflag.FlagSet) {
	if fs.Lookup(handlerFlag) == nil {
		fs.StringVar(&h.program, handlerFlag, "", "kinds without a built-in handler: the program to run (default: "+ProgramPrefix+"<kind> on PATH)")
	}
	h.sets = append(h.sets, fs)
}

func (h *Handler) programFlag() string {
	if h.program != "" {
		return h.program
	}
	for _, fs := range h.sets {
		if f := fs.Lookup(handlerFlag); f != nil && f.Changed {
			return f.Value.String()
		}
	}
	return ""
}

// Check verifies mounts, keys and the schema's address; it runs nothing.
func (h *Handler) Check(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	res := &handlers.Result{Details: map[string]any{}}
	var parts []string
	found, err := checkResources(req.Conn, h.getenv)
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		req.Log.Info("checked", "resource", f.describe())
		parts = append(parts, f.describe())
	}
	res.Details["resources"] = found
	addr, err := schemaAddress(req.Conn)
	if err != nil {
		return nil, err
	}
	switch {
	case addr.Addr != "":
		if err := dial(ctx, req.Conn, addr); err != nil {
			return nil, err
		}
		req.Log.Info("address accepts TCP connections", "address", addr.Addr, "from", addr.From)
		res.Details["address"] = addr.Addr
		parts = append(parts, fmt.Sprintf("%s accepts TCP connections", addr.Addr))
	case addr.Note != "":
		req.Log.Info("no TCP check", "reason", addr.Note)
		res.Details["addressNote"] = addr.Note
	}
	prog, err := h.resolve(req.Conn)
	if err != nil {
		req.Log.Warn("no handler program: a run of this connection would fail", "error", err.Error())
		res.Details["handler"] = nil
		parts = append(parts, "no handler program found: a run would fail (exit 2)")
	} else {
		res.Details["handler"] = prog.describe()
		parts = append(parts, "handler "+prog.describe())
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to check (no mounts, no address)")
	}
	res.Summary = fmt.Sprintf("%s: %s", req.Conn, strings.Join(parts, "; "))
	return res, nil
}

func (h *Handler) getenv(k string) (string, bool) {
	for _, kv := range h.environ() {
		if name, v, ok := strings.Cut(kv, "="); ok && name == k {
			return v, true
		}
	}
	return "", false
}

// Run checks the mounts and keys, then runs the handler program.
func (h *Handler) Run(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	if _, err := checkResources(req.Conn, h.getenv); err != nil {
		return nil, err
	}
	prog, err := h.resolve(req.Conn)
	if err != nil {
		return nil, err
	}
	return h.run(ctx, req, prog)
}
