package slurm

import (
	"context"
	"fmt"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// capacityTTL is how long a capacity read is reused; freshCapacityTTL is that for
// FreshCapacity. capacityStale is how old a read CachedCapacity still answers with
// while a newer one is read in the background: the partition shapes it checks change
// when an admin edits slurm.conf, not between two submissions, so no caller waits
// for scontrol once the first read is done.
const (
	capacityTTL      = 30 * time.Second
	freshCapacityTTL = 2 * time.Second
	capacityStale    = 10 * time.Minute
)

// capacityTimeout bounds one capacity read (two scontrol commands).
const capacityTimeout = 10 * time.Second

// Capacity returns nodes and partitions with CPU, memory and GPU totals and allocations,
// read as user. Only the probe account's reads may decide for other users: use
// CachedCapacity for that.
func (c *Client) Capacity(ctx context.Context, user string) (*Capacity, error) {
	var outs [2]string
	for i, what := range []string{"node", "partition"} {
		out, err := c.query(ctx, user, "scontrol", "show", what, "-o")
		if err != nil {
			return nil, err
		}
		outs[i] = out
	}
	return parseCapacity(outs[0], outs[1])
}

// capFlight is one capacity read in progress; waiters block on done.
type capFlight struct {
	done chan struct{}
	capy *Capacity
	err  error
}

// CachedCapacity returns the cluster's capacity read as the probe account
// (Options.ProbeUser), reused for capacityTTL. Concurrent callers that find it expired
// share one read (no lock is held across the remote call); a failed read is not
// cached. A read older than capacityTTL but younger than capacityStale is returned at
// once while the newer read runs in the background, so only the first caller (or one
// after a long outage of the probe account) waits. Without a probe account it returns
// ErrNoProbe.
func (c *Client) CachedCapacity(ctx context.Context) (*Capacity, error) {
	return c.capacityWithin(ctx, capacityTTL, capacityStale)
}

// FreshCapacity is CachedCapacity reused for 2 s only, and never stale: for decisions
// on what is free right now (a spec's resources.no_wait), where a read 30 s old would
// mislead.
func (c *Client) FreshCapacity(ctx context.Context) (*Capacity, error) {
	return c.capacityWithin(ctx, freshCapacityTTL, freshCapacityTTL)
}

// capacityWithin answers with the cached read when it is younger than ttl; younger
// than stale, it answers with it too but starts a new read; else it waits for one.
func (c *Client) capacityWithin(ctx context.Context, ttl, stale time.Duration) (*Capacity, error) {
	if c.opts.ProbeUser == "" {
		return nil, fmt.Errorf("capacity: %w (set clusters[].probe_user)", ErrNoProbe)
	}
	c.mu.Lock()
	age := c.opts.Now().Sub(c.capAt)
	if c.capCache != nil && age < ttl {
		capy := c.capCache
		c.mu.Unlock()
		return capy, nil
	}
	f := c.capFlight
	if f == nil {
		f = &capFlight{done: make(chan struct{})}
		c.capFlight = f
		go c.readCapacity(f)
	}
	if c.capCache != nil && age < stale {
		capy := c.capCache
		c.mu.Unlock()
		return capy, nil
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.capy, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("capacity: %w", ctx.Err())
	}
}

// readCapacity runs one flight, detached from any caller's context (a caller that
// gives up must not fail the others).
func (c *Client) readCapacity(f *capFlight) {
	ctx, cancel := context.WithTimeout(context.Background(), capacityTimeout)
	defer cancel()
	f.capy, f.err = c.Capacity(ctx, c.opts.ProbeUser)
	c.mu.Lock()
	if f.err == nil {
		c.capCache, c.capAt = f.capy, c.opts.Now()
	}
	c.capFlight = nil
	c.mu.Unlock()
	close(f.done)
}

// Fits refuses with job.EUnprocessable what partition part can never run: more nodes
// than it has or allows per job, more CPUs, GPUs or memory than its largest node has,
// or a partition Slurm does not know. A
// partition whose nodes report 0 CPUs (no node information yet: all nodes FUTURE,
// unknown or not registered) is not checked: it may run the job once nodes register.
// This is the one capacity check (the API calls it before accepting a job; Submit
// calls it again before sbatch).
func (c *Capacity) Fits(part string, nodes, cpus, gpus, memoryMB int) error {
	p, ok := c.Partition(part)
	if !ok {
		return &job.Error{Code: job.EUnprocessable, Message: fmt.Sprintf("resources.partition: Slurm does not know partition %q", part),
			Err: ErrUnknownPartition}
	}
	if n := len(p.Nodes); n > 0 && nodes > n {
		return &job.Error{Code: job.EUnprocessable, Message: fmt.Sprintf("resources.nodes: %d nodes requested, but partition %s has %d", nodes, part, n),
			Err: ErrNodeConfig}
	}
	if p.MaxNodes > 0 && nodes > p.MaxNodes {
		return &job.Error{Code: job.EUnprocessable, Message: fmt.Sprintf("resources.nodes: %d nodes requested, but partition %s allows %d per job", nodes, part, p.MaxNodes),
			Err: ErrNodeConfig}
	}
	if p.MaxNodeCPUs == 0 {
		return nil
	}
	tooBig := func(field string, asked, have int, unit string) error {
		return &job.Error{Code: job.EUnprocessable,
			Message: fmt.Sprintf("resources.%s: %d %s requested, but the largest node in partition %s has %d", field, asked, unit, part, have),
			Err:     ErrNodeConfig}
	}
	switch {
	case cpus > p.MaxNodeCPUs:
		return tooBig("cpus", cpus, p.MaxNodeCPUs, "CPUs")
	case gpus > p.MaxNodeGPUs:
		return tooBig("gpus", gpus, p.MaxNodeGPUs, "GPUs")
	case p.MaxNodeMemoryMB > 0 && memoryMB > p.MaxNodeMemoryMB:
		return tooBig("memory_mb", memoryMB, p.MaxNodeMemoryMB, "MB")
	}
	return nil
}

// FreeGPUs counts the GPUs free now in partition part, on its nodes that can start
// jobs, and reports whether a job of nodes nodes with gpus GPUs each could start now
// as far as GPUs go: that many such nodes each have gpus free. Without node details it
// counts the partition's totals. An unknown partition, or one not UP, has none.
func (c *Capacity) FreeGPUs(part string, nodes, gpus int) (free int, fits bool) {
	p, ok := c.Partition(part)
	if !ok || (p.State != "" && p.State != "UP") {
		return 0, false // a partition that is down starts nothing
	}
	byName := map[string]*Node{}
	for i := range c.Nodes {
		byName[c.Nodes[i].Name] = &c.Nodes[i]
	}
	roomy, counted := 0, 0
	for _, name := range p.Nodes {
		n, ok := byName[name]
		if !ok {
			continue
		}
		counted++
		if !n.Available {
			continue
		}
		f := max(n.GPUs-n.GPUsAlloc, 0)
		free += f
		if f >= gpus {
			roomy++
		}
	}
	if counted == 0 {
		free = max(p.GPUs-p.GPUsAlloc, 0)
		return free, free >= nodes*gpus
	}
	return free, roomy >= max(nodes, 1)
}
