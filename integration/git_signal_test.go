package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// silentServer accepts connections and never answers: a clone (or a store
// request) against it waits until it is stopped. It returns its URL and
// the number of connections accepted so far.
func silentServer(t *testing.T) (string, func() int64) {
	t.Helper()
	ln, track := trackedListener(t)
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			n.Add(1)
		}
	}()
	return "http://" + ln.Addr().String(), n.Load
}

// trackedListener listens on a free port of 127.0.0.1; when the test ends
// it is closed, and so are the connections given to track.
func trackedListener(t *testing.T) (net.Listener, func(...net.Conn)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln, func(cs ...net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, cs...)
	}
}

// processesWith returns the command lines of the processes whose command
// line contains s.
func processesWith(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if cl := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cl, s) {
			found = append(found, e.Name()+": "+cl)
		}
	}
	return found
}

// TestGitSIGTERM stops a clone waiting on its server: the run exits 130,
// says it was stopped by a signal, leaves nothing at --path, and (git CLI)
// leaves none of git's helper processes running.
func TestGitSIGTERM(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			url, accepted := silentServer(t)
			repo := url + "/stalled.git"
			cat := gitCatalog(t, repo, "", nil, "")
			dir := filepath.Join(t.TempDir(), "code")
			cmd := exec.Command(binary, "--catalog", cat, "--connection", "repo", "--path", dir, "--git-engine", eng)
			cmd.Env = baseEnv(nil)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "the clone to reach the server", func() bool { return accepted() > 0 })
			signalled := time.Now()
			cmd.Process.Signal(syscall.SIGTERM)
			err := cmd.Wait()
			if d := time.Since(signalled); d > 4*time.Second {
				t.Errorf("the run took %v to stop", d)
			}
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 130 {
				t.Fatalf("wait: %v, want exit code 130\n%s", err, stderr.String())
			}
			if left := processesWith(repo); len(left) > 0 {
				t.Errorf("processes of the run still going after it exited:\n%s", strings.Join(left, "\n"))
			}
			if !strings.Contains(stderr.String(), "stopped by a signal") || strings.Contains(stderr.String(), "context canceled") {
				t.Errorf("the error does not say the run was stopped by a signal:\n%s", stderr.String())
			}
			entries, _ := os.ReadDir(filepath.Dir(dir))
			if len(entries) != 0 {
				t.Errorf("the stopped clone left %v", entries)
			}
		})
	}
}

// TestGitCLIParentKilled: a run killed outright (SIGKILL, the OOM killer)
// while git waits on its server does not leave git running: the kernel
// sends git SIGTERM. (git's transport helper, blocked on the silent server,
// ends when its connection does; in a pod, where this tool is the
// container's first process, the kernel ends them all.)
func TestGitCLIParentKilled(t *testing.T) {
	url, accepted := silentServer(t)
	repo := url + "/killed.git"
	cat := gitCatalog(t, repo, "", nil, "")
	dir := filepath.Join(t.TempDir(), "code")
	cmd := exec.Command(binary, "--catalog", cat, "--connection", "repo", "--path", dir, "--git-engine", "cli")
	cmd.Env = baseEnv(nil)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the clone to reach the server", func() bool { return accepted() > 0 })
	t.Cleanup(func() {
		for _, p := range processesWith(repo) {
			if pid, _, ok := strings.Cut(p, ":"); ok {
				if n, err := strconv.Atoi(pid); err == nil {
					syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
	})
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, 20*time.Second, "git clone to end after the run was killed", func() bool {
		for _, p := range processesWith(repo) {
			if strings.Contains(p, " clone ") {
				return false
			}
		}
		return true
	})
}
