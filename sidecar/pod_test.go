package sidecar

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"github.com/initializer/initializer/fault"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func podJSON(t *testing.T, phase corev1.PodPhase, main corev1.ContainerState) []byte {
	t.Helper()
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "job-1", Namespace: "ns"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "main", State: main},
		}},
	}
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPodWatcher(t *testing.T) {
	var body atomic.Value
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/ns/pods/job-1" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "forbidden: "+r.URL.Path, http.StatusForbidden)
			return
		}
		w.WriteHeader(int(status.Load()))
		w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "https://"), ":")
	env := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "POD_NAME": "job-1", "POD_NAMESPACE": "ns"}
	w, err := NewPodWatcher(PodWatcherConfig{TokenFile: filepath.Join(dir, "token"), CAFile: filepath.Join(dir, "ca.crt"), Container: "main",
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		phase corev1.PodPhase
		state corev1.ContainerState
		ended bool
		why   string
	}{
		{"waiting", corev1.PodPending, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}, false, ""},
		{"running", corev1.PodRunning, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, false, ""},
		{"terminated", corev1.PodRunning, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}, true, "container main terminated (exit code 3, Error)"},
		{"succeeded", corev1.PodSucceeded, corev1.ContainerState{}, true, "pod ns/job-1 is Succeeded"},
	} {
		body.Store(podJSON(t, c.phase, c.state))
		ended, why, err := w.Ended(ctx)
		if err != nil || ended != c.ended || why != c.why {
			t.Errorf("%s: %v %q %v", c.name, ended, why, err)
		}
	}
	// A wrong container name is a usage error: the end can never be seen.
	w.Container = "mian"
	body.Store(podJSON(t, corev1.PodRunning, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}))
	if ended, _, err := w.Ended(ctx); ended || fault.ClassOf(err) != fault.Usage || !strings.Contains(err.Error(), `no container "mian" (it has main)`) {
		t.Errorf("wrong name: %v %v", ended, err)
	}
	// RBAC refusals name the fix.
	status.Store(403)
	body.Store([]byte(`{"kind":"Status","message":"pods \"job-1\" is forbidden"}`))
	if _, _, err := w.Ended(ctx); fault.ClassOf(err) != fault.Auth || !strings.Contains(err.Error(), "needs get on pods") {
		t.Errorf("403: %v", err)
	}
	// A token refused: the token, not the role.
	status.Store(401)
	body.Store([]byte(`{"kind":"Status","message":"Unauthorized"}`))
	if _, _, err := w.Ended(ctx); fault.ClassOf(err) != fault.Auth || !strings.Contains(err.Error(), "the API does not accept the token") || strings.Contains(err.Error(), "needs get on pods") {
		t.Errorf("401: %v", err)
	}
	// Not a pod.
	status.Store(200)
	body.Store([]byte(`{"kind":"Status"}`))
	if _, _, err := w.Ended(ctx); err == nil {
		t.Error("a Status was taken for a Pod")
	}
}

