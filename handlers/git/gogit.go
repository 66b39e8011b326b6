package git

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh"

	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/secret"
)

// goGitEngine uses go-git, built into the binary: it works in an image
// without git. It fetches with NoTags (tags only when the revision is one)
// and only the revision's ref when it can, which bounds its memory.
type goGitEngine struct {
	url    remote
	auth   transport.AuthMethod
	log    func(msg string, args ...any)
	repos  map[string]*gogit.Repository // opened repositories, by folder
	stores []*PackStorage               // their storage, closed by close()
}

func newGoGit(req *handlers.Request, sp *spec) (*goGitEngine, error) {
	e := &goGitEngine{url: sp.fetch, log: req.Log.Debug}
	a, err := goGitAuth(sp.auth, sp.fetch)
	if err != nil {
		return nil, fault.Wrap(fault.ClassOf(err), fmt.Errorf("%s: %w", req.Conn, err))
	}
	e.auth = a
	guardMemory(req)
	return e, nil
}

// goGitAuth turns the resolved credentials into go-git's auth method for u.
func goGitAuth(a *auth, u remote) (transport.AuthMethod, error) {
	switch a.kind {
	case authBasic:
		if !u.isHTTP() {
			return nil, nil
		}
		return &githttp.BasicAuth{Username: a.user.Name(), Password: a.pass.Reveal()}, nil
	case authStore:
		if !u.isHTTP() {
			return nil, nil
		}
		user, pass, ok, err := storeLookup(a.store, u)
		if err != nil {
			return nil, fault.New(fault.Auth, "credential store %s: %v", a.store, err)
		}
		if !ok {
			return nil, nil // the server will say whether it needs any
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	case authSSH:
		if !u.isSSH() {
			return nil, nil
		}
		user := u.User
		if user == "" {
			user = "git"
		}
		key := a.key
		if key == nil {
			key = defaultUserKey()
			if key == nil {
				return nil, fault.New(fault.Usage, "no SSH key found for %s: put id_rsa (or set POLYAXON_SSH_PRIVATE_KEY to its name) in the connection's secret or in POLYAXON_SSH_PATH", u)
			}
		}
		source := orDefault(a.keySource, "~/.ssh")
		// Before NewPublicKeys, which tries an empty passphrase on a
		// protected key and reports bcrypt's complaint about it.
		if err := checkKeyPassphrase(key, a.passphrase, source); err != nil {
			return nil, err
		}
		pk, err := gitssh.NewPublicKeys(user, key, a.passphrase.Reveal())
		if err != nil {
			return nil, fault.New(fault.Usage, "the SSH key %s cannot be read: %v", source, err)
		}
		if len(a.knownHosts) > 0 {
			db, err := gitssh.NewKnownHostsDb(a.knownHosts...)
			if err != nil {
				return nil, fault.New(fault.Usage, "known_hosts %s: %v", strings.Join(a.knownHosts, ", "), err)
			}
			pk.HostKeyCallback = db.HostKeyCallback()
			port := u.Port
			if port == "" {
				port = "22"
			}
			pk.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(u.Host, port))
		} else {
			// Upstream's behaviour (the driver warns, or refuses under
			// --strict-host-key-checking).
			pk.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		}
		return pk, nil
	}
	return nil, nil
}

// defaultUserKey reads the first of ~/.ssh/id_* there is.
func defaultUserKey() []byte {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		if b, err := os.ReadFile(filepath.Join(home, ".ssh", n)); err == nil {
			return b
		}
	}
	return nil
}

// storeLookup finds the credentials for u in a git credential store file
// (lines like https://user:token@host).
func storeLookup(path string, u remote) (user, pass string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := url.Parse(line)
		if err != nil || e.User == nil {
			continue
		}
		if !strings.EqualFold(e.Scheme, u.Scheme) || !strings.EqualFold(e.Hostname(), u.Host) || e.Port() != u.Port {
			continue
		}
		if p := strings.Trim(e.Path, "/"); p != "" && !strings.HasPrefix(strings.Trim(u.Path, "/"), p) {
			continue
		}
		pw, _ := e.User.Password()
		secret.Register(pw)
		return e.User.Username(), pw, true, nil
	}
	return "", "", false, sc.Err()
}

