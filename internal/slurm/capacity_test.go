package slurm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// TestCapacityReadOnlyAsProbe: whoever submits, capacity is read as the probe account,
// so a user's fake `scontrol show node` cannot make others' jobs fail.
func TestCapacityReadOnlyAsProbe(t *testing.T) {
	r := &fakeRunner{handlers: capacityHandlers(map[string]func([]string) (string, string, int){
		"sbatch": func([]string) (string, string, int) { return "7\n", "", 0 },
	})}
	c := newTestClient(t, r, withProbe)
	for _, u := range []string{"mallory", "alice", "bob"} {
		if _, err := c.Submit(context.Background(), u, testRequest()); err != nil {
			t.Fatal(err)
		}
	}
	for i, call := range r.calls {
		if call[0] == "scontrol" && r.users[i] != "ftgate-probe" {
			t.Errorf("%v ran as %s, want the probe account", call, r.users[i])
		}
	}
	if n := r.count("scontrol"); n != 2 {
		t.Errorf("%d scontrol calls for three submits, want 2 (one cached read)", n)
	}
	// Without a probe account there is no capacity read at all: sbatch decides.
	r2 := &fakeRunner{handlers: capacityHandlers(map[string]func([]string) (string, string, int){
		"sbatch": func([]string) (string, string, int) { return "8\n", "", 0 },
	})}
	c2 := newTestClient(t, r2, nil)
	if _, err := c2.Submit(context.Background(), "mallory", testRequest()); err != nil || r2.count("scontrol") != 0 {
		t.Errorf("no probe: err %v, %d scontrol calls", err, r2.count("scontrol"))
	}
	if _, err := c2.CachedCapacity(context.Background()); !errors.Is(err, ErrNoProbe) {
		t.Errorf("CachedCapacity without probe: %v", err)
	}
}

// TestCachedCapacitySingleflight: concurrent callers during a slow read share one
// read, and no lock is held across it (a caller whose context ends returns at once).
func TestCachedCapacitySingleflight(t *testing.T) {
	release := make(chan struct{})
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){}}
	var mu sync.Mutex
	reads := 0
	slow := capacityHandlers(nil)["scontrol"]
	r.handlers["scontrol"] = func(argv []string) (string, string, int) {
		mu.Lock()
		reads++
		mu.Unlock()
		<-release
		return slow(argv)
	}
	c := newTestClient(t, r, withProbe)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.CachedCapacity(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v, want its deadline", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.CachedCapacity(context.Background())
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if reads != 2 {
		t.Errorf("%d scontrol reads for 21 concurrent callers, want 2 (node + partition, once)", reads)
	}
}

