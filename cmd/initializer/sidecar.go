package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/fsutil"
	"github.com/initializer/initializer/handlers"
	"github.com/initializer/initializer/handlers/store"
	"github.com/initializer/initializer/sidecar"
	"github.com/initializer/initializer/transfer"
)

type sidecarFlags struct {
	connection     string
	path           string
	prefix         string
	interval       time.Duration
	grace          time.Duration
	checkInterval  time.Duration
	excludes       []string
	delete         bool
	state          string
	untilFile      string
	watchContainer string
	kubeAPI        string
	kubeToken      string
	kubeCA         string
	namespace      string
	podName        string
	metricsAddr    string
	strict         bool
	workers        int
	partMiB        int64
	partConc       int
	memoryLimitMiB int64
	budgetMiB      int64

	// upstream's flags (polyaxon sidecar), accepted for drop-in use
	containerID   string
	sleepInterval int
	syncInterval  int
	maxRetries    int
	monitorLogs   bool
	monitorSpec   bool
}

func (a *app) sidecarCommand() *cobra.Command {
	var sf sidecarFlags
	cmd := &cobra.Command{
		Use:   "sidecar --connection STORE [--path DIR] [--prefix P]",
		Short: "Upload a job's outputs to a store while it runs, then flush everything when it ends",
		Long: `sidecar uploads the files under --path that are new or changed to the store connection
(s3, gcs, wasb, or a host_path/volume_claim mount) every --interval, under --prefix (by default the
run's uuid from $POLYAXON_RUN_INSTANCE, as upstream lays runs out). It ends on SIGTERM, when
--until-file exists, or when --watch-container's container has terminated, with one final flush
within --grace. It exits 0 even when the store was down (the result and the log name the files
not uploaded), unless --strict.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.sidecar(cmd, sf)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&sf.connection, "connection", "c", "", "the store connection (default $POLYAXON_ARTIFACTS_STORE_NAME, else the catalog's artifactsStore)")
	f.StringVarP(&sf.path, "path", "p", "", "the folder to upload (default /plx-context/artifacts/<run uuid>, from $POLYAXON_RUN_INSTANCE)")
	f.StringVar(&sf.prefix, "prefix", "", "key prefix under the store's path (default the run uuid from $POLYAXON_RUN_INSTANCE; --prefix= for none)")
	f.DurationVar(&sf.interval, "interval", 10*time.Second, "time between two upload cycles")
	f.DurationVar(&sf.grace, "grace", 25*time.Second, "budget of the final flush once the job ended; keep it below the pod's terminationGracePeriodSeconds")
	f.DurationVar(&sf.checkInterval, "check-interval", 2*time.Second, "how often --until-file and --watch-container are checked")
	f.StringArrayVar(&sf.excludes, "exclude", nil, "glob of names (any depth) or paths (with a /) not to upload; ** is any number of folders (**/*.tmp, logs/**/debug.log); a trailing / matches folders only; repeatable (.git/ and temporary files are always excluded)")
	f.BoolVar(&sf.delete, "delete", false, "delete the objects of files deleted under --path")
	f.StringVar(&sf.state, "state", "", "file keeping what was uploaded, so a restart uploads nothing again (default next to --path, else in $TMPDIR; 'none' to keep it in memory)")
	f.StringVar(&sf.untilFile, "until-file", "", "end (final flush, exit) once this file exists")
	f.StringVar(&sf.watchContainer, "watch-container", "", "end once this container of the pod has terminated, read from the Kubernetes API with the pod's service account")
	f.StringVar(&sf.kubeAPI, "kube-api", "", "Kubernetes API URL for --watch-container (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)")
	f.StringVar(&sf.kubeToken, "kube-token-file", "", "bearer token file for --watch-container (default "+sidecar.ServiceAccountDir+"/token)")
	f.StringVar(&sf.kubeCA, "kube-ca-file", "", "CA bundle of the API server (default "+sidecar.ServiceAccountDir+"/ca.crt)")
	f.StringVar(&sf.namespace, "namespace", "", "the pod's namespace (default $POD_NAMESPACE, $POLYAXON_K8S_NAMESPACE, then the service account's)")
	f.StringVar(&sf.podName, "pod-name", "", "the pod's name (default $POD_NAME, $POLYAXON_K8S_POD_ID, then the host name)")
	f.StringVar(&sf.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /healthz on this address (e.g. :9090)")
	f.BoolVar(&sf.strict, "strict", false, "exit non-zero (the failure's class) when files were not uploaded")
	f.IntVar(&sf.workers, "workers", 32, "files uploaded in parallel (small files; large ones share --memory-budget)")
	f.Int64Var(&sf.partMiB, "part-size", 5, "size in MiB of the parts of multipart uploads (grown for files beyond 9,000 parts)")
	f.IntVar(&sf.partConc, "part-concurrency", 4, "parts of one large file sent in parallel (each buffers --part-size)")
	f.Int64Var(&sf.budgetMiB, "memory-budget", 48, "MiB the uploads in flight may buffer (the SDKs buffer each part of a large file)")
	f.Int64Var(&sf.memoryLimitMiB, "memory-limit", 48, "soft memory limit in MiB for the Go runtime, plus 192 KiB per worker beyond 32 unless set (0: none; $GOMEMLIMIT wins)")

	f.StringVar(&sf.containerID, "container-id", "", "upstream's name of --watch-container")
	f.IntVar(&sf.sleepInterval, "sleep-interval", 0, "upstream's --check-interval, in seconds")
	f.IntVar(&sf.syncInterval, "sync-interval", 0, "upstream's --interval, in seconds")
	f.IntVar(&sf.maxRetries, "max-retries", 0, "upstream's; accepted and ignored (uploads retry with backoff)")
	f.BoolVar(&sf.monitorLogs, "monitor-logs", false, "upstream's; accepted, not implemented (logs are collected by the cluster)")
	f.BoolVar(&sf.monitorSpec, "monitor-spec", false, "upstream's; accepted, not implemented")
	for _, n := range []string{"container-id", "sleep-interval", "sync-interval", "max-retries", "monitor-logs", "monitor-spec"} {
		_ = f.MarkHidden(n)
	}
	return cmd
}

// sidecar runs the upload loop and reports the outcome like a job does.
func (a *app) sidecar(cmd *cobra.Command, sf sidecarFlags) error {
	out := outcome{Command: "sidecar", Connection: sf.connection, Version: versionString(), StartedAt: a.started}
	res, err := a.runSidecar(cmd, &sf, &out)
	out.Connection = sf.connection
	// Never failing the pod: a --result that cannot be written is logged,
	// as a state file that cannot be saved is, unless --strict.
	a.resultOptional = !sf.strict
	return a.finish(out, res, err)
}

func (a *app) runSidecar(cmd *cobra.Command, sf *sidecarFlags, out *outcome) (*handlers.Result, error) {
	ctx := cmd.Context()
	env := func(k string) string { v, _ := a.getenv(k); return v }
	if err := sf.compat(cmd, a); err != nil {
		return nil, err
	}
	if !cmd.Flags().Changed("memory-limit") {
		sf.memoryLimitMiB = sidecar.MemoryLimitMiB(sf.workers)
	}
	if sf.memoryLimitMiB > 0 && env("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(sf.memoryLimitMiB << 20)
	}
	cat, err := connections.Load(a.g.catalog, a.getenv)
	if err != nil {
		return nil, err
	}
	if sf.connection == "" {
		sf.connection = env("POLYAXON_ARTIFACTS_STORE_NAME")
	}
	if sf.connection == "" {
		if c := cat.ArtifactsStore(); c != nil {
			sf.connection = c.Name
		}
	}
	if sf.connection == "" {
		return nil, fault.New(fault.Usage, "--connection is required: the store to upload to (or set $POLYAXON_ARTIFACTS_STORE_NAME, or give the catalog an artifactsStore)")
	}
	conn, err := cat.Get(sf.connection)
	if err != nil {
		return nil, err
	}
	out.Kind = string(conn.Kind)
	if !conn.Kind.IsArtifactStore() {
		return nil, fault.New(fault.Usage, "%s cannot receive uploads: the sidecar needs an s3, gcs, wasb, host_path or volume_claim connection", conn)
	}
	// The run's uuid gives the defaults of --prefix and --path; a
	// malformed $POLYAXON_RUN_INSTANCE matters only when one is needed.
	run, runErr := sidecar.RunUUID(env("POLYAXON_RUN_INSTANCE"))
	if !cmd.Flags().Changed("prefix") {
		if runErr != nil {
			return nil, fault.New(fault.Usage, "%v: fix it, or give --prefix (--prefix= for the store's root)", runErr)
		}
		if run == "" {
			return nil, fault.New(fault.Usage, "--prefix is required when $POLYAXON_RUN_INSTANCE (owner.project.runs.uuid) is not set; give --prefix= to upload to the store's root")
		}
		sf.prefix = run
	}
	prefix, err := fsutil.CleanRel(sf.prefix)
	if err != nil {
		return nil, fault.New(fault.Usage, "--prefix %q: %w", sf.prefix, err)
	}
	if sf.path == "" {
		if runErr != nil {
			return nil, fault.New(fault.Usage, "%v: fix it, or give --path, the folder to upload", runErr)
		}
		if run == "" {
			return nil, fault.New(fault.Usage, "--path is required: the folder to upload")
		}
		root := env("POLYAXON_CONTEXT_ROOT")
		if root == "" {
			root = "/plx-context"
		}
		sf.path = filepath.Join(root, "artifacts", run)
	}
	dir, err := filepath.Abs(sf.path)
	if err != nil {
		return nil, fault.New(fault.Usage, "--path %q: %w", sf.path, err)
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, fault.New(fault.Usage, "%s: --path %s is a file: give the folder whose files are uploaded", conn, dir)
	}
	log := a.log.With("connection", conn.Name, "kind", string(conn.Kind))
	warnMissingMounts(log, conn.Keys())

	cfg := sidecar.Config{
		Root: dir, Interval: sf.interval, Grace: sf.grace, CheckInterval: sf.checkInterval,
		Delete: sf.delete, Excludes: sf.excludes, UntilFile: sf.untilFile, Log: log,
		Transfer: transfer.UploadOptions{Options: transfer.Options{Workers: sf.workers, PartSize: sf.partMiB << 20, Conn: conn.String(), Log: log},
			PartConcurrency: sf.partConc, MemoryBudget: sf.budgetMiB << 20},
	}
	// Metrics and /healthz first: a store that does not answer must not
	// keep a liveness probe waiting.
	if sf.metricsAddr != "" {
		cfg.Metrics = sidecar.NewMetrics()
		ln, err := net.Listen("tcp", sf.metricsAddr)
		if err != nil {
			return nil, fault.New(fault.Usage, "--metrics-addr %s: %w", sf.metricsAddr, err)
		}
		srv := &http.Server{Handler: cfg.Metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	if conn.Kind.IsMount() {
		m, err := sidecar.OpenMount(conn, prefix, dir, log)
		if err != nil {
			return nil, err
		}
		defer m.Bucket.Close()
		cfg.Bucket, cfg.StoreURL, cfg.StoreID, cfg.Prefix = m.Bucket, m.Path, conn.Name, prefix
		mount := m.Path
		// The file fileblob wrote, whose name it escaped where the key
		// has characters or sequences it escapes.
		cfg.AfterUpload = func(key string, st transfer.FileState) error {
			t, exact := st.Time()
			if !exact {
				// Beyond what the state holds: the file's own time.
				rel := key
				if prefix != "" {
					rel = strings.TrimPrefix(key, prefix+"/")
				}
				fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
				if err != nil {
					return nil
				}
				t = fi.ModTime()
			}
			return os.Chtimes(store.FileblobPath(mount, key), t, t)
		}
		cfg.AfterCycle = func() error { return fsutil.Syncfs(mount) }
		// A folder of the store emptied by deletions goes too, so that a
		// file of that name can take its place.
		top := filepath.Join(mount, filepath.FromSlash(prefix))
		cfg.AfterDelete = func(key string) error { return removeEmptied(top, store.FileblobPath(mount, key)) }
		cfg.BeforeDelete = func(key string) error { return noLinkOnPath(top, store.FileblobPath(mount, key)) }
		// Local file-system errors: a file where a folder is needed or the
		// reverse cannot be fixed by trying again.
		cfg.Transfer.Classify = mountClass
		// The uploader writes each file itself and sees every byte
		// written: reading fileblob's attributes back would add nothing
		// but a failure for names over 249 bytes (it opens "<name>.attrs").
		cfg.Transfer.Provider, cfg.Transfer.NoVerify = m.Uploader, true
	} else {
		s, err := store.Open(ctx, conn, conn.Keys(), store.Options{Workers: sf.workers, Log: log})
		if err != nil {
			return nil, err
		}
		// A first look at the store, beside the start: not fatal (it may
		// come up later; the cycles retry), and not waited for.
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		checked := make(chan struct{})
		go func() {
			defer close(checked)
			err := s.Check(cctx)
			switch {
			case err == nil || errors.Is(err, context.Canceled):
			case fault.ClassOf(err) == fault.Transient:
				log.Warn("the store is not reachable yet; uploads will be retried every cycle", "error", err.Error())
			default:
				// It answered, and refused: uploads will fail the same
				// way until the settings are fixed.
				log.Error("the store refuses this connection's settings; uploads will fail until they are fixed", "class", fault.ClassOf(err).String(), "error", err.Error())
			}
		}()
		defer func() { cancel(); <-checked; s.Close() }()
		cfg.Bucket, cfg.StoreURL, cfg.Prefix = s.Bucket, s.URL, store.JoinKey(s.Prefix, prefix)
		cfg.StoreID = conn.Name + "\x00" + s.Endpoint()
		cfg.Transfer.Provider, cfg.Transfer.Classify, cfg.Transfer.Brief, cfg.Transfer.Explain = s.Provider, store.Classify, store.Brief, s.Explain
		cfg.Transfer.Credentials = s.Credentials()
	}
	cfg.StatePath = sidecar.StatePath(sf.state, dir, cfg.StoreURL, cfg.Prefix)

	if sf.watchContainer != "" {
		w, err := sidecar.NewPodWatcher(sidecar.PodWatcherConfig{
			APIURL: sf.kubeAPI, TokenFile: sf.kubeToken, CAFile: sf.kubeCA, Namespace: sf.namespace,
			Pod: sf.podName, Container: sf.watchContainer, Getenv: a.getenv,
		})
		if err != nil {
			return nil, fault.Wrap(fault.Usage, err)
		}
		cfg.Watch = w
		log.Info("watching the main container", "container", sf.watchContainer, "pod", w.Namespace+"/"+w.Pod, "api", w.APIURL)
	}

	rep, err := sidecar.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res := &handlers.Result{
		Summary: rep.Summary(underPrefix(cfg.StoreURL, prefix)),
		Path:    dir,
		Files:   rep.Files,
		Bytes:   rep.Bytes,
		Skipped: rep.Skipped,
		Details: map[string]any{
			"store": cfg.StoreURL, "prefix": cfg.Prefix, "state": cfg.StatePath,
			"endReason": rep.EndReason, "cycles": rep.Cycles, "deleted": rep.Deleted, "watched": rep.Watched,
			"errors": rep.Errors, "flushComplete": rep.FlushComplete, "flushSeconds": rep.FlushSeconds,
			"notUploaded": rep.NotUploaded, "restored": rep.Restored,
		},
	}
	if rep.WatchError != nil {
		// A flag (or RBAC) mistake that made the end impossible to see.
		return res, fault.Wrap(fault.ClassOf(rep.WatchError), fmt.Errorf("%w (the run stopped after uploading what was there: the end of the job cannot be seen)", rep.WatchError))
	}
	if len(rep.NotUploaded) > 0 && sf.strict {
		// The first failure's own error says why (it names the connection
		// and the fix); the others are in the result.
		first := rep.NotUploaded[0]
		for _, f := range rep.NotUploaded {
			if f.Class == rep.FirstClass.String() {
				first = f
				break
			}
		}
		what := fmt.Sprintf("%d files were", len(rep.NotUploaded))
		if len(rep.NotUploaded) == 1 {
			what = "1 file was"
		}
		cause := strings.TrimPrefix(first.Error, conn.String()+": ")
		return res, fault.New(rep.FirstClass, "%s: %s not uploaded to %s (--strict); %s: %s; %s", conn, what, cfg.StoreURL, first.Path, cause, res.Summary)
	}
	return res, nil
}

// compat maps upstream's flags onto ours.
func (sf *sidecarFlags) compat(cmd *cobra.Command, a *app) error {
	if sf.containerID != "" && sf.watchContainer == "" {
		sf.watchContainer = sf.containerID
	}
	if sf.syncInterval > 0 && !cmd.Flags().Changed("interval") {
		sf.interval = time.Duration(sf.syncInterval) * time.Second
	}
	if sf.sleepInterval > 0 && !cmd.Flags().Changed("check-interval") {
		sf.checkInterval = time.Duration(sf.sleepInterval) * time.Second
	}
	if sf.monitorLogs || sf.monitorSpec {
		a.log.Warn("--monitor-logs and --monitor-spec are accepted for compatibility but not implemented: the sidecar uploads files only")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", sf.interval}, {"grace", sf.grace}, {"check-interval", sf.checkInterval}} {
		if d.v <= 0 {
			return fault.New(fault.Usage, "--%s %s: give a positive duration (such as 10s or 1m)", d.name, d.v)
		}
	}
	if sf.workers <= 0 || sf.workers > maxWorkers {
		return fault.New(fault.Usage, "--workers %d: give a number from 1 to %d", sf.workers, maxWorkers)
	}
	switch {
	case sf.partConc <= 0:
		return fault.New(fault.Usage, "--part-concurrency %d: give a positive number", sf.partConc)
	case sf.budgetMiB <= 0:
		return fault.New(fault.Usage, "--memory-budget %d: give a positive number of MiB", sf.budgetMiB)
	case sf.partMiB < 5:
		return fault.New(fault.Usage, "--part-size %d: give 5 or more (MiB, S3's smallest part)", sf.partMiB)
	}
	return nil
}

// noLinkOnPath refuses a file of the store reached through a link (or
// anything but a folder) on its way from top: deleting it, or the folders
// around it, would act on what the link points to, outside the store.
func noLinkOnPath(top, file string) error {
	rel, err := filepath.Rel(top, filepath.Dir(file))
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not below %s", file, top)
	}
	if rel == "." {
		return nil
	}
	p := top
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nothing there: nothing to act on through it
		}
		if err != nil || !st.IsDir() {
			return fmt.Errorf("%s is reached through %s, which is not a folder of the store (a link?)", file, p)
		}
	}
	return nil
}

// removeEmptied removes the folders of a deleted file, below top, that
// the deletion left empty, deepest first. It stops at the first folder
// that holds anything, and at a link: a link to a folder in the store
// stays, with what it points to.
func removeEmptied(top, file string) error {
	if noLinkOnPath(top, file) != nil {
		return nil
	}
	for d := filepath.Dir(file); d != top && fsutil.Within(top, d); d = filepath.Dir(d) {
		if err := os.Remove(d); err != nil {
			if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
				return nil
			}
			return err
		}
	}
	return nil
}

// mountClass classifies the errors of uploads to a mounted folder.
func mountClass(err error) fault.Class {
	switch {
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EEXIST), errors.Is(err, syscall.ENOTEMPTY),
		errors.Is(err, syscall.EXDEV), // a volume mounted below the store's folder after the start
		errors.Is(err, syscall.ENAMETOOLONG):
		return fault.Usage
	}
	if c := fault.ClassOf(fault.FromSystem(err)); c != fault.Internal {
		return c
	}
	return transfer.ClassifyCode(err)
}

// underPrefix names where the sidecar's objects go: the store's URL (or
// folder), then the sidecar's --prefix below it.
func underPrefix(storeURL, prefix string) string {
	if prefix == "" {
		return storeURL
	}
	return strings.TrimSuffix(storeURL, "/") + "/" + prefix
}
