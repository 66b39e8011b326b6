package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/secret"
)

// cliEngine runs the git CLI. Credentials reach git only through the
// environment of its processes: a credential helper (set with
// GIT_CONFIG_COUNT/KEY/VALUE, scoped to the remote's scheme://host) that
// prints them from variables, or GIT_SSH_COMMAND with a private copy of the
// key. They are never in argv, in .git/config or in the URL.
type cliEngine struct {
	git     string
	url     remote
	env     []string
	private string // private folder for the key copy and helper scripts
	log     func(msg string, args ...any)
}

func newCLI(req *handlers.Request, sp *spec) (*cliEngine, error) {
	e := &cliEngine{git: sp.gitPath, url: sp.fetch, log: req.Log.Debug}
	env := []string{
		"GIT_TERMINAL_PROMPT=0", // fail instead of prompting for credentials
		"GCM_INTERACTIVE=never",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
		"LC_ALL=C", // messages in English, which classify() reads
		"LANGUAGE=",
		"GIT_PROTOCOL_FROM_USER=0",
	}
	// --path is often a folder another user owns (an emptyDir is root's,
	// the container runs as another uid): git would refuse to work in the
	// clone made there ("dubious ownership"). This process made the clone.
	config := [][2]string{{"safe.directory", "*"}}
	if sp.fetch.Scheme == "file" {
		// A local repository the user named (git 2.38.1 allows file://
		// only to the user's own commands, which these are not).
		config = append(config, [2]string{"protocol.file.allow", "always"})
	}
	a := sp.auth
	switch a.kind {
	case authBasic, authStore:
		// printf, not echo: dash's echo reads backslashes in the values
		// (a CORP\nina user name, a password with \\ or \c) as escapes.
		scope := sp.fetch.credentialScope()
		// An empty helper first resets the helpers of the system and user
		// configuration, so theirs cannot answer in place of ours.
		config = append(config, [2]string{"credential." + scope + ".helper", ""})
		if a.kind == authBasic {
			config = append(config, [2]string{"credential." + scope + ".helper",
				`!f() { test "$1" = get || exit 0; printf 'username=%s\npassword=%s\n' "$INITIALIZER_GIT_USERNAME" "$INITIALIZER_GIT_PASSWORD"; }; f`})
			env = append(env, "INITIALIZER_GIT_USERNAME="+a.user.Name(), "INITIALIZER_GIT_PASSWORD="+a.pass.Reveal())
		} else {
			// Read-only use of the store: git would otherwise rewrite it.
			config = append(config, [2]string{"credential." + scope + ".helper",
				`!f() { test "$1" = get || exit 0; git credential-store --file="$INITIALIZER_GIT_CREDENTIALS_STORE" get; }; f`})
			env = append(env, "INITIALIZER_GIT_CREDENTIALS_STORE="+a.store)
		}
	case authSSH:
		cmd, sshEnv, err := e.sshCommand(a)
		if err != nil {
			e.close()
			return nil, fault.Wrap(fault.ClassOf(err), fmt.Errorf("%s: %w", req.Conn, err))
		}
		env = append(env, "GIT_SSH_COMMAND="+cmd, "GIT_SSH_VARIANT=ssh")
		env = append(env, sshEnv...)
	}
	if !hasLFS() {
		// A system or user config may name git-lfs as a required filter
		// (Debian's package does) while git-lfs is not installed: every
		// clone of an LFS repository would then fail obscurely. Check the
		// pointers out as they are instead; checkLFS warns about them.
		config = append(config, [2]string{"filter.lfs.process", ""}, [2]string{"filter.lfs.smudge", ""},
			[2]string{"filter.lfs.required", "false"})
	}
	e.env = append(cleanEnv(os.Environ()), env...)
	e.env = append(e.env, configEnv(os.Getenv("GIT_CONFIG_COUNT"), config)...)
	return e, nil
}

// hasLFS reports whether git-lfs is on PATH, where git looks for it.
func hasLFS() bool {
	_, err := exec.LookPath("git-lfs")
	return err == nil
}

// cleanEnv drops from the inherited environment what would change git's
// behaviour under us.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_SSH_COMMAND", "GIT_SSH",
			"GIT_TERMINAL_PROMPT", "GIT_ASKPASS", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "LC_ALL", "LANGUAGE":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// configEnv returns the GIT_CONFIG_COUNT/KEY_n/VALUE_n variables that add