func (e *goGitEngine) name() string { return EngineGoGit }
func (e *goGitEngine) close() {
	for _, st := range e.stores {
		st.Close()
	}
	e.stores, e.repos = nil, nil
}

// wrap classifies a go-git error and names the URL.
func (e *goGitEngine) wrap(what string, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	return e.wrapAt(what, e.url.String(), err)
}

// wrapAt is wrap for an error of the remote at url (a submodule's).
func (e *goGitEngine) wrapAt(what, url string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fault.Wrap(fe.Class, fmt.Errorf("%s (%s): %w", what, url, err))
	}
	return fault.New(goGitClass(err), "%s (%s): %s", what, url, secret.Scrub(goGitMessage(err)))
}

// goGitMessage is err's message on one line. go-git appends the body of the
// server's HTTP answer to its errors: "authentication required:
// authentication required\n" says it twice over two lines, "repository not
// found: " ends on nothing. The body is kept only when it adds something.
func goGitMessage(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{transport.ErrAuthenticationRequired, transport.ErrAuthorizationFailed, transport.ErrRepositoryNotFound} {
		prefix := sentinel.Error() + ":"
		i := strings.Index(msg, prefix)
		if i < 0 || !errors.Is(err, sentinel) {
			continue
		}
		head, body := msg[:i+len(sentinel.Error())], oneLine(msg[i+len(prefix):])
		if body == "" || strings.EqualFold(body, sentinel.Error()) {
			return oneLine(head)
		}
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		return oneLine(head) + " (the server says: " + body + ")"
	}
	return oneLine(msg)
}

// oneLine joins the non-empty lines of s with " / ".
func oneLine(s string) string {
	var kept []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, " / ")
}

func goGitClass(err error) fault.Class {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod):
		return fault.Auth
	case errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, transport.ErrEmptyRemoteRepository),
		errors.Is(err, plumbing.ErrReferenceNotFound), errors.Is(err, plumbing.ErrObjectNotFound),
		errors.Is(err, gogit.ErrExactSHA1NotSupported):
		return fault.NotFound
	}
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "knownhosts") || strings.Contains(msg, "unable to authenticate") ||
		strings.Contains(msg, "host key") || strings.Contains(msg, "no supported methods remain"):
		return fault.Auth
	case strings.Contains(msg, "not our ref"):
		return fault.NotFound
	case strings.Contains(msg, "detected dubious ownership"):
		return fault.Auth
	}
	// Errno values implement net.Error (they have Timeout and Temporary
	// methods): a full or read-only disk under .git would pass for a network
	// failure and be fetched again in full. Read them as system errors first.
	// (A connection's errnos, ECONNRESET and the like, have no class there
	// and go on to the network check.)
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if c := fault.ClassOf(errno); c != fault.Internal {
			return c // disk full or read-only, permission, missing file
		}
	}
	if c := classify(err.Error()); c == fault.LocalDisk || c == fault.Usage {
		return c // a message that lost its errno; a setting's mistake (a url.Error is a net.Error)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return fault.NotFound // a name to fix, not a failure to try again
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fault.Transient
	}
	if c := classify(err.Error()); c != fault.Internal {
		return c
	}
	return fault.Internal
}

func (e *goGitEngine) lsRemote(ctx context.Context) (*remoteRefs, error) {
	r := gogit.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{e.url.String()}})
	list, err := r.ListContext(ctx, &gogit.ListOptions{Auth: e.auth, PeelingOption: gogit.AppendPeeled})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return newRemoteRefs(), nil // no refs: resolve says the repository is empty
	}
	if err != nil {
		return nil, e.wrap("list refs", err)
	}
	refs := newRemoteRefs()
	headHash := ""
	for _, ref := range list {
		name := ref.Name().String()
		if name == "HEAD" {
			if ref.Type() == plumbing.SymbolicReference {
				refs.head = ref.Target().String()
			} else {
				headHash = ref.Hash().String()
			}
			continue
		}
		if tag, found := strings.CutSuffix(name, "^{}"); found {
			refs.peeled[tag] = ref.Hash().String()
			continue
		}
		if ref.Type() == plumbing.HashReference {
			refs.refs[name] = ref.Hash().String()
		}
	}
	if refs.head == "" && headHash != "" {
		// No symref capability: the default branch is a branch at HEAD's commit.
		for _, n := range sortedRefs(refs) {
			if strings.HasPrefix(n, "refs/heads/") && refs.refs[n] == headHash {
				refs.head = n
				break
			}
		}
	}
	return refs, nil
}

