// Package registry handles registry connections: it prepares the docker
// credentials a job (most often kaniko) needs to push to or pull from a
// container registry, as a docker config.json, and proves them against the
// registry's /v2/ endpoint.
//
// The credentials come, in this order, from a docker config already in the
// connection's secret (config.json or .dockerconfigjson under its mountPath),
// else from username and password keys, or a token key (an identity token),
// read through the upstream credential look-up. They are merged into the
// config.json in --path (default $DOCKER_CONFIG, else ~/.docker): other
// registries' entries, credHelpers and unknown keys are kept, the entry for
// this registry is replaced, and the file is written atomically with mode
// 0600. When the secret is itself mounted where the config is read
// (upstream's way: secret mountPath /kaniko/.docker holding config.json),
// nothing is written and the mounted file is only verified.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers"
)

// Kinds are the kinds this handler serves.
var Kinds = []connections.Kind{connections.Registry}

const noVerifyFlag = "no-verify"

// Handler is the registry handler.
type Handler struct {
	noVerify bool
	sets     []*pflag.FlagSet
	getenv   func(string) string
	home     func() (string, error)
}

// New returns the registry handler.
func New() *Handler { return &Handler{getenv: os.Getenv, home: os.UserHomeDir} }

// Flags adds --no-verify. Another handler may own a flag of that name too
// (it means the same: skip a remote check); it is then shared, not redefined.
func (h *Handler) Flags(fs *pflag.FlagSet) {
	if fs.Lookup(noVerifyFlag) == nil {
		fs.BoolVar(&h.noVerify, noVerifyFlag, false, "registry: write the docker config without checking the credentials against the registry's /v2/")
	}
	h.sets = append(h.sets, fs)
}

// UsesFlags implements handlers.FlagUser: a registry connection writes
// one file, with no --paths, --workers or --checksum.
func (h *Handler) UsesFlags() []string { return []string{"force"} }

func (h *Handler) skipVerify() bool {
	if h.noVerify {
		return true
	}
	for _, fs := range h.sets {
		if f := fs.Lookup(noVerifyFlag); f != nil && f.Changed && f.Value.String() == "true" {
			return true
		}
	}
	return false
}

// plan is what a run or check works from.
type plan struct {
	ep        endpoint
	insecure  bool
	creds     *credentials
	secretCfg *secretConfig // the docker config found in the secret, if any
	dir       string        // where config.json goes
	noDir     error         // why dir is "": no place for config.json (a run fails with it, a check does not)
	// asMounted: the secret holding config.json is mounted where the config
	// is read, so it is verified and left as it is.
	asMounted bool
}