// config to every git command, after any the environment already gives.
func configEnv(existing string, config [][2]string) []string {
	n, _ := strconv.Atoi(existing)
	if len(config) == 0 {
		return nil
	}
	var out []string
	for i, kv := range config {
		out = append(out, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", n+i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", n+i, kv[1]))
	}
	return append(out, fmt.Sprintf("GIT_CONFIG_COUNT=%d", n+len(config)))
}

// sshCommand writes the key (0600: ssh refuses keys others can read, and a
// mounted secret is usually 0644) and, for a passphrase, an askpass helper
// into a private folder, and returns the GIT_SSH_COMMAND.
func (e *cliEngine) sshCommand(a *auth) (string, []string, error) {
	args := []string{"ssh", "-o", "LogLevel=ERROR", "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no"}
	var env []string
	if a.key != nil {
		// ssh would only say "Permission denied (publickey)".
		if err := checkKeyPassphrase(a.key, a.passphrase, a.keySource); err != nil {
			return "", nil, err
		}
	}
	if a.key != nil || a.passphrase.Reveal() != "" {
		dir, err := fsutil.PrivateTempDir("initializer-git-")
		if err != nil {
			return "", nil, fault.FromSystem(err)
		}
		e.private = dir
	}
	if a.key != nil {
		p := filepath.Join(e.private, "key")
		if err := os.WriteFile(p, a.key, 0o600); err != nil {
			return "", nil, fault.FromSystem(err)
		}
		args = append(args, "-i", shellQuote(p), "-o", "IdentitiesOnly=yes")
	}
	if pass := a.passphrase.Reveal(); pass != "" {
		p := filepath.Join(e.private, "askpass")
		if err := os.WriteFile(p, []byte("#!/bin/sh\nprintf '%s\\n' \"$INITIALIZER_SSH_PASSPHRASE\"\n"), 0o700); err != nil {
			return "", nil, fault.FromSystem(err)
		}
		env = append(env, "SSH_ASKPASS="+p, "SSH_ASKPASS_REQUIRE=force", "INITIALIZER_SSH_PASSPHRASE="+pass)
		args = append(args, "-o", "NumberOfPasswordPrompts=1")
	} else {
		args = append(args, "-o", "BatchMode=yes")
	}
	if len(a.knownHosts) > 0 {
		args = append(args, "-o", shellQuote("UserKnownHostsFile="+strings.Join(a.knownHosts, " ")), "-o", "StrictHostKeyChecking=yes")
	} else {
		// Upstream's behaviour: accept any host key (the driver warns).
		args = append(args, "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no")
	}
	return strings.Join(args, " "), env, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (e *cliEngine) name() string { return EngineCLI }

func (e *cliEngine) close() {
	if e.private != "" {
		os.RemoveAll(e.private)
	}
}

// run runs git with args in dir and returns its standard output. A failure
// becomes a classified error carrying git's last lines of stderr.
func (e *cliEngine) run(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.git, args...)
	cmd.Dir = dir
	cmd.Env = e.env
	// git runs helpers (git remote-http, ssh, git-lfs) that a signal to git
	// alone leaves running, orphaned, in a staging folder being removed:
	// git gets a process group of its own, and the signal goes to all of it.
	// Should this process be killed outright (SIGKILL, the OOM killer), the
	// kernel sends git the SIGTERM instead (Pdeathsig), so that it stops and
	// removes what it was writing rather than run on, orphaned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	e.log("git", "args", strings.Join(args, " "), "seconds", time.Since(start).Seconds(), "ok", err == nil)
	if ctx.Err() != nil && cmd.Process != nil {
		waitGroup(cmd.Process.Pid, cmd.WaitDelay)
	}
	if err == nil {
		return stdout.String(), nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	all := secret.Scrub(stderr.String())
	msg := lastLines(all, 6)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return "", fault.New(fault.Internal, "git %s: %v", args[0], err)
	}
	if files := lfsFailures(all); len(files) > 0 {
		// git-lfs's reason comes before git's own lines: read all of it.
		c := classify(all)
		if c == fault.Internal {
			c = fault.Transient
		}
		return "", fault.New(c, "git %s (%s): the Git LFS content of %s could not be fetched (check the LFS objects on the server and the credentials): %s",
			args[0], e.url, strings.Join(files, ", "), lastLines(dropLines(all, lfsNoise...), 6))
	}
	c := classify(msg)
	if localPermission(msg) {
		return "", fault.New(c, "git %s (%s): %s; let this container's user (uid %d) write to --path: its owner or mode, or the pod's securityContext (runAsUser, fsGroup)", args[0], e.url, msg, os.Getuid())
	}
	if c == fault.Transient && unknownHost(ctx, msg, e.url.Host) {
		return "", fault.New(fault.NotFound, "git %s (%s): %s", args[0], e.url, msg)
	}
	return "", fault.New(c, "git %s (%s): %s", args[0], e.url, msg)
}

