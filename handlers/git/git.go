// Package git handles git connections: it clones (or, into an existing clone
// of the same remote, fetches) the repository and checks out the requested
// revision at --path.
//
// Two engines do the git work behind one driver: the git CLI, used when git
// is on PATH, and go-git, built in so that the binary works in an image
// without git. The driver resolves the revision against the remote's refs,
// fetches only what the revision needs, falls back to a deeper fetch for a
// commit that is no ref's tip, checks out, updates submodules, and publishes
// a fresh clone with a rename so that a failed clone leaves nothing behind.
package git

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/secret"
)

// Kinds are the kinds this handler serves.
var Kinds = []connections.Kind{connections.Git}

// Engine names.
const (
	EngineAuto  = "auto"
	EngineCLI   = "cli"
	EngineGoGit = "go-git"
)

// Handler is the git handler. Its fields hold its command-line flags.
type Handler struct {
	url      string
	revision string
	flags    string
	engine   string
	strict   bool

	// lookPath finds programs; tests replace it to hide git.
	lookPath func(string) (string, error)
	// retryDelays are the waits between attempts of a network step.
	retryDelays []time.Duration
}

// New returns the git handler.
func New() *Handler {
	return &Handler{
		engine:      EngineAuto,
		lookPath:    exec.LookPath,
		retryDelays: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
	}
}

// Flags adds the git flags.
func (h *Handler) Flags(fs *pflag.FlagSet) {
	fs.StringVar(&h.url, "url", "", "git: repository URL (overrides the connection's schema.url)")
	fs.StringVar(&h.revision, "revision", "", "git: branch, tag, commit or refs/... to check out (overrides schema.revision; default: the default branch)")
	fs.StringVar(&h.flags, "flags", "", `git: clone flags, as a JSON array or comma-separated (overrides schema.flags), e.g. '["--depth 1","--recurse-submodules"]'`)
	fs.StringVar(&h.engine, "git-engine", EngineAuto, "git: engine: auto (the git CLI when on PATH, else go-git), cli or go-git")
	fs.BoolVar(&h.strict, "strict-host-key-checking", false, "git: refuse SSH hosts whose key is not in a known_hosts (by default they are accepted with a warning, as upstream does)")
}

// UsesFlags implements handlers.FlagUser: a clone takes the whole
// repository, with no --paths, --workers or --checksum.
func (h *Handler) UsesFlags() []string { return []string{"force"} }

// spec is one run's inputs, validated.
type spec struct {
	given    remote // the URL as given (credentials inside are moved to auth)
	fetch    remote // the URL fetched from, after upstream's rewriting
	revision string
	opts     Options
	auth     *auth
	engine   string // cli or go-git
	gitPath  string
}

