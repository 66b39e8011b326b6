package git

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/secret"
)

// authKind is how the remote is authenticated.
type authKind int

const (
	authNone  authKind = iota
	authBasic          // user name and password or token over http(s)
	authStore          // a git credential store file (.git-credentials)
	authSSH            // an SSH private key
)

func (k authKind) String() string {
	return [...]string{"none", "basic", "credential-store", "ssh-key"}[k]
}

// auth is the resolved credentials of one run. Secret parts stay
// secret.Values until handed to git.
type auth struct {
	kind   authKind
	source string // where the credentials were read from, safe to print

	user, pass secret.Value // authBasic; pass may be empty (a bare token is the user)

	store       string // authStore: path of the .git-credentials file
	unusedStore string // a GIT_CREDENTIALS_STORE that names no file, and why

	key        []byte       // authSSH: the private key (PEM), nil to let ssh use its defaults
	keySource  string       // where the key was read from
	passphrase secret.Value // the key's passphrase, if any
	knownHosts []string     // known_hosts files; none means unverified (upstream's behaviour)
	strict     bool         // --strict-host-key-checking
}

// sshDirs returns the folders searched for SSH keys and known_hosts:
// POLYAXON_SSH_PATH (upstream's), then the connection's mounted secret and
// configMap.
func sshDirs(keys *connections.Keys) []string {
	var dirs []string
	if v, ok := keys.Get("SSH_PATH"); ok {
		dirs = append(dirs, v.Reveal())
	}
	for _, d := range keys.Dirs() {
		if !contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// defaultKeyNames are tried when POLYAXON_SSH_PRIVATE_KEY does not name the
// key file: upstream's id_rsa first, then the other usual names and the key
// of a Kubernetes kubernetes.io/ssh-auth secret.
var defaultKeyNames = []string{"id_rsa", "id_ed25519", "id_ecdsa", "ssh-privatekey", "identity"}

// resolveAuth finds the credentials for u, in upstream's precedence:
// git credentials (POLYAXON_GIT_CREDENTIALS, or the secret's username /
// password / token keys, or the URL's own user:password), then a credential
// store, then an SSH key. It returns the URL to fetch from, rewritten as
// upstream does: an SSH URL becomes https when credentials or a credential
// store are given, and an http(s) URL becomes SSH when only a key is.
func resolveAuth(conn *connections.Connection, keys *connections.Keys, u remote, strict bool) (*auth, remote, error) {
	a := &auth{strict: strict}
	fail := func(err error) (*auth, remote, error) { return nil, remote{}, err }

	// 1. Upstream's POLYAXON_GIT_CREDENTIALS: "user:token", "oauth2:token" or a bare token.
	creds, ok, err := keys.Lookup("GIT_CREDENTIALS")
	if err != nil {
		return fail(err)
	}
	if ok {
		raw := creds.Reveal()
		if user, pass, found := strings.Cut(raw, ":"); found {
			a.user, a.pass = secret.New(user, true, creds.Source()), secret.New(pass, true, creds.Source())
		} else {
			a.user = secret.New(raw, true, creds.Source())
		}
		a.kind, a.source = authBasic, creds.Source()
		return a, u.toHTTPS(), nil
	}

	// 2. The secret's username / password / token keys.
	pass, hasPass, err := keys.Lookup("GIT_PASSWORD", "PASSWORD")
	if err != nil {
		return fail(err)
	}
	token, hasToken, err := keys.Lookup("GIT_TOKEN", "TOKEN")
	if err != nil {
		return fail(err)
	}
	if hasPass || hasToken {
		user, hasUser, err := keys.Lookup("GIT_USERNAME", "USERNAME", "GIT_USER")
		if err != nil {
			return fail(err)
		}
		a.kind = authBasic
		switch {
		case hasPass && hasUser:
			a.user, a.pass, a.source = user, pass, pass.Source()
		case hasToken && hasUser:
			a.user, a.pass, a.source = user, token, token.Source()
		case hasToken:
			// A token alone goes where upstream puts a bare token: the user
			// name, which is shown (secret.Value.Name); a token is not.
			_ = token.Reveal()
			a.user, a.source = token, token.Source()
		default:
			return fail(fault.New(fault.Usage, "%s: a password was found (%s) but no user name; add a username key (GIT_USERNAME) to the secret, or give POLYAXON_GIT_CREDENTIALS as user:password", conn, pass.Source()))
		}
		return a, u.toHTTPS(), nil
	}

	// 3. Credentials written in the URL itself (https://user:token@host/...).
	if u.isHTTP() && u.HasPass {
		a.kind, a.source = authBasic, "the URL"
		a.user = secret.New(u.User, true, "the URL")
		a.pass = secret.New(u.Password, true, "the URL")
		return a, u, nil
	}

	// 4. A git credential store: POLYAXON_GIT_CREDENTIALS_STORE, or a
	// .git-credentials file in the connection's secret.
	if v, ok, err := keys.Lookup("GIT_CREDENTIALS_STORE"); err != nil {
		return fail(err)
	} else if ok {
		p := v.Setting() // a path, not a credential
		st, err := os.Stat(p)
		if err == nil && !st.IsDir() {
			a.kind, a.store, a.source = authStore, p, v.Source()
			return a, u.toHTTPS(), nil
		}
		// Not fatal (a public repository needs none), but said should the
		// remote ask for credentials.
		why := "a folder"
		var pe *fs.PathError
		if errors.As(err, &pe) {
			why = "not readable (" + pe.Err.Error() + ")"
		}
		shown := p
		if !filepath.IsAbs(p) || strings.ContainsAny(p, " \t\n") {
			// Not a path: perhaps the store's content, given in its
			// place; never printed.
			shown = "a value that is no absolute path"
		}
		a.unusedStore = fmt.Sprintf("%s names %s, which is %s", v.Source(), shown, why)
	}
	for _, d := range keys.Dirs() {
		p := filepath.Join(d, ".git-credentials")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			a.kind, a.store, a.source = authStore, p, p
			return a, u.toHTTPS(), nil
		}
	}

	// 5. An SSH key.
	key, keySource, err := findKey(conn, keys)
	if err != nil {
		return fail(err)
	}
	if u.isSSH() || (key != nil && u.isHTTP()) {
		a.kind, a.key, a.keySource, a.source = authSSH, key, keySource, keySource
		if key == nil {
			a.source = "ssh defaults"
		}
		if a.passphrase, _, err = keys.Lookup("SSH_PASSPHRASE", "SSH_KEY_PASSPHRASE", "GIT_SSH_PASSPHRASE"); err != nil {
			return fail(err)
		}
		if a.knownHosts, err = findKnownHosts(conn, keys); err != nil {
			return fail(err)
		}
		return a, u.toSSH(), nil
	}
	if u.isHTTP() && u.User != "" {
		// A user name without a password: git asks for the password, which
		// nobody can type in an init container.
		a.kind, a.source = authBasic, "the URL"
		a.user = secret.Plain(u.User)
		return a, u, nil
	}
	return a, u, nil
}

// findKey reads the SSH private key: POLYAXON_SSH_PRIVATE_KEY names the file
// (default id_rsa, then the other usual names) under POLYAXON_SSH_PATH or the
// connection's secret; a key given inline (the variable holds the PEM
// itself) is accepted too.
func findKey(conn *connections.Connection, keys *connections.Keys) ([]byte, string, error) {
	names := defaultKeyNames
	if v, ok, err := keys.Lookup("SSH_PRIVATE_KEY"); err != nil {
		return nil, "", err
	} else if ok {
		raw := v.Reveal()
		if strings.Contains(raw, "PRIVATE KEY-----") {
			return normalKey([]byte(raw)), v.Source(), nil
		}
		if filepath.IsAbs(raw) {
			b, err := os.ReadFile(raw)
			if err != nil {
				return nil, "", fault.FromSystem(fmt.Errorf("%s: SSH key %s (from %s): %w", conn, raw, v.Source(), err))
			}
			return normalKey(b), raw, nil
		}
		names = []string{raw}
	}
	dirs := sshDirs(keys)
	for _, n := range names {
		for _, d := range dirs {
			p := filepath.Join(d, n)
			b, err := os.ReadFile(p)
			switch {
			case errors.Is(err, fs.ErrNotExist), isDir(p):
				continue
			case err != nil:
				return nil, "", fault.New(fault.Auth, "%s: cannot read the SSH key %s: %w", conn, p, err)
			}
			if !bytes.Contains(b, []byte("PRIVATE KEY")) {
				return nil, "", fault.New(fault.Usage, "%s: %s is not a PEM/OpenSSH private key (no \"PRIVATE KEY\" header); put the private key there, not the .pub file", conn, p)
			}
			return normalKey(b), p, nil
		}
	}
	if len(names) == 1 && names[0] != defaultKeyNames[0] {
		return nil, "", fault.New(fault.Usage, "%s: POLYAXON_SSH_PRIVATE_KEY names %q but no such file is in %s; fix the name or mount the key there", conn, names[0], orNone(dirs))
	}
	return nil, "", nil
}

// normalKey returns a key file's text as OpenSSH reads it: a key written
// with Windows line endings, or without its last newline (as templating
// and kubectl --from-literal leave it), fails to load in ssh ("error in
// libcrypto") though go-git reads it.
func normalKey(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return append(bytes.TrimSpace(b), '\n')
}

// findKnownHosts returns the known_hosts files to verify host keys with:
// SSH_KNOWN_HOSTS (a list of files, as OpenSSH and go-git read it, or the
// file's content from the secret), then known_hosts in the SSH folders.
func findKnownHosts(conn *connections.Connection, keys *connections.Keys) ([]string, error) {
	var files []string
	if v, ok, err := keys.Lookup("SSH_KNOWN_HOSTS"); err != nil {
		return nil, err
	} else if ok {
		raw := v.Reveal()
		if strings.ContainsAny(strings.TrimSpace(raw), " \n\t") {
			// The content itself, read from a secret file named ssh_known_hosts.
			p := v.Source()
			if !filepath.IsAbs(p) {
				return nil, fault.New(fault.Usage, "%s: SSH_KNOWN_HOSTS (%s) holds known_hosts lines; it must name known_hosts files instead (separated by %q)", conn, p, string(filepath.ListSeparator))
			}
			files = append(files, p)
		} else {
			for _, f := range filepath.SplitList(raw) {
				if _, err := os.Stat(f); err != nil {
					return nil, fault.New(fault.Usage, "%s: SSH_KNOWN_HOSTS (%s) names %s: %v; point it at an existing known_hosts file", conn, v.Source(), f, err)
				}
				files = append(files, f)
			}
		}
	}
	for _, d := range sshDirs(keys) {
		p := filepath.Join(d, "known_hosts")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && !contains(files, p) {
			files = append(files, p)
		}
	}
	return files, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func orNone(dirs []string) string {
	if len(dirs) == 0 {
		return "(no folder: the connection has no secret mountPath and POLYAXON_SSH_PATH is unset)"
	}
	return strings.Join(dirs, ", ")
}

// checkKeyPassphrase tells a passphrase-protected SSH key without its
// passphrase, or with a wrong one, before any connection: ssh would only say
// "Permission denied (publickey)", and go-git tries the empty passphrase and
// reports that. Both engines call it, so they fail alike. A key it cannot
// read otherwise is left to the engine.
func checkKeyPassphrase(key []byte, passphrase secret.Value, source string) error {
	_, err := ssh.ParseRawPrivateKey(key)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		return nil
	}
	pass := passphrase.Reveal()
	if pass == "" {
		return fault.New(fault.Auth, "the SSH key %s is protected by a passphrase and none was given; add SSH_PASSPHRASE to the connection's secret", source)
	}
	if _, err := ssh.ParseRawPrivateKeyWithPassphrase(key, []byte(pass)); errors.Is(err, x509.IncorrectPasswordError) {
		return fault.New(fault.Auth, "the SSH key %s: the passphrase given (SSH_PASSPHRASE) is wrong; fix SSH_PASSPHRASE in the connection's secret", source)
	}
	return nil
}
