package connections

import (
	"fmt"
)

var connectionFields = []string{"name", "kind", "description", "schema", "secret", "configMap", "env", "annotations", "tags", "isAlias"}

// parseConnection validates one connection given as decoded JSON, appending
// every mistake to errs. It returns nil when the value is not even an object.
func parseConnection(errs *[]FieldError, origin string, v any) *Connection {
	// Name the connection in errors as early as possible.
	conn := ""
	if m, ok := v.(map[string]any); ok {
		if n, ok := m["name"].(string); ok {
			conn = n
		}
	}
	o, ok := newObject(errs, origin, conn, "", v, "")
	if !ok {
		return nil
	}
	c := &Connection{Origin: origin}
	c.Name = o.str("name", true)
	c.Description = o.str("description", false)
	if k := o.str("kind", true); k != "" {
		kind, err := ParseKind(k)
		if err != nil {
			o.fail("kind", "%v", err)
		}
		c.Kind = kind
	}
	c.Secret = parseResource(o, "secret")
	c.ConfigMap = parseResource(o, "configMap")
	c.Annotations = o.strMap("annotations")
	c.Tags = o.strList("tags", false)
	c.IsAlias = o.boolean("isAlias")
	c.Env = parseEnv(o)
	if raw, ok := o.get("schema"); ok && c.Kind != "" {
		c.Schema = parseSchema(o, c.Kind, raw)
	} else if !ok && c.Kind != "" {
		c.Schema = defaultSchema(o, c.Kind)
	}
	o.done(connectionFields...)
	return c
}

var resourceFields = []string{"name", "mountPath", "items", "defaultMode", "hostPath", "isRequested"}

func parseResource(parent *object, field string) *Resource {
	v, ok := parent.get(field)
	if !ok {
		return nil
	}
	o, ok := newObject(parent.errs, parent.origin, parent.conn, field+".", v, field)
	if !ok {
		return nil
	}
	r := &Resource{
		Name:        o.str("name", true),
		MountPath:   o.absPath("mountPath", false),
		Items:       o.strList("items", false),
		DefaultMode: o.mode("defaultMode"),
		HostPath:    o.str("hostPath", false),
		IsRequested: o.boolean("isRequested"),
	}
	o.done(resourceFields...)
	return r
}

func parseEnv(o *object) []map[string]any {
	v, ok := o.get("env")
	if !ok {
		return nil
	}
	l, isList := v.([]any)
	if !isList {
		o.fail("env", "expected a list of Kubernetes EnvVar objects ({name, value} or {name, valueFrom}), got %s", describe(v))
		return nil
	}
	out := make([]map[string]any, 0, len(l))
	for i, e := range l {
		m, isMap := e.(map[string]any)
		if !isMap {
			o.fail(fmt.Sprintf("env[%d]", i), "expected an object {name, value}, got %s", describe(e))
			continue
		}
		if n, _ := m["name"].(string); n == "" {
			o.fail(fmt.Sprintf("env[%d].name", i), "is required (a string)")
		}
		out = append(out, m)
	}
	return out
}

// parseSchema reads schema according to kind.
func parseSchema(parent *object, kind Kind, v any) any {
	o, ok := newObject(parent.errs, parent.origin, parent.conn, "schema.", v, "schema")
	if !ok {
		return nil
	}
	// Upstream's compiler may leave the kind inside the schema: accept it if
	// it agrees.
	if k := o.str("kind", false); k != "" {
		if pk, err := ParseKind(k); err != nil || pk != kind {
			o.fail("kind", "is %q but the connection's kind is %q; remove it or make them agree", k, kind)
		}
	}
	var s any
	var valid []string
	switch {
	case kind.IsBucket():
		s = &BucketSchema{Bucket: o.str("bucket", true)}
		valid = []string{"bucket"}
		checkBucketURL(o, kind, s.(*BucketSchema).Bucket)
	case kind == VolumeClaim:
		s = &MountSchema{VolumeClaim: o.str("volumeClaim", true), MountPath: o.absPath("mountPath", true), ReadOnly: o.boolean("readOnly")}
		valid = []string{"volumeClaim", "mountPath", "readOnly"}
	case kind == HostPath:
		s = &MountSchema{HostPath: o.absPath("hostPath", true), MountPath: o.absPath("mountPath", true), ReadOnly: o.boolean("readOnly")}
		valid = []string{"hostPath", "mountPath", "readOnly"}
	case kind == Registry:
		s = &HostSchema{URL: o.str("url", true), Insecure: o.boolean("insecure")}
		valid = []string{"url", "insecure"}
	case kind == Git:
		s = &GitSchema{URL: o.str("url", false), Revision: o.str("revision", false), Flags: o.strList("flags", true)}
		valid = []string{"url", "revision", "flags"}
	default:
		return o.rest() // free-form: any keys are the user's own
	}
	o.done(valid...)
	return s
}

// defaultSchema is what a connection without a schema gets: nothing for kinds
// that can do without one, an error for those that cannot.
func defaultSchema(o *object, kind Kind) any {
	switch {
	case kind.IsBucket():
		o.fail("schema", "is required for kind %s: give schema.bucket (e.g. %s)", kind, bucketExample[kind])
	case kind == VolumeClaim:
		o.fail("schema", "is required for kind volume_claim: give schema.volumeClaim and schema.mountPath")
	case kind == HostPath:
		o.fail("schema", "is required for kind host_path: give schema.hostPath and schema.mountPath")
	case kind == Registry:
		o.fail("schema", "is required for kind registry: give schema.url (e.g. registry.example.com/org)")
	case kind == Git:
		return &GitSchema{}
	}
	return nil
}

// BucketExample is an example bucket URL for a bucket kind.
func BucketExample(kind Kind) string { return bucketExample[kind] }

var bucketExample = map[Kind]string{
	S3:   "s3://bucket/prefix",
	GCS:  "gs://bucket/prefix",
	WASB: "wasbs://container@account.blob.core.windows.net/prefix",
}

var bucketSchemes = map[Kind][]string{
	S3:   {"s3"},
	GCS:  {"gs", "gcs"},
	WASB: {"wasb", "wasbs", "https", "az", "abfs", "abfss"},
}

// checkBucketURL checks a bucket URL as the store handlers will read it.
func checkBucketURL(o *object, kind Kind, bucket string) {
	if bucket == "" {
		return
	}
	if _, problem := parseLocation(kind, bucket); problem != "" {
		o.fail("bucket", "%s (got %q)", problem, shownURL(bucket))
	}
}