// plan validates the connection and the flags and picks the engine.
func (h *Handler) plan(req *handlers.Request) (*spec, error) {
	c := req.Conn
	s := c.Git()
	if s == nil {
		return nil, fault.New(fault.Internal, "%s: the git handler got a connection of another kind", c)
	}
	rawURL, urlField := s.URL, "schema.url"
	if h.url != "" {
		rawURL, urlField = h.url, "--url"
	}
	if strings.TrimSpace(rawURL) == "" {
		return nil, fault.New(fault.Usage, "%s: no repository URL; set schema.url in the connection or pass --url", c)
	}
	given, err := parseRemote(rawURL)
	if err != nil {
		return nil, fault.New(fault.Usage, "%s: %s: %v", c, urlField, err)
	}
	if given.HasPass {
		secret.Register(given.Password)
	}
	flagItems, flagsField := s.Flags, "schema.flags"
	if h.flags != "" {
		if flagItems, err = connections.ParseFlagList(h.flags); err != nil {
			return nil, fault.New(fault.Usage, "%s: --flags: %v", c, err)
		}
		flagsField = "--flags"
	}
	opts, err := ParseOptions(flagItems)
	if err != nil {
		return nil, fault.New(fault.Usage, "%s: %s: %v", c, flagsField, err)
	}
	rev := s.Revision
	if h.revision != "" {
		rev = h.revision
	}
	if rev == "" {
		rev = opts.Branch
	}
	a, fetchURL, err := resolveAuth(c, req.Keys, given, h.strict)
	if err != nil {
		return nil, err
	}
	sp := &spec{given: given, fetch: fetchURL, revision: strings.TrimSpace(rev), opts: opts, auth: a}

	gitPath, gitErr := h.lookPath("git")
	switch h.engine {
	case EngineCLI:
		if gitErr != nil {
			return nil, fault.New(fault.Usage, "%s: --git-engine cli needs git on PATH, and it is not there; install git in the image or use --git-engine go-git", c)
		}
		sp.engine, sp.gitPath = EngineCLI, gitPath
	case EngineGoGit:
		sp.engine = EngineGoGit
	case EngineAuto, "":
		sp.engine = EngineGoGit
		if gitErr == nil {
			sp.engine, sp.gitPath = EngineCLI, gitPath
			if fetchURL.isSSH() {
				if _, err := h.lookPath("ssh"); err != nil {
					// git needs ssh for SSH URLs; go-git speaks SSH itself.
					sp.engine, sp.gitPath = EngineGoGit, ""
				}
			}
		}
	default:
		return nil, fault.New(fault.Usage, "%s: --git-engine %q: use auto, cli or go-git", c, h.engine)
	}
	if sp.engine == EngineGoGit && opts.Filter != "" {
		return nil, fault.New(fault.Usage, "%s: %s: --filter (partial clone) needs the git CLI engine, which go-git cannot do; install git in the image or drop --filter", c, flagsField)
	}
	if sp.engine == EngineCLI && fetchURL.isSSH() {
		if _, err := h.lookPath("ssh"); err != nil {
			return nil, fault.New(fault.Usage, "%s: the git CLI needs ssh on PATH for %s; install openssh-client in the image or use --git-engine go-git", c, fetchURL)
		}
	}
	if a.kind == authSSH && len(a.knownHosts) == 0 && a.strict {
		return nil, fault.New(fault.Auth, "%s: --strict-host-key-checking is set but no known_hosts was given, so the host key of %s cannot be verified; add a known_hosts file to the connection's secret or set SSH_KNOWN_HOSTS", c, fetchURL.hostPort())
	}
	return sp, nil
}

// newEngine returns the engine of sp, ready to talk to the remote. The caller
// closes it.
func (h *Handler) newEngine(req *handlers.Request, sp *spec) (engine, error) {
	if sp.engine == EngineCLI {
		return newCLI(req, sp)
	}
	return newGoGit(req, sp)
}

// Check validates the connection, its credentials and the revision against
// the remote without writing anything to --path.
func (h *Handler) Check(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	res, err := h.check(ctx, req)
	return res, stopped(ctx, req, err)
}

// stopped says that a run was stopped by a signal, when it was, instead of
// the "context canceled" its steps return.
func stopped(ctx context.Context, req *handlers.Request, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	why := "stopped by a signal"
	if cause := context.Cause(ctx); cause != nil && cause.Error() != context.Canceled.Error() {
		why += " (" + cause.Error() + ")"
	}
	return fault.New(fault.Interrupted, "%s: %s", req.Conn, why)
}

func (h *Handler) check(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	sp, err := h.plan(req)
	if err != nil {
		return nil, err
	}
	eng, err := h.newEngine(req, sp)
	if err != nil {
		return nil, err
	}
	defer eng.close()
	h.logAuth(req, sp)
	refs, err := withRetry(ctx, req.Log, h.retryDelays, "list refs", func() (*remoteRefs, error) { return eng.lsRemote(ctx) })
	if err != nil {
		return nil, h.describe(req, sp, err)
	}
	t, err := resolve(refs, sp.revision, sp.given.origin())
	if err != nil {
		return nil, fault.Wrap(fault.ClassOf(err), fmt.Errorf("%s: %w", req.Conn, err))
	}
	req.Log.Info("git remote checked", "url", sp.given.origin(), "revision", t.String(), "commit", t.commit, "engine", sp.engine)
	summary := fmt.Sprintf("%s: %s is reachable and has %s", req.Conn, sp.given.origin(), t)
	if t.ref == "" {
		// No ref's tip: the refs a remote lists cannot say whether it has
		// the commit; only fetching it can.
		summary = fmt.Sprintf("%s: %s is reachable; %s is at no branch or tag tip, so whether the remote has it is known only when a run fetches it", req.Conn, sp.given.origin(), t)
		req.Log.Warn("the commit is at no branch or tag tip: not verified without fetching", "revision", t.String())
	}
	return &handlers.Result{
		Summary: summary,
		Details: map[string]any{"url": sp.given.origin(), "revision": sp.revision, "resolved": t.String(), "commit": t.commit, "engine": sp.engine, "auth": sp.auth.kind.String()},
	}, nil
}

