package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/initializer/initializer/fault"
)

// ServiceAccountDir is the in-cluster default: where Kubernetes mounts a
// pod's service account (a variable for the tests).
var ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// noServiceAccount is the error for a default file of the service account
// that is not there: the account is not mounted, most likely.
func noServiceAccount(file string) error {
	return fmt.Errorf("--watch-container: no service account is mounted (%s is missing; automountServiceAccountToken: false on the pod or its service account?): mount it, with the role of rbac.yaml (get pods), or give --kube-token-file and --kube-ca-file", file)
}

// PodWatcher reads the sidecar's own pod from the Kubernetes API with the
// pod's service account and says when the main container has ended. The
// service account needs "get" on "pods" in the pod's namespace.
type PodWatcher struct {
	APIURL    string // e.g. https://10.0.0.1:443
	TokenFile string // read again on every request: bound tokens rotate
	Namespace string
	Pod       string
	Container string // the main container's name

	client     *http.Client
	restarting string // the exit last reported as one the kubelet restarts
}

// PodWatcherConfig is what the command line gives; empty fields take the
// in-cluster defaults.
type PodWatcherConfig struct {
	APIURL    string // default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
	TokenFile string // default ServiceAccountDir/token
	CAFile    string // default ServiceAccountDir/ca.crt (when the API is https)
	Namespace string // default $POD_NAMESPACE, $POLYAXON_K8S_NAMESPACE, then ServiceAccountDir/namespace
	Pod       string // default $POD_NAME, $POLYAXON_K8S_POD_ID, then the host name
	Container string
	Getenv    func(string) (string, bool)
}

