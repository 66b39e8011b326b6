package custom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
)

// resource is a checked secret or configMap, for the result.
type resource struct {
	Kind      string   `json:"kind"` // "secret" or "configMap"
	Name      string   `json:"name"`
	MountPath string   `json:"mountPath,omitempty"`
	Keys      []string `json:"keys,omitempty"` // key names only, never values
	FromEnv   bool     `json:"fromEnv,omitempty"`
}

func (r resource) describe() string {
	switch {
	case r.MountPath != "":
		return fmt.Sprintf("%s %q mounted at %s with keys %s", r.Kind, r.Name, r.MountPath, keyList(r.Keys))
	case len(r.Keys) > 0:
		return fmt.Sprintf("%s %q keys %s in the environment", r.Kind, r.Name, keyList(r.Keys))
	}
	return fmt.Sprintf("%s %q given as environment variables (envFrom; its keys are not listed in the connection)", r.Kind, r.Name)
}

func keyList(keys []string) string {
	if len(keys) == 0 {
		return "(none)"
	}
	return strings.Join(keys, ", ")
}

// declared is a secret or configMap a connection refers to.
type declared struct {
	kind string // "secret" or "configMap"
	r    *connections.Resource
}

// resources lists the connection's secret and configMap, secret first.
func resources(c *connections.Connection) []declared {
	var out []declared
	if c.Secret != nil {
		out = append(out, declared{"secret", c.Secret})
	}
	if c.ConfigMap != nil {
		out = append(out, declared{"configMap", c.ConfigMap})
	}
	return out
}

// mountedKeys lists the keys of a mounted resource: its items when given,
// else every file in the folder except the kubelet's own (..data, ..<time>).
func mountedKeys(r *connections.Resource) ([]string, error) {
	if len(r.Items) > 0 {
		return r.Items, nil
	}
	entries, err := os.ReadDir(r.MountPath)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		if st, err := os.Stat(filepath.Join(r.MountPath, e.Name())); err == nil && st.Mode().IsRegular() {
			keys = append(keys, e.Name())
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// checkResources verifies that the connection's secret and configMap are
// where it says: mounted folders with every listed key readable, or (without
// a mountPath) listed keys present in the environment, where the pod spec
// puts them.
func checkResources(c *connections.Connection, getenv func(string) (string, bool)) ([]resource, error) {
	var out []resource
	for _, res := range resources(c) {
		kind, r := res.kind, res.r
		found := resource{Kind: kind, Name: r.Name, MountPath: r.MountPath}
		if r.MountPath == "" {
			for _, item := range r.Items {
				if _, ok := getenv(item); !ok {
					return nil, fault.New(fault.NotFound, "%s: %s %q key %q is not in the environment; without %s.mountPath the pod must set it as an environment variable named %s (upstream does so from %s.items)",
						c, kind, r.Name, item, kind, item, kind)
				}
			}
			found.Keys, found.FromEnv = r.Items, true
			out = append(out, found)
			continue
		}
		st, err := os.Stat(r.MountPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fault.New(fault.NotFound, "%s: %s %q is not mounted at %s; add it to the pod's volumes and volumeMounts, or fix %s.mountPath", c, kind, r.Name, r.MountPath, kind)
		case err != nil:
			return nil, fault.FromSystem(fmt.Errorf("%s: %s %q at %s: %w", c, kind, r.Name, r.MountPath, err))
		case !st.IsDir():
			return nil, fault.New(fault.Usage, "%s: %s.mountPath %s is a file, not the folder a %s is mounted as", c, kind, r.MountPath, kind)
		}
		keys, err := mountedKeys(r)
		if err != nil {
			return nil, fault.New(fault.Auth, "%s: %s %q mounted at %s is not readable by uid %d: %v; fix its defaultMode or the pod's securityContext", c, kind, r.Name, r.MountPath, os.Getuid(), err)
		}
		for _, k := range keys {
			p := filepath.Join(r.MountPath, k)
			f, err := os.Open(p)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil, fault.New(fault.NotFound, "%s: %s %q mounted at %s has no key %q (listed in %s.items); add the key to the %s, or remove it from items", c, kind, r.Name, r.MountPath, k, kind, kind)
			case errors.Is(err, fs.ErrPermission):
				return nil, fault.New(fault.Auth, "%s: %s key %s is not readable by uid %d; fix the volume's defaultMode or the pod's securityContext", c, kind, p, os.Getuid())
			case err != nil:
				return nil, fault.FromSystem(fmt.Errorf("%s: %s key %s: %w", c, kind, p, err))
			}
			st, err := f.Stat()
			f.Close()
			if err == nil && st.IsDir() {
				return nil, fault.New(fault.Usage, "%s: %s key %s is a folder, not a key's file", c, kind, p)
			}
		}
		found.Keys = keys
		out = append(out, found)
	}
	return out, nil
}

// address is where a connection's schema says its service listens.
type address struct {
	Addr string // host:port, empty when the schema names none
	From string // the schema fields it came from
	Note string // why there is no address to check, when that is worth saying
}

// defaultPorts are the well-known ports of kinds whose schema may give a
// host without a port.
var defaultPorts = map[connections.Kind]int{
	connections.MySQL: 3306, connections.Postgres: 5432, connections.Oracle: 1521,
	connections.Vertica: 5433, connections.MSSQL: 1433, connections.Redis: 6379,
	connections.Presto: 8080, connections.Mongo: 27017, connections.Cassandra: 9042,
	connections.FTP: 21, connections.SSH: 22, connections.HDFS: 8020,
	connections.HiveMetastore: 9083, connections.HiveServer2: 10000,
	connections.Samba: 445, connections.HTTP: 80,
}

// schemePorts are the default ports of URL schemes.
var schemePorts = map[string]int{
	"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "ftps": 990,
	"ssh": 22, "sftp": 22, "postgres": 5432, "postgresql": 5432, "mysql": 3306,
	"mariadb": 3306, "redis": 6379, "rediss": 6379, "mongodb": 27017,
	"sqlserver": 1433, "oracle": 1521, "amqp": 5672, "amqps": 5671,
	"smb": 445, "hdfs": 8020, "presto": 8080, "trino": 8080, "cassandra": 9042,
}

var (
	hostFields = []string{"host", "hostname", "server", "address", "addr"}
	portFields = []string{"port"}
	urlFields  = []string{"url", "uri", "endpoint", "dsn", "connectionString"}
)

// schemaAddress finds the host and port a free-form schema names: host (or
// hostname, server, address) with port, a host:port, or a URL (url, uri,
// endpoint). A host without a port gets the kind's well-known port.
func schemaAddress(c *connections.Connection) (address, error) {
	fields := c.Fields()
	if len(fields) == 0 {
		return address{}, nil
	}
	norm := map[string]string{}
	for k := range fields {
		norm[normKey(k)] = k
	}
	field := func(names []string) (string, any) {
		for _, n := range names {
			if k, ok := norm[normKey(n)]; ok && fields[k] != nil {
				return k, fields[k]
			}
		}
		return "", nil
	}
	hostKey, hostVal := field(hostFields)
	portKey, portVal := field(portFields)
	urlKey, urlVal := field(urlFields)
	host, _ := hostVal.(string)
	host = strings.TrimSpace(host)
	port := 0
	if portVal != nil {
		p, err := portNumber(portVal)
		if err != nil {
			return address{}, fault.New(fault.Usage, "%s: schema.%s: %v", c, portKey, err)
		}
		port = p
	}
	switch {
	case host != "" && strings.Contains(host, "://"):
		return urlAddress(c, "schema."+hostKey, host, port)
	case host != "":
		from := "schema." + hostKey
		if port != 0 {
			return address{Addr: net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port)), From: from + ", schema." + portKey}, nil
		}
		if h, p, err := net.SplitHostPort(host); err == nil {
			if _, err := portNumber(p); err != nil {
				return address{}, fault.New(fault.Usage, "%s: schema.%s %q: %v", c, hostKey, host, err)
			}
			return address{Addr: net.JoinHostPort(h, p), From: from}, nil
		}
		if dp, ok := defaultPorts[c.Kind]; ok {
			return address{Addr: net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(dp)), From: from + fmt.Sprintf(" (default port %d of %s)", dp, c.Kind)}, nil
		}
		return address{Note: fmt.Sprintf("schema.%s gives no port and kind %s has no well-known one; add schema.port to have it checked", hostKey, c.Kind)}, nil
	case urlVal != nil:
		s, ok := urlVal.(string)
		if !ok || strings.TrimSpace(s) == "" {
			return address{}, nil
		}
		return urlAddress(c, "schema."+urlKey, s, port)
	}
	return address{}, nil
}