// objectCacheSize bounds go-git's cache of decoded objects (96 MiB by
// default). Measured on the benchmark repository at --depth 1, the default
// makes up most of the peak heap, and a small cache costs no time.
const objectCacheSize = 8 * cache.MiByte

// largeObjectThreshold: larger blobs are streamed from the pack, not read
// into memory whole.
const largeObjectThreshold = 1 << 20

// storage returns the repository storage at dir/.git, and the work tree.
func storage(dir string) (*PackStorage, billy.Filesystem) {
	return newStorage(osfs.New(filepath.Join(dir, ".git"))), osfs.New(dir)
}

// newStorage returns the storage of the .git folder dotGit: go-git's, with
// the small object cache and this package's pack indexer. It keeps the pack
// files open (else go-git reopens and rescans them for every object read);
// Close releases them.
func newStorage(dotGit billy.Filesystem) *PackStorage {
	return NewPackStorage(filesystem.NewStorageWithOptions(dotGit, cache.NewObjectLRU(objectCacheSize),
		filesystem.Options{KeepDescriptors: true, LargeObjectThreshold: largeObjectThreshold}))
}

func (e *goGitEngine) init(ctx context.Context, dir string) error {
	st, wt := storage(dir)
	r, err := gogit.Init(st, wt)
	if err == nil {
		e.remember(dir, r, st)
	}
	if err != nil {
		return fault.FromSystem(fmt.Errorf("git init %s: %w", dir, err))
	}
	_, err = r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{e.url.String()}})
	return e.wrap("git remote add", err)
}

func (e *goGitEngine) remember(dir string, r *gogit.Repository, st *PackStorage) {
	if e.repos == nil {
		e.repos = map[string]*gogit.Repository{}
	}
	e.repos[dir] = r
	e.stores = append(e.stores, st)
}

// open returns the repository at dir, opened once per run.
func (e *goGitEngine) open(dir string) (*gogit.Repository, error) {
	if r, ok := e.repos[dir]; ok {
		return r, nil
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		return nil, fault.FromSystem(fmt.Errorf("open the clone at %s: %w", dir, err))
	}
	st, wt := storage(dir)
	r, err := gogit.Open(st, wt)
	if err != nil {
		st.Close()
		return nil, fault.FromSystem(fmt.Errorf("open the clone at %s: %w", dir, err))
	}
	e.remember(dir, r, st)
	return r, nil
}