// unknownHost reports, for git's "could not resolve host" (curl's and
// ssh's), that DNS says the host does not exist, rather than that it could
// not answer: a name to fix, not a failure to try again.
func unknownHost(ctx context.Context, msg, host string) bool {
	m := strings.ToLower(msg)
	if host == "" || !strings.Contains(m, "could not resolve host") {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := net.DefaultResolver.LookupHost(ctx, host)
	var dns *net.DNSError
	return errors.As(err, &dns) && dns.IsNotFound
}

// waitGroup waits until the processes of group pgid (git's helpers, which
// outlive git when it is stopped) are gone, killing them once grace has
// passed. They are not this process's children once git is gone, so it
// watches the group rather than waiting for them.
func waitGroup(pgid int, grace time.Duration) {
	deadline := time.Now().Add(grace)
	killed := false
	for groupRunning(pgid) {
		if time.Now().After(deadline) {
			if killed {
				return
			}
			syscall.Kill(-pgid, syscall.SIGKILL)
			killed, deadline = true, time.Now().Add(time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupRunning reports whether a process of group pgid still runs. Exited
// ones stay in the group until whoever adopted them reaps them (PID 1, late
// or never when it is this process), so zombies do not count.
func groupRunning(pgid int) bool {
	if syscall.Kill(-pgid, 0) != nil {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// lfsNoise are the lines of a failed LFS smudge that say nothing about
// why: where git-lfs logged it, and how to resume the checkout by hand.
var lfsNoise = []string{"Errors logged to", "git lfs logs last", "Clone succeeded, but checkout failed",
	"You can inspect what was checked out", "retry with 'git restore"}

// dropLines removes the lines of s that contain any of subs.
func dropLines(s string, subs ...string) string {
	var kept []string
	for _, l := range strings.Split(s, "\n") {
		if !slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(l, sub) }) {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n")
}

// lfsFailures returns the files named in git's "smudge filter lfs failed"
// messages.
func lfsFailures(stderr string) []string {
	var files []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "fatal:"))
		if f, ok := strings.CutSuffix(l, ": smudge filter lfs failed"); ok {
			files = append(files, f)
		}
	}
	return files
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var kept []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "hint:") || strings.HasPrefix(l, "ssh-keygen -f ") ||
			l == "Please make sure you have the correct access rights" || l == "and the repository exists." {
			continue // advice of git's and ssh's own, which the hints replace
		}
		kept = append(kept, l)
	}
	if len(kept) > n {
		kept = kept[len(kept)-n:]
	}
	if len(kept) == 0 {
		return "failed without a message"
	}
	return strings.Join(kept, " / ")
}

// classify maps git's (and ssh's, and curl's) messages to exit classes.
func classify(msg string) fault.Class {
	m := strings.ToLower(msg)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(m, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("no space left on device", "disk quota exceeded", "read-only file system"):
		return fault.LocalDisk
	case has("detected dubious ownership"):
		return fault.Auth // a repository another user owns: nothing to try again
	case usageHint(msg) != "":
		return fault.Usage
	case has("authentication failed", "could not read username", "could not read password",
		"permission denied (publickey", "permission denied, please try again", "host key verification failed",
		"returned error: 401", "returned error: 403", "http 401", "http 403", "access denied",
		"remote host identification has changed", "no such identity", "incorrect passphrase",
		"too many authentication failures", "invalid username or password", "load key"):
		return fault.Auth
	case localPermission(msg):
		return fault.Auth
	case has("repository not found", "no such repository", "does not appear to be a git repository", "returned error: 404",
		"couldn't find remote ref", "not our ref", "no such remote ref", "unknown revision",
		"not a valid object name", "did not match any", "not a tree object", "bad object", "not found",
		"object does not exist", "missing object"):
		return fault.NotFound
	case has("could not resolve host", "connection refused", "connection timed out", "timed out",
		"connection reset", "early eof", "hung up unexpectedly", "rpc failed", "returned error: 5",
		"unable to access", "failed to connect", "network is unreachable", "no route to host",
		"could not read from remote repository", "unexpected disconnect", "broken pipe",
		"ssl_error", "gnutls", "tls connection", "connection closed"):
		return fault.Transient
	}
	return fault.Internal
}

// localPermission reports that git's message is about a local file this
// user may not write (not a server's refusal, nor ssh's).
func localPermission(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "permission denied") && !strings.Contains(m, "permission denied (") &&
		!strings.Contains(m, "please try again") && !strings.Contains(m, "remote:")
}

// usageHint names the fix of a mistake of the settings that git's (or
// ssh's, or curl's) message shows, which trying again would not mend; ""
// for any other message.
func usageHint(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "server gave http response to https client"), strings.Contains(m, "unexpected tls packet"),
		strings.Contains(m, "wrong version number"):
		return "the server speaks plain http, not https: give schema.url as http://"
	case strings.Contains(m, "no user exists for uid"):
		return "ssh needs this user (runAsUser) in the image's /etc/passwd: add it there, or use --git-engine go-git"
	}
	return ""
}