// TestPodWatcherRestarts: a container the kubelet starts again has not
// ended (restartPolicy OnFailure after a failure, Always, a restart rule, a
// native sidecar); one it does not start again has, and a restart is said
// once per exit.
func TestPodWatcherRestarts(t *testing.T) {
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body.Load().([]byte)) }))
	defer srv.Close()
	none := func(string) (string, bool) { return "", false }
	always := corev1.ContainerRestartPolicyAlways
	never := corev1.ContainerRestartPolicyNever
	onFailure := corev1.ContainerRestartPolicyOnFailure
	rule := func(op corev1.ContainerRestartRuleOnExitCodesOperator, codes ...int32) []corev1.ContainerRestartRule {
		return []corev1.ContainerRestartRule{{Action: corev1.ContainerRestartRuleActionRestart,
			ExitCodes: &corev1.ContainerRestartRuleOnExitCodes{Operator: op, Values: codes}}}
	}
	for _, c := range []struct {
		name     string
		policy   corev1.RestartPolicy
		main     corev1.Container
		init     bool // main is an init container
		code     int32
		ended    bool
		restarts string // in the reason when it has not ended
	}{
		{"Never, failed", corev1.RestartPolicyNever, corev1.Container{}, false, 1, true, ""},
		{"Never, succeeded", corev1.RestartPolicyNever, corev1.Container{}, false, 0, true, ""},
		{"OnFailure, succeeded", corev1.RestartPolicyOnFailure, corev1.Container{}, false, 0, true, ""},
		{"OnFailure, failed", corev1.RestartPolicyOnFailure, corev1.Container{}, false, 137, false, "restartPolicy OnFailure, exit code 137"},
		{"Always, succeeded", corev1.RestartPolicyAlways, corev1.Container{}, false, 0, false, "restartPolicy Always"},
		{"no policy stated", "", corev1.Container{}, false, 1, true, ""},
		{"container's Never over the pod's OnFailure", corev1.RestartPolicyOnFailure, corev1.Container{RestartPolicy: &never}, false, 1, true, ""},
		{"container's OnFailure over the pod's Never", corev1.RestartPolicyNever, corev1.Container{RestartPolicy: &onFailure}, false, 2, false, "restartPolicy OnFailure"},
		{"rule In, matching", corev1.RestartPolicyNever, corev1.Container{RestartPolicy: &never, RestartPolicyRules: rule(corev1.ContainerRestartRuleOnExitCodesOpIn, 42)}, false, 42, false, "restart rule"},
		{"rule In, not matching", corev1.RestartPolicyNever, corev1.Container{RestartPolicy: &never, RestartPolicyRules: rule(corev1.ContainerRestartRuleOnExitCodesOpIn, 42)}, false, 1, true, ""},
		{"rule NotIn, matching", corev1.RestartPolicyNever, corev1.Container{RestartPolicy: &never, RestartPolicyRules: rule(corev1.ContainerRestartRuleOnExitCodesOpNotIn, 0)}, false, 1, false, "restart rule"},
		{"init container, pod Always, succeeded", corev1.RestartPolicyAlways, corev1.Container{}, true, 0, true, ""},
		{"init container, pod Always, failed", corev1.RestartPolicyAlways, corev1.Container{}, true, 1, false, "restartPolicy Always, exit code 1"},
		{"init container, pod Never, failed", corev1.RestartPolicyNever, corev1.Container{}, true, 1, true, ""},
		{"native sidecar", corev1.RestartPolicyNever, corev1.Container{RestartPolicy: &always}, true, 0, false, "sidecar"},
	} {
		c.main.Name = "main"
		pod := corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "job-1", Namespace: "ns"},
			Spec:       corev1.PodSpec{RestartPolicy: c.policy},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}
		st := corev1.ContainerStatus{Name: "main", RestartCount: 2,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: c.code, Reason: "Error",
				FinishedAt: metav1.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}}
		if c.init {
			pod.Spec.InitContainers = []corev1.Container{c.main}
			pod.Status.InitContainerStatuses = []corev1.ContainerStatus{st}
		} else {
			pod.Spec.Containers = []corev1.Container{c.main}
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{st}
		}
		b, _ := json.Marshal(pod)
		body.Store(b)
		w, err := NewPodWatcher(PodWatcherConfig{APIURL: srv.URL, Namespace: "ns", Pod: "job-1", Container: "main", Getenv: none})
		if err != nil {
			t.Fatal(err)
		}
		ended, why, err := w.Ended(context.Background())
		if err != nil || ended != c.ended {
			t.Errorf("%s: ended %v (%q), %v", c.name, ended, why, err)
			continue
		}
		if ended {
			continue
		}
		if !strings.Contains(why, "will be restarted") || !strings.Contains(why, c.restarts) {
			t.Errorf("%s: reason %q", c.name, why)
		}
		// The same exit is not reported again; the next one is.
		if ended, why, err := w.Ended(context.Background()); ended || why != "" || err != nil {
			t.Errorf("%s, again: %v %q %v", c.name, ended, why, err)
		}
		st.RestartCount++
		pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses = nil, nil
		if c.init {
			pod.Status.InitContainerStatuses = []corev1.ContainerStatus{st}
		} else {
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{st}
		}
		b, _ = json.Marshal(pod)
		body.Store(b)
		if ended, why, err := w.Ended(context.Background()); ended || why == "" || err != nil {
			t.Errorf("%s, next exit: %v %q %v", c.name, ended, why, err)
		}
	}
}