func (e *goGitEngine) setOrigin(ctx context.Context, dir, u string) error {
	r, err := e.open(dir)
	if err != nil {
		return err
	}
	cfg, err := r.Config()
	if err != nil {
		return e.wrap("read config", err)
	}
	rc, ok := cfg.Remotes["origin"]
	if !ok {
		rc = &config.RemoteConfig{Name: "origin", Fetch: []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*"}}
		cfg.Remotes["origin"] = rc
	}
	rc.URLs = []string{u}
	return e.wrap("write config", r.SetConfig(cfg))
}

func (e *goGitEngine) fetch(ctx context.Context, dir string, f fetchSpec) error {
	r, err := e.open(dir)
	if err != nil {
		return err
	}
	return e.wrap("fetch", fetchRepo(ctx, r, f, e.auth))
}

// fetchRepo fetches f from r's origin: the origin's configured refspecs
// when f names none.
func fetchRepo(ctx context.Context, r *gogit.Repository, f fetchSpec, auth transport.AuthMethod) error {
	var specs []config.RefSpec
	var byHash []string
	for _, s := range f.refspecs {
		if plumbing.IsHash(s) {
			// go-git wants a destination for a commit: a temporary ref.
			specs = append(specs, config.RefSpec("+"+s+":"+s))
			byHash = append(byHash, s)
			continue
		}
		specs = append(specs, config.RefSpec(s))
	}
	depth := f.depth
	shallow, _ := r.Storer.Shallow()
	if depth == 0 && len(shallow) > 0 {
		// go-git tells the server about the clone's shallow commits only
		// when a depth is given; without them the server assumes their
		// history is here and leaves it out. Ask for all of it, as
		// git fetch --unshallow does.
		depth = math.MaxInt32
	}
	err := r.FetchContext(ctx, &gogit.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   specs,
		Depth:      depth,
		Auth:       auth,
		Tags:       gogit.NoTags, // tags are fetched only through explicit refspecs
		Force:      true,
	})
	for _, h := range byHash {
		// go-git stores a destination outside refs/ as a branch.
		_ = r.Storer.RemoveReference(plumbing.ReferenceName(h))
		_ = r.Storer.RemoveReference(plumbing.NewBranchReferenceName(h))
	}
	if errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err == nil && f.unshallow && len(shallow) > 0 {
		// Every branch and tag now has its whole history.
		err = r.Storer.SetShallow(nil)
	}
	return err
}

func (e *goGitEngine) commit(ctx context.Context, dir, rev string) (string, error) {
	r, err := e.open(dir)
	if err != nil {
		return "", err
	}
	h, err := r.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return "", fault.New(fault.NotFound, "revision %q not found after fetching: %v", rev, err)
	}
	obj, err := r.Object(plumbing.AnyObject, *h)
	if err != nil {
		return "", fault.New(fault.NotFound, "revision %q (%s) not found after fetching: %v", rev, h, err)
	}
	for {
		switch o := obj.(type) {
		case *object.Commit:
			return o.Hash.String(), nil
		case *object.Tag:
			if obj, err = o.Object(); err != nil {
				return "", fault.New(fault.NotFound, "tag %q points at a missing object: %v", rev, err)
			}
		default:
			return "", fault.New(fault.NotFound, "revision %q is a %s, not a commit", rev, obj.Type())
		}
	}
}

func (e *goGitEngine) checkout(ctx context.Context, dir, commit, branch string) error {
	r, err := e.open(dir)
	if err != nil {
		return err
	}
	h := plumbing.NewHash(commit)
	idx, err := r.Storer.Index()
	if err != nil {
		return e.wrap("read the index", err)
	}
	// HEAD moves once the work tree is the commit's: a stop before leaves
	// the clone at its old revision, whole.
	if err := checkoutTree(ctx, dir, r, h, idx.Entries); err != nil { // no entries on a fresh clone
		return err
	}
	head := plumbing.NewHashReference(plumbing.HEAD, h)
	if branch != "" {
		name := plumbing.NewBranchReferenceName(branch)
		if err := r.Storer.SetReference(plumbing.NewHashReference(name, h)); err != nil {
			return e.wrap("set branch", err)
		}
		head = plumbing.NewSymbolicReference(plumbing.HEAD, name)
	}
	if err := r.Storer.SetReference(head); err != nil {
		return e.wrap("set HEAD", err)
	}
	if branch == "" {
		return nil
	}
	cfg, err := r.Config()
	if err != nil {
		return e.wrap("read config", err)
	}
	cfg.Branches[branch] = &config.Branch{Name: branch, Remote: "origin", Merge: plumbing.NewBranchReferenceName(branch)}
	return e.wrap("write config", r.SetConfig(cfg))
}

func (e *goGitEngine) trees(ctx context.Context, dir, commit string) (map[string]bool, []item, error) {
	r, err := e.open(dir)
	if err != nil {
		return nil, nil, err
	}
	idx, err := r.Storer.Index()
	if err != nil {
		return nil, nil, e.wrap("read the index", err)
	}
	tracked := make(map[string]bool, len(idx.Entries))
	for _, en := range idx.Entries {
		tracked[en.Name] = true
	}
	files, links, gitlinks, _, err := listTree(r, plumbing.NewHash(commit))
	return tracked, append(append(files, links...), gitlinks...), err
}

