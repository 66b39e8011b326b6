package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/spf13/pflag"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/transfer"
)

// Kinds are the connection kinds this handler serves.
var Kinds = []connections.Kind{connections.S3, connections.GCS, connections.WASB}

// Handler downloads from s3, gcs and wasb connections into --path.
type Handler struct {
	files       []string
	dirs        []string
	retries     int
	partMiB     int64
	readTimeout time.Duration
}

// New returns the object-store handler.
func New() *Handler { return &Handler{} }

// Flags adds the object-store flags.
func (h *Handler) Flags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&h.files, "files", nil, "object-store: files to take, each src or src:dst relative to the bucket prefix (repeat or separate with commas; \\, \\: for a comma or colon in a name)")
	fs.StringArrayVar(&h.dirs, "dirs", nil, "object-store: folders (key prefixes) to take, each src or src:dst relative to the bucket prefix (repeat or separate with commas; \\, \\: for a comma or colon in a name)")
	fs.IntVar(&h.retries, "retries", 5, "object-store: retries of each request before giving up (exit 5)")
	fs.Int64Var(&h.partMiB, "part-size", 16, "object-store: size in MiB of the parallel ranged reads of large objects")
	fs.DurationVar(&h.readTimeout, "read-timeout", time.Minute, "object-store: a download that receives nothing for this long is cut and retried")
}

// validate refuses flag values out of range.
func (h *Handler) validate() error {
	switch {
	case h.retries < 0:
		return fault.New(fault.Usage, "--retries %d: give 0 (no retries) or more", h.retries)
	case h.partMiB < 1 || h.partMiB > 5<<10:
		return fault.New(fault.Usage, "--part-size %d: give a size in MiB from 1 to 5120", h.partMiB)
	case h.readTimeout < time.Second:
		return fault.New(fault.Usage, "--read-timeout %s: give 1s or more", h.readTimeout)
	}
	return nil
}