// uploadPack returns the option that runs a file:// repository's
// upload-pack trusting it whoever owns it: git passes a local transport's
// upload-pack none of the configuration in its environment, so the
// safe.directory given there does not reach it, and a repository another
// user owns (a read-only mirror volume) is refused as "dubious ownership".
func (e *cliEngine) uploadPack() []string {
	if e.url.Scheme != "file" {
		return nil
	}
	return []string{"--upload-pack=" + shellQuote(e.git) + " -c safe.directory='*' upload-pack"}
}

func (e *cliEngine) lsRemote(ctx context.Context) (*remoteRefs, error) {
	out, err := e.run(ctx, "", append(append([]string{"ls-remote", "--symref"}, e.uploadPack()...), "--", e.url.String())...)
	if err != nil {
		return nil, err
	}
	refs := newRemoteRefs()
	for _, line := range strings.Split(out, "\n") {
		left, name, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if target, found := strings.CutPrefix(left, "ref: "); found {
			if name == "HEAD" {
				refs.head = target
			}
			continue
		}
		if tag, found := strings.CutSuffix(name, "^{}"); found {
			refs.peeled[tag] = left
			continue
		}
		refs.refs[name] = left
	}
	return refs, nil
}

// clone is git clone of the default branch or of rev (a branch or tag
// name): one process fetches and checks out, as a user's git clone does.
func (e *cliEngine) clone(ctx context.Context, dir, rev string, o Options) (target, string, error) {
	args := append([]string{"clone", "--quiet", "--no-recurse-submodules"}, e.uploadPack()...)
	if o.Depth > 0 {
		args = append(args, "--depth", strconv.Itoa(o.Depth))
	}
	if o.SingleBranch {
		args = append(args, "--single-branch")
	}
	if o.NoTags {
		args = append(args, "--no-tags")
	}
	if o.Filter != "" {
		args = append(args, "--filter="+o.Filter)
	}
	if rev != "" {
		args = append(args, "--branch", rev)
	}
	args = append(args, "--", e.url.String(), ".")
	if _, err := e.run(ctx, dir, args...); err != nil {
		return target{}, "", err
	}
	h, err := e.head(ctx, dir)
	if err != nil {
		if out, ferr := e.run(ctx, dir, "for-each-ref", "--count=1", "--format=%(refname)"); ferr == nil && strings.TrimSpace(out) == "" {
			// git clone of an empty repository succeeds, with nothing
			// to check out: said as the go-git engine says it.
			return target{}, "", fault.New(fault.NotFound, "the repository %s is empty (it has no branch)", e.url)
		}
		return target{}, "", err
	}
	if h.branch != "" {
		return target{kind: "branch", name: h.branch, ref: "refs/heads/" + h.branch, commit: h.commit}, h.commit, nil
	}
	return target{kind: "tag", name: rev, ref: "refs/tags/" + rev, commit: h.commit}, h.commit, nil
}

func (e *cliEngine) init(ctx context.Context, dir string) error {
	if _, err := e.run(ctx, dir, "init", "--quiet", "."); err != nil {
		return err
	}
	_, err := e.run(ctx, dir, "remote", "add", "origin", e.url.String())
	return err
}

func (e *cliEngine) setOrigin(ctx context.Context, dir, url string) error {
	_, err := e.run(ctx, dir, "remote", "set-url", "origin", url)
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "no such remote") {
		// A clone whose origin was removed.
		_, err = e.run(ctx, dir, "remote", "add", "origin", url)
	}
	return err
}

