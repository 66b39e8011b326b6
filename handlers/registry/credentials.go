package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/secret"
)

// credentials are what a client presents to a registry.
type credentials struct {
	Username      secret.Value // not secret when read from a docker config
	Password      secret.Value
	IdentityToken secret.Value // an OAuth2 refresh token, for the bearer flow
	RegistryToken secret.Value // a bearer token presented as is
	Source        string       // where they were read from, for messages
	Helper        string       // set when a credential helper holds them instead
}

func (c *credentials) empty() bool {
	return c == nil || (c.Password.IsZero() && c.IdentityToken.IsZero() && c.RegistryToken.IsZero())
}

// kind names the credentials for messages and results.
func (c *credentials) kind() string {
	switch {
	case c.empty() && c.Helper != "":
		return "credential helper " + c.Helper
	case c.empty():
		return "none"
	case !c.Password.IsZero():
		return "username and password"
	case !c.IdentityToken.IsZero():
		return "identity token"
	}
	return "registry token"
}

// entry is the docker config "auths" entry for the credentials.
func (c *credentials) entry() json.RawMessage {
	var e authEntry
	if !c.Password.IsZero() {
		e.Auth = base64.StdEncoding.EncodeToString([]byte(c.Username.Name() + ":" + c.Password.Reveal()))
	}
	if !c.IdentityToken.IsZero() {
		e.IdentityToken = c.IdentityToken.Reveal()
	}
	if !c.RegistryToken.IsZero() {
		e.RegistryToken = c.RegistryToken.Reveal()
	}
	b, _ := json.Marshal(e)
	return b
}

// Key names looked up (through the upstream look-up: mounted files in upper,
// lower and no-underscore spellings, then env, then POLYAXON_-prefixed env).
var (
	usernameKeys = []string{"username", "docker_username", "registry_username"}
	passwordKeys = []string{"password", "docker_password", "registry_password"}
	tokenKeys    = []string{"token", "identity_token", "docker_token", "registry_identity_token"}
)

// dockerConfigNames are the files of a secret that hold a whole docker
// config: config.json (what kaniko and the docker CLI read) and
// .dockerconfigjson (the key of a kubernetes.io/dockerconfigjson Secret).
var dockerConfigNames = []string{"config.json", ".dockerconfigjson"}

// secretConfig is a docker config found in the connection's secret.
type secretConfig struct {
	Path   string
	Dir    string // the secret's mountPath
	Config configFile
}

// findSecretConfig returns the docker config in the connection's mounted
// secret, or nil when it has none.
func findSecretConfig(c *connections.Connection) (*secretConfig, error) {
	if c.Secret == nil || c.Secret.MountPath == "" {
		return nil, nil
	}
	for _, name := range dockerConfigNames {
		p := filepath.Join(c.Secret.MountPath, name)
		data, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil && isDir(p):
			continue
		case errors.Is(err, fs.ErrPermission):
			return nil, fault.New(fault.Auth, "%s: cannot read %s (uid %d): %v; fix the secret volume's defaultMode or the pod's securityContext", c, p, os.Getuid(), err)
		case err != nil:
			return nil, fault.FromSystem(fmt.Errorf("%s: reading %s: %w", c, p, err))
		}
		cfg, err := parseConfig(data)
		if err != nil {
			return nil, fault.New(fault.Usage, "%s: the docker config %s in secret %q %v; fix the secret", c, p, c.Secret.Name, err)
		}
		return &secretConfig{Path: p, Dir: c.Secret.MountPath, Config: cfg}, nil
	}
	return nil, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// fromSecretConfig returns the credentials a docker config holds for ep.
func fromSecretConfig(c *connections.Connection, sc *secretConfig, ep endpoint) (*credentials, error) {
	auths, err := sc.Config.section("auths")
	if err != nil {
		return nil, fault.New(fault.Usage, "%s: %s: %v", c, sc.Path, err)
	}
	if keys := keysFor(auths, ep.Canonical); len(keys) > 0 {
		cr, err := credentialsOf(auths[keys[0]], fmt.Sprintf("%s (auths[%q])", sc.Path, keys[0]))
		if err != nil {
			return nil, fault.New(fault.Usage, "%s: %v; fix the secret", c, err)
		}
		return cr, nil
	}
	helpers, _ := sc.Config.section("credHelpers")
	if keys := keysFor(helpers, ep.Canonical); len(keys) > 0 {
		var h string
		json.Unmarshal(helpers[keys[0]], &h)
		return &credentials{Source: sc.Path, Helper: "docker-credential-" + h}, nil
	}
	if raw, ok := sc.Config["credsStore"]; ok {
		var h string
		if json.Unmarshal(raw, &h) == nil && h != "" {
			return &credentials{Source: sc.Path, Helper: "docker-credential-" + h}, nil
		}
	}
	have := sortedKeys(auths)
	if len(have) == 0 {
		have = []string{"none"}
	}
	return nil, fault.New(fault.Usage, "%s: the docker config %s has no auths entry for %s (it has: %s); add one for %q to secret %q, or replace it with username and password keys",
		c, sc.Path, ep.Canonical, strings.Join(have, ", "), ep.ConfigKey, c.Secret.Name)
}

// fromKeys reads username and password, or a token, through the upstream
// credential look-up. It returns empty credentials when none is set.
func fromKeys(c *connections.Connection, keys *connections.Keys) (*credentials, error) {
	user, hasUser, err := keys.Lookup(usernameKeys...)
	if err != nil {
		return nil, err
	}
	pass, hasPass, err := keys.Lookup(passwordKeys...)
	if err != nil {
		return nil, err
	}
	tok, hasTok, err := keys.Lookup(tokenKeys...)
	if err != nil {
		return nil, err
	}
	switch {
	case hasUser && hasPass:
		return &credentials{Username: user, Password: pass, Source: sources(user.Source(), pass.Source())}, nil
	case hasTok:
		return &credentials{IdentityToken: tok, Username: user, Source: tok.Source()}, nil
	case hasUser:
		return nil, fault.New(fault.Usage, "%s: a username was found (%s) but no password; add a password key to %s", c, user.Source(), where(c))
	case hasPass:
		return nil, fault.New(fault.Usage, "%s: a password was found (%s) but no username; add a username key to %s", c, pass.Source(), where(c))
	}
	return &credentials{}, nil
}

// sources joins where two values came from, once when they are the same.
func sources(a, b string) string {
	if a == b {
		return a
	}
	return a + " and " + b
}

// where names the places credentials are read from, for messages.
func where(c *connections.Connection) string {
	if c.Secret != nil && c.Secret.MountPath != "" {
		return fmt.Sprintf("secret %q (mounted at %s)", c.Secret.Name, c.Secret.MountPath)
	}
	if c.Secret != nil {
		return fmt.Sprintf("secret %q (given to the container as environment variables)", c.Secret.Name)
	}
	return "a secret referenced by the connection (secret: {name, mountPath})"
}