// urlAddress reads host:port from a URL (jdbc:… URLs too).
func urlAddress(c *connections.Connection, from, raw string, port int) (address, error) {
	s := strings.TrimPrefix(strings.TrimSpace(raw), "jdbc:")
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return address{Note: fmt.Sprintf("%s is not a URL with a host; nothing to connect to", from)}, nil
	}
	p := u.Port()
	if p == "" && port != 0 {
		p = strconv.Itoa(port)
	}
	if p == "" {
		dp, ok := schemePorts[strings.ToLower(u.Scheme)]
		if !ok {
			return address{Note: fmt.Sprintf("%s has no port and scheme %q has no well-known one; add the port to have it checked", from, u.Scheme)}, nil
		}
		p = strconv.Itoa(dp)
	} else if _, err := portNumber(p); err != nil {
		return address{}, fault.New(fault.Usage, "%s: %s: %v", c, from, err)
	}
	return address{Addr: net.JoinHostPort(u.Hostname(), p), From: from}, nil
}

func normKey(k string) string { return strings.ToLower(strings.ReplaceAll(k, "_", "")) }

func portNumber(v any) (int, error) {
	var n int64
	var err error
	switch x := v.(type) {
	case json.Number:
		n, err = x.Int64()
	case float64:
		n = int64(x)
		if float64(n) != x {
			err = errors.New("not a whole number")
		}
	case int:
		n = int64(x)
	case int64:
		n = x
	case string:
		n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 32)
	default:
		err = fmt.Errorf("expected a number, got %T", v)
	}
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%v is not a port number (1-65535)", v)
	}
	return int(n), nil
}

// dial checks that addr accepts a TCP connection, trying three times.
func dial(ctx context.Context, c *connections.Connection, a address) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	const attempts = 3
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(i) * 200 * time.Millisecond):
			}
		}
		var conn net.Conn
		conn, err = d.DialContext(ctx, "tcp", a.Addr)
		if err == nil {
			conn.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var dns *net.DNSError
		if errors.As(err, &dns) && dns.IsNotFound {
			return fault.New(fault.NotFound, "%s: the host of %s (%s) is not known to DNS: %v; fix the schema", c, a.Addr, a.From, dns)
		}
	}
	return fault.New(fault.Transient, "%s: %s (%s) does not accept TCP connections after %d attempts: %v; is the service up and reachable from this pod?", c, a.Addr, a.From, attempts, unwrapOp(err))
}

// unwrapOp drops "dial tcp ADDR:" which repeats the address.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
