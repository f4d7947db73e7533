package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/webhook"
)

// memOutbox is the outbox in memory: the claim's lease and the record's rules of
// internal/postgres, on a fake clock that only moves forward when a test says so.
type memOutbox struct {
	mu   sync.Mutex
	now  time.Time
	rows map[string]*memRow
}

type memRow struct {
	out       webhook.Outgoing
	attempts  int
	next      *time.Time
	delivered bool
	last      webhook.Result
}

func newOutbox(ds ...webhook.Outgoing) *memOutbox {
	m := &memOutbox{now: time.Unix(1700000000, 0), rows: map[string]*memRow{}}
	for _, d := range ds {
		at := m.now
		m.rows[d.ID] = &memRow{out: d, next: &at}
	}
	return m
}

func (m *memOutbox) ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]webhook.Outgoing, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []webhook.Outgoing
	for _, r := range m.rows {
		if r.next == nil || r.next.After(m.now) || len(out) == limit {
			continue
		}
		r.attempts++
		next := m.now.Add(lease)
		r.next = &next
		o := r.out
		o.Attempt = r.attempts
		out = append(out, o)
	}
	return out, nil
}

func (m *memOutbox) RecordDelivery(ctx context.Context, res webhook.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rows[res.ID]
	if r == nil || r.attempts != res.Attempt || r.delivered {
		return nil
	}
	r.last, r.delivered, r.next = res, res.Delivered, nil
	if !res.Delivered && res.Retry > 0 {
		next := m.now.Add(res.Retry)
		r.next = &next
	}
	return nil
}

func (m *memOutbox) PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	return 0, nil
}

// advance moves the clock past every retry.
func (m *memOutbox) advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
}

func (m *memOutbox) row(id string) memRow {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *m.rows[id]
}

// receiver is a webhook receiver on 127.0.0.1 that verifies each request's
// signature and answers with the next of statuses (the last one repeats).
type receiver struct {
	t        *testing.T
	srv      *httptest.Server
	secret   string
	mu       sync.Mutex
	statuses []int
	got      []received
	delay    time.Duration
}

type received struct {
	id, event, verifyErr string
	body                 []byte
	status               int
}

