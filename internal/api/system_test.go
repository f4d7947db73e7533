package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
)

// statusStore is memStore with the reconciler's last passes and job counts set by the
// test.
type statusStore struct {
	*memStore
	runs   map[string]postgres.Run
	counts []postgres.StateCount
}

func (s statusStore) Runs(context.Context) (map[string]postgres.Run, error) { return s.runs, nil }

func (s statusStore) CountByState(context.Context) ([]postgres.StateCount, error) {
	return s.counts, nil
}

// TestSystemStatusDegraded: /api/system/status marks a cluster degraded when its last
// reconciler pass failed (slurmctld down) or its capacity is unavailable, and only that
// cluster; a healthy cluster is not degraded and shows its allowed partitions.
func TestSystemStatusDegraded(t *testing.T) {
	t.Parallel()
	ranAt := time.Now().Add(-30 * time.Second).UTC().Truncate(time.Millisecond)
	const ctldDown = "squeue: slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
	type want struct {
		degraded   bool
		reconErr   string
		capErr     string // substring; "" none
		partitions int
		queued     int
	}
	tests := []struct {
		name    string
		runs    map[string]postgres.Run
		capErr  error           // capacity error of cluster "dev"
		noSlurm bool            // cluster "dev" has no Slurm client
		want    map[string]want // by cluster: "dev" and "other" (always healthy)
		counts  map[string]int  // queued jobs by cluster
		extra   func(*testing.T, map[string]client.ClusterStatus)
	}{
		{
			name: "healthy",
			runs: map[string]postgres.Run{"dev": {At: ranAt}, "other": {At: ranAt}},
			want: map[string]want{"dev": {partitions: 1}, "other": {partitions: 1}},
			extra: func(t *testing.T, cs map[string]client.ClusterStatus) {
				d := cs["dev"]
				if d.ReconcilerLastRun == nil || !d.ReconcilerLastRun.Equal(ranAt) || d.ReconcilerLagSeconds == nil || *d.ReconcilerLagSeconds < 29 {
					t.Errorf("reconciler run %v lag %v; want %v and about 30 s", d.ReconcilerLastRun, d.ReconcilerLagSeconds, ranAt)
				}
				p := d.Partitions[0]
				if p.Name != "gpu" || p.GPUsTotal != 4 || p.GPUsAllocated != 1 || p.GPUsFree != 3 || p.MaxNodeGPUs != 4 || p.State != "UP" {
					t.Errorf("partition %+v", p)
				}
			},
		},
		{
			name: "reconciler pass failed",
			runs: map[string]postgres.Run{"dev": {At: ranAt, Error: ctldDown}, "other": {At: ranAt}},
			want: map[string]want{"dev": {degraded: true, reconErr: ctldDown, partitions: 1}, "other": {partitions: 1}},
		},
		{
			name:   "capacity unavailable",
			runs:   map[string]postgres.Run{"dev": {At: ranAt}, "other": {At: ranAt}},
			capErr: job.Errorf(job.EUnavailable, "cluster dev: scontrol show node: controller unreachable"),
			want:   map[string]want{"dev": {degraded: true, capErr: "controller unreachable"}, "other": {partitions: 1}},
		},
		{
			name:   "both failing",
			runs:   map[string]postgres.Run{"dev": {At: ranAt, Error: ctldDown}},
			capErr: job.Errorf(job.EUnavailable, "controller unreachable"),
			want:   map[string]want{"dev": {degraded: true, reconErr: ctldDown, capErr: "controller unreachable"}, "other": {partitions: 1}},
		},
		{
			// A capacity error that is not an outage (e.g. output the gateway cannot
			// parse) is shown but does not mark the cluster degraded.
			name:   "capacity error that is no outage",
			runs:   map[string]postgres.Run{"dev": {At: ranAt}},
			capErr: errors.New("parse scontrol output: unexpected line"),
			want:   map[string]want{"dev": {capErr: "internal"}, "other": {partitions: 1}},
		},
		{
			name:    "no Slurm client",
			noSlurm: true,
			want:    map[string]want{"dev": {capErr: "no Slurm client"}, "other": {partitions: 1}},
			extra: func(t *testing.T, cs map[string]client.ClusterStatus) {
				if cs["dev"].ReconcilerLastRun != nil {
					t.Errorf("no run recorded, but reconciler_last_run is %v", cs["dev"].ReconcilerLastRun)
				}
			},
		},
		{
			name:   "job counts per cluster",
			runs:   map[string]postgres.Run{"other": {At: ranAt, Error: ctldDown}},
			counts: map[string]int{"dev": 2, "other": 5},
			want:   map[string]want{"dev": {partitions: 1, queued: 2}, "other": {degraded: true, reconErr: ctldDown, partitions: 1, queued: 5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := statusStore{memStore: newMemStore(), runs: tt.runs}
			for cl, n := range tt.counts {
				st.counts = append(st.counts, postgres.StateCount{Cluster: cl, State: job.Queued, N: n})
			}
			dev, other := newFakeSlurm(), newFakeSlurm()
			dev.capErr = tt.capErr
			clusters := []*Cluster{
				{Config: config.Cluster{Name: "dev", JobRoot: "/jobs", Partitions: []string{"gpu"}, DefaultPartition: "gpu"}, Slurm: dev, Files: dev},
				{Config: config.Cluster{Name: "other", JobRoot: "/jobs", Partitions: []string{"urgent"}, DefaultPartition: "urgent"}, Slurm: other, Files: other},
			}
			if tt.noSlurm {
				clusters[0].Slurm = nil
			}
			srv := &Server{Auth: tokenAuth{}, Store: st, Version: "test", Clusters: clusters}
			req := httptest.NewRequest("GET", "/api/system/status", nil)
			req.Header.Set("Authorization", "Bearer alice")
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var sys client.SystemStatus
			if err := json.Unmarshal(rec.Body.Bytes(), &sys); err != nil {
				t.Fatal(err)
			}
			var raw struct {
				Clusters []map[string]any `json:"clusters"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &raw)
			if len(sys.Clusters) != 2 || len(raw.Clusters) != 2 {
				t.Fatalf("clusters: %s", rec.Body)
			}
			got := map[string]client.ClusterStatus{}
			for i, cs := range sys.Clusters {
				got[cs.Name] = cs
				if _, ok := raw.Clusters[i]["degraded"].(bool); !ok {
					t.Errorf("cluster %s: no degraded field in %v", cs.Name, raw.Clusters[i])
				}
			}
			for name, w := range tt.want {
				cs := got[name]
				if cs.Degraded != w.degraded {
					t.Errorf("%s: degraded %v, want %v (%+v)", name, cs.Degraded, w.degraded, cs)
				}
				if cs.ReconcilerError != w.reconErr {
					t.Errorf("%s: reconciler_error %q, want %q", name, cs.ReconcilerError, w.reconErr)
				}
				if (w.capErr == "") != (cs.CapacityError == "") || !strings.Contains(cs.CapacityError, w.capErr) {
					t.Errorf("%s: capacity_error %q, want %q", name, cs.CapacityError, w.capErr)
				}
				if len(cs.Partitions) != w.partitions {
					t.Errorf("%s: partitions %+v, want %d", name, cs.Partitions, w.partitions)
				}
				if cs.Jobs[string(job.Queued)] != w.queued || len(cs.Jobs) != len(job.States) {
					t.Errorf("%s: jobs %v, want %d queued and every state", name, cs.Jobs, w.queued)
				}
			}
			if tt.extra != nil {
				tt.extra(t, got)
			}
		})
	}
}
