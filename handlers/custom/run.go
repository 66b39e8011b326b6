package custom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/secret"
)

// handlerResult is what a handler may write to $INITIALIZER_RESULT; every
// field is optional.
type handlerResult struct {
	Summary string         `json:"summary"`
	Files   int64          `json:"files"`
	Bytes   int64          `json:"bytes"`
	Skipped int64          `json:"skipped"`
	Details map[string]any `json:"details"`
}

// run starts the handler program and waits for it, forwarding SIGTERM and
// SIGINT to it (and its children: it runs in its own process group).
func (h *Handler) run(ctx context.Context, req *handlers.Request, prog program) (*handlers.Result, error) {
	c := req.Conn
	tmp, err := fsutil.PrivateTempDir("initializer-handler-")
	if err != nil {
		return nil, fault.FromSystem(fmt.Errorf("%s: %w", c, err))
	}
	defer os.RemoveAll(tmp)
	resultFile := filepath.Join(tmp, "result.json")
	env, info, err := h.environment(req, resultFile)
	if err != nil {
		return nil, fault.FromSystem(err)
	}
	for _, s := range info.Skipped {
		req.Log.Warn("key not passed as an environment variable", "key", s)
	}

	var errOut io.Writer = h.stderr
	if req.JSONLogs {
		// Relayed whatever --log-level says, as in text.
		errOut = logLines{slog.New(slog.NewJSONHandler(h.stderr, nil)).With("connection", c.Name, "kind", string(c.Kind))}
	}
	stdout, stderr := newScrubWriter(h.stdout, info.Secrets), newScrubWriter(errOut, info.Secrets)
	cmd := exec.Command(prog.Path, prog.Args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Pdeathsig: should this process be killed outright (SIGKILL, the OOM
	// killer), the kernel sends the handler the SIGTERM this process would
	// have forwarded, rather than leave it running, orphaned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// A handler that leaves a background process holding its output open
	// must not keep the init container alive.
	cmd.WaitDelay = 2 * time.Second

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	req.Log.Info("running handler", "program", prog.describe(), "path", req.Path, "keys", info.Vars)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err := cmd.Start(); err != nil {
		return nil, startError(req, prog, err)
	}
	pid := cmd.Process.Pid

	var mu sync.Mutex
	var forwarded os.Signal
	forward := func(s os.Signal) {
		mu.Lock()
		forwarded = s
		mu.Unlock()
		req.Log.Info("forwarding signal to the handler", "signal", sigName(s), "pid", pid)
		// The whole group: a shell script's children get it too.
		if err := syscall.Kill(-pid, s.(syscall.Signal)); err != nil {
			req.Log.Debug("signal not delivered", "error", err)
		}
	}
	done := make(chan struct{})
	go func() {
		ctxDone := ctx.Done()
		for {
			select {
			case s := <-sigs:
				forward(s)
			case <-ctxDone:
				// Cancelled: by a signal that sigs delivered or is about to
				// deliver, or by a caller; forward that signal, else SIGTERM.
				ctxDone = nil
				mu.Lock()
				already := forwarded != nil
				mu.Unlock()
				if already {
					continue
				}
				select {
				case s := <-sigs:
					forward(s)
				case <-time.After(100 * time.Millisecond):
					forward(syscall.SIGTERM)
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	waitErr := cmd.Wait()
	close(done)
	stdout.Flush()
	stderr.Flush()

	if errors.Is(waitErr, exec.ErrWaitDelay) {
		req.Log.Warn("the handler exited but something it started still held its output; stopped relaying it", "program", prog.Path)
		waitErr = nil
	}
	mu.Lock()
	sig := forwarded
	mu.Unlock()
	res := &handlers.Result{
		Summary: fmt.Sprintf("%s: handler %s succeeded", c, prog.Path),
		Path:    req.Path,
		Details: map[string]any{"handler": prog.describe(), "exitCode": 0},
	}
	// What the handler reported, kept when it then failed (what it did
	// before the failure, as a download's counts are).
	reported := "" // the handler's own summary
	if hr, err := readResult(resultFile); err != nil {
		req.Log.Warn("ignoring the handler's $INITIALIZER_RESULT", "error", err.Error())
	} else if hr != nil {
		reported = hr.Summary
		if hr.Summary != "" {
			res.Summary = fmt.Sprintf("%s: %s", c, hr.Summary)
		}
		res.Files, res.Bytes, res.Skipped = hr.Files, hr.Bytes, hr.Skipped
		if len(hr.Details) > 0 {
			res.Details["handlerDetails"] = hr.Details
		}
	}
	var ee *exec.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &ee):
		ws, _ := ee.Sys().(syscall.WaitStatus)
		code := ee.ExitCode()
		switch {
		case ws.Signaled() && sig != nil:
			err = fault.New(fault.Interrupted, "%s: handler %s stopped by %s (forwarded to it)", c, prog.Path, sigName(ws.Signal()))
			code = 128 + int(ws.Signal())
		case ws.Signaled():
			err = fault.New(fault.Class(128+int(ws.Signal())), "%s: handler %s was killed by %s", c, prog.Path, sigName(ws.Signal()))
			code = 128 + int(ws.Signal())
		case sig != nil && code == 128+int(sig.(syscall.Signal)):
			// The shells' way of saying the forwarded signal ended it (a
			// trap that exits 143, a child it killed): stopped, as the
			// initializer was asked to be.
			err = fault.New(fault.Interrupted, "%s: handler %s exited with code %d (128 + %s) after %s was forwarded to it", c, prog.Path, code, sigName(sig), sigName(sig))
		default:
			msg := fmt.Sprintf("%s: handler %s exited with code %d", c, prog.Path, code)
			// Above 128, the shells' 128 + the signal that ended the handler or
			// a program it ran (a script's child killed by the OOM killer: 137).
			if n := unix.SignalName(syscall.Signal(code - 128)); code > 128 && n != "" {
				msg += fmt.Sprintf(" (128 + %s: %s)", n, syscall.Signal(code-128))
			}
			if sig != nil {
				msg += fmt.Sprintf(" after %s was forwarded to it", sigName(sig))
			}
			err = &fault.Error{Class: fault.Class(code), Err: errors.New(msg)}
		}
		res.Summary = fmt.Sprintf("%s: handler %s failed (exit code %d)", c, prog.Path, code)
		if reported != "" {
			res.Summary += "; it reported: " + reported
		}
		res.Details["exitCode"] = code
	default:
		return nil, fault.New(fault.Internal, "%s: waiting for handler %s: %v", c, prog.Path, waitErr)
	}

	// The handler had the secret's keys in its environment and may have put
	// one anywhere in what it wrote: every string of the result is scrubbed,
	// map keys and nested values included.
	res.Summary = secret.Scrub(res.Summary)
	res.Details = scrubJSON(res.Details).(map[string]any)
	return res, err
}

// scrubJSON returns v, a decoded JSON value, with secret.Scrub applied to
// every string in it: values, map keys, and numbers (json.Number), which
// become strings when they held a secret. A key that held a secret and now
// reads like another is given a " #2", " #3"… suffix (keys without secrets
// keep their names, the others are taken in sorted order), so that no value
// is lost and the outcome does not depend on map order.
func scrubJSON(v any) any {
	switch v := v.(type) {
	case string:
		return secret.Scrub(v)
	case json.Number:
		if s := secret.Scrub(v.String()); s != v.String() {
			return s
		}
		return v
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = scrubJSON(e)
		}
		return out
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make(map[string]any, len(v))
		var scrubbed []string
		for _, k := range keys {
			if secret.Scrub(k) != k {
				scrubbed = append(scrubbed, k)
				continue
			}
			out[k] = scrubJSON(v[k])
		}
		for _, k := range scrubbed {
			sk := secret.Scrub(k)
			for n := 2; ; n++ {
				if _, taken := out[sk]; !taken {
					break
				}
				sk = fmt.Sprintf("%s #%d", secret.Scrub(k), n)
			}
			out[sk] = scrubJSON(v[k])
		}
		return out
	}
	// Booleans, nil, and the values this package puts in itself.
	return v
}

// startError explains why a program could not be started.
func startError(req *handlers.Request, prog program, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && errors.Is(pe.Err, syscall.ENOEXEC) {
		return fault.New(fault.Usage, "%s: cannot run handler %s: it is not a program this system can execute (a script needs a #! line)", req.Conn, prog.Path)
	}
	if errors.Is(err, fs.ErrPermission) {
		return fault.New(fault.Usage, "%s: cannot run handler %s: permission denied (chmod +x it, and check its folder's permissions)", req.Conn, prog.Path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		// The program is there (it was found): what is missing is the
		// interpreter its #! line names.
		if line := shebang(prog.Path); strings.HasSuffix(line, "\r") {
			return fault.New(fault.Usage, "%s: cannot run handler %s: it has Windows line endings (CRLF), so its #! line names %q; convert it to Unix line endings (dos2unix)", req.Conn, prog.Path, line)
		} else if interp, _, _ := strings.Cut(line, " "); interp != "" {
			if _, serr := os.Stat(interp); serr != nil {
				return fault.New(fault.Usage, "%s: cannot run handler %s: its interpreter (%s, on its #! line) is not in this image; install it, or point the #! line at one that is", req.Conn, prog.Path, line)
			}
		}
	}
	return fault.New(fault.Usage, "%s: cannot run handler %s: %v", req.Conn, prog.Path, err)
}

// shebang returns what a script's #! line names (the interpreter and its
// arguments), "" for none.
func shebang(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 256)
	n, _ := io.ReadFull(f, b)
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	if rest, ok := strings.CutPrefix(line, "#!"); ok {
		return strings.TrimLeft(rest, " \t") // a trailing \r stays: the kernel reads it as part of the name
	}
	return ""
}

// readResult reads the optional result a handler wrote; nil when none.
func readResult(path string) (*handlerResult, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hr handlerResult
	dec := json.NewDecoder(io.LimitReader(f, 1<<20))
	dec.UseNumber()
	if err := dec.Decode(&hr); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("not a JSON object {summary, files, bytes, skipped, details}: %v", err)
	}
	return &hr, nil
}

// sigName names a signal the way people write it (SIGTERM, not "terminated").
func sigName(s os.Signal) string {
	names := map[os.Signal]string{
		syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT", syscall.SIGKILL: "SIGKILL",
		syscall.SIGHUP: "SIGHUP", syscall.SIGQUIT: "SIGQUIT", syscall.SIGSEGV: "SIGSEGV",
		syscall.SIGABRT: "SIGABRT", syscall.SIGPIPE: "SIGPIPE",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return s.String()
}
