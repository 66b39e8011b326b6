// Command gitssh serves the bare git repositories under a root directory over
// SSH, the way a git hosting service does: clients authenticate with a key
// listed in an authorized_keys file, and the only commands allowed are
// git-upload-pack and git-receive-pack on a repository under the root, for
// URLs such as ssh://git@127.0.0.1:2222/repo.git.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2222", "listen address")
	root := flag.String("root", "", "directory holding the bare repositories (required)")
	authorizedKeys := flag.String("authorized-keys", "", "authorized_keys file (required)")
	hostKey := flag.String("host-key", "", "host private key file (required)")
	user := flag.String("user", "git", "the only user name accepted; empty accepts any")
	flag.Parse()
	log.SetPrefix("gitssh: ")

	if *root == "" || *authorizedKeys == "" || *hostKey == "" {
		log.Fatal("-root, -authorized-keys and -host-key are required")
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		log.Fatal(err)
	}
	keys, err := loadAuthorizedKeys(*authorizedKeys)
	if err != nil {
		log.Fatal(err)
	}

	srv := &ssh.Server{
		Addr: *addr,
		Handler: func(s ssh.Session) {
			s.Exit(serveGit(s, absRoot))
		},
		PublicKeyHandler: func(ctx ssh.Context, key ssh.PublicKey) bool {
			if *user != "" && ctx.User() != *user {
				return false
			}
			for _, k := range keys {
				if ssh.KeysEqual(k, key) {
					return true
				}
			}
			return false
		},
	}
	if err := srv.SetOption(ssh.HostKeyFile(*hostKey)); err != nil {
		log.Fatal(err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("serving %s on ssh://%s", absRoot, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, ssh.ErrServerClosed) {
		log.Fatal(err)
	}
}

func loadAuthorizedKeys(file string) ([]ssh.PublicKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var keys []ssh.PublicKey
	for len(bytes.TrimSpace(data)) > 0 {
		key, _, _, rest, err := gossh.ParseAuthorizedKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		keys = append(keys, key)
		data = rest
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", file)
	}
	return keys, nil
}

// serveGit runs the git command requested by the session and returns its
// exit status.
func serveGit(s ssh.Session, root string) int {
	args := s.Command()
	if len(args) == 3 && args[0] == "git" {
		args = []string{"git-" + args[1], args[2]}
	}
	if len(args) != 2 {
		fmt.Fprintln(s.Stderr(), "gitssh: only git-upload-pack and git-receive-pack are allowed")
		return 128
	}
	service := strings.TrimPrefix(args[0], "git-")
	switch service {
	case "upload-pack", "receive-pack", "upload-archive":
	default:
		fmt.Fprintf(s.Stderr(), "gitssh: command %q is not allowed\n", args[0])
		return 128
	}
	repo, err := resolveRepo(root, args[1])
	if err != nil {
		fmt.Fprintf(s.Stderr(), "gitssh: %v\n", err)
		return 128
	}

	cmd := exec.CommandContext(s.Context(), "git", service, repo)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*")
	for _, kv := range s.Environ() {
		if strings.HasPrefix(kv, "GIT_PROTOCOL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout = s
	cmd.Stderr = s.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintf(s.Stderr(), "gitssh: %v\n", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(s.Stderr(), "gitssh: %v\n", err)
		return 1
	}
	go func() {
		_, _ = io.Copy(stdin, s)
		_ = stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return exitErr.ExitCode()
		}
		log.Printf("%s %s: %v", service, repo, err)
		return 1
	}
	return 0
}

// resolveRepo maps the path a client asked for onto a repository directory
// under root, refusing anything that would leave it.
func resolveRepo(root, requested string) (string, error) {
	p := strings.TrimPrefix(requested, "~/")
	p = path.Clean("/" + p)
	if p == "/" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("invalid repository path %q", requested)
	}
	full := filepath.Join(root, filepath.FromSlash(p))
	rel, err := filepath.Rel(root, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("invalid repository path %q", requested)
	}
	if fi, err := os.Stat(full); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("repository %q not found", requested)
	}
	return full, nil
}
