package sidecar

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the sidecar's Prometheus metrics, served on /metrics.
type Metrics struct {
	reg *prometheus.Registry

	uploadedFiles prometheus.Counter
	uploadedBytes prometheus.Counter
	errors        prometheus.Counter
	deleted       prometheus.Counter
	cycles        prometheus.Counter
	pending       prometheus.Gauge
	watched       prometheus.Gauge
	lastSuccess   prometheus.Gauge
	cycleSeconds  prometheus.Gauge

	lastCycle  atomic.Int64 // unix ns of the latest cycle's end
	lastOK     atomic.Int64 // unix ns of the latest cycle that left nothing pending
	pendingNow atomic.Int64
	ending     atomic.Bool
}

// NewMetrics registers the sidecar's metrics, with the Go and process
// collectors, in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "initializer", Subsystem: "sidecar", Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	g := func(name, help string) prometheus.Gauge {
		c := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "initializer", Subsystem: "sidecar", Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.uploadedFiles = f("uploaded_files_total", "Files uploaded to the store.")
	m.uploadedBytes = f("uploaded_bytes_total", "Bytes uploaded to the store.")
	m.errors = f("upload_errors_total", "Files whose upload failed (each failed attempt of a cycle counts once).")
	m.deleted = f("deleted_objects_total", "Objects deleted from the store because their file was deleted (--delete).")
	m.cycles = f("cycles_total", "Scan-and-upload cycles run.")
	m.pending = g("pending_files", "Files new or changed that are not in the store yet, after the latest cycle.")
	m.watched = g("watched_files", "Files below the watched folder at the latest scan.")
	m.lastSuccess = g("last_success_timestamp_seconds", "Unix time of the end of the latest cycle that left no file pending.")
	m.cycleSeconds = g("cycle_duration_seconds", "Duration of the latest cycle.")
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics and /healthz.
//
// /healthz answers 200 while the upload loop runs, whatever the store's
// state: a store that is down must not get the sidecar restarted (the
// pending files would be uploaded no sooner). Its JSON body tells the
// pending files and the latest successful sync.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		body := map[string]any{"status": "ok", "pendingFiles": m.pendingNow.Load(), "ending": m.ending.Load()}
		if ns := m.lastOK.Load(); ns > 0 {
			body["lastSuccess"] = time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
		}
		if ns := m.lastCycle.Load(); ns > 0 {
			body["lastCycle"] = time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
	})
	return mux
}

func (m *Metrics) cycle(d time.Duration, watched, pending int, now time.Time) {
	if m == nil {
		return
	}
	m.cycles.Inc()
	m.cycleSeconds.Set(d.Seconds())
	m.watched.Set(float64(watched))
	m.pending.Set(float64(pending))
	m.pendingNow.Store(int64(pending))
	m.lastCycle.Store(now.UnixNano())
	if pending == 0 {
		m.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
		m.lastOK.Store(now.UnixNano())
	}
}

func (m *Metrics) uploaded(n int64) {
	if m != nil {
		m.uploadedFiles.Inc()
		m.uploadedBytes.Add(float64(n))
	}
}

func (m *Metrics) failed() {
	if m != nil {
		m.errors.Inc()
	}
}

func (m *Metrics) removed() {
	if m != nil {
		m.deleted.Inc()
	}
}

func (m *Metrics) end() {
	if m != nil {
		m.ending.Store(true)
	}
}
