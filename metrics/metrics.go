// Package metrics defines Ferry's Prometheus metrics. The API observes HTTP
// latency, the worker observes every finished invocation and exposes its warm
// pool; Handler serves them all at /metrics on a listener of their own
// (FERRY_METRICS_LISTEN), apart from the API: their labels name every function.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-faas/ferry"
)

// Metrics holds Ferry's collectors. A nil *Metrics is valid and records nothing,
// so tests and tools may leave it out.
type Metrics struct {
	invocations *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	starts      *prometheus.CounterVec
	http        *prometheus.HistogramVec
	pool        *poolCollector
}

// Buckets in seconds, from a warm 1 ms run to the 15 min timeout ceiling.
var invocationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}

// HTTP latency buckets: sync invokes include the function's run time.
var httpBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_invocations_total",
			Help: "Finished invocations by function and final status.",
		}, []string{"function", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_invocation_duration_seconds",
			Help:    "Invocation durations by phase: total (accepted to recorded), queue (accepted to execution start), init (cold start), execution (handler).",
			Buckets: invocationBuckets,
		}, []string{"function", "phase"}),
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_starts_total",
			Help: "Executions by start kind: cold (new container) or warm (reused container).",
		}, []string{"function", "kind"}),
		http: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_http_request_duration_seconds",
			Help:    "API request latency by method, route template and status code.",
			Buckets: httpBuckets,
		}, []string{"method", "route", "status"}),
		pool: &poolCollector{
			desc: prometheus.NewDesc("ferry_warm_pool_containers",
				"Containers in the worker's warm pool, by state (total, busy).", []string{"state"}, nil),
		},
	}
	reg.MustRegister(m.invocations, m.duration, m.starts, m.http, m.pool)
	return m
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// ready for New and for serving /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves g at GET /metrics, in the Prometheus text format.
func Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}

// ObserveInvocation records a finished invocation. Invocations that are not
// final are ignored.
func (m *Metrics) ObserveInvocation(inv ferry.Invocation) {
	if m == nil || !inv.Status.Final() {
		return
	}
	m.invocations.WithLabelValues(inv.Function, string(inv.Status)).Inc()
	x := inv.Metrics
	if x == nil {
		// Cancelled before it ran, or failed before execution: only the total is known.
		if inv.FinishedAt != nil && !inv.CreatedAt.IsZero() {
			m.duration.WithLabelValues(inv.Function, "total").Observe(inv.FinishedAt.Sub(inv.CreatedAt).Seconds())
		}
		return
	}
	observeMS := func(phase string, ms float64) {
		if ms > 0 {
			m.duration.WithLabelValues(inv.Function, phase).Observe(ms / 1000)
		}
	}
	observeMS("total", x.TotalMS)
	observeMS("queue", x.QueueMS)
	observeMS("execution", x.DurationMS)
	kind := "warm"
	if x.Cold {
		kind = "cold"
		observeMS("init", x.InitMS)
	}
	m.starts.WithLabelValues(inv.Function, kind).Inc()
}

// ObserveHTTP records one API request. route is the route template
// ("/v1/functions/:name"), never the raw path, to bound the label values.
func (m *Metrics) ObserveHTTP(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.http.WithLabelValues(method, route, strconv.Itoa(status)).Observe(d.Seconds())
}

// RegisterPool makes the warm-pool gauge read fn at every scrape. The worker
// calls it once its executor exists; a later call replaces fn.
func (m *Metrics) RegisterPool(fn func() (total, busy int)) {
	if m == nil {
		return
	}
	m.pool.mu.Lock()
	m.pool.fn = fn
	m.pool.mu.Unlock()
}

// poolCollector reads the pool size at scrape time, so the gauge never lags.
type poolCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	fn   func() (total, busy int)
}

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	fn := p.fn
	p.mu.Unlock()
	if fn == nil {
		return // no worker in this process
	}
	total, busy := fn()
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, float64(total), "total")
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, float64(busy), "busy")
}