func (e *cliEngine) fetch(ctx context.Context, dir string, f fetchSpec) error {
	args := append([]string{"fetch", "--quiet", "--force", "--update-head-ok", "--no-recurse-submodules"}, e.uploadPack()...)
	if f.depth > 0 {
		args = append(args, "--depth", strconv.Itoa(f.depth))
	}
	if f.unshallow && fileExists(filepath.Join(dir, ".git", "shallow")) {
		args = append(args, "--unshallow")
	}
	if f.filter != "" {
		args = append(args, "--filter="+f.filter)
	}
	if !f.tags {
		args = append(args, "--no-tags")
	}
	args = append(args, "origin")
	args = append(args, f.refspecs...)
	_, err := e.run(ctx, dir, args...)
	return err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (e *cliEngine) commit(ctx context.Context, dir, rev string) (string, error) {
	out, err := e.run(ctx, dir, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return "", fault.Wrap(fault.NotFound, fmt.Errorf("revision %q not found after fetching: %w", rev, err))
	}
	return strings.TrimSpace(out), nil
}

func (e *cliEngine) checkout(ctx context.Context, dir, commit, branch string) error {
	args := []string{"-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--no-recurse-submodules"}
	if branch != "" {
		args = append(args, "-B", branch, commit)
	} else {
		args = append(args, "--detach", commit)
	}
	if _, err := e.run(ctx, dir, args...); err != nil {
		return err
	}
	if branch != "" {
		if _, err := e.run(ctx, dir, "config", "branch."+branch+".remote", "origin"); err != nil {
			return err
		}
		if _, err := e.run(ctx, dir, "config", "branch."+branch+".merge", "refs/heads/"+branch); err != nil {
			return err
		}
	}
	return nil
}

func (e *cliEngine) trees(ctx context.Context, dir, commit string) (map[string]bool, []item, error) {
	out, err := e.run(ctx, dir, "ls-files", "-z")
	if err != nil {
		return nil, nil, err
	}
	tracked := map[string]bool{}
	for _, name := range strings.Split(out, "\x00") {
		if name != "" {
			tracked[name] = true
		}
	}
	if out, err = e.run(ctx, dir, "ls-tree", "-r", "-z", commit); err != nil {
		return nil, nil, err
	}
	var next []item
	for _, line := range strings.Split(out, "\x00") {
		// <mode> SP <type> SP <hash> TAB <path>
		meta, name, ok := strings.Cut(line, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			continue
		}
		mode, err := filemode.New(f[0])
		if err != nil {
			continue
		}
		next = append(next, item{name: name, hash: plumbing.NewHash(f[2]), mode: mode})
	}
	return tracked, next, nil
}

func (e *cliEngine) submodules(ctx context.Context, dir string, shallow bool) ([]string, error) {
	args := []string{"submodule", "update", "--init", "--recursive", "--force"}
	if shallow {
		args = append(args, "--depth", "1")
	}
	if _, err := e.run(ctx, dir, args...); err != nil {
		return nil, err
	}
	out, err := e.run(ctx, dir, "submodule", "foreach", "--quiet", "--recursive", "echo \"$displaypath\"")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

func (e *cliEngine) lfsPull(ctx context.Context, dir string) (bool, error) {
	if _, err := e.run(ctx, dir, "lfs", "version"); err != nil {
		return false, nil
	}
	if _, err := e.run(ctx, dir, "lfs", "install", "--local"); err != nil {
		e.log("git lfs install --local failed", "error", err)
	}
	if _, err := e.run(ctx, dir, "lfs", "pull"); err != nil {
		return false, err
	}
	return true, nil
}

func (e *cliEngine) finish(ctx context.Context, dir, originURL, fetchRefspec string) error {
	if originURL != e.url.String() {
		if _, err := e.run(ctx, dir, "remote", "set-url", "origin", originURL); err != nil {
			return err
		}
	}
	if fetchRefspec == "" {
		return nil
	}
	_, err := e.run(ctx, dir, "config", "remote.origin.fetch", fetchRefspec)
	return err
}

func (e *cliEngine) head(ctx context.Context, dir string) (headInfo, error) {
	out, err := e.run(ctx, dir, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
	if err != nil {
		return headInfo{}, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return headInfo{}, fault.New(fault.Internal, "git rev-parse HEAD: unexpected output %q", out)
	}
	h := headInfo{commit: f[0], shallow: fileExists(filepath.Join(dir, ".git", "shallow"))}
	if f[1] != "HEAD" {
		h.branch = f[1]
	}
	return h, nil
}