func (h *Handler) plan(req *handlers.Request) (*plan, error) {
	c := req.Conn
	hs := c.Host()
	if hs == nil || strings.TrimSpace(hs.URL) == "" {
		return nil, fault.New(fault.Usage, "%s: schema.url is required (e.g. registry.example.com/org)", c)
	}
	ep, err := parseEndpoint(hs.URL)
	if err != nil {
		return nil, fault.New(fault.Usage, "%s: schema.url %v", c, err)
	}
	if ep.Scheme == "http" && !hs.Insecure {
		return nil, fault.New(fault.Usage, "%s: schema.url %s is plain http but schema.insecure is false; set insecure: true to allow plain HTTP, or use https://", c, hs.URL)
	}
	p := &plan{ep: ep, insecure: hs.Insecure}
	dockerConfigEnv := h.getenv("DOCKER_CONFIG")
	switch {
	case req.Path != "":
		p.dir = req.Path
	case dockerConfigEnv != "":
		p.dir = dockerConfigEnv
	default:
		home, err := h.home()
		if err != nil || home == "" {
			// Only a run needs it: check writes nothing.
			p.noDir = fault.New(fault.Usage, "%s: no --path, no $DOCKER_CONFIG and no home folder to put .docker/config.json in; give --path", c)
			break
		}
		p.dir = filepath.Join(home, ".docker")
	}
	if p.dir != "" && (strings.HasSuffix(p.dir, ".json") || isFile(p.dir)) {
		return nil, fault.New(fault.Usage, "%s: %s is a file; give the folder that holds config.json (e.g. /kaniko/.docker), as --path or $DOCKER_CONFIG", c, p.dir)
	}
	if p.secretCfg, err = findSecretConfig(c); err != nil {
		return nil, err
	}
	if p.secretCfg != nil {
		if p.creds, err = fromSecretConfig(c, p.secretCfg, ep); err != nil {
			return nil, err
		}
		if filepath.Base(p.secretCfg.Path) == "config.json" &&
			(sameDir(p.dir, p.secretCfg.Dir) || (req.Path == "" && dockerConfigEnv == "")) {
			p.asMounted = true
			p.dir = p.secretCfg.Dir
		}
		return p, nil
	}
	if p.creds, err = fromKeys(c, req.Keys); err != nil {
		return nil, err
	}
	return p, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// sameDir reports whether a and b name the same folder.
func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// verify proves the plan's credentials unless --no-verify; it returns the
// method for the result ("basic", "bearer", "anonymous", "skipped…").
func (h *Handler) verify(ctx context.Context, req *handlers.Request, p *plan) (verified, error) {
	if h.skipVerify() {
		req.Log.Info("credentials not verified (--no-verify)", "registry", p.ep.Canonical)
		return verified{Method: "skipped (--no-verify)"}, nil
	}
	if p.creds.empty() && p.creds.Helper != "" {
		req.Log.Warn("credentials come from a credential helper; they cannot be verified here", "registry", p.ep.Canonical, "helper", p.creds.Helper)
		return verified{Method: "skipped (credential helper)"}, nil
	}
	v, err := newVerifier(req.Conn, p.insecure, req.Log).verify(ctx, p.ep, p.creds)
	if err != nil {
		return v, err
	}
	if v.Method == "anonymous" && !p.creds.empty() {
		req.Log.Warn("the registry allows anonymous access, so the credentials could not be checked", "url", v.URL)
	}
	req.Log.Info("credentials verified", "registry", p.ep.Canonical, "url", v.URL, "method", v.Method)
	return v, nil
}

func (p *plan) details(v verified) map[string]any {
	d := map[string]any{
		"registry":    p.ep.ConfigKey,
		"credentials": p.creds.kind(),
		"verified":    v.Method,
	}
	if p.dir != "" {
		d["configPath"] = filepath.Join(p.dir, "config.json")
	}
	if p.creds.Source != "" {
		d["source"] = p.creds.Source
	}
	if v.URL != "" {
		d["url"] = v.URL
	}
	if v.Realm != "" {
		d["tokenServer"] = v.Realm
	}
	return d
}

func (p *plan) describe(v verified) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", p.creds.kind())
	if p.creds.Source != "" {
		fmt.Fprintf(&b, " from %s", p.creds.Source)
	}
	switch {
	case strings.HasPrefix(v.Method, "skipped"):
		fmt.Fprintf(&b, ", not verified (%s)", strings.TrimSuffix(strings.TrimPrefix(v.Method, "skipped ("), ")"))
	case v.Method == "anonymous" && !p.creds.empty():
		b.WriteString(", not verifiable (the registry allows anonymous access)")
	case v.Method == "anonymous":
		b.WriteString("; the registry allows anonymous access")
	default:
		fmt.Fprintf(&b, ", verified with %s auth", v.Method)
	}
	return b.String()
}

// Check derives the registry, finds the credentials and verifies them
// (unless --no-verify); it writes nothing.
func (h *Handler) Check(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	p, err := h.plan(req)
	if err != nil {
		return nil, err
	}
	v, err := h.verify(ctx, req, p)
	if err != nil {
		return nil, err
	}
	res := &handlers.Result{Details: p.details(v)}
	res.Summary = fmt.Sprintf("%s: %s: %s", req.Conn, p.ep.ConfigKey, p.describe(v))
	return res, nil
}

