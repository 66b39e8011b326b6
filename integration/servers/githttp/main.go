// Command githttp serves the bare git repositories under a root directory
// over git's smart HTTP protocol, through git-http-backend, for tests.
//
// Basic auth is enabled when -user is set; the password is read from the
// environment variable named by -password-env, so it never appears in argv.
// Pushes (receive-pack) are enabled. GET /healthz answers 200 without auth.
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	root := flag.String("root", "", "directory holding the bare repositories (required)")
	user := flag.String("user", "", "basic auth user; empty disables auth")
	passwordEnv := flag.String("password-env", "GITHTTP_PASSWORD", "environment variable holding the basic auth password")
	flag.Parse()
	log.SetPrefix("githttp: ")

	if *root == "" {
		log.Fatal("-root is required")
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		log.Fatal(err)
	}
	password := os.Getenv(*passwordEnv)
	if *user != "" && password == "" {
		log.Fatalf("-user is set but $%s is empty", *passwordEnv)
	}
	backend, err := backendPath()
	if err != nil {
		log.Fatal(err)
	}

	git := &cgi.Handler{
		Path: backend,
		Dir:  absRoot,
		Env: []string{
			"GIT_PROJECT_ROOT=" + absRoot,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"HOME=" + absRoot,
			"GIT_CONFIG_COUNT=2",
			"GIT_CONFIG_KEY_0=http.receivepack",
			"GIT_CONFIG_VALUE_0=true",
			"GIT_CONFIG_KEY_1=safe.directory",
			"GIT_CONFIG_VALUE_1=*",
		},
		Logger: log.Default(),
		Stderr: os.Stderr,
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/", basicAuth(*user, password, git))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("serving %s on http://%s", absRoot, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// backendPath finds git-http-backend in git's exec path.
func backendPath() (string, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return "", fmt.Errorf("git --exec-path: %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("git-http-backend not found: %w", err)
	}
	return p, nil
}

// basicAuth wraps next with HTTP basic auth unless user is empty.
func basicAuth(user, password string, next http.Handler) http.Handler {
	if user == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		userOK := subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(p), []byte(password)) == 1
		if !ok || !userOK || !passOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="git", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		next.ServeHTTP(w, r)
	})
}
