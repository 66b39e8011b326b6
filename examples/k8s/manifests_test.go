// Package k8s holds Kubernetes examples of the initializer and its sidecar;
// this test decodes them strictly into the k8s.io/api types and checks that
// their names, volumes, mount paths and catalog entries agree.
package k8s

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/initializer/initializer/connections"
)

type manifests struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	accounts   map[string]*corev1.ServiceAccount
	roles      map[string]*rbacv1.Role
	bindings   []*rbacv1.RoleBinding
	pods       map[string]*corev1.Pod // by file
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// load decodes every document of every .yaml file strictly: an unknown or
// misspelt field fails.
func load(t *testing.T) manifests {
	t.Helper()
	m := manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		accounts: map[string]*corev1.ServiceAccount{}, roles: map[string]*rbacv1.Role{}, pods: map[string]*corev1.Pod{}}
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 5 {
		t.Fatalf("only %d manifests: %v", len(files), files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s doc %d: %v", f, i, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "v1 Secret":
				obj = &corev1.Secret{}
			case "v1 ServiceAccount":
				obj = &corev1.ServiceAccount{}
			case "rbac.authorization.k8s.io/v1 Role":
				obj = &rbacv1.Role{}
			case "rbac.authorization.k8s.io/v1 RoleBinding":
				obj = &rbacv1.RoleBinding{}
			case "v1 Pod":
				obj = &corev1.Pod{}
			default:
				t.Fatalf("%s doc %d: unexpected %s %s", f, i, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s doc %d (%s): %v", f, i, tm.Kind, err)
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *corev1.ServiceAccount:
				m.accounts[o.Name] = o
			case *rbacv1.Role:
				m.roles[o.Name] = o
			case *rbacv1.RoleBinding:
				m.bindings = append(m.bindings, o)
			case *corev1.Pod:
				m.pods[f] = o
			}
			if ns := obj.(metav1.Object).GetNamespace(); ns != "ml" {
				t.Errorf("%s doc %d: namespace %q, want ml like the others", f, i, ns)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// flag returns the value of --name (or -short) in args, and whether it is there.
func flag(args []string, name, short string) (string, bool) {
	for i, a := range args {
		for _, n := range []string{"--" + name, short} {
			if n == "" {
				continue
			}
			if a == n && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, n+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// mountOf returns the volume mounted at dir (or the deepest one above it) in c.
func mountOf(c corev1.Container, dir string) (corev1.VolumeMount, bool) {
	var best corev1.VolumeMount
	found := false
	for _, vm := range c.VolumeMounts {
		if dir == vm.MountPath || strings.HasPrefix(dir, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			if !found || len(vm.MountPath) > len(best.MountPath) {
				best, found = vm, true
			}
		}
	}
	return best, found
}

func TestManifests(t *testing.T) {
	m := load(t)
	if len(m.pods) != 2 {
		t.Fatalf("want the two example pods, got %d", len(m.pods))
	}
	cm := m.configMaps["initializer-catalog"]
	if cm == nil {
		t.Fatal("no initializer-catalog ConfigMap")
	}
	cat, err := connections.Parse([]byte(cm.Data["catalog.yaml"]), "configmap initializer-catalog")
	if err != nil {
		t.Fatalf("the catalog does not validate: %v", err)
	}
	// The secret holds what the s3 connections read.
	for _, name := range cat.Names() {
		c, _ := cat.Get(name)
		if c.Secret == nil {
			continue
		}
		s := m.secrets[c.Secret.Name]
		if s == nil {
			t.Errorf("connection %s: secret %s is not defined", name, c.Secret.Name)
			continue
		}
		if c.Kind == connections.S3 {
			for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
				if _, ok := s.StringData[k]; !ok {
					t.Errorf("secret %s lacks %s, which connection %s reads", s.Name, k, name)
				}
			}
		}
	}
	if cat.ArtifactsStore() == nil {
		t.Error("the catalog has no artifactsStore for the sidecar")
	}

	for file, pod := range m.pods {
		t.Run(file, func(t *testing.T) { checkPod(t, m, cat, pod) })
	}
	checkRBAC(t, m)
}

func checkPod(t *testing.T, m manifests, cat *connections.Catalog, pod *corev1.Pod) {
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		if _, dup := volumes[v.Name]; dup {
			t.Errorf("volume %s declared twice", v.Name)
		}
		volumes[v.Name] = v
		if v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil {
			t.Errorf("volume %s: ConfigMap %s is not defined", v.Name, v.ConfigMap.Name)
		}
		if v.Secret != nil && m.secrets[v.Secret.SecretName] == nil {
			t.Errorf("volume %s: Secret %s is not defined", v.Name, v.Secret.SecretName)
		}
	}
	all := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
	used := map[string]bool{}
	names := map[string]bool{}
	var main *corev1.Container
	for i, c := range all {
		if names[c.Name] {
			t.Errorf("container name %s used twice", c.Name)
		}
		names[c.Name] = true
		for _, vm := range c.VolumeMounts {
			if _, ok := volumes[vm.Name]; !ok {
				t.Errorf("%s mounts volume %s, which the pod does not declare", c.Name, vm.Name)
			}
			used[vm.Name] = true
		}
		if c.Name == "main" {
			main = &all[i]
		}
	}
	for name := range volumes {
		if !used[name] {
			t.Errorf("volume %s is mounted by no container", name)
		}
	}
	if main == nil {
		t.Fatal("no main container")
	}

	sidecars := 0
	for i, c := range all {
		if !strings.HasPrefix(c.Image, "initializer:") {
			continue
		}
		native := i < len(pod.Spec.InitContainers) && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		args := c.Args
		isSidecar := len(args) > 0 && args[0] == "sidecar"
		// Every initializer container reads the catalog at its default place.
		vm, ok := mountOf(c, connections.DefaultPath)
		if !ok || vm.MountPath != connections.DefaultPath || volumes[vm.Name].ConfigMap == nil || volumes[vm.Name].ConfigMap.Name != "initializer-catalog" {
			t.Errorf("%s: the catalog ConfigMap is not mounted at %s", c.Name, connections.DefaultPath)
		}
		name, ok := flag(args, "connection", "-c")
		if !ok {
			t.Errorf("%s: no --connection", c.Name)
			continue
		}
		conn, err := cat.Get(name)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		// The connection's secret is mounted where the catalog says.
		if conn.Secret != nil && conn.Secret.MountPath != "" {
			vm, ok := mountOf(c, conn.Secret.MountPath)
			if !ok || vm.MountPath != conn.Secret.MountPath || volumes[vm.Name].Secret == nil || volumes[vm.Name].Secret.SecretName != conn.Secret.Name {
				t.Errorf("%s: connection %s reads secret %s at %s, which is not mounted there", c.Name, name, conn.Secret.Name, conn.Secret.MountPath)
			}
		}
		// --path lies on a volume shared with the main container.
		p, ok := flag(args, "path", "-p")
		if !ok {
			t.Errorf("%s: no --path", c.Name)
			continue
		}
		vm, ok = mountOf(c, p)
		if !ok || vm.ReadOnly {
			t.Errorf("%s: --path %s is not on a writable volume", c.Name, p)
			continue
		}
		mvm, ok := mountOf(*main, p)
		if !ok || mvm.Name != vm.Name {
			t.Errorf("%s: --path %s is on volume %s, which main does not see at that path", c.Name, p, vm.Name)
		}
		if !isSidecar {
			if conn.Kind == connections.S3 && conn == cat.ArtifactsStore() {
				t.Errorf("%s: downloads from the outputs store", c.Name)
			}
			continue
		}
		sidecars++
		if !conn.Kind.IsArtifactStore() {
			t.Errorf("%s: the sidecar's connection %s (%s) cannot receive uploads", c.Name, name, conn.Kind)
		}
		// The flush fits in the pod's grace period.
		grace := 25 * time.Second
		if g, ok := flag(args, "grace", ""); ok {
			if grace, err = time.ParseDuration(g); err != nil {
				t.Errorf("%s: --grace %q: %v", c.Name, g, err)
			}
		}
		if tgp := pod.Spec.TerminationGracePeriodSeconds; tgp == nil || time.Duration(*tgp)*time.Second <= grace {
			t.Errorf("%s: --grace %v does not fit in terminationGracePeriodSeconds", c.Name, grace)
		}
		// The prefix comes from the run instance, as upstream lays runs out.
		var instance string
		for _, e := range c.Env {
			if e.Name == "POLYAXON_RUN_INSTANCE" {
				instance = e.Value
			}
		}
		if _, explicit := flag(args, "prefix", ""); !explicit && !strings.HasSuffix(p, "/"+instance[strings.LastIndex(instance, ".")+1:]) {
			t.Errorf("%s: --path %s is not the run's folder (%s)", c.Name, p, instance)
		}
		watched, watching := flag(args, "watch-container", "")
		switch {
		case native && watching:
			t.Errorf("%s: a native sidecar ends on SIGTERM; --watch-container would make it exit early and be restarted", c.Name)
		case !native && !watching:
			t.Errorf("%s: a classic sidecar needs --watch-container, or the pod never completes", c.Name)
		case watching:
			if !names[watched] || watched == c.Name {
				t.Errorf("%s: --watch-container %s is not another container of the pod", c.Name, watched)
			}
			if !canGetPods(m, pod.Spec.ServiceAccountName) {
				t.Errorf("%s: service account %q cannot get pods (rbac.yaml)", c.Name, pod.Spec.ServiceAccountName)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					env[e.Name] = e.ValueFrom.FieldRef.FieldPath
				}
			}
			if env["POD_NAME"] != "metadata.name" || env["POD_NAMESPACE"] != "metadata.namespace" {
				t.Errorf("%s: POD_NAME/POD_NAMESPACE do not come from the downward API: %v", c.Name, env)
			}
		}
	}
	if sidecars != 1 {
		t.Errorf("%d sidecars, want 1", sidecars)
	}
}

func canGetPods(m manifests, sa string) bool {
	if sa == "" || m.accounts[sa] == nil {
		return false
	}
	for _, b := range m.bindings {
		bound := false
		for _, s := range b.Subjects {
			bound = bound || (s.Kind == "ServiceAccount" && s.Name == sa)
		}
		role := m.roles[b.RoleRef.Name]
		if !bound || b.RoleRef.Kind != "Role" || role == nil {
			continue
		}
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "pods") && slices.Contains(r.Verbs, "get") {
				return true
			}
		}
	}
	return false
}

func checkRBAC(t *testing.T, m manifests) {
	for _, b := range m.bindings {
		if m.roles[b.RoleRef.Name] == nil {
			t.Errorf("RoleBinding %s: Role %s is not defined", b.Name, b.RoleRef.Name)
		}
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && m.accounts[s.Name] == nil {
				t.Errorf("RoleBinding %s: ServiceAccount %s is not defined", b.Name, s.Name)
			}
		}
	}
}

// The examples' README links every manifest.
func TestReadmeLinksManifests(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.yaml")
	for _, f := range files {
		if !bytes.Contains(readme, []byte("]("+f+")")) {
			t.Errorf("examples/k8s/README.md does not link %s", f)
		}
	}
}
