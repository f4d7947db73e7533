package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/slurm"
)

// tokenAuth is a test Authenticator: "Bearer <user>" is that user; "admin" is an admin.
type tokenAuth struct{}

func (tokenAuth) Authenticate(r *http.Request) (job.Identity, error) {
	name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || name == "" || name == "bad" {
		return job.Identity{}, job.Errorf(job.EUnauthorized, "missing or invalid bearer token")
	}
	return job.Identity{Subject: "sub-" + name, Username: name, Admin: name == "admin"}, nil
}

// fakeSlurm records calls and answers from its fields.
type fakeSlurm struct {
	mu       sync.Mutex
	calls    []string
	files    map[string]string
	status   map[string]slurm.Status
	fail     map[string]error // by method name
	capErr   error
	capacity *slurm.Capacity // FreshCapacity's answer when set
	maxGPUs  int
	nextID   int
	rendered int
}

func newFakeSlurm() *fakeSlurm {
	return &fakeSlurm{files: map[string]string{}, status: map[string]slurm.Status{}, fail: map[string]error{}, maxGPUs: 4, nextID: 100}
}

func (f *fakeSlurm) record(method, user, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %s %s", method, user, id))
	return f.fail[method]
}

func (f *fakeSlurm) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, "; ")
}

func (f *fakeSlurm) Render(req slurm.Request) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rendered++
	return fmt.Sprintf("#!/bin/bash\n#SBATCH --job-name=%s\n#SBATCH --partition=%s\n#SBATCH --gres=gpu:%d\n", slurm.Tag(req.JobID), req.Partition, req.GPUs), f.fail["Render"]
}
func (f *fakeSlurm) Cancel(ctx context.Context, user, id string) error {
	return f.record("Cancel", user, id)
}
func (f *fakeSlurm) Signal(ctx context.Context, user, id string) error {
	return f.record("Signal", user, id)
}
func (f *fakeSlurm) Hold(ctx context.Context, user, id string) error {
	return f.record("Hold", user, id)
}
func (f *fakeSlurm) Release(ctx context.Context, user, id string) error {
	return f.record("Release", user, id)
}
func (f *fakeSlurm) Poll(ctx context.Context, user string, ids []string) (map[string]slurm.Status, error) {
	if err := f.record("Poll", user, strings.Join(ids, ",")); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]slurm.Status{}
	for _, id := range ids {
		if st, ok := f.status[id]; ok {
			out[id] = st
		}
	}
	return out, nil
}
func (f *fakeSlurm) FreshCapacity(ctx context.Context) (*slurm.Capacity, error) {
	f.mu.Lock()
	capa := f.capacity
	f.mu.Unlock()
	if capa != nil || f.capErr != nil {
		return capa, f.capErr
	}
	return f.CachedCapacity(ctx)
}
func (f *fakeSlurm) CachedCapacity(ctx context.Context) (*slurm.Capacity, error) {
	if f.capErr != nil {
		return nil, f.capErr
	}
	return &slurm.Capacity{Partitions: []slurm.Partition{
		{Name: "gpu", State: "UP", GPUs: 4, GPUsAlloc: 1, MaxNodeGPUs: f.maxGPUs, MaxNodeCPUs: 16, MaxNodeMemoryMB: 16000},
		{Name: "urgent", State: "UP", GPUs: 4, GPUsAlloc: 1, MaxNodeGPUs: f.maxGPUs, MaxNodeCPUs: 16, MaxNodeMemoryMB: 16000},
	}}, nil
}
func (f *fakeSlurm) WriteFile(ctx context.Context, user, path string, data []byte, perm os.FileMode) error {
	if err := f.record("WriteFile", user, path); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = string(data)
	return nil
}
