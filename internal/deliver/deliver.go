// Package deliver sends signed webhooks from the Postgres outbox: a worker on every
// replica claims due deliveries (FOR UPDATE SKIP LOCKED, so replicas share them),
// POSTs each with a bounded timeout through a client that dials only addresses the
// admin's policy allows and follows no redirect, and records the answer: delivered on
// a 2xx, else retried with exponential backoff until the attempts run out. A crash
// between claim and record leaves the delivery due again once its lease ends, so
// delivery is at least once; receivers drop repeats by the idempotency id.
package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/version"
	"github.com/ftgate/ftgate/internal/webhook"
	"github.com/ftgate/ftgate/internal/worker"
)

// Store is the outbox as the worker uses it; *postgres.Store implements it.
type Store interface {
	ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]webhook.Outgoing, error)
	RecordDelivery(ctx context.Context, r webhook.Result) error
	PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error)
}

// NewClient returns the HTTP client webhooks are sent with: every dial checked by
// guard (on the resolved address), no proxy from the environment, no redirects
// followed (a 3xx is a failed attempt), timeout bounding the whole request.
func NewClient(guard *Guard, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: guard.Control(host)}
			return d.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Sender signs and POSTs one delivery.
type Sender struct {
	Client *http.Client
	Now    func() time.Time
}

// maxAnswer bounds how much of a receiver's answer is read (the rest is dropped).
const maxAnswer = 64 << 10

// Send POSTs o's body signed with its endpoint's secret and returns the receiver's
// HTTP status; err is set unless the status is 2xx.
func (s *Sender) Send(ctx context.Context, o webhook.Outgoing) (int, error) {
	body, err := o.Body()
	if err != nil {
		return 0, err
	}
	ts := worker.Now(s.Now).Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ftgate-webhook/"+version.Version)
	req.Header.Set(webhook.HeaderID, o.ID)
	req.Header.Set(webhook.HeaderEvent, o.Event)
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(o.Secret, ts, body))
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, sendError(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	msg := "HTTP " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed)"
	}
	if snippet := printable(answer, 200); snippet != "" {
		msg += ": " + snippet
	}
	return resp.StatusCode, errors.New(msg)
}

