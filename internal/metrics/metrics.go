// Package metrics holds the gateway's Prometheus metrics, registered on one registry
// served by GET /metrics.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics groups the gateway's counters and histograms.
type Metrics struct {
	Registry          *prometheus.Registry
	HTTPRequests      *prometheus.CounterVec   // route, method, status
	HTTPDuration      *prometheus.HistogramVec // route, method
	Submits           *prometheus.CounterVec   // cluster, result: submitted, failed, retry, cancelled
	SubmitDuration    *prometheus.HistogramVec // cluster
	Reconciles        *prometheus.CounterVec   // cluster, result: ok, error
	ReconcileDuration *prometheus.HistogramVec // cluster
	Transitions       *prometheus.CounterVec   // from, to
	ReconcileLastOK   *prometheus.GaugeVec     // cluster: unix time of the last successful pass
	SSHDialFailures   *prometheus.CounterVec   // cluster, reason: host_key, auth, unreachable
	MappingReloads    *prometheus.CounterVec   // result: ok, error
	WebhookDeliveries *prometheus.CounterVec   // result: delivered, retry, failed
	WebhookDuration   prometheus.Histogram
}

// New creates and registers the metrics, plus Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ftgate_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ftgate_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		Submits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ftgate_submit_attempts_total", Help: "Submit attempts by cluster and result (submitted, failed, retry, cancelled).",
		}, []string{"cluster", "result"}),
		SubmitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ftgate_submit_duration_seconds", Help: "Duration of one submit attempt (mkdir, job.json, job.sbatch, sbatch).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"cluster"}),
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ftgate_reconcile_runs_total", Help: "Reconciler passes by cluster and result (ok, error).",
		}, []string{"cluster", "result"}),
		ReconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ftgate_reconcile_duration_seconds", Help: "Duration of one reconciler pass over a cluster.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"cluster"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ftgate_job_transitions_total", Help: "Job state transitions made by this replica.",
		}, []string{"from", "to"}),
		ReconcileLastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ftgate_reconcile_last_success_timestamp_seconds", Help: "Unix time of this replica's last successful reconciler pass per cluster (0 on replicas that are not the leader).",
		}, []string{"cluster"}),
		SSHDialFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ftgate_ssh_dial_failures_total", Help: "SSH connections to a login node that failed, by cluster and reason (host_key, auth, unreachable).",
		}, []string{"cluster", "reason"}),
		MappingReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ftgate_mapping_reloads_total", Help: "Reloads of oidc.mapping_file by result (ok; error: the mapping in force was kept).",
		}, []string{"result"}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ftgate_webhook_deliveries_total", Help: "Webhook delivery attempts made by this replica, by result: delivered (2xx), retry (failed, will be retried), failed (failed, no attempt left).",
		}, []string{"result"}),
		WebhookDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ftgate_webhook_delivery_duration_seconds", Help: "Duration of one webhook delivery attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	r.MustRegister(m.MappingReloads, m.HTTPRequests, m.HTTPDuration, m.Submits, m.SubmitDuration, m.Reconciles, m.ReconcileDuration,
		m.Transitions, m.ReconcileLastOK, m.SSHDialFailures, m.WebhookDeliveries, m.WebhookDuration, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// JobCount is the number of jobs of one cluster in one state.
type JobCount struct {
	Cluster, State string
	N              int
}

// RegisterJobs exports ftgate_jobs{cluster,state}, counted by count at each scrape.
func (m *Metrics) RegisterJobs(count func(ctx context.Context) ([]JobCount, error)) {
	m.Registry.MustRegister(&jobsCollector{count: count})
}

var jobsDesc = prometheus.NewDesc("ftgate_jobs", "Jobs by cluster and gateway state.", []string{"cluster", "state"}, nil)

type jobsCollector struct {
	count func(ctx context.Context) ([]JobCount, error)
}

func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobsDesc }

func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
		return
	}
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n.N), n.Cluster, n.State)
	}
}

// RegisterWebhookOutbox exports ftgate_webhook_outbox_pending, the deliveries waiting
// for an attempt, counted by count at each scrape.
func (m *Metrics) RegisterWebhookOutbox(count func(ctx context.Context) (int, error)) {
	m.Registry.MustRegister(&gaugeCollector{desc: outboxDesc, count: count})
}

var outboxDesc = prometheus.NewDesc("ftgate_webhook_outbox_pending", "Webhook deliveries waiting for an attempt (due or retrying).", nil, nil)

// gaugeCollector is one unlabelled gauge counted at each scrape.
type gaugeCollector struct {
	desc  *prometheus.Desc
	count func(ctx context.Context) (int, error)
}

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}