func (h *Handler) logAuth(req *handlers.Request, sp *spec) {
	attrs := []any{"url", sp.given.origin(), "engine", sp.engine, "auth", sp.auth.kind.String()}
	if sp.auth.source != "" {
		attrs = append(attrs, "credentialsFrom", sp.auth.source)
	}
	if sp.fetch.canonical() != sp.given.canonical() {
		attrs = append(attrs, "fetchURL", sp.fetch.String())
	}
	req.Log.Info("git", attrs...)
	if sp.auth.kind == authSSH && len(sp.auth.knownHosts) == 0 {
		req.Log.Warn("SSH host key of "+sp.fetch.hostPort()+" is not verified: no known_hosts given (add known_hosts to the connection's secret or set SSH_KNOWN_HOSTS; --strict-host-key-checking makes this an error)", "host", sp.fetch.hostPort())
	}
}

// describe turns an engine error into one that names the connection, the
// URL and the fix.
func (h *Handler) describe(req *handlers.Request, sp *spec, err error) error {
	if err == nil {
		return nil
	}
	class := fault.ClassOf(err) // context.Canceled: Interrupted
	hint := ""
	switch class {
	case fault.Auth:
		if strings.Contains(err.Error(), "detected dubious ownership") {
			fix := "use --git-engine cli, which trusts a file:// repository whoever owns it"
			if sp.engine == EngineCLI {
				// Its trust reaches the repository, not its submodules.
				fix = "give git a configuration that trusts it (GIT_CONFIG_GLOBAL naming a file that holds [safe] directory = *)"
			}
			hint = fmt.Sprintf("; the repository belongs to another user, and git refuses to read it as uid %d (\"dubious ownership\"): run as its owner (runAsUser), or %s", os.Getuid(), fix)
			break
		}
		if localPermission(err.Error()) || errors.Is(err, fs.ErrPermission) {
			// A file this user may not write, not a credential.
			if !strings.Contains(err.Error(), "let this container's user") {
				hint = fmt.Sprintf("; let this container's user (uid %d) write to --path: its owner or mode, or the pod's securityContext (runAsUser, fsGroup)", os.Getuid())
			}
			break
		}
		switch sp.auth.kind {
		case authNone:
			hint = "; the remote asks for credentials: give POLYAXON_GIT_CREDENTIALS (user:token), a username/password or token in the connection's secret, or an SSH key"
			if sp.auth.unusedStore != "" {
				hint = "; the remote asks for credentials, and the credential store was not read: " + sp.auth.unusedStore + "; mount the .git-credentials file there, or fix the path"
			}
		case authSSH:
			hint = fmt.Sprintf("; check the SSH key (%s) is authorized on the server and the host key is in the known_hosts given", orDefault(sp.auth.keySource, "ssh's default keys"))
			if m := strings.ToLower(err.Error()); strings.Contains(m, "key mismatch") || strings.Contains(m, "host identification has changed") ||
				strings.Contains(m, "host key for") && strings.Contains(m, "has changed") {
				hint = "; the server's host key is not the one the known_hosts given holds for it: check that known_hosts (the server may have been replaced, or the entry is stale)"
			}
		default:
			hint = fmt.Sprintf("; check the credentials (from %s)", sp.auth.source)
		}
	case fault.Transient:
		hint = "; the remote could not be reached after retries: check the URL's host and port, and the network"
		if ph := handlers.ProxyHint(err.Error()); ph != "" {
			hint = "; the remote could not be reached after retries" + ph
		}
	case fault.Usage:
		if h := usageHint(err.Error()); h != "" {
			hint = "; " + h
		}
	case fault.NotFound:
		switch m := strings.ToLower(err.Error()); {
		case strings.Contains(m, "could not resolve host") || strings.Contains(m, "no such host"):
			hint = fmt.Sprintf("; the host %s does not exist: check schema.url", sp.fetch.Host)
		case strings.Contains(m, "repository not found"), strings.Contains(m, "no such repository"), strings.Contains(m, "does not appear to be a git repository"),
			strings.Contains(m, "repository '") && strings.Contains(m, "' not found"):
			hint = "; check schema.url (some servers also answer so for a private repository the credentials may not see)"
		}
	}
	return fault.Wrap(class, fmt.Errorf("%s: %w%s", req.Conn, err, hint))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// withRetry runs f, again after each delay while it fails with a transient
// error.
func withRetry[T any](ctx context.Context, log *slog.Logger, delays []time.Duration, what string, f func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := f()
		if err == nil || fault.ClassOf(err) != fault.Transient || attempt >= len(delays) {
			if err != nil && ctx.Err() != nil {
				return v, ctx.Err()
			}
			return v, err
		}
		log.Warn("git: "+what+" failed, retrying", "attempt", attempt+1, "in", delays[attempt].String(), "error", err)
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(delays[attempt]):
		}
	}
}