func (e *goGitEngine) checkoutErr(err error) error {
	if err == nil {
		return nil
	}
	return fault.FromSystem(fmt.Errorf("checkout: %w", err))
}

func (e *goGitEngine) submodules(ctx context.Context, dir string, shallow bool) ([]string, error) {
	r, err := e.open(dir)
	if err != nil {
		return nil, err
	}
	var paths []string
	if err := e.updateSubmodules(ctx, r, "", shallow, &paths, 0); err != nil {
		return nil, err
	}
	return paths, nil
}

// updateSubmodules updates r's submodules, then theirs. Credentials go only
// to submodules on the same host as the repository's own remote.
func (e *goGitEngine) updateSubmodules(ctx context.Context, r *gogit.Repository, prefix string, shallow bool, paths *[]string, level int) error {
	if level > 16 {
		return fault.New(fault.Usage, "submodules nested more than 16 levels deep")
	}
	w, err := r.Worktree()
	if err != nil {
		return e.wrap("worktree", err)
	}
	subs, err := w.Submodules()
	if err != nil {
		return e.wrap("read .gitmodules", err)
	}
	idx, err := r.Storer.Index()
	if err != nil {
		return e.wrap("read the index", err)
	}
	for _, s := range subs {
		p := prefix + s.Config().Path
		// The commit the parent pins: what git submodule update checks out.
		entry, err := idx.Entry(s.Config().Path)
		if err != nil {
			return e.wrap("submodule "+p, fmt.Errorf("no commit recorded at %s: %w", s.Config().Path, err))
		}
		if entry.Mode != filemode.Submodule {
			// .gitmodules still names it, but the tree has a file or a
			// link there: no submodule to update (git skips it too).
			continue
		}
		if err := s.Init(); err != nil && !errors.Is(err, gogit.ErrSubmoduleAlreadyInitialized) {
			return e.wrap("submodule "+p, err)
		}
		sr, err := s.Repository()
		if err != nil {
			return e.wrap("submodule "+p, err)
		}
		var auth transport.AuthMethod
		if e.sameHost(r, s.Config().URL) {
			auth = e.auth
		}
		if err := fetchPinned(ctx, sr, entry.Hash, shallow, auth); err != nil {
			return e.wrapAt("submodule "+p, originURL(sr, s.Config().URL), err)
		}
		sw, err := sr.Worktree()
		if err != nil {
			return e.wrap("submodule "+p, err)
		}
		// A work tree with nothing checked out yet (its folder made again,
		// after a revision that had a file there) is filled as git
		// submodule update --force does; one with files keeps go-git's
		// check for local changes.
		if err := sw.Checkout(&gogit.CheckoutOptions{Hash: entry.Hash, Force: emptyWorkTree(sw.Filesystem.Root())}); err != nil {
			return e.checkoutErr(fmt.Errorf("submodule %s: %w", p, err))
		}
		if err := sr.Storer.SetReference(plumbing.NewHashReference(plumbing.HEAD, entry.Hash)); err != nil {
			return e.wrap("submodule "+p, err)
		}
		*paths = append(*paths, p)
		if err := e.updateSubmodules(ctx, sr, p+"/", shallow, paths, level+1); err != nil {
			return err
		}
	}
	return nil
}

// emptyWorkTree reports whether the folder dir holds nothing but a .git.
func emptyWorkTree(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Name() != ".git" {
			return false
		}
	}
	return true
}