// Run verifies the credentials (unless --no-verify), then merges them into
// config.json in --path.
func (h *Handler) Run(ctx context.Context, req *handlers.Request) (*handlers.Result, error) {
	p, err := h.plan(req)
	if err != nil {
		return nil, err
	}
	if p.dir == "" && p.noDir != nil {
		return nil, p.noDir
	}
	v, err := h.verify(ctx, req, p)
	if err != nil {
		return nil, err
	}
	res := &handlers.Result{Details: p.details(v), Path: p.dir}
	cfgPath := filepath.Join(p.dir, "config.json")
	switch {
	case p.asMounted:
		res.Details["written"] = false
		res.Summary = fmt.Sprintf("%s: %s: using the mounted %s as it is; %s", req.Conn, p.ep.ConfigKey, p.secretCfg.Path, p.describe(v))
		return res, nil
	case p.creds.empty() && p.creds.Helper == "":
		res.Details["written"] = false
		req.Log.Warn("no credentials in the connection; nothing written", "registry", p.ep.Canonical, "lookedIn", where(req.Conn))
		res.Summary = fmt.Sprintf("%s: %s: no credentials given, nothing written; %s", req.Conn, p.ep.ConfigKey, p.describe(v))
		return res, nil
	}
	src := configFile{}
	if p.secretCfg != nil {
		for _, k := range []string{"auths", "credHelpers"} {
			if raw, ok := p.secretCfg.Config[k]; ok {
				src[k] = raw
			}
		}
	} else {
		src.setSection("auths", map[string]json.RawMessage{p.ep.ConfigKey: p.creds.entry()})
	}
	mr, n, err := writeConfig(ctx, req, cfgPath, src)
	if err != nil {
		return nil, err
	}
	res.Files, res.Bytes = 1, n
	res.Details["written"] = true
	res.Details["entries"] = mr.Set
	if len(mr.Replaced) > 0 {
		res.Details["replaced"] = mr.Replaced
	}
	res.Summary = fmt.Sprintf("%s: wrote credentials for %s to %s; %s", req.Conn, strings.Join(mr.Set, ", "), cfgPath, p.describe(v))
	return res, nil
}

// writeConfig merges src into the docker config at path and writes it
// atomically with mode 0600.
func writeConfig(ctx context.Context, req *handlers.Request, path string, src configFile) (mergeResult, int64, error) {
	c := req.Conn
	dst, existed, err := readConfig(path)
	if err != nil {
		var pe *os.PathError
		switch {
		case errors.As(err, &pe):
			return mergeResult{}, 0, fault.FromSystem(fmt.Errorf("%s: reading the existing %s: %w", c, path, err))
		case !req.Force:
			return mergeResult{}, 0, fault.New(fault.Usage, "%s: the existing %s %v; fix or remove it, or pass --force to replace it", c, path, err)
		}
		req.Log.Warn("replacing an unreadable docker config (--force)", "path", path, "error", err.Error())
		dst, existed = configFile{}, false
	}
	mr, err := merge(dst, src)
	if err != nil {
		return mr, 0, fault.New(fault.Usage, "%s: merging into %s: %v", c, path, err)
	}
	if existed {
		req.Log.Info("merging into the existing docker config", "path", path, "set", mr.Set, "replaced", mr.Replaced)
	}
	if len(mr.HelpersDropped) > 0 {
		req.Log.Warn("removed credHelpers entries that would shadow the written credentials", "path", path, "keys", mr.HelpersDropped)
	}
	if mr.CredsStore != "" {
		req.Log.Warn("the docker config sets credsStore: clients ask that store before auths; remove credsStore if they do not find the credentials", "path", path, "credsStore", mr.CredsStore)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return mr, 0, fault.FromSystem(fmt.Errorf("%s: creating %s: %w; give --path a writable folder", c, dir, err))
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSymlink != 0 {
		// A config.json that is a link (to a file shared with other tools)
		// is written where it leads, as docker does: the link stays.
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
	}
	n, err := fsutil.WriteFileAtomic(ctx, path, bytes.NewReader(dst.encode()), fsutil.FileMeta{Mode: 0o600})
	if err != nil {
		return mr, 0, fault.FromSystem(fmt.Errorf("%s: writing %s: %w; give --path a writable folder", c, path, err))
	}
	req.Log.Info("docker config written", "path", path, "mode", "0600", "bytes", n)
	return mr, n, nil
}