// sendError is a failed request's error without the URL that url.Error repeats.
func sendError(err error) error {
	var be *webhook.BlockedError
	if errors.As(err, &be) {
		return fmt.Errorf("refused: %w", be)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// printable is the first n bytes of b as one line of printable text.
func printable(b []byte, n int) string {
	s := strings.ToValidUTF8(string(b[:min(len(b), n)]), "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return strings.TrimSpace(s)
}

// Worker sends the outbox's deliveries. Zero durations and counts take the defaults.
type Worker struct {
	Store  Store
	Sender *Sender
	// Interval between passes (default 1s).
	Interval time.Duration
	// Batch is how many deliveries one claim takes (default 32), Parallel how many
	// are sent at once (default 8).
	Batch, Parallel int
	// Timeout bounds one attempt (default 10s); Lease hides a claimed delivery from
	// other workers (default Timeout + 30s).
	Timeout, Lease time.Duration
	// MaxAttempts before a delivery fails for good (default 10). The delay before
	// retry n is worker.Backoff: RetryMin (default 10s) doubling up to RetryMax
	// (default 1h), ±20% jitter.
	MaxAttempts        int
	RetryMin, RetryMax time.Duration
	// Keep is how long finished deliveries stay in the log (default 30 days).
	Keep    time.Duration
	Metrics *metrics.Metrics
	Log     *slog.Logger

	once      sync.Once
	lastPrune time.Time
}

func (w *Worker) init() {
	w.once.Do(func() {
		if w.Interval <= 0 {
			w.Interval = time.Second
		}
		if w.Batch <= 0 {
			w.Batch = 32
		}
		if w.Parallel <= 0 {
			w.Parallel = 8
		}
		if w.Timeout <= 0 {
			w.Timeout = 10 * time.Second
		}
		if w.Lease <= 0 {
			w.Lease = w.Timeout + 30*time.Second
		}
		if w.MaxAttempts <= 0 {
			w.MaxAttempts = 10
		}
		if w.RetryMin <= 0 {
			w.RetryMin = 10 * time.Second
		}
		if w.RetryMax <= 0 {
			w.RetryMax = time.Hour
		}
		if w.Keep <= 0 {
			w.Keep = 30 * 24 * time.Hour
		}
	})
}

func (w *Worker) log() *slog.Logger { return worker.Logger(w.Log) }

// Run runs passes until ctx ends. Every replica runs one: the claims share the work.
func (w *Worker) Run(ctx context.Context) {
	w.init()
	(&worker.Loop{Name: "webhooks", Interval: w.Interval, Pass: w.pass, Log: w.log()}).Run(ctx)
}

func (w *Worker) pass(ctx context.Context) error {
	_, err := w.RunOnce(ctx)
	return err
}

// pruneEvery is how often a worker deletes finished deliveries older than Keep.
const pruneEvery = time.Hour

// RunOnce sends every due delivery, a batch at a time, and returns how many attempts
// it made.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	w.init()
	if time.Since(w.lastPrune) > pruneEvery {
		w.lastPrune = time.Now()
		if n, err := w.Store.PruneDeliveries(ctx, time.Now().Add(-w.Keep), 10_000); err != nil {
			w.log().Warn("webhooks: prune the delivery log", "err", err)
		} else if n > 0 {
			w.log().Info("webhooks: pruned the delivery log", "deleted", n)
		}
	}
	total := 0
	for ctx.Err() == nil {
		claimed, err := w.Store.ClaimDeliveries(ctx, w.Batch, w.Lease)
		if err != nil {
			return total, fmt.Errorf("claim deliveries: %w", err)
		}
		total += len(claimed)
		w.sendAll(ctx, claimed)
		if len(claimed) < w.Batch {
			break
		}
	}
	return total, nil
}

// sendAll sends claimed deliveries, Parallel at once, and records each result.
func (w *Worker) sendAll(ctx context.Context, claimed []webhook.Outgoing) {
	slots := make(chan struct{}, w.Parallel)
	var wg sync.WaitGroup
	for _, o := range claimed {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			w.sendOne(ctx, o)
		}()
	}
	wg.Wait()
}

// AfterClaim, when set, runs after a delivery is claimed and before it is sent. It is
// a test hook: only the gateway's test binary sets it (to crash at that point);
// production code leaves it nil.
var AfterClaim func(o webhook.Outgoing)

func (w *Worker) sendOne(ctx context.Context, o webhook.Outgoing) {
	if AfterClaim != nil {
		AfterClaim(o)
	}
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, w.Timeout)
	status, err := w.Sender.Send(actx, o)
	cancel()
	if err != nil && ctx.Err() != nil {
		return // shutting down: the lease ends and a pass sends it again
	}
	r := webhook.Result{ID: o.ID, Attempt: o.Attempt, Status: status, Delivered: err == nil}
	result := "delivered"
	if err != nil {
		r.Error = err.Error()
		result = "retry"
		if o.Attempt < w.MaxAttempts {
			r.Retry = worker.Backoff(o.Attempt, w.RetryMin, w.RetryMax)
		} else {
			result = "failed"
		}
	}
	if w.Metrics != nil {
		w.Metrics.WebhookDeliveries.WithLabelValues(result).Inc()
		w.Metrics.WebhookDuration.Observe(time.Since(start).Seconds())
	}
	log := w.log().With("delivery", o.ID, "endpoint", o.EndpointID, "event", o.Event, "attempt", o.Attempt)
	switch result {
	case "retry":
		log.Info("webhook attempt failed; will retry", "err", r.Error, "retry_in", r.Retry.Round(time.Millisecond))
	case "failed":
		log.Warn("webhook failed: no attempts left", "err", r.Error)
	}
	if err := w.Store.RecordDelivery(context.WithoutCancel(ctx), r); err != nil {
		log.Warn("webhooks: record the attempt", "err", err)
	}
}