// Check proves the credentials and that the bucket and prefix are listable.
func (h *Handler) Check(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	s, err := Open(ctx, req.Conn, req.Keys, Options{Workers: workers(req), Log: req.Log, ReadTimeout: h.readTimeout, Once: h.retries == 0})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	empty, err := s.probe(ctx)
	readable, selected := false, len(h.files) > 0 || len(req.Paths) > 0
	if fault.ClassOf(err) == fault.Auth {
		// Credentials that may read objects but not list the bucket
		// (s3:GetObject without s3:ListBucket): a run reads the object the
		// URL names, or those --files and --paths name, all the same.
		switch {
		case selected:
			// What the selections say, as the run would: read, or a
			// mistake of their own (exit 2 or 4) rather than the listing's.
			switch serr := h.checkSelections(ctx, s, req); {
			case serr == nil:
				err, readable = nil, true
			case fault.ClassOf(serr) != fault.Auth:
				return nil, serr
			}
		case s.Prefix != "" && !s.prefixDir:
			if _, herr := s.Bucket.Attributes(ctx, s.Prefix); herr == nil {
				err, readable = nil, true
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if err := h.checkSelections(ctx, s, req); err != nil {
		return nil, err
	}
	summary := fmt.Sprintf("%s: %s is reachable and listable with the given credentials", req.Conn, s.URL)
	if readable {
		summary = fmt.Sprintf("%s: %s is an object readable with the given credentials (which may not list the bucket)", req.Conn, s.URL)
		if selected {
			summary = fmt.Sprintf("%s: the objects selected in %s are readable with the given credentials (which may not list the bucket)", req.Conn, s.URL)
		}
	}
	if empty {
		summary += ", but holds no object: a download would write nothing; check schema.bucket"
		req.Log.Warn("no object under the prefix", "url", s.URL)
	}
	req.Log.Info("bucket checked", "url", s.URL)
	return &handlers.Result{
		Summary: summary,
		Details: map[string]any{"url": s.URL, "empty": empty},
	}, nil
}

// Run downloads the bucket prefix (or the selected files and folders) into --path.
func (h *Handler) Run(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	if req.Path == "" {
		return nil, fault.New(fault.Usage, "%s: --path is required: the folder to download into", req.Conn)
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	s, err := Open(ctx, req.Conn, req.Keys, Options{Workers: workers(req), Log: req.Log, ReadTimeout: h.readTimeout, Once: h.retries == 0})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	opts := transfer.Options{
		Workers:  workers(req),
		PartSize: h.partMiB << 20,
		Checksum: req.Checksum,
		Force:    req.Force,
		Retries:  h.retries,
		Provider: s.Provider,
		Classify: Classify,
		Brief:    Brief,
		Explain:  s.Explain,
		Log:      req.Log,
		Conn:     req.Conn.String(),
	}
	if h.retries == 0 {
		opts.Retries = -1
	}
	opts.Terminal = req.Terminal
	var before atomic.Int64 // retries of the requests before the transfer
	opts.Retried = &before
	start := time.Now()
	root, sels, err := h.selections(ctx, s, req, opts)
	if err == nil && (len(sels) > 1 || len(sels) == 1 && sels[0].Flag != "") {
		err = s.present(ctx, req.Conn, sels, opts)
	}
	if err != nil {
		// Nothing was downloaded: the result says so, with zero counts.
		err = s.bucketMissing(ctx, err)
		return &handlers.Result{Summary: fmt.Sprintf("%s: nothing downloaded from %s", req.Conn, s.URL), Path: req.Path,
			Details: map[string]any{"url": s.URL, "objects": 0, "dirs": 0, "retries": before.Load(), "transferSeconds": time.Since(start).Seconds()}}, err
	}
	req.Log.Info("downloading", "url", s.URL, "path", req.Path, "selections", len(sels))
	st, err := transfer.Download(ctx, s.Bucket, sels, root, opts)
	res := &handlers.Result{
		Summary: fmt.Sprintf("%s: downloaded %s (%d bytes) from %s to %s in %.1fs, %d already up to date",
			req.Conn, transfer.Count(st.Files, "file"), st.Bytes, s.URL, req.Path, st.Duration.Seconds(), st.Skipped),
		Path:    req.Path,
		Files:   st.Files,
		Bytes:   st.Bytes,
		Skipped: st.Skipped,
		Details: map[string]any{"url": s.URL, "objects": st.Objects, "retries": st.Retries + before.Load(), "dirs": st.Dirs, "transferSeconds": time.Since(start).Seconds()},
	}
	if err != nil {
		// What was done before the failure, for --result.
		res.Summary = fmt.Sprintf("%s: failed after downloading %s (%d bytes) from %s to %s, %d already up to date",
			req.Conn, transfer.Count(st.Files, "file"), st.Bytes, s.URL, req.Path, st.Skipped)
		if st.Files == 0 {
			err = s.bucketMissing(ctx, err)
		}
		return res, err
	}
	return res, nil
}

// bucketMissing returns, for a "not found" err, the probe's error when the
// bucket itself is missing (which it names), else err.
func (s *Store) bucketMissing(ctx context.Context, err error) error {
	if fault.ClassOf(err) == fault.NotFound {
		if _, perr := s.probe(ctx); fault.ClassOf(perr) == fault.NotFound {
			return perr
		}
	}
	return err
}

// unambiguous refuses an entry read as src:dst at a colon when the entry
// taken whole names an object (file) or a folder (dir) too: which one was
// meant cannot be told.
func (s *Store) unambiguous(ctx context.Context, conn *connections.Connection, m handlers.Mapping, flag string, file, dir bool, opts transfer.Options) error {
	if m.Whole == "" {
		return nil
	}
	key := JoinKey(s.Prefix, m.Whole)
	if file {
		if attrs, err := s.object(ctx, key, opts); err != nil {
			return err
		} else if attrs != nil {
			return m.Ambiguous(conn, flag, "an object")
		}
	}
	if dir {
		if below, err := s.hasBelow(ctx, key, opts); err != nil {
			return s.explain(err, "listing")
		} else if below {
			return m.Ambiguous(conn, flag, "a folder")
		}
	}
	return nil
}

// fromTheStore reports an error that came from a request to the store (an
// answer, or a failed connection), not from the flags or the catalog.
func fromTheStore(err error) bool {
	var status interface{ HTTPStatusCode() int }
	var ue *url.Error
	var op *net.OpError
	var az *azcore.ResponseError
	var ge *googleapi.Error
	return errors.As(err, &status) || errors.As(err, &ue) || errors.As(err, &op) || errors.As(err, &az) || errors.As(err, &ge)
}

func workers(req *handlers.Request) int {
	if req.Workers > 0 {
		return req.Workers
	}
	return 32
}

// selections turns the prefix and --files/--dirs/--paths into what to
// download, and the folder they are relative to.
func (h *Handler) selections(ctx context.Context, s *Store, req *handlers.Request, opts transfer.Options) (string, []transfer.Selection, error) {
	files, err := handlers.ParseMappings(req.Conn, "--files", h.files)
	if err != nil {
		return "", nil, err
	}
	dirs, err := handlers.ParseMappings(req.Conn, "--dirs", h.dirs)
	if err != nil {
		return "", nil, err
	}
	var sels []transfer.Selection
	for _, m := range files {
		if m.Src == "" {
			return "", nil, fault.New(fault.Usage, "%s: --files needs a file name relative to %s", req.Conn, s.URL)
		}
		if m.SrcDir {
			return "", nil, fault.New(fault.Usage, "%s: %s: a name ending with a slash is a folder; give folders with --dirs (or --paths), and a file without the slash", req.Conn, m.Name("--files"))
		}
		m.Dst = m.FileDst()
		if m.Dst == "" {
			return "", nil, fault.New(fault.Usage, "%s: %s: the destination is empty; give a file name (src:dst) or a folder (src:dir/)", req.Conn, m.Name("--files"))
		}
		if err := s.unambiguous(ctx, req.Conn, m, "--files", true, false, opts); err != nil {
			return "", nil, err
		}
		sels = append(sels, transfer.Selection{Key: JoinKey(s.Prefix, m.Src), Dst: m.Dst, Flag: m.Name("--files"), Hint: m.ColonHint()})
	}
	for _, m := range dirs {
		if err := s.unambiguous(ctx, req.Conn, m, "--dirs", false, true, opts); err != nil {
			return "", nil, err
		}
		sels = append(sels, transfer.Selection{Key: JoinKey(s.Prefix, m.Src), Dst: m.Dst, Dir: true, Flag: m.Name("--dirs"), Hint: m.ColonHint()})
	}
	for _, m := range req.Paths {
		if err := s.unambiguous(ctx, req.Conn, m, "--paths", true, true, opts); err != nil {
			return "", nil, err
		}
		var attrs *blob.Attributes
		if !m.SrcDir { // src/ names the folder, even where an object has the name
			if attrs, err = s.object(ctx, JoinKey(s.Prefix, m.Src), opts); err != nil {
				return "", nil, err
			}
		}
		if attrs != nil {
			m.Dst = m.FileDst()
			if m.Dst == "" {
				return "", nil, fault.New(fault.Usage, "%s: %s names an object, and the destination is empty; give a file name (src:dst) or a folder (src:dir/)", req.Conn, m.Name("--paths"))
			}
		}
		sels = append(sels, transfer.Selection{Key: JoinKey(s.Prefix, m.Src), Dst: m.Dst, Dir: attrs == nil, Attrs: attrs, Flag: m.Name("--paths"), Hint: m.ColonHint()})
	}
	if len(sels) > 0 {
		names, dsts := make([]string, len(sels)), make([]string, len(sels))
		for i, s := range sels {
			names[i], dsts[i] = s.Flag, s.Dst
		}
		if err := handlers.CheckTargets(req.Conn, names, dsts); err != nil {
			return "", nil, err
		}
		return req.Path, sels, nil
	}
	// The whole prefix, or the single object it names (not when the bucket
	// URL ends with a slash).
	if s.Prefix != "" && !s.prefixDir {
		attrs, err := s.object(ctx, s.Prefix, opts)
		if err != nil {
			return "", nil, err
		}
		if attrs != nil {
			if st, err := os.Stat(req.Path); (err == nil && st.IsDir()) || strings.HasSuffix(req.Path, "/") {
				return req.Path, []transfer.Selection{{Key: s.Prefix, Dst: path.Base(s.Prefix), Attrs: attrs}}, nil
			}
			return filepath.Dir(filepath.Clean(req.Path)), []transfer.Selection{{Key: s.Prefix, Dst: filepath.Base(req.Path), Attrs: attrs}}, nil
		}
	}
	return req.Path, []transfer.Selection{{Key: s.Prefix, Dir: true}}, nil
}

// checkSelections checks, for check, what a run would refuse of --files,
// --dirs and --paths: their syntax and destinations (exit 2), and that each
// matches an object (exit 4).
func (h *Handler) checkSelections(ctx context.Context, s *Store, req *handlers.Request) error {
	if len(h.files) == 0 && len(h.dirs) == 0 && len(req.Paths) == 0 {
		return nil
	}
	if req.Path == "" {
		req.Path = "." // destinations are checked relative to it; nothing is written
	}
	opts := transfer.Options{Classify: Classify, Brief: Brief, Explain: s.Explain, Log: req.Log, Conn: req.Conn.String()}
	_, sels, err := h.selections(ctx, s, req, opts)
	if err != nil {
		return err
	}
	return s.present(ctx, req.Conn, sels, opts)
}

// present checks that each selection matches an object (exit 4, naming
// its flag), and fills in the attributes of those that name one object.
// A run with several selections checks them all before it writes
// anything: one that matches nothing fails the run with nothing written.
func (s *Store) present(ctx context.Context, conn *connections.Connection, sels []transfer.Selection, opts transfer.Options) error {
	for i := range sels {
		sel := &sels[i]
		if sel.Attrs != nil || sel.Dir && sel.Key == "" {
			continue // an object; the whole bucket (probed already)
		}
		found := false
		if !sel.Dir {
			attrs, err := s.object(ctx, sel.Key, opts)
			if err != nil {
				return err
			}
			found, sel.Attrs = attrs != nil, attrs
		} else {
			var err error
			if found, err = s.hasBelow(ctx, sel.Key, opts); err != nil {
				return s.explain(err, "listing")
			}
		}
		if !found {
			// The other kind of name, given to the wrong flag?
			if sel.Dir {
				if attrs, err := s.object(ctx, sel.Key, opts); err == nil && attrs != nil {
					if strings.HasPrefix(sel.Flag, "--paths") {
						// A name ending with a slash: the mistake is in the flag.
						return fault.New(fault.Usage, "%s: %s: %q is an object, and a name ending with a slash is a folder; name it without the final slash", conn, sel.Flag, sel.Key)
					}
					return fault.New(fault.NotFound, "%s: %s: %q is an object, not a folder; give it with --files (or --paths)", conn, sel.Flag, sel.Key)
				}
				return fault.New(fault.NotFound, "%s: %s: no object has the key or prefix %q%s%s", conn, sel.Flag, sel.Key, transfer.EscapedKeyHint(s.Provider, sel.Key), sel.Hint)
			}
			if below, err := s.hasBelow(ctx, sel.Key, opts); err == nil && below {
				return fault.New(fault.NotFound, "%s: %s: %q is a folder, not an object; give it with --dirs (or --paths)", conn, sel.Flag, sel.Key)
			}
			return fault.New(fault.NotFound, "%s: %s: no object has the key %q%s%s", conn, sel.Flag, sel.Key, transfer.EscapedKeyHint(s.Provider, sel.Key), sel.Hint)
		}
	}
	return nil
}

// object returns the attributes of the object key names, or nil when it
// names none (a prefix, then). Failed requests are retried as the
// transfer's are (opts).
func (s *Store) object(ctx context.Context, key string, opts transfer.Options) (*blob.Attributes, error) {
	var attrs *blob.Attributes
	err := transfer.Retry(ctx, opts, "HEAD "+key, func() (err error) {
		attrs, err = s.Bucket.Attributes(ctx, key)
		return err
	})
	switch {
	case err == nil:
		return attrs, nil
	case gcerrors.Code(err) == gcerrors.NotFound:
		return nil, nil
	case Classify(err) == fault.Auth:
		// A HEAD may be refused where a listing is allowed: a policy that
		// grants the objects under a prefix ("data/*", s3:prefix "data/")
		// refuses the key "data" itself. With objects below it, the key is
		// a prefix. The bucket URL's own prefix may also be empty yet (a
		// run's outputs may not be there yet), unless a listing shows an
		// object of that very key, which these credentials may not read.
		// Else the refusal stands.
		below, lerr := s.hasBelow(ctx, key, opts)
		switch {
		case lerr != nil:
		case below:
			return nil, nil
		case key == s.Prefix && !s.listsKey(ctx, key):
			return nil, nil
		}
	case errors.Is(err, context.Canceled):
		return nil, fault.New(fault.Interrupted, "%s: interrupted while reading %q, before the download began: %v", s.conn, key, context.Canceled)
	case Classify(err) == fault.Usage && !isTLS(err) && !isPlainHTTP(err):
		// A HEAD's error answer has no body (S3 says only "400 Bad
		// Request"): a listing's names the cause (a wrong region, an
		// invalid bucket name).
		if _, perr := s.probe(ctx); perr != nil {
			return nil, perr
		}
	}
	return nil, s.explain(err, fmt.Sprintf("reading %q in", key))
}

// listsKey reports whether a listing shows an object whose key is key (a
// refused listing shows none).
func (s *Store) listsKey(ctx context.Context, key string) bool {
	page, _, err := s.Bucket.ListPage(ctx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: key})
	return err == nil && len(page) > 0 && page[0].Key == key
}

// hasBelow reports whether objects have keys below key/ (retried as
// opts says).
func (s *Store) hasBelow(ctx context.Context, key string, opts transfer.Options) (bool, error) {
	var found bool
	err := transfer.Retry(ctx, opts, "LIST "+key+"/", func() error {
		page, _, err := s.Bucket.ListPage(ctx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: strings.TrimSuffix(key, "/") + "/"})
		found = len(page) > 0
		return err
	})
	return found, err
}

// JoinKey joins a key prefix and a relative key, either of which may be empty.
func JoinKey(prefix, rel string) string {
	switch {
	case prefix == "":
		return rel
	case rel == "":
		return prefix
	}
	return prefix + "/" + rel
}