func TestPodWatcherConfig(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	if _, err := NewPodWatcher(PodWatcherConfig{Container: "main", Getenv: none}); err == nil || !strings.Contains(err.Error(), "--kube-api") {
		t.Errorf("outside a cluster: %v", err)
	}
	// In a pod whose service account is not mounted: said so.
	inPod := func(k string) (string, bool) {
		return map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "POD_NAME": "p", "POD_NAMESPACE": "n"}[k], true
	}
	defer func(d string) { ServiceAccountDir = d }(ServiceAccountDir)
	ServiceAccountDir = t.TempDir()
	if _, err := NewPodWatcher(PodWatcherConfig{Container: "main", Getenv: inPod}); err == nil || !strings.Contains(err.Error(), "no service account is mounted") {
		t.Errorf("no service account: %v", err)
	}
	os.WriteFile(filepath.Join(ServiceAccountDir, "token"), []byte("t"), 0o600)
	if _, err := NewPodWatcher(PodWatcherConfig{Container: "main", Getenv: inPod}); err == nil || !strings.Contains(err.Error(), "ca.crt is missing") {
		t.Errorf("no CA: %v", err)
	}
	if _, err := NewPodWatcher(PodWatcherConfig{APIURL: "http://127.0.0.1:1", TokenFile: filepath.Join(t.TempDir(), "none"), Namespace: "n", Pod: "p", Container: "main", Getenv: none}); err == nil || !strings.Contains(err.Error(), "--kube-token-file") {
		t.Errorf("a --kube-token-file that is not there: %v", err)
	}
	if _, err := NewPodWatcher(PodWatcherConfig{APIURL: "http://127.0.0.1:1", TokenFile: t.TempDir(), Namespace: "n", Pod: "p", Container: "main", Getenv: none}); err == nil || !strings.Contains(err.Error(), "--kube-token-file") {
		t.Errorf("a --kube-token-file that is a folder: %v", err)
	}
	if _, err := NewPodWatcher(PodWatcherConfig{APIURL: "ftp://x", Container: "main", Getenv: none}); err == nil {
		t.Error("an ftp URL was accepted")
	}
	w, err := NewPodWatcher(PodWatcherConfig{APIURL: "http://127.0.0.1:1/", Namespace: "n", Pod: "p", Container: "main", Getenv: none})
	if err != nil || w.APIURL != "http://127.0.0.1:1" {
		t.Fatalf("%v %+v", err, w)
	}
	if _, _, err := w.Ended(context.Background()); err == nil {
		t.Error("no error from an API that is not there")
	}
}

// A refusal of requests that carried no token says so, not that the token
// or the role is wrong.
func TestPodWatcherNoTokenSent(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
	}))
	defer api.Close()
	defer func(d string) { ServiceAccountDir = d }(ServiceAccountDir)
	ServiceAccountDir = t.TempDir() // no token there
	none := func(string) (string, bool) { return "", false }
	w, err := NewPodWatcher(PodWatcherConfig{APIURL: api.URL, Namespace: "n", Pod: "p", Container: "main", Getenv: none})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Ended(context.Background()); fault.ClassOf(err) != fault.Auth || !strings.Contains(err.Error(), "no token was sent") {
		t.Errorf("%v", err)
	}
	// A 403 to an anonymous request says so too (not through a proxy,
	// whose own identity is named instead).
	api.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"kind":"Status","message":"pods \"p\" is forbidden: User \"system:anonymous\" cannot get resource \"pods\""}`, http.StatusForbidden)
	})
	if _, _, err := w.Ended(context.Background()); fault.ClassOf(err) != fault.Auth || !strings.Contains(err.Error(), "no token was sent") {
		t.Errorf("403 anonymous: %v", err)
	}
}
