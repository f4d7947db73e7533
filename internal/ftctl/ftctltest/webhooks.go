package ftctltest

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ftgate/ftgate/internal/deliver"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/webhook"
)

// MemWebhooks implements api.WebhookStore in memory; lists are newest first, paged
// by index.
type MemWebhooks struct {
	mu         sync.Mutex
	endpoints  []webhook.Endpoint // oldest first
	deliveries map[string][]webhook.Delivery
	next       int
}

func newMemWebhooks() *MemWebhooks { return &MemWebhooks{deliveries: map[string][]webhook.Delivery{}} }

// WebhookID is the id MemWebhooks gives its n-th endpoint (1-based).
func WebhookID(n int) string { return "00000000-0000-4000-8000-" + leftPad(strconv.Itoa(n), 12) }

func leftPad(s string, n int) string {
	for len(s) < n {
		s = "0" + s
	}
	return s
}

func (m *MemWebhooks) CreateEndpoint(ctx context.Context, e webhook.Endpoint, max int) (webhook.Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, x := range m.endpoints {
		if x.OwnerSubject == e.OwnerSubject {
			n++
		}
	}
	if max > 0 && n >= max {
		return webhook.Endpoint{}, job.Errorf(job.ETooMany, "you have %d webhook endpoints, the limit is %d", n, max)
	}
	m.next++
	e.ID, e.CreatedAt = WebhookID(m.next), T0.Add(time.Duration(m.next)*time.Second-time.Hour)
	m.endpoints = append(m.endpoints, e)
	return e, nil
}

func (m *MemWebhooks) Endpoint(ctx context.Context, id string) (webhook.Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.endpoints {
		if e.ID == id {
			e.Secret = ""
			return e, nil
		}
	}
	return webhook.Endpoint{}, job.Errorf(job.ENotFound, "webhook %s not found", id)
}

// page returns items[cursor:cursor+limit] and the next cursor.
func page[T any](items []T, cursor string, limit int) ([]T, string, error) {
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", job.Errorf(job.EInvalid, "cursor: not a cursor of this list")
		}
		start = n
	}
	end := min(len(items), start+limit)
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

func (m *MemWebhooks) Endpoints(ctx context.Context, owner, cursor string, limit int) ([]webhook.Endpoint, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var own []webhook.Endpoint
	for _, e := range slices.Backward(m.endpoints) {
		if e.OwnerSubject == owner {
			e.Secret = ""
			own = append(own, e)
		}
	}
	return page(own, cursor, limit)
}

func (m *MemWebhooks) DeleteEndpoint(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.endpoints, func(e webhook.Endpoint) bool { return e.ID == id })
	if i < 0 {
		return job.Errorf(job.ENotFound, "webhook %s not found", id)
	}
	m.endpoints = slices.Delete(m.endpoints, i, i+1)
	delete(m.deliveries, id)
	return nil
}

func (m *MemWebhooks) Deliveries(ctx context.Context, endpointID, cursor string, limit int) ([]webhook.Delivery, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return page(m.deliveries[endpointID], cursor, limit)
}

// AddDelivery appends d to its endpoint's log (give them newest first).
func (m *MemWebhooks) AddDelivery(d webhook.Delivery) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deliveries[d.EndpointID] = append(m.deliveries[d.EndpointID], d)
}

// webhookGuard allows 127.0.0.1 and resolves hooks.example.edu to a public address
// (no DNS in tests).
func webhookGuard() *deliver.Guard {
	p, err := webhook.ParsePolicy([]string{"127.0.0.1"}, false)
	if err != nil {
		panic(err)
	}
	return &deliver.Guard{Policy: p, Resolver: fakeResolver{"hooks.example.edu": netip.MustParseAddr("8.8.8.8")}}
}

type fakeResolver map[string]netip.Addr

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
