package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/initializer/initializer/cmd/initializer/internal/sigearly"
	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/handlers/custom"
	"github.com/initializer/initializer/handlers/git"
	"github.com/initializer/initializer/handlers/mount"
	"github.com/initializer/initializer/handlers/registry"
	"github.com/initializer/initializer/handlers/store"
	"github.com/initializer/initializer/secret"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// builtins is the registry of built-in handlers.
func builtins() *handlers.Registry {
	r := handlers.NewRegistry()
	r.Register(mount.Handler{}, mount.Kinds...)
	r.Register(git.New(), git.Kinds...)
	r.Register(registry.New(), registry.Kinds...)
	r.Register(store.New(), store.Kinds...)
	r.SetFallback(custom.New())
	return r
}

// terminationLog is where Kubernetes reads a container's last words from.
func terminationLog() string {
	if p := os.Getenv("INITIALIZER_TERMINATION_LOG"); p != "" {
		return p
	}
	return "/dev/termination-log"
}

type globalFlags struct {
	catalog   string
	logFormat string
	logLevel  string
	result    string
}

type jobFlags struct {
	connection string
	path       string
	paths      []string
	workers    int
	force      bool
	checksum   bool
	given      []string // the flags given on the command line
}

// app holds what every command shares.
type app struct {
	g       globalFlags
	log     *slog.Logger
	stdout  io.Writer
	stderr  io.Writer
	getenv  func(string) (string, bool)
	started time.Time
	reg     *handlers.Registry
	owner   map[string]handlers.Handler // a handler's own flags: the handler
	// resultOptional: a --result that cannot be written is only logged
	// (the sidecar's, which never fails the pod for a report).
	resultOptional bool
}

func run(args []string) int {
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.LookupEnv, started: time.Now(), reg: builtins(),
		log: slog.New(slog.DiscardHandler)} // until the flags set it up
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// A signal that came while the packages initialised: stopped before
	// anything began, and reported as any stopped run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if sigearly.Take() != nil {
		cancel()
	}
	root := a.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ce *commandError
	if !errors.As(err, &ce) {
		// A flag or argument cobra refused: said on stderr, and in the
		// termination log (and --result, when it was read), as any failure.
		msg := secret.Scrub(err.Error())
		// cobra stops at the flag it refuses: a --result or --log-format
		// after it was not read yet.
		if a.g.result == "" {
			a.g.result = flagArg(args, "result")
		}
		if a.g.logFormat == "json" || flagArg(args, "log-format") == "json" {
			slog.New(slog.NewJSONHandler(a.stderr, nil)).Error("failed", "exitCode", int(fault.Usage), "class", fault.Usage.String(),
				"error", msg+"; run 'initializer --help' for usage")
		} else {
			fmt.Fprintf(a.stderr, "error: %s\nRun 'initializer --help' for usage.\n", msg)
		}
		_ = a.report(outcome{Status: "failed", ExitCode: int(fault.Usage), Error: msg, Version: versionString(), StartedAt: a.started,
			Result: noResult("")})
		return int(fault.Usage)
	}
	return int(fault.ClassOf(ce.err))
}

// flagArg finds the value of the flag --name in a command line cobra could
// not parse ("" when it is not given).
func flagArg(args []string, name string) string {
	for i, arg := range args {
		switch {
		case arg == "--":
			return ""
		case arg == "--"+name && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(arg, "--"+name+"="):
			return strings.TrimPrefix(arg, "--"+name+"=")
		}
	}
	return ""
}

// commandError marks an error already reported by the command itself.
type commandError struct{ err error }

func (e *commandError) Error() string { return e.err.Error() }

