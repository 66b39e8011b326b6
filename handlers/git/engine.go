package git

import "context"

// engine does the git work of one run; the driver in git.go decides what.
type engine interface {
	name() string
	// lsRemote lists the remote's refs and its default branch.
	lsRemote(ctx context.Context) (*remoteRefs, error)
	// init creates an empty repository in dir with origin set to the URL
	// fetched from.
	init(ctx context.Context, dir string) error
	// setOrigin points an existing clone's origin at url.
	setOrigin(ctx context.Context, dir, url string) error
	// fetch fetches from origin.
	fetch(ctx context.Context, dir string, f fetchSpec) error
	// commit returns the full hash of the commit rev names in dir (a ref, a
	// full or abbreviated hash); a NotFound error when there is none.
	commit(ctx context.Context, dir, rev string) (string, error)
	// checkout forces the work tree to commit, on a local branch tracking
	// origin/branch when branch is set, else detached.
	checkout(ctx context.Context, dir, commit, branch string) error
	// trees lists the paths the clone at dir tracks now, and the files,
	// links and submodules of commit's tree.
	trees(ctx context.Context, dir, commit string) (tracked map[string]bool, next []item, err error)
	// submodules initialises and updates the submodules recursively and
	// returns their paths.
	submodules(ctx context.Context, dir string, shallow bool) ([]string, error)
	// lfsPull replaces LFS pointer files by their content; false when the
	// engine cannot (no git-lfs).
	lfsPull(ctx context.Context, dir string) (bool, error)
	// finish sets origin to the credential-free URL the user gave and its
	// fetch refspec, as the clone is left for the job.
	finish(ctx context.Context, dir, originURL, fetchRefspec string) error
	// head describes the checkout at dir.
	head(ctx context.Context, dir string) (headInfo, error)
	// close removes what the engine kept for the run (key copies, helpers).
	close()
}

// fetchSpec is one fetch.
type fetchSpec struct {
	refspecs  []string // "+src:dst", or a bare commit hash
	depth     int      // 0: whole history
	filter    string   // partial clone filter (CLI only)
	tags      bool     // also fetch tags pointing into the fetched history (git's default)
	unshallow bool     // deepen a shallow clone to the whole history
}

// headInfo is what a checkout is at.
type headInfo struct {
	commit  string
	branch  string // "" when detached
	shallow bool
}