func newReceiver(t *testing.T, secret string, statuses ...int) *receiver {
	r := &receiver{t: t, secret: secret, statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rec := received{id: req.Header.Get(webhook.HeaderID), event: req.Header.Get(webhook.HeaderEvent), body: body}
		if err := webhook.Verify(r.secret, req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature), body, time.Now(), webhook.ReplayWindow); err != nil {
			rec.verifyErr = err.Error()
		}
		r.mu.Lock()
		rec.status = r.statuses[min(len(r.got), len(r.statuses)-1)]
		r.got = append(r.got, rec)
		delay := r.delay
		r.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		w.WriteHeader(rec.status)
		_, _ = io.WriteString(w, "receiver says \x00no\n")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// loopbackGuard allows the test receivers on 127.0.0.1.
func loopbackGuard(t *testing.T) *Guard {
	p, err := webhook.ParsePolicy([]string{"127.0.0.1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	return &Guard{Policy: p}
}

func delivery(t *testing.T, id, url, secret string) webhook.Outgoing {
	j := job.Job{ID: "00000000-0000-4000-8000-000000000001", State: job.Succeeded, User: "alice", Cluster: "dev"}
	payload, err := json.Marshal(webhook.NewBody(webhook.EventSucceeded, time.Now(), j, nil))
	if err != nil {
		t.Fatal(err)
	}
	return webhook.Outgoing{ID: id, EndpointID: "e1", URL: url, Secret: secret, Event: webhook.EventSucceeded, Payload: payload}
}

// count reads ftgate_webhook_deliveries_total{result}.
func count(m *metrics.Metrics, result string) float64 {
	var pb dto.Metric
	if err := m.WebhookDeliveries.WithLabelValues(result).Write(&pb); err != nil {
		return -1
	}
	return pb.GetCounter().GetValue()
}

func newWorker(store Store, g *Guard, m *metrics.Metrics) *Worker {
	return &Worker{Store: store, Sender: &Sender{Client: NewClient(g, 2*time.Second)}, Timeout: 2 * time.Second,
		MaxAttempts: 5, RetryMin: time.Minute, RetryMax: time.Minute, Metrics: m}
}

// TestWorkerRetriesUntilDelivered: a receiver that fails twice then accepts gets three
// signed requests with the same id and body, and accepts exactly one; the outbox
// records the attempts and the metrics count two retries and one delivery.
func TestWorkerRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, "whsec_a", 500, 502, 204)
	ob := newOutbox(delivery(t, "d1", r.srv.URL+"/hook", "whsec_a"))
	m := metrics.New()
	w := newWorker(ob, loopbackGuard(t), m)
	ctx := context.Background()
	for i := range 5 {
		n, err := w.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[i < 3]; n != want {
			t.Fatalf("pass %d made %d attempts, want %d (retries wait for their backoff)", i, n, want)
		}
		if n2, _ := w.RunOnce(ctx); n2 != 0 {
			t.Fatalf("pass %d: a second pass before the backoff made %d attempts", i, n2)
		}
		ob.advance(2 * time.Minute) // past the retry delay: a minute ±20%
	}
	got := r.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	accepted := 0
	for i, g := range got {
		if g.verifyErr != "" || g.id != "d1" || g.event != webhook.EventSucceeded || string(g.body) != string(got[0].body) {
			t.Errorf("request %d: id %q event %q verify %q body %s", i, g.id, g.event, g.verifyErr, g.body)
		}
		if g.status/100 == 2 {
			accepted++
		}
	}
	var b webhook.Body
	if err := json.Unmarshal(got[0].body, &b); err != nil || b.ID != "d1" || b.Job.State != job.Succeeded {
		t.Errorf("body %s: %v", got[0].body, err)
	}
	row := ob.row("d1")
	if accepted != 1 || !row.delivered || row.attempts != 3 || row.last.Status != 204 || row.last.Error != "" || row.next != nil {
		t.Errorf("accepted %d; outbox %+v", accepted, row)
	}
	if d, rt := count(m, "delivered"), count(m, "retry"); d != 1 || rt != 2 {
		t.Errorf("metrics: delivered %v retry %v, want 1 and 2", d, rt)
	}
}

// TestWorkerGivesUp: after MaxAttempts failures the delivery fails for good, with the
// receiver's status and a printable snippet of its answer as the last error.
func TestWorkerGivesUp(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, "s", 503)
	ob := newOutbox(delivery(t, "d1", r.srv.URL, "s"))
	m := metrics.New()
	w := newWorker(ob, loopbackGuard(t), m)
	w.MaxAttempts = 2
	for range 4 {
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		ob.advance(time.Hour)
	}
	row := ob.row("d1")
	if len(r.requests()) != 2 || row.delivered || row.next != nil || row.attempts != 2 || row.last.Status != 503 ||
		row.last.Error != "HTTP 503: receiver says  no" {
		t.Errorf("requests %d, outbox %+v", len(r.requests()), row)
	}
	if f := count(m, "failed"); f != 1 {
		t.Errorf("failed metric %v, want 1", f)
	}
}

// TestNoRedirects: a 3xx is a failed attempt; its target is never asked.
func TestNoRedirects(t *testing.T) {
	t.Parallel()
	target := newReceiver(t, "s", 200)
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redir.Close)
	s := &Sender{Client: NewClient(loopbackGuard(t), 2*time.Second)}
	status, err := s.Send(context.Background(), delivery(t, "d1", redir.URL, "s"))
	if status != http.StatusTemporaryRedirect || err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Errorf("Send = %d, %v; want 307 and a refusal", status, err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect's target got %d requests", n)
	}
}

// TestDialTimeCheck: the address dialled is checked after resolution, so a name that
// passed registration (its DNS said public) but resolves to loopback at send time is
// refused before any byte is sent.
func TestDialTimeCheck(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, "s", 200)
	_, port, _ := net.SplitHostPort(r.srv.Listener.Addr().String())
	g := &Guard{Resolver: fakeResolver{"localhost": {"8.8.8.8"}}}
	url, err := g.Check(context.Background(), "url", "http://localhost:"+port+"/hook")
	if err != nil {
		t.Fatalf("registration with a public answer: %v", err)
	}
	for _, u := range []string{url, r.srv.URL} {
		s := &Sender{Client: NewClient(g, 2*time.Second)}
		status, err := s.Send(context.Background(), delivery(t, "d1", u, "s"))
		var be *webhook.BlockedError
		if status != 0 || !errors.As(err, &be) || !strings.Contains(err.Error(), "refused: address 127.0.0.1 is loopback") {
			t.Errorf("Send to %s = %d, %v; want refused at dial", u, status, err)
		}
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
	// The same with 127.0.0.1 listed reaches it.
	s := &Sender{Client: NewClient(loopbackGuard(t), 2*time.Second)}
	if status, err := s.Send(context.Background(), delivery(t, "d1", "http://localhost:"+port+"/hook", "s")); status != 200 || err != nil {
		t.Errorf("Send with 127.0.0.1 listed = %d, %v", status, err)
	}
}