func (a *app) rootCommand() *cobra.Command {
	var jf jobFlags
	root := &cobra.Command{
		Use:   "initializer --connection NAME [--path DIR]",
		Short: "Prepare a job's data from a connection: clone, download, check mounts, write credentials",
		Long: `initializer reads a connection catalog (the Polyaxon connection spec) and runs the
handler of the named connection's kind to bring its data into --path.

The catalog comes from --catalog (a file, or a folder of .yaml/.yml/.json files such as
a mounted ConfigMap), else from $POLYAXON_CONNECTIONS_CATALOG (inline JSON), else from
` + connections.DefaultPath + `.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if st, err := os.Stat(a.g.result); err == nil && st.IsDir() {
				r := a.g.result
				a.g.result = "" // nothing to write the outcome to
				return fmt.Errorf("--result %s is a folder: give the path of a file", r)
			}
			return a.setup()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jf.connection == "" {
				return errors.New("--connection is required (see 'initializer list' for the catalog's connections)")
			}
			jf.given = givenFlags(cmd)
			return a.job(cmd.Context(), "run", jf)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.g.catalog, "catalog", "", "connection catalog: a file, or a folder of .yaml/.yml/.json files")
	pf.StringVar(&a.g.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&a.g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&a.g.result, "result", "", "write the result as JSON to this file")
	a.addJobFlags(root, &jf)
	root.AddCommand(a.listCommand(), a.checkCommand(), a.versionCommand())
	root.AddCommand(a.sidecarCommand())
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	return root
}

// addJobFlags adds the flags of a run or check: the common ones, then each
// handler's own.
func (a *app) addJobFlags(cmd *cobra.Command, jf *jobFlags) {
	f := cmd.Flags()
	defer func() {
		if a.owner == nil {
			a.owner = map[string]handlers.Handler{}
		}
		for _, h := range a.reg.Handlers() {
			if fl, ok := h.(handlers.Flagger); ok {
				had := map[string]bool{}
				f.VisitAll(func(fl *pflag.Flag) { had[fl.Name] = true })
				fl.Flags(f)
				f.VisitAll(func(fl *pflag.Flag) {
					if !had[fl.Name] {
						a.owner[fl.Name] = h
					}
				})
			}
		}
	}()
	f.StringVarP(&jf.connection, "connection", "c", "", "name of the connection in the catalog")
	f.StringVarP(&jf.path, "path", "p", "", "target folder for the data")
	f.StringArrayVar(&jf.paths, "paths", nil, "sub-paths to take, each src or src:dst (relative; repeat or separate with commas; \\, \\: for a comma or colon in a name)")
	f.IntVar(&jf.workers, "workers", 0, "files transferred in parallel (0: the handler's default, 8 for mounts, 32 for object stores)")
	f.BoolVar(&jf.force, "force", false, "replace what stands in the way at --path")
	f.BoolVar(&jf.checksum, "checksum", false, "on re-runs, compare contents (object stores: hashes) instead of size and modification time")
}

func (a *app) setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.g.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", a.g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch a.g.logFormat {
	case "text":
		h = slog.NewTextHandler(a.stderr, opts)
	case "json":
		h = slog.NewJSONHandler(a.stderr, opts)
	default:
		return fmt.Errorf("--log-format %q: use text or json", a.g.logFormat)
	}
	a.log = slog.New(secret.Handler(h))
	return nil
}

func (a *app) checkCommand() *cobra.Command {
	var jf jobFlags
	cmd := &cobra.Command{
		Use:   "check --connection NAME",
		Short: "Validate a connection and run its handler's pre-flight checks without writing anything",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jf.connection == "" {
				return errors.New("--connection is required")
			}
			jf.given = givenFlags(cmd)
			return a.job(cmd.Context(), "check", jf)
		},
	}
	a.addJobFlags(cmd, &jf)
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(a.stdout, "initializer %s\n", versionString())
		},
	}
}

// plainError repeats a failure's error on stderr for people, after the
// log line that carries it; with --log-format json the log line alone
// does (stderr stays one JSON document per line).
func (a *app) plainError(msg string) {
	if a.g.logFormat != "json" {
		fmt.Fprintf(a.stderr, "error: %s\n", msg)
	}
}

// outcome is the --result document.
type outcome struct {
	Status          string           `json:"status"` // "ok" or "failed"
	ExitCode        int              `json:"exitCode"`
	Error           string           `json:"error,omitempty"`
	Command         string           `json:"command"`
	Connection      string           `json:"connection,omitempty"`
	Kind            string           `json:"kind,omitempty"`
	Version         string           `json:"version"`
	StartedAt       time.Time        `json:"startedAt"`
	DurationSeconds float64          `json:"durationSeconds"`
	Result          *handlers.Result `json:"result,omitempty"`
}

// maxWorkers bounds --workers: each worker holds a connection, a buffer
// and a goroutine; far beyond what a store or a disk serves in parallel,
// more only costs memory.
const maxWorkers = 1024

// job runs (or checks) one connection.
func (a *app) job(ctx context.Context, action string, jf jobFlags) error {
	out := outcome{Command: action, Connection: jf.connection, Version: versionString(), StartedAt: a.started}
	res, err := a.runJob(ctx, action, jf, &out)
	return a.finish(out, res, err)
}

// noResult is the result of a run that failed before its handler reported
// one: the same document on every failure, with nothing in it.
func noResult(connection string) *handlers.Result {
	who := "the run"
	if connection != "" {
		who = fmt.Sprintf("connection %q", connection)
	}
	return &handlers.Result{Summary: fmt.Sprintf("%s: no result (the run failed before its handler reported one)", who)}
}

// finish reports an outcome everywhere it is wanted: the log, stderr,
// --result and the termination log; the error it returns carries the exit
// class.
func (a *app) finish(out outcome, res *handlers.Result, err error) error {
	out.DurationSeconds = time.Since(a.started).Seconds()
	if res == nil && err != nil {
		res = noResult(out.Connection)
	}
	out.Result = res
	if err != nil {
		out.Status, out.ExitCode, out.Error = "failed", int(fault.ClassOf(err)), secret.Scrub(err.Error())
		a.log.Error("failed", "connection", out.Connection, "exitCode", out.ExitCode, "class", fault.ClassOf(err).String(), "error", out.Error)
		a.plainError(out.Error)
	} else {
		out.Status = "ok"
		summary := ""
		if res != nil {
			summary = res.Summary
		}
		a.log.Info("done", "summary", summary, "seconds", round(out.DurationSeconds))
	}
	if werr := a.writeResult(out); werr != nil && err == nil && !a.resultOptional {
		// The work is done, but its result cannot be handed over: the
		// run fails, and says so everywhere else.
		err = werr
		out.Status, out.ExitCode, out.Error = "failed", int(fault.ClassOf(err)), secret.Scrub(err.Error())
		a.log.Error("failed", "connection", out.Connection, "exitCode", out.ExitCode, "class", fault.ClassOf(err).String(), "error", out.Error)
		a.plainError(out.Error)
	}
	a.writeTerminationLog(out)
	if err != nil {
		return &commandError{err}
	}
	return nil
}

func (a *app) runJob(ctx context.Context, action string, jf jobFlags, out *outcome) (*handlers.Result, error) {
	cat, err := connections.Load(a.g.catalog, a.getenv)
	if err != nil {
		return nil, err
	}
	conn, err := cat.Get(jf.connection)
	if err != nil {
		return nil, err
	}
	out.Kind = string(conn.Kind)
	h, _ := a.reg.For(conn.Kind)
	if h == nil {
		return nil, fault.New(fault.Usage, "%s has no built-in handler; built-in kinds are %s", conn, kindNames(a.reg.Kinds()))
	}
	if err := a.checkFlags(conn, h, jf.given); err != nil {
		return nil, err
	}
	if action == "check" {
		// check writes nothing: the flags of what a run writes do not
		// apply, whatever the kind.
		for _, name := range []string{"workers", "checksum", "force"} {
			if slices.Contains(jf.given, name) {
				return nil, fault.New(fault.Usage, "%s: check writes nothing, so --%s does not apply; remove it", conn, name)
			}
		}
	}
	if jf.workers < 0 || jf.workers > maxWorkers {
		return nil, fault.New(fault.Usage, "--workers %d: give a number from 1 to %d (0 or none: the handler's default)", jf.workers, maxWorkers)
	}
	mappings, err := handlers.ParseMappings(conn, "--paths", jf.paths)
	if err != nil {
		return nil, err
	}
	if len(mappings) > 0 && jf.path == "" && action != "check" {
		return nil, fault.New(fault.Usage, "%s: --paths needs --path, the folder to copy them into", conn)
	}
	req := &handlers.Request{
		Conn: conn, Keys: conn.Keys(), Path: jf.path, Paths: mappings,
		Workers: jf.workers, Force: jf.force, Checksum: jf.checksum, JSONLogs: a.g.logFormat == "json",
		Log: a.log.With("connection", conn.Name, "kind", string(conn.Kind)),
	}
	// The live bar only among text logs: JSON logs keep stderr one JSON
	// document per line.
	if f, ok := a.stderr.(*os.File); ok && isTerminal(f) && a.g.logFormat != "json" {
		req.Terminal = f
	}
	req.Log.Info("starting", "command", action, "path", jf.path)
	missing := warnMissingMounts(req.Log, req.Keys)
	if ctx.Err() != nil {
		return nil, fault.New(fault.Interrupted, "%s: stopped by a signal (SIGTERM or SIGINT) before it began", conn)
	}
	var res *handlers.Result
	if action == "check" {
		res, err = h.Check(ctx, req)
	} else {
		res, err = h.Run(ctx, req)
	}
	if err != nil && err.Error() == context.Canceled.Error() {
		// A step's bare "context canceled": what cancelled it.
		err = fault.New(fault.Interrupted, "%s: stopped by a signal (SIGTERM or SIGINT)", conn)
	} else if err != nil && ctx.Err() != nil && strings.HasSuffix(err.Error(), ": "+context.Canceled.Error()) {
		// "download interrupted after 3 files: context canceled": say
		// what cancelled it.
		err = fault.New(fault.Interrupted, "%s: stopped by a signal (SIGTERM or SIGINT)", strings.TrimSuffix(err.Error(), ": "+context.Canceled.Error()))
	}
	err = localHint(err)
	// Credentials refused or missing while a mount of them is not there:
	// the mount is the likelier cause.
	if c := fault.ClassOf(err); len(missing) > 0 && (c == fault.Auth || c == fault.Usage) {
		err = fault.Wrap(c, fmt.Errorf("%w (note: %s; mount it there or fix the catalog's mountPath)", err, strings.Join(missing, "; ")))
	} else if unused := req.Keys.Unused(); len(unused) > 0 && (c == fault.Auth || c == fault.Usage) {
		err = fault.Wrap(c, fmt.Errorf("%w (note: %s: name the files after the keys)", err, strings.Join(unused, "; ")))
	}
	return res, err
}

// localHint adds what to do to a local file system's refusal that does not
// say it yet: a read-only file system, or a folder this user may not
// write in.
func localHint(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch c := fault.ClassOf(err); {
	case errors.Is(err, syscall.EROFS) && !strings.Contains(msg, "read-write") && !strings.Contains(msg, "writable"):
		return fault.Wrap(c, fmt.Errorf("%w; that file system is read-only: give a folder on a writable volume (an emptyDir, or a volume mounted read-write)", err))
	case errors.Is(err, syscall.EACCES) && !strings.Contains(msg, "securityContext") && !strings.Contains(msg, "fsGroup"):
		if strings.Contains(msg, "cannot read") {
			return fault.Wrap(c, fmt.Errorf("%w; let this container's user (uid %d) read it: the file's owner or mode (a secret volume's defaultMode), or the pod's securityContext (runAsUser, fsGroup)", err, os.Getuid()))
		}
		return fault.Wrap(c, fmt.Errorf("%w; let this container's user (uid %d) write there: the volume's owner or mode, or the pod's securityContext (runAsUser, fsGroup)", err, os.Getuid()))
	}
	return err
}

// givenFlags lists the flags given on cmd's command line.
func givenFlags(cmd *cobra.Command) []string {
	var names []string
	cmd.Flags().Visit(func(f *pflag.Flag) { names = append(names, f.Name) })
	return names
}

// checkFlags refuses a flag given for a connection whose handler would
// ignore it: another handler's own flag (--revision for a bucket), or one
// of the common flags its handler does not use (--paths for git).
func (a *app) checkFlags(conn *connections.Connection, h handlers.Handler, given []string) error {
	for _, name := range given {
		if owner, ok := a.owner[name]; ok && owner != h {
			return fault.New(fault.Usage, "%s: --%s is a flag of %s connections, not of %s ones; remove it", conn, name, a.kindsOf(owner), conn.Kind)
		}
		if u, ok := h.(handlers.FlagUser); ok && slices.Contains(handlers.CommonFlags, name) && !slices.Contains(u.UsesFlags(), name) {
			return fault.New(fault.Usage, "%s: --%s does not apply to %s connections; remove it", conn, name, conn.Kind)
		}
	}
	return nil
}

// kindsOf names the kinds h serves, for messages.
func (a *app) kindsOf(h handlers.Handler) string {
	kinds := a.reg.KindsOf(h)
	if len(kinds) == 0 {
		return "custom (no built-in handler)"
	}
	return kindNames(kinds)
}

// report writes --result and the termination log.
func (a *app) report(out outcome) error {
	err := a.writeResult(out)
	a.writeTerminationLog(out)
	return err
}

// writeResult writes --result, when asked: to a temporary file renamed
// into place, or, where that cannot be done (a file mounted on its own, a
// folder this user may not create files in), into the file itself.
func (a *app) writeResult(out outcome) error {
	if a.g.result == "" {
		return nil
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	b = append(b, '\n')
	fd, path := resultTarget(a.g.result)
	var err error
	switch st, serr := os.Stat(path); {
	case fd >= 0:
		// This process's own output (/dev/stdout, /dev/fd/1, a link to
		// one): written to it, never renamed over.
		err = writeAll(fd, b)
	case serr == nil && !st.Mode().IsRegular() && !st.IsDir():
		// A device or a pipe (/dev/null, a named pipe): written to.
		if err = writeInPlace(path, b); errors.Is(err, syscall.ENXIO) {
			err = fault.Wrap(fault.Usage, fmt.Errorf("cannot write --result %s: no process reads that pipe; give a file, or read the pipe", a.g.result))
			a.log.Error("cannot write --result", "path", a.g.result, "error", err)
			return err
		}
	default:
		// A file, or a link to one: replaced atomically where the link
		// leads (the link stays). Its folder must exist: a misspelt
		// --result makes no folders.
		if _, err = os.Stat(filepath.Dir(path)); err != nil {
			break
		}
		_, err = fsutil.WriteFileAtomic(context.Background(), path, bytes.NewReader(b), fsutil.FileMeta{Mode: 0o644})
		if err != nil && serr == nil && st.Mode().IsRegular() {
			if werr := os.WriteFile(path, b, 0o644); werr == nil {
				err = nil
			}
		}
	}
	if err == nil {
		return nil
	}
	a.log.Error("cannot write --result", "path", a.g.result, "error", err)
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrNotExist) {
		return fault.Wrap(fault.Usage, fmt.Errorf("cannot write --result %s: %w; give a file in an existing folder", a.g.result, err))
	}
	return fault.FromSystem(fmt.Errorf("cannot write --result %s: %w; give a file in a writable folder (an emptyDir), or a file mounted there", a.g.result, err))
}

// resultTarget follows the links of the --result path p: the descriptor
// of this process it leads to (/dev/stdout, /proc/self/fd/1 and the like),
// or -1 and the path where it ends.
func resultTarget(p string) (int, string) {
	for range 40 {
		for _, prefix := range []string{"/dev/fd/", "/proc/self/fd/"} {
			if n, err := strconv.Atoi(strings.TrimPrefix(p, prefix)); err == nil && strings.HasPrefix(p, prefix) && n >= 0 {
				return n, ""
			}
		}
		switch p {
		case "/dev/stdout":
			return 1, ""
		case "/dev/stderr":
			return 2, ""
		}
		to, ok := fsutil.FollowLink(p)
		if !ok {
			return -1, p
		}
		p = to
	}
	return -1, p
}

// writeAll writes b to the descriptor fd.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "write", Path: fmt.Sprintf("/dev/fd/%d", fd), Err: err}
		}
		b = b[n:]
	}
	return nil
}

// writeInPlace writes b to the existing non-regular file p (a pipe with
// no reader fails at once rather than blocking).
func writeInPlace(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// terminationMax is the longest termination message written, in bytes,
// its final newline included.
const terminationMax = 2000

// writeTerminationLog writes the outcome's summary where Kubernetes reads
// a container's last words, when the pod offers it.
func (a *app) writeTerminationLog(out outcome) {
	if tl := terminationLog(); fileExists(tl) {
		summary := "ok: "
		if out.Result != nil {
			summary += out.Result.Summary
		}
		if out.Status != "ok" {
			summary = fmt.Sprintf("failed (exit %d): %s", out.ExitCode, out.Error)
		}
		// The kubelet keeps 4096 bytes of a container's message, and
		// 12 KiB across the pod's containers (3 KiB each for 4): 2 KiB
		// keep the mark of the cut for pods of up to 6 containers.
		if len(summary)+len("\n") > terminationMax {
			cut := terminationMax - len("…\n")
			for cut > 0 && !utf8.RuneStart(summary[cut]) {
				cut-- // not inside a character
			}
			summary = summary[:cut] + "…"
		}
		// Best effort: the pod may not offer a writable termination log.
		if err := os.WriteFile(tl, []byte(summary+"\n"), 0o644); err != nil {
			a.log.Debug("termination log not written", "path", tl, "error", err)
		}
	}
}

// warnMissingMounts warns of the connection's secret and configMap mounts
// that are not there, and returns them.
func warnMissingMounts(log *slog.Logger, keys *connections.Keys) []string {
	missing := keys.Missing()
	for _, m := range missing {
		log.Warn(m + ": its keys are looked up in the environment only; mount it there (volumeMounts) or fix the catalog's mountPath")
	}
	return missing
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func round(f float64) float64 { return float64(int(f*1000)) / 1000 }

func kindNames(ks []connections.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