// TestFitsIsTheOneCheck: 0-CPU partitions (no node information) are not checked;
// others refuse what their largest node cannot hold.
func TestFitsIsTheOneCheck(t *testing.T) {
	capy := &Capacity{Partitions: []Partition{
		{Name: "gpu", MaxNodeCPUs: 16, MaxNodeGPUs: 4, MaxNodeMemoryMB: 15000},
		{Name: "future"}, // nodes not registered: 0 CPUs
		{Name: "nomem", MaxNodeCPUs: 16, MaxNodeGPUs: 4}, // nodes report no memory: not checked
	}}
	for _, tc := range []struct {
		part              string
		cpus, gpus, memMB int
		field             string
	}{
		{"gpu", 16, 4, 15000, ""},
		{"gpu", 17, 1, 1, "resources.cpus"},
		{"gpu", 1, 5, 1, "resources.gpus"},
		{"gpu", 1, 1, 15001, "resources.memory_mb"},
		{"future", 64, 8, 1 << 20, ""},
		{"nomem", 16, 4, 1 << 20, ""},
		{"nomem", 17, 1, 1, "resources.cpus"},
		{"nosuch", 1, 0, 1, "resources.partition"},
	} {
		err := capy.Fits(tc.part, 1, tc.cpus, tc.gpus, tc.memMB)
		if tc.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc, err)
			}
			continue
		}
		if job.ErrorCode(err) != job.EUnprocessable || !strings.Contains(job.ErrorMessage(err), tc.field) {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

// TestFreeGPUs: free GPUs count on available nodes only; a job fits when enough
// nodes each have its per-node GPUs free; a partition that is not UP has none.
func TestFreeGPUs(t *testing.T) {
	t.Parallel()
	c := &Capacity{
		Nodes: []Node{{Name: "a", Available: true, GPUs: 4, GPUsAlloc: 1}, {Name: "b", Available: true, GPUs: 4, GPUsAlloc: 2},
			{Name: "c", Available: false, GPUs: 8}, {Name: "d", Available: true, GPUs: 2, GPUsAlloc: 2}},
		Partitions: []Partition{{Name: "gpu", State: "UP", Nodes: []string{"a", "b", "c", "d"}, GPUs: 18, GPUsAlloc: 5},
			{Name: "down", State: "DOWN", Nodes: []string{"a"}, GPUs: 4},
			{Name: "bare", State: "UP", GPUs: 8, GPUsAlloc: 6}},
	}
	for _, tt := range []struct {
		part        string
		nodes, gpus int
		free        int
		fits        bool
	}{
		{"gpu", 1, 3, 5, true},   // a has 3 free
		{"gpu", 1, 4, 5, false},  // c has 8 but is down
		{"gpu", 2, 2, 5, true},   // a and b
		{"gpu", 2, 3, 5, false},  // only a has 3
		{"gpu", 3, 1, 5, false},  // d is full, c down
		{"down", 1, 1, 0, false}, // not UP
		{"bare", 1, 2, 2, true},  // no node details: the partition's totals
		{"bare", 1, 3, 2, false},
		{"nope", 1, 1, 0, false},
	} {
		free, fits := c.FreeGPUs(tt.part, tt.nodes, tt.gpus)
		if free != tt.free || fits != tt.fits {
			t.Errorf("FreeGPUs(%s, %d, %d) = %d %v, want %d %v", tt.part, tt.nodes, tt.gpus, free, fits, tt.free, tt.fits)
		}
	}
}

// TestCachedCapacityStaleWhileReading: a read past its TTL is still answered at once
// while a new read runs in the background (no submission waits for scontrol); once the
// new read is in, it is the answer; past capacityStale a caller waits for a new read;
// FreshCapacity never answers with a stale read.
func TestCachedCapacityStaleWhileReading(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	release := make(chan struct{}, 10)
	reads := 0
	base := capacityHandlers(nil)["scontrol"]
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){
		"scontrol": func(argv []string) (string, string, int) {
			mu.Lock()
			reads++
			n := reads
			mu.Unlock()
			if n > 2 { // every read after the first waits until the test lets it go
				<-release
			}
			return base(argv)
		},
	}}
	c := newTestClient(t, r, func(o *Options) {
		withProbe(o)
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	ctx := context.Background()
	first, err := c.CachedCapacity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	advance(capacityTTL + time.Second)
	stale := make(chan *Capacity, 1)
	go func() { capy, _ := c.CachedCapacity(ctx); stale <- capy }() // answered now, a read starts
	select {
	case got := <-stale:
		if got != first {
			t.Fatalf("stale read: %p, want the cached %p", got, first)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a read past its TTL made the caller wait for scontrol")
	}
	// FreshCapacity must not take the stale answer: it waits for the read in flight.
	fresh := make(chan *Capacity, 1)
	go func() { capy, _ := c.FreshCapacity(ctx); fresh <- capy }()
	select {
	case capy := <-fresh:
		t.Fatalf("FreshCapacity answered %p before the new read finished", capy)
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	release <- struct{}{}
	var newer *Capacity
	select {
	case newer = <-fresh:
	case <-time.After(5 * time.Second):
		t.Fatal("FreshCapacity never answered")
	}
	if newer == nil || newer == first {
		t.Fatalf("FreshCapacity: %p, want the new read", newer)
	}
	if got, _ := c.CachedCapacity(ctx); got != newer {
		t.Errorf("after the background read: %p, want the new read %p", got, newer)
	}

	// Far past its age limit a read is not answered: the caller waits for a new one.
	advance(capacityStale + time.Second)
	waited := make(chan *Capacity, 1)
	go func() { capy, _ := c.CachedCapacity(ctx); waited <- capy }()
	select {
	case capy := <-waited:
		t.Fatalf("a read older than capacityStale answered: %p", capy)
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	release <- struct{}{}
	select {
	case capy := <-waited:
		if capy == nil || capy == newer {
			t.Errorf("after the wait: %p, want a third read", capy)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("CachedCapacity never answered")
	}
	mu.Lock()
	defer mu.Unlock()
	if reads != 6 {
		t.Errorf("%d scontrol calls, want 6 (three reads of node + partition)", reads)
	}
}

// TestFreshCapacityReuseAndReadDeadline: FreshCapacity reuses a read for
// freshCapacityTTL and no longer; a capacity read runs under capacityTimeout, detached
// from its caller.
func TestFreshCapacityReuseAndReadDeadline(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	var deadlines []time.Duration
	base := capacityHandlers(nil)["scontrol"]
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){"scontrol": base}}
	r.onCtx = func(ctx context.Context) {
		d, ok := ctx.Deadline()
		mu.Lock()
		defer mu.Unlock()
		if ok {
			deadlines = append(deadlines, time.Until(d))
		} else {
			deadlines = append(deadlines, -1)
		}
	}
	c := newTestClient(t, r, func(o *Options) {
		withProbe(o)
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	ctx := context.Background() // no deadline of its own
	first, err := c.FreshCapacity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(freshCapacityTTL / 2)
	mu.Unlock()
	if again, _ := c.FreshCapacity(ctx); again != first {
		t.Errorf("FreshCapacity within %s read again", freshCapacityTTL)
	}
	mu.Lock()
	now = now.Add(freshCapacityTTL)
	mu.Unlock()
	if later, _ := c.FreshCapacity(ctx); later == first {
		t.Errorf("FreshCapacity past %s reused the old read", freshCapacityTTL)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deadlines) != 4 {
		t.Fatalf("%d scontrol calls, want 4 (two reads)", len(deadlines))
	}
	for _, d := range deadlines {
		if d <= capacityTimeout/2 || d > capacityTimeout {
			t.Errorf("a capacity read's deadline is %v away, want about %v", d, capacityTimeout)
		}
	}
}
