package deliver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/deliver"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/webhook"
)

// hookReceiver is a receiver as docs/webhooks.md writes one, on 127.0.0.1: it
// verifies the signature and the replay window, drops ids it accepted before, and
// answers 503 to the first fail requests of each id.
type hookReceiver struct {
	srv    *httptest.Server
	secret string
	fail   int
	// block, when set, holds each id's first request until the sender gives up.
	block bool

	mu       sync.Mutex
	tries    map[string]int
	accepted map[string]webhook.Body
	bad      []string
}

func newHookReceiver(t *testing.T, fail int) *hookReceiver {
	r := &hookReceiver{fail: fail, tries: map[string]int{}, accepted: map[string]webhook.Body{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	if err := webhook.Verify(secret, req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature), body, time.Now(), webhook.ReplayWindow); err != nil {
		r.mu.Lock()
		r.bad = append(r.bad, err.Error())
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var b webhook.Body
	if err := json.Unmarshal(body, &b); err != nil || b.ID != req.Header.Get(webhook.HeaderID) {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.tries[b.ID]++
	n := r.tries[b.ID]
	_, seen := r.accepted[b.ID]
	r.mu.Unlock()
	switch {
	case r.block && n == 1:
		<-req.Context().Done() // the sender goes away without an answer
		return
	case n <= r.fail:
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	case seen:
		w.WriteHeader(http.StatusOK) // a repeat: acknowledged, not processed again
		return
	}
	r.mu.Lock()
	r.accepted[b.ID] = b
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *hookReceiver) snapshot() (tries map[string]int, accepted map[string]webhook.Body, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tries, accepted = map[string]int{}, map[string]webhook.Body{}
	for k, v := range r.tries {
		tries[k] = v
	}
	for k, v := range r.accepted {
		accepted[k] = v
	}
	return tries, accepted, slices.Clone(r.bad)
}

type fixture struct {
	t     *testing.T
	store *postgres.Store
	recv  *hookReceiver
	ep    webhook.Endpoint
}

func newFixture(t *testing.T, fail int, events ...string) *fixture {
	f := &fixture{t: t, store: postgres.New(pgtest.Schema(t)), recv: newHookReceiver(t, fail)}
	var err error
	f.ep, err = f.store.CreateEndpoint(context.Background(), webhook.Endpoint{OwnerSubject: "sub-alice", User: "alice",
		URL: f.recv.srv.URL + "/ftgate", Events: events, Secret: webhook.NewSecret()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.recv.secret = f.ep.Secret
	return f
}

// job creates one of alice's jobs and moves it along path.
func (f *fixture) job(path ...job.Change) job.Job {
	f.t.Helper()
	ctx := context.Background()
	j, _, err := f.store.Create(ctx, job.Job{OwnerSubject: "sub-alice", User: "alice", Cluster: "dev", JobDir: "/jobs/alice/x",
		Spec: job.Spec{Name: "hook-test", Method: "sft", Model: "builtin:tiny", Dataset: job.Dataset{Path: "/d.jsonl"}}}, quota.Limits{})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range path {
		if j, err = f.store.Transition(ctx, j.ID, c); err != nil {
			f.t.Fatal(err)
		}
	}
	return j
}

func (f *fixture) log() []webhook.Delivery {
	f.t.Helper()
	ds, _, err := f.store.Deliveries(context.Background(), f.ep.ID, "", 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

// waitDelivered waits until every delivery in the log is delivered.
func (f *fixture) waitDelivered(want int, d time.Duration) []webhook.Delivery {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ds := f.log()
		n := 0
		for _, x := range ds {
			if x.State == webhook.DeliveryDelivered {
				n++
			}
		}
		if len(ds) == want && n == want {
			return ds
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("after %s: %+v, want %d delivered", d, ds, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fixture) worker(lease time.Duration) *deliver.Worker {
	p, err := webhook.ParsePolicy([]string{"127.0.0.1"}, false)
	if err != nil {
		f.t.Fatal(err)
	}
	return &deliver.Worker{Store: f.store, Sender: &deliver.Sender{Client: deliver.NewClient(&deliver.Guard{Policy: p}, 2*time.Second)},
		Interval: 20 * time.Millisecond, Timeout: 2 * time.Second, Lease: lease, MaxAttempts: 5,
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
}

var toRunning = []job.Change{{From: job.Submitting, To: job.Queued, SlurmID: "7"}, {From: job.Queued, To: job.Running}}

// TestIntegrationDeliverRetriedOncePerEvent: three job events (succeeded, failed, a
// checkpoint) reach a real receiver on 127.0.0.1 whose signature check passes on every
// attempt; it fails each event twice, then accepts it: exactly one accepted delivery
// per event, and the log shows three attempts each.
func TestIntegrationDeliverRetriedOncePerEvent(t *testing.T) {
	f := newFixture(t, 2, webhook.EventSucceeded, webhook.EventFailed, webhook.EventCheckpoint)
	ok := f.job(append(toRunning, job.Change{From: job.Running, To: job.Succeeded})...)
	bad := f.job(append(toRunning, job.Change{From: job.Running, To: job.Failed, Reason: "exit 1"})...)
	ck := f.job(toRunning...)
	if err := f.store.SetProgress(context.Background(), ck.ID, job.Progress{Phase: "training", Step: 30, TotalSteps: 60, LatestCheckpoint: "checkpoints/step-30"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.worker(0).Run(ctx); close(done) }()
	ds := f.waitDelivered(3, 30*time.Second)
	cancel()
	<-done
	tries, accepted, badSigs := f.recv.snapshot()
	if len(badSigs) > 0 {
		t.Errorf("signatures that did not verify: %v", badSigs)
	}
	if len(accepted) != 3 {
		t.Fatalf("accepted %d deliveries, want 3: %v", len(accepted), accepted)
	}
	byJob := map[string]webhook.Body{}
	for id, b := range accepted {
		if tries[id] != 3 {
			t.Errorf("delivery %s (%s) was sent %d times, want 3 (two failures, one success)", id, b.Event, tries[id])
		}
		byJob[b.Job.ID] = b
	}
	if b := byJob[ok.ID]; b.Event != webhook.EventSucceeded || b.Job.State != job.Succeeded {
		t.Errorf("succeeded job's body: %+v", b)
	}
	if b := byJob[bad.ID]; b.Event != webhook.EventFailed || b.Job.Reason != "exit 1" {
		t.Errorf("failed job's body: %+v", b)
	}
	if b := byJob[ck.ID]; b.Event != webhook.EventCheckpoint || b.Checkpoint == nil || b.Checkpoint.Step != 30 || b.Job.Name != "hook-test" {
		t.Errorf("checkpoint body: %+v", b)
	}
	for _, d := range ds {
		if d.Attempts != 3 || d.LastStatus != 200 || d.LastError != "" || d.DeliveredAt == nil || d.NextAttemptAt != nil {
			t.Errorf("log entry %+v, want 3 attempts, delivered with 200", d)
		}
		if _, ok := accepted[d.ID]; !ok {
			t.Errorf("log entry %s is not an id the receiver accepted", d.ID)
		}
	}
}

// TestIntegrationDeliverAfterWorkerCancelled: a worker dies (its context cancelled)
// while its attempt waits for the receiver; the outbox keeps the delivery, the log
// shows the interrupted attempt, and a fresh worker delivers it once the dead one's
// lease ends.
func TestIntegrationDeliverAfterWorkerCancelled(t *testing.T) {
	f := newFixture(t, 0, webhook.EventCancelled)
	f.recv.block = true
	j := f.job(job.Change{From: job.Submitting, To: job.Cancelled, Reason: "cancelled by alice"})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan int, 1)
	go func() { n, _ := f.worker(time.Second).RunOnce(ctx); first <- n }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if tries, _, _ := f.recv.snapshot(); len(tries) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first worker never reached the receiver")
		}
	}
	cancel()
	if n := <-first; n != 1 {
		t.Fatalf("the first worker made %d attempts, want 1", n)
	}
	ds := f.log()
	if len(ds) != 1 || ds[0].State != webhook.DeliveryPending || ds[0].Attempts != 1 || !strings.Contains(ds[0].LastError, "interrupted") {
		t.Fatalf("log after the worker died: %+v", ds)
	}
	w := f.worker(time.Second)
	if n, err := w.RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("a fresh worker during the dead one's lease made %d attempts (%v), want 0", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.log()) == 1 && f.log()[0].State == webhook.DeliveryPending && time.Now().Before(deadline) {
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ds = f.log()
	tries, accepted, _ := f.recv.snapshot()
	if len(ds) != 1 || ds[0].State != webhook.DeliveryDelivered || ds[0].Attempts != 2 || ds[0].LastStatus != 200 {
		t.Fatalf("log after the fresh worker: %+v", ds)
	}
	if b, ok := accepted[ds[0].ID]; !ok || len(accepted) != 1 || tries[ds[0].ID] != 2 || b.Job.ID != j.ID || b.Event != webhook.EventCancelled {
		t.Errorf("receiver: tries %v accepted %v", tries, accepted)
	}
}