// Run brings the repository to req.Path at the requested revision.
func (h *Handler) Run(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	res, err := h.run(ctx, req)
	return res, stopped(ctx, req, err)
}

func (h *Handler) run(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	started := time.Now()
	sp, err := h.plan(req)
	if err != nil {
		return nil, err
	}
	if req.Path == "" {
		return nil, fault.New(fault.Usage, "%s: --path is required: the folder to clone the repository into", req.Conn)
	}
	dest, err := inspectDest(req.Conn, req.Path, sp.given, req.Force)
	if err != nil {
		return nil, err
	}
	eng, err := h.newEngine(req, sp)
	if err != nil {
		return nil, err
	}
	defer eng.close()
	h.logAuth(req, sp)

	dir, err := dest.prepare()
	if err != nil {
		return nil, err
	}
	published := false
	defer func() {
		if !published {
			dest.abandon()
		}
	}()

	var t target
	var commit string
	direct := false // git clone checked out and configured the clone itself
	if c, ok := eng.(cloner); ok && dest.fresh && directClone(sp) {
		direct = true
		// One connection, as git clone itself: no separate listing of refs.
		req.Log.Info("cloning", "url", sp.given.origin(), "revision", orDefault(sp.revision, "default branch"), "path", req.Path, "engine", sp.engine)
		type cloned struct {
			t      target
			commit string
		}
		res, err := withRetry(ctx, req.Log, h.retryDelays, "clone", func() (cloned, error) {
			if err := clearDir(dir, ""); err != nil {
				return cloned{}, fault.FromSystem(err)
			}
			t, commit, err := c.clone(ctx, dir, sp.revision, sp.opts)
			return cloned{t, commit}, err
		})
		if fault.ClassOf(err) == fault.NotFound && sp.revision != "" {
			// Say what the remote has instead.
			if refs, lerr := eng.lsRemote(ctx); lerr == nil {
				if _, rerr := resolve(refs, sp.revision, sp.given.origin()); rerr != nil {
					err = rerr
				}
			}
		}
		if err != nil {
			return nil, h.describe(req, sp, err)
		}
		t, commit = res.t, res.commit
	} else {
		refs, err := withRetry(ctx, req.Log, h.retryDelays, "list refs", func() (*remoteRefs, error) { return eng.lsRemote(ctx) })
		if err != nil {
			return nil, h.describe(req, sp, err)
		}
		if t, err = resolve(refs, sp.revision, sp.given.origin()); err != nil {
			return nil, fault.Wrap(fault.ClassOf(err), fmt.Errorf("%s: %w", req.Conn, err))
		}
		if dest.fresh {
			req.Log.Info("cloning", "url", sp.given.origin(), "revision", t.String(), "path", req.Path, "engine", sp.engine)
			if err := eng.init(ctx, dir); err != nil {
				return nil, h.describe(req, sp, err)
			}
		} else {
			req.Log.Info("updating the existing clone", "url", sp.given.origin(), "revision", t.String(), "path", req.Path, "engine", sp.engine)
			if err := eng.setOrigin(ctx, dir, sp.fetch.String()); err != nil {
				return nil, h.describe(req, sp, err)
			}
		}
		if commit, err = h.fetchTarget(ctx, req, sp, eng, dir, t); err != nil {
			return nil, h.describe(req, sp, err)
		}
	}
	branch := ""
	if t.kind == "branch" && !sp.opts.ExperimentalFetch {
		branch = t.name
	}
	if !direct && !dest.fresh && !req.Force {
		// git checkout --force would replace the untracked files the new
		// revision has at their paths: the job's, or the user's.
		tracked, next, err := eng.trees(ctx, dir, commit)
		if err != nil {
			return nil, h.describe(req, sp, err)
		}
		if way := inTheWay(dir, tracked, next, 11); len(way) > 0 {
			more := ""
			if len(way) > 10 {
				way, more = way[:10], ", …"
			}
			return nil, fault.New(fault.Usage, "%s: --path %s holds files the clone does not track where %s has files of its own: %s%s; move them away, or pass --force to replace them", req.Conn, req.Path, t, strings.Join(way, ", "), more)
		}
	}
	if !direct {
		cctx := ctx
		if !dest.fresh && sp.engine == EngineCLI {
			// git checkout changes the clone in place: once begun, it ends;
			// a stop midway would leave the tree half one revision, half the
			// other. (The go-git engine writes the new contents aside first,
			// and stops only within that step.)
			cctx = context.WithoutCancel(ctx)
		}
		if err := eng.checkout(cctx, dir, commit, branch); err != nil {
			return nil, h.describe(req, sp, err)
		}
	}
	var subs []string
	if sp.opts.RecurseSubmodules {
		subs, err = withRetry(ctx, req.Log, h.retryDelays, "submodule update", func() ([]string, error) {
			return eng.submodules(ctx, dir, sp.opts.ShallowSubmodules)
		})
		if err != nil {
			return nil, h.describe(req, sp, fmt.Errorf("submodules: %w", err))
		}
	}
	files, bytes, attrs := scanTree(dir)
	lfs, err := checkLFS(ctx, req, eng, dir, attrs)
	if err != nil {
		return nil, h.describe(req, sp, err)
	}
	if lfs.smudged {
		files, bytes, _ = scanTree(dir)
	}
	fetchSpec := "" // as git clone set it
	if !direct {
		fetchSpec = "+refs/heads/*:refs/remotes/origin/*"
		if branch != "" && sp.opts.single() {
			fetchSpec = fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%s", branch, branch)
		}
	}
	if err := eng.finish(ctx, dir, sp.given.origin(), fetchSpec); err != nil {
		return nil, h.describe(req, sp, err)
	}
	// HEAD is read before the clone is published: a failure leaves
	// nothing at --path.
	head, err := eng.head(ctx, dir)
	if err != nil {
		return nil, h.describe(req, sp, err)
	}
	if head.commit != commit {
		return nil, fault.New(fault.Internal, "%s: checked out %s but HEAD is %s", req.Conn, commit, head.commit)
	}
	if err := dest.publish(); err != nil {
		return nil, err
	}
	published = true
	details := map[string]any{
		"url": sp.given.origin(), "commit": head.commit, "revision": sp.revision, "resolved": t.String(),
		"engine": sp.engine, "auth": sp.auth.kind.String(), "shallow": head.shallow,
		"updated": !dest.fresh,
	}
	if head.branch != "" {
		details["branch"] = head.branch
	} else {
		details["branch"] = "HEAD"
		details["detached"] = true
	}
	if len(subs) > 0 {
		details["submodules"] = subs
	}
	for k, v := range lfs.details() {
		details[k] = v
	}
	verb := "cloned"
	if !dest.fresh {
		verb = "updated"
	}
	on := head.branch
	if on == "" {
		on = "detached HEAD"
	}
	req.Log.Info("git repository ready", "url", sp.given.origin(), "commit", head.commit, "branch", details["branch"], "path", req.Path, "engine", sp.engine, "seconds", time.Since(started).Round(time.Millisecond).Seconds())
	return &handlers.Result{
		Summary: fmt.Sprintf("%s: %s %s at %s (%s) into %s", req.Conn, verb, sp.given.origin(), head.commit[:12], on, req.Path),
		Path:    req.Path,
		Files:   files,
		Bytes:   bytes,
		Details: details,
	}, nil
}

