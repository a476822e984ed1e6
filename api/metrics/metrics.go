// Package metrics counts what a node does, for Prometheus: requests by
// dialect, route and status, bytes in and out, transfer durations, uploads
// in progress, every mirror and store operation, remote fetches and reaped
// uploads. Each node has its own registry; labels take only bounded values
// (route patterns, mirror ids, operation names), never slugs or keys.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds a node's collectors in its own registry.
type Metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.CounterVec
	bytesIn    *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	uploads    *prometheus.HistogramVec
	downloads  *prometheus.HistogramVec
	inProgress prometheus.Gauge
	mirrorOps  *prometheus.HistogramVec
	mirrorErrs *prometheus.CounterVec
	givenUp    *prometheus.CounterVec
	storeOps   *prometheus.HistogramVec
	storeErrs  *prometheus.CounterVec
	remote     *prometheus.CounterVec
	reaped     prometheus.Counter
	gone       *prometheus.CounterVec
}

// Buckets: store and mirror operations take from a fraction of a
// millisecond to minutes; whole transfers from milliseconds to hours.
var (
	opBuckets       = prometheus.ExponentialBuckets(0.0005, 4, 10) // 0.5 ms .. 131 s
	transferBuckets = prometheus.ExponentialBuckets(0.01, 4, 11)   // 10 ms .. 2.9 h
)

// New returns metrics in a new registry, which also holds the Go runtime's
// and the process's own collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acestash_http_requests_total", Help: "HTTP requests answered, by dialect, route pattern, method and status code.",
	}, []string{"dialect", "route", "method", "code"})
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acestash_http_request_body_bytes_total", Help: "Bytes of request bodies read, by dialect.",
	}, []string{"dialect"})
	m.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acestash_http_response_body_bytes_total", Help: "Bytes of response bodies written, by dialect.",
	}, []string{"dialect"})
	m.uploads = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "acestash_upload_duration_seconds", Help: "How long upload requests (a chunk or a whole file) took, by dialect.",
		Buckets: transferBuckets,
	}, []string{"dialect"})
	m.downloads = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "acestash_download_duration_seconds", Help: "How long download requests took, by dialect.",
		Buckets: transferBuckets,
	}, []string{"dialect"})
	m.inProgress = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "acestash_uploads_in_progress", Help: "Upload requests this node is receiving now.",
	})
	m.mirrorOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "acestash_mirror_operation_duration_seconds", Help: "Latency of mirror operations, by mirror id and operation.",
		Buckets: opBuckets,
	}, []string{"mirror", "op"})
	m.mirrorErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acestash_mirror_errors_total", Help: "Mirror operations that failed (a missing object is not a failure), by mirror id and operation.",
	}, []string{"mirror", "op"})
	m.givenUp = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acestash_mirror_reads_given_up_total", Help: "Reads that gave a mirror up and went on from another, by mirror id and reason: hedge (another answered first), stall or error.",
	}, []string{"mirror", "reason"})
	m.storeOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "acestash_store_operation_duration_seconds", Help: "Latency of store operations, by operation.",
		Buckets: opBuckets,
	}, []string{"op"})
	m.storeErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acestash_store_errors_total", Help: "Store operations that failed (not found, exists, conflict and leased are answers, not failures), by operation.",
	}, []string{"op"})
	m.remote = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acestash_remote_fetches_total", Help: "upload/remote fetches, by result: ok, refused (the address or answer was not acceptable) or failed.",
	}, []string{"result"})
	m.reaped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "acestash_reaped_sessions_total", Help: "Idle uploads abandoned and removed by the reaper.",
	})
	m.gone = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acestash_client_gone_total", Help: "Requests whose client went away before its answer, by dialect; not storage failures.",
	}, []string{"dialect"})
	m.reg.MustRegister(m.requests, m.bytesIn, m.bytesOut, m.uploads, m.downloads, m.inProgress,
		m.mirrorOps, m.mirrorErrs, m.givenUp, m.storeOps, m.storeErrs, m.remote, m.reaped, m.gone,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in Prometheus's exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Begin counts a request starting.
func (m *Metrics) Begin(kind string) {
	if kind == "upload" {
		m.inProgress.Inc()
	}
}

// Request is what a finished request did, as the metrics see it: no slugs
// or keys, only bounded labels.
type Request struct {
	Dialect string // mirrorace, rocketchat, mirage, tus, web, pages, admin, ops, none
	Route   string // the Echo route pattern
	Kind    string // upload, download or "" for anything else
	Method  string // an HTTP method, or "other"
	Status  int
	In, Out int64 // body bytes read and written
	Took    time.Duration
	Gone    bool // the client went away before its answer
}

// End counts a finished request.
func (m *Metrics) End(r Request) {
	m.requests.WithLabelValues(r.Dialect, r.Route, r.Method, strconv.Itoa(r.Status)).Inc()
	m.bytesIn.WithLabelValues(r.Dialect).Add(float64(r.In))
	m.bytesOut.WithLabelValues(r.Dialect).Add(float64(r.Out))
	if r.Gone {
		m.gone.WithLabelValues(r.Dialect).Inc()
	}
	switch r.Kind {
	case "upload":
		m.inProgress.Dec()
		m.uploads.WithLabelValues(r.Dialect).Observe(r.Took.Seconds())
	case "download":
		m.downloads.WithLabelValues(r.Dialect).Observe(r.Took.Seconds())
	}
}

// Fetched counts a remote fetch with its result.
func (m *Metrics) Fetched(result string) { m.remote.WithLabelValues(result).Inc() }

// GaveUp counts a read that gave the mirror up, and why.
func (m *Metrics) GaveUp(mirror, reason string) { m.givenUp.WithLabelValues(mirror, reason).Inc() }

// Reaped counts n idle uploads removed.
func (m *Metrics) Reaped(n int) { m.reaped.Add(float64(n)) }

// MirrorUp exports whether the mirror passed its last health check, as
// acestash_mirror_up{mirror="id"} (1 or 0), asking up at each scrape.
func (m *Metrics) MirrorUp(id string, up func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "acestash_mirror_up", Help: "1 if the mirror passed its last health check, else 0.",
		ConstLabels: prometheus.Labels{"mirror": id},
	}, func() float64 {
		if up() {
			return 1
		}
		return 0
	}))
}