// NewPodWatcher resolves the configuration.
func NewPodWatcher(c PodWatcherConfig) (*PodWatcher, error) {
	env := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := c.Getenv(k); ok && v != "" {
				return v
			}
		}
		return ""
	}
	w := &PodWatcher{APIURL: c.APIURL, TokenFile: c.TokenFile, Namespace: c.Namespace, Pod: c.Pod, Container: c.Container}
	if w.APIURL == "" {
		host, port := env("KUBERNETES_SERVICE_HOST"), env("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("--watch-container: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT are unset); give --kube-api")
		}
		w.APIURL = "https://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(w.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--kube-api %q: expected an http(s) URL", w.APIURL)
	}
	w.APIURL = strings.TrimRight(w.APIURL, "/")
	if w.TokenFile != "" {
		if _, err := os.ReadFile(w.TokenFile); err != nil {
			return nil, fmt.Errorf("--kube-token-file %s: %w; give the file of a token that may get pods (see rbac.yaml)", w.TokenFile, err)
		}
	} else {
		w.TokenFile = ServiceAccountDir + "/token"
		if _, err := os.Stat(w.TokenFile); errors.Is(err, os.ErrNotExist) && c.APIURL == "" {
			// In the cluster, requests would go anonymous without it, and
			// their refusal would blame the role.
			return nil, noServiceAccount(w.TokenFile)
		}
	}
	if w.Namespace == "" {
		w.Namespace = env("POD_NAMESPACE", "POLYAXON_K8S_NAMESPACE")
	}
	if w.Namespace == "" {
		b, err := os.ReadFile(ServiceAccountDir + "/namespace")
		if err != nil {
			return nil, fmt.Errorf("--watch-container: the pod's namespace is unknown: %w; give --namespace or set POD_NAMESPACE", err)
		}
		w.Namespace = strings.TrimSpace(string(b))
	}
	if w.Pod == "" {
		w.Pod = env("POD_NAME", "POLYAXON_K8S_POD_ID")
	}
	if w.Pod == "" {
		if w.Pod, err = os.Hostname(); err != nil || w.Pod == "" {
			return nil, errors.New("--watch-container: the pod's name is unknown; give --pod-name or set POD_NAME")
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the API server is reached directly, as in-cluster clients do
	if u.Scheme == "https" {
		ca := c.CAFile
		if ca == "" {
			ca = ServiceAccountDir + "/ca.crt"
		}
		pem, err := os.ReadFile(ca)
		if errors.Is(err, os.ErrNotExist) && c.CAFile == "" {
			return nil, noServiceAccount(ca)
		}
		if err != nil {
			return nil, fmt.Errorf("--watch-container: the API server's CA: %w; give --kube-ca-file", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kube-ca-file %s holds no PEM certificate", ca)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	w.client = &http.Client{Transport: tr, Timeout: 15 * time.Second}
	return w, nil
}

// Ended reads the pod and reports whether the main container has ended: it
// is terminated and the kubelet will not start it again (its restart
// policy), or the pod's phase is Succeeded or Failed. It reports the reason
// in words. A container that exited and will be restarted (restartPolicy
// OnFailure after a failure, Always) has not ended: the sidecar keeps
// uploading what the next attempt writes; the reason then says so, once per
// exit.
func (w *PodWatcher) Ended(ctx context.Context) (bool, string, error) {
	pod, err := w.get(ctx)
	if err != nil {
		return false, "", err
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return true, fmt.Sprintf("pod %s/%s is %s", w.Namespace, w.Pod, pod.Status.Phase), nil
	}
	known := false
	for _, cs := range append(pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses...) {
		if cs.Name != w.Container {
			continue
		}
		known = true
		t := cs.State.Terminated
		if t == nil {
			continue
		}
		exited := fmt.Sprintf("container %s terminated (exit code %d, %s)", w.Container, t.ExitCode, t.Reason)
		if policy, again := restarts(pod, w.Container, t.ExitCode); again {
			// Say it once per exit: the kubelet soon shows it waiting or
			// running again.
			if at := t.FinishedAt.String() + "/" + fmt.Sprint(cs.RestartCount); at != w.restarting {
				w.restarting = at
				return false, exited + " and will be restarted (" + policy + "): still watching", nil
			}
			return false, "", nil
		}
		return true, exited, nil
	}
	if !known && inSpec(pod, w.Container) == "" {
		// The pod's spec is the truth: watching cannot ever see the end.
		return false, "", fault.New(fault.Usage, "pod %s/%s has no container %q (it has %s); check --watch-container", w.Namespace, w.Pod, w.Container, inSpecNames(pod))
	}
	return false, "", nil
}

// restarts reports whether the kubelet starts the named container again
// after it exited with code, and the policy that says so, as the kubelet
// decides it: a native sidecar (an init container with restartPolicy
// Always) always restarts; a container's own restart rules (matched in
// order) and restart policy come before the pod's; an init container that
// succeeded is done. A policy the pod does not state (the API server
// always sets one) counts as Never, so that the end is not missed.
func restarts(pod *corev1.Pod, name string, code int32) (string, bool) {
	var c *corev1.Container
	init := false
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			c = &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if c == nil && pod.Spec.InitContainers[i].Name == name {
			c, init = &pod.Spec.InitContainers[i], true
		}
	}
	policy := string(pod.Spec.RestartPolicy)
	if c != nil {
		if init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return "a sidecar container, restartPolicy Always", true
		}
		for _, r := range c.RestartPolicyRules {
			if r.ExitCodes == nil || r.Action != corev1.ContainerRestartRuleActionRestart {
				continue
			}
			in := false
			for _, v := range r.ExitCodes.Values {
				in = in || v == code
			}
			if in == (r.ExitCodes.Operator == corev1.ContainerRestartRuleOnExitCodesOpIn) {
				return fmt.Sprintf("its restart rule for exit codes %s %v", r.ExitCodes.Operator, r.ExitCodes.Values), true
			}
		}
		if c.RestartPolicy != nil && !init {
			policy = string(*c.RestartPolicy)
		}
	}
	switch {
	case policy == string(corev1.RestartPolicyAlways) && !init:
		return "restartPolicy Always", true
	case policy == string(corev1.RestartPolicyAlways) || policy == string(corev1.RestartPolicyOnFailure):
		return "restartPolicy " + policy + ", exit code " + fmt.Sprint(code), code != 0
	}
	return "", false
}

func inSpec(pod *corev1.Pod, name string) string {
	for _, c := range append(pod.Spec.Containers, pod.Spec.InitContainers...) {
		if c.Name == name {
			return name
		}
	}
	return ""
}

func inSpecNames(pod *corev1.Pod) string {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

func (w *PodWatcher) get(ctx context.Context) (*corev1.Pod, error) {
	u := fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s", w.APIURL, url.PathEscape(w.Namespace), url.PathEscape(w.Pod))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	sent := false
	if tok, err := os.ReadFile(w.TokenFile); err == nil {
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		sent = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading pod %s/%s: %w", w.Namespace, w.Pod, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading pod %s/%s: %w", w.Namespace, w.Pod, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		switch {
		case !sent && (resp.StatusCode == http.StatusUnauthorized || strings.Contains(msg, "system:anonymous")):
			return nil, fault.New(fault.Auth, "reading pod %s/%s: %s: %s; no token was sent (%s is not there): give --kube-token-file, the token of a service account that may get pods (see examples/k8s/rbac.yaml)", w.Namespace, w.Pod, resp.Status, msg, w.TokenFile)
		case resp.StatusCode == http.StatusUnauthorized:
			return nil, fault.New(fault.Auth, "reading pod %s/%s: %s: %s; the API does not accept the token (%s): expired, or not this cluster's; check the pod's service account, or --kube-token-file", w.Namespace, w.Pod, resp.Status, msg, w.TokenFile)
		case resp.StatusCode == http.StatusForbidden:
			return nil, fault.New(fault.Auth, "reading pod %s/%s: %s: %s; the pod's service account needs get on pods (see examples/k8s/rbac.yaml)", w.Namespace, w.Pod, resp.Status, msg)
		}
		return nil, fmt.Errorf("reading pod %s/%s: %s: %s", w.Namespace, w.Pod, resp.Status, msg)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(body, &pod); err != nil {
		return nil, fmt.Errorf("reading pod %s/%s: not a Pod: %w", w.Namespace, w.Pod, err)
	}
	if pod.Kind != "" && pod.Kind != "Pod" {
		return nil, fmt.Errorf("reading pod %s/%s: the API answered a %s, not a Pod", w.Namespace, w.Pod, pod.Kind)
	}
	return &pod, nil
}