// TestTimeout: a receiver slower than the timeout is a failed attempt, bounded.
func TestTimeout(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, "s", 200)
	r.delay = 2 * time.Second
	ob := newOutbox(delivery(t, "d1", r.srv.URL, "s"))
	w := newWorker(ob, loopbackGuard(t), nil)
	w.Timeout = 200 * time.Millisecond
	start := time.Now()
	if _, err := w.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	row := ob.row("d1")
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("the attempt took %s, want about the 200ms timeout", d)
	}
	if row.delivered || row.next == nil || row.last.Status != 0 || !strings.Contains(row.last.Error, "deadline exceeded") {
		t.Errorf("outbox %+v, want a failed attempt to retry", row)
	}
}

// TestShutdownLeavesDeliveryDue: an attempt cut short by shutdown records nothing,
// so the claim's lease decides when it is sent again.
func TestShutdownLeavesDeliveryDue(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, "s", 200)
	r.delay = time.Second
	ob := newOutbox(delivery(t, "d1", r.srv.URL, "s"))
	w := newWorker(ob, loopbackGuard(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	row := ob.row("d1")
	if row.delivered || row.attempts != 1 || row.last.Error != "" || row.next == nil {
		t.Errorf("outbox %+v, want attempt 1 claimed and nothing recorded", row)
	}
}

type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	as, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range as {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// TestGuardCheck: registration resolves the host and refuses it when any address is
// refused.
func TestGuardCheck(t *testing.T) {
	t.Parallel()
	p, _ := webhook.ParsePolicy([]string{"fd09::/16", "10.9.0.0/16"}, false)
	g := &Guard{Policy: p, Resolver: fakeResolver{
		"public.example.edu":   {"8.8.8.8", "2606:4700::1111"},
		"internal.example.edu": {"10.0.0.7"},
		"listed.example.edu":   {"10.9.1.1"},
		"mixed.example.edu":    {"8.8.8.8", "127.0.0.1"},
		"empty.example.edu":    {},
	}}
	for _, tc := range []struct{ url, wantErr string }{
		{"https://public.example.edu/hook", ""},
		{"https://listed.example.edu/hook", ""},
		{"https://internal.example.edu/hook", "10.0.0.7 is private"},
		{"https://mixed.example.edu/hook", "127.0.0.1 is loopback"},
		{"https://missing.example.edu/hook", "does not resolve: no such host"},
		{"https://empty.example.edu/hook", "does not resolve: no addresses"},
		{"http://[fd09::8:7]:81/", ""},
		{"http://[fd08::7]/", "private"},
		{"gopher://public.example.edu/", "http:// or https://"},
	} {
		got, err := g.Check(context.Background(), "url", tc.url)
		if tc.wantErr == "" {
			if err != nil || got != tc.url {
				t.Errorf("Check(%s) = %q, %v", tc.url, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || job.ErrorCode(err) != job.EUnprocessable {
			t.Errorf("Check(%s) = %v, want unprocessable %q", tc.url, err, tc.wantErr)
		}
	}
}

// deadlineResolver records how far the deadline of each lookup's context was.
type deadlineResolver struct{ got *[]time.Duration }

func (r deadlineResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	d, ok := ctx.Deadline()
	if !ok {
		*r.got = append(*r.got, -1)
	} else {
		*r.got = append(*r.got, time.Until(d))
	}
	return []netip.Addr{netip.MustParseAddr("8.8.8.8")}, nil
}

// TestGuardCheckBoundsTheLookup: a registration's host lookup runs under
// lookupTimeout even when the caller's context has no deadline.
func TestGuardCheckBoundsTheLookup(t *testing.T) {
	t.Parallel()
	p, _ := webhook.ParsePolicy(nil, false)
	var got []time.Duration
	g := &Guard{Policy: p, Resolver: deadlineResolver{&got}}
	if _, err := g.Check(context.Background(), "url", "https://public.example.edu/hook"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] <= lookupTimeout/2 || got[0] > lookupTimeout {
		t.Errorf("lookup deadlines %v, want one about %v away", got, lookupTimeout)
	}
}