// cloner is an engine that can clone a branch or tag by name in one go
// (git clone --branch), which saves the separate listing of refs.
type cloner interface {
	clone(ctx context.Context, dir, rev string, o Options) (target, string, error)
}

// directClone reports revisions a plain clone resolves the way resolve()
// would: the default branch, or a branch or tag name that cannot be taken
// for a commit hash or a full ref.
func directClone(sp *spec) bool {
	rev := sp.revision
	switch {
	case sp.opts.ExperimentalFetch:
		return false
	case rev == "":
		return true
	case strings.HasPrefix(rev, "refs/") || rev == "HEAD" || (isHex(rev) && len(rev) >= 4):
		return false
	}
	return true
}

// fetchTarget fetches what t needs into dir and returns its commit.
func (h *Handler) fetchTarget(ctx context.Context, req *handlers.Request, sp *spec, eng engine, dir string, t target) (string, error) {
	o := sp.opts
	fetch := func(f fetchSpec) error {
		_, err := withRetry(ctx, req.Log, h.retryDelays, "fetch", func() (struct{}, error) { return struct{}{}, eng.fetch(ctx, dir, f) })
		return err
	}
	base := fetchSpec{depth: o.Depth, filter: o.Filter, tags: !o.NoTags}
	heads := "+refs/heads/*:refs/remotes/origin/*"
	switch {
	case t.ref != "":
		f := base
		local := localRef(t)
		// go-git fetches the revision's ref alone: its memory grows with
		// what it fetches. The git CLI fetches all branches, as git clone.
		single := o.single() || eng.name() == EngineGoGit
		if !single {
			f.refspecs = append(f.refspecs, heads)
		}
		if single || !strings.HasPrefix(t.ref, "refs/heads/") {
			f.refspecs = append(f.refspecs, "+"+t.ref+":"+local)
		}
		if err := fetch(f); err != nil {
			return "", err
		}
		rev := local
		if t.kind == "commit" {
			rev = t.commit
		}
		return eng.commit(ctx, dir, rev)
	case !t.prefix:
		// A full commit hash at no ref's tip: ask for it directly (servers
		// speaking protocol v2, or allowing any reachable commit, give it),
		// else fetch the branches and tags whole and look for it there.
		f := base
		f.refspecs, f.tags = []string{t.commit}, false
		err := fetch(f)
		if err == nil {
			if c, err := eng.commit(ctx, dir, t.commit); err == nil {
				return c, nil
			}
		} else if ctx.Err() != nil || fault.ClassOf(err) == fault.Auth {
			return "", err
		}
		req.Log.Warn("git: the server does not give commit "+t.commit+" directly; fetching its branches and tags in full to find it", "error", err)
	}
	if t.prefix {
		req.Log.Info("git: " + t.name + " is an abbreviated commit at no ref's tip; fetching the branches and tags in full to find it")
	}
	f := fetchSpec{refspecs: []string{heads, "+refs/tags/*:refs/tags/*"}, filter: o.Filter, unshallow: true}
	if err := fetch(f); err != nil {
		return "", err
	}
	c, err := eng.commit(ctx, dir, t.name)
	if err != nil {
		return "", fault.Wrap(fault.NotFound, fmt.Errorf("revision %q is not a commit reachable from any branch or tag of %s; fix schema.revision (or --revision)", t.name, sp.given.origin()))
	}
	return c, nil
}

// localRef is where the fetched ref of t is stored in the clone.
func localRef(t target) string {
	switch {
	case strings.HasPrefix(t.ref, "refs/heads/"):
		return "refs/remotes/origin/" + strings.TrimPrefix(t.ref, "refs/heads/")
	case strings.HasPrefix(t.ref, "refs/tags/"):
		return t.ref
	}
	return t.ref
}

// scanTree counts the files and bytes of the checkout (.git excluded) and
// returns the .gitattributes files it has, in one walk.
func scanTree(root string) (files, bytes int64, attrs []string) {
	_ = walkTree(root, func(p string, info os.FileInfo) {
		if info.Mode().IsRegular() {
			files++
			bytes += info.Size()
			if info.Name() == ".gitattributes" {
				attrs = append(attrs, p)
			}
		}
	})
	return files, bytes, attrs
}