// fetchPinned fetches into a submodule's repository the commit its parent
// pins, which is usually not its branch's tip. With --shallow-submodules it
// asks for that commit alone at depth 1, as git does (go-git speaks
// protocol v0, where servers give a commit by its hash only when they allow
// it: uploadpack.allowReachableSHA1InWant), then for the branches' tips at
// depth 1; the whole history of the branches comes last, where the commit
// must be.
func fetchPinned(ctx context.Context, r *gogit.Repository, h plumbing.Hash, shallow bool, auth transport.AuthMethod) error {
	have := func() bool {
		_, err := r.CommitObject(h)
		return err == nil
	}
	if have() {
		return nil // a re-run: already fetched
	}
	// refused: the server will not give the commit by its hash.
	refused := func(err error) bool {
		return errors.Is(err, gogit.ErrExactSHA1NotSupported) || goGitClass(err) == fault.NotFound
	}
	byHash := fetchSpec{refspecs: []string{h.String()}}
	if shallow {
		byHash.depth = 1
		if err := fetchRepo(ctx, r, byHash, auth); err != nil && !refused(err) {
			return err
		}
		if have() {
			return nil
		}
		if err := fetchRepo(ctx, r, fetchSpec{depth: 1}, auth); err != nil {
			return err
		}
		if have() {
			return nil
		}
	}
	if err := fetchRepo(ctx, r, fetchSpec{unshallow: true}, auth); err != nil {
		return err
	}
	if have() {
		return nil
	}
	// A commit on no branch may still be reachable from another ref.
	byHash.depth = 0
	if err := fetchRepo(ctx, r, byHash, auth); err != nil && !refused(err) {
		return err
	}
	if !have() {
		return fault.New(fault.NotFound, "commit %s, which the parent repository pins, is on no branch of the submodule's remote", h)
	}
	return nil
}

// originURL is the URL a submodule's repository fetches from (a relative
// one resolved against the parent's), without credentials; the URL of
// .gitmodules when it has none.
func originURL(r *gogit.Repository, fallback string) string {
	if rm, err := r.Remote("origin"); err == nil && len(rm.Config().URLs) > 0 {
		fallback = rm.Config().URLs[0]
	}
	if u, err := parseRemote(fallback); err == nil {
		return u.String()
	}
	return fallback
}

// sameHost reports whether a submodule URL (absolute, or relative to r's
// origin) is where the credentials are for: over http(s) the same scheme,
// host and port, as the git CLI scopes its credential helper (a password
// must not go to another server of the host, nor in clear text where it
// was given for https); over SSH the same host.
func (e *goGitEngine) sameHost(r *gogit.Repository, subURL string) bool {
	if strings.HasPrefix(subURL, "./") || strings.HasPrefix(subURL, "../") {
		return true
	}
	u, err := parseRemote(subURL)
	if err != nil || u.isSSH() != e.url.isSSH() {
		return false
	}
	if u.isSSH() {
		return strings.EqualFold(u.Host, e.url.Host)
	}
	return strings.EqualFold(u.serverKey(), e.url.serverKey())
}

// serverKey names the server an http(s) URL reaches: its scheme, host and
// port, the scheme's default port written or not (git matches credentials
// so too).
func (r remote) serverKey() string {
	port := r.Port
	if r.Scheme == "http" && port == "80" || r.Scheme == "https" && port == "443" {
		port = ""
	}
	return remote{Scheme: r.Scheme, Host: r.Host, Port: port}.credentialScope()
}

func (e *goGitEngine) lfsPull(ctx context.Context, dir string) (bool, error) { return false, nil }

func (e *goGitEngine) finish(ctx context.Context, dir, originURL, fetchRefspec string) error {
	r, err := e.open(dir)
	if err != nil {
		return err
	}
	cfg, err := r.Config()
	if err != nil {
		return e.wrap("read config", err)
	}
	rc := &config.RemoteConfig{Name: "origin", URLs: []string{originURL}, Fetch: []config.RefSpec{config.RefSpec(fetchRefspec)}}
	if old, ok := cfg.Remotes["origin"]; ok && fetchRefspec == "" {
		rc.Fetch = old.Fetch
	}
	cfg.Remotes["origin"] = rc
	return e.wrap("write config", r.SetConfig(cfg))
}

func (e *goGitEngine) head(ctx context.Context, dir string) (headInfo, error) {
	r, err := e.open(dir)
	if err != nil {
		return headInfo{}, err
	}
	ref, err := r.Head()
	if err != nil {
		return headInfo{}, e.wrap("HEAD", err)
	}
	h := headInfo{commit: ref.Hash().String(), shallow: fileExists(filepath.Join(dir, ".git", "shallow"))}
	if ref.Name().IsBranch() {
		h.branch = ref.Name().Short()
	}
	return h, nil
}
