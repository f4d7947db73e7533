package api

import (
	"context"

	"github.com/ftgate/ftgate/internal/artifact"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/jobsvc"
	"github.com/ftgate/ftgate/internal/slurm"
)

// Slurm is the per-cluster Slurm control the handlers use (the job operations' and
// rendering and capacity); *slurm.Client implements it.
type Slurm interface {
	jobsvc.Slurm
	Render(req slurm.Request) (string, error)
	// CachedCapacity is the cluster's capacity read as the probe account (cached,
	// one read at a time); the one capacity check is slurm.Capacity.Fits.
	CachedCapacity(ctx context.Context) (*slurm.Capacity, error)
	// FreshCapacity is CachedCapacity reused for seconds only (resources.no_wait).
	FreshCapacity(ctx context.Context) (*slurm.Capacity, error)
}

// Files writes files in job directories; *sshconn.Pool implements it.
type Files = jobsvc.Files

// Cluster is one configured cluster with its Slurm and file access.
type Cluster struct {
	Config config.Cluster
	Slurm  Slurm
	Files  Files
	// Ping checks SSH and `scontrol ping` (for /ready); nil reports the cluster unchecked.
	Ping func(ctx context.Context) error
}

func (s *Server) cluster(name string) (*Cluster, bool) {
	for _, c := range s.Clusters {
		if c.Config.Name == name {
			return c, true
		}
	}
	return nil, false
}

// jobs returns the job operations over the server's store and clusters.
func (s *Server) jobs() *jobsvc.Service {
	return &jobsvc.Service{Store: s.Store, Cluster: s.opsCluster, Limits: s.Limits.For,
		Submitter: s.Submitter, Transitioned: s.countTransition, Log: s.logger()}
}

func (s *Server) countTransition(from, to job.State) {
	if s.Metrics != nil {
		s.Metrics.Transitions.WithLabelValues(string(from), string(to)).Inc()
	}
}

// opsCluster is a cluster as the job operations see it.
func (s *Server) opsCluster(name string) (*jobsvc.Cluster, error) {
	cl, ok := s.cluster(name)
	if !ok {
		return nil, job.Errorf(job.EUnavailable, "cluster %s is not configured on this gateway", name)
	}
	out := &jobsvc.Cluster{Dir: func(j job.Job) (jobsvc.Purger, error) {
		d, err := s.jobDir(j)
		if err != nil {
			return nil, err
		}
		return d, nil
	}}
	if cl.Slurm != nil {
		out.Slurm = cl.Slurm
		if cl.Config.ProbeUser != "" {
			out.Capacity = cl.Slurm.FreshCapacity
		}
	}
	if cl.Files != nil {
		out.Files = cl.Files
	}
	return out, nil
}

// jobDir returns the job's directory on its cluster. The cluster's file access
// (Cluster.Files, an *sshconn.Pool in the gateway) must also implement artifact.FS.
func (s *Server) jobDir(j job.Job) (*artifact.Dir, error) {
	cl, ok := s.cluster(j.Cluster)
	if !ok {
		return nil, job.Errorf(job.EUnavailable, "cluster %s is not configured on this gateway", j.Cluster)
	}
	fsys, ok := cl.Files.(artifact.FS)
	if !ok {
		return nil, job.Errorf(job.EUnavailable, "artifact access is not configured for cluster %s", j.Cluster)
	}
	return artifact.ForJob(fsys, cl.Config.JobRoot, j)
}
