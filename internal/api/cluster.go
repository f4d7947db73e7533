package api

import (
	"context"
	"sync"
	"time"

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
	Capacity(ctx context.Context, user string) (*slurm.Capacity, error)
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

	capMu   sync.Mutex
	cap     *slurm.Capacity
	capTime time.Time
}

const capacityTTL = 30 * time.Second

// capacity returns the cluster's capacity, cached for capacityTTL, read as user.
func (c *Cluster) capacity(ctx context.Context, user string) (*slurm.Capacity, error) {
	c.capMu.Lock()
	defer c.capMu.Unlock()
	if c.cap != nil && time.Since(c.capTime) < capacityTTL {
		return c.cap, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	capa, err := c.Slurm.Capacity(ctx, user)
	if err != nil {
		return nil, err
	}
	c.cap, c.capTime = capa, time.Now()
	return capa, nil
}

func (s *Server) cluster(name string) (*Cluster, bool) {
	for _, c := range s.Clusters {
		if c.Config.Name == name {
			return c, true
		}
	}
	return nil, false
}

// checkCapacity refuses requests no node of the partition can ever run.
func checkCapacity(c *slurm.Capacity, r job.Resources) error {
	for _, p := range c.Partitions {
		if p.Name != r.Partition {
			continue
		}
		if n := len(p.Nodes); n > 0 && r.Nodes > n {
			return job.Errorf(job.EUnprocessable, "invalid spec: resources.nodes: %d nodes requested, but partition %s has %d", r.Nodes, p.Name, n)
		}
		if p.MaxNodes > 0 && r.Nodes > p.MaxNodes {
			return job.Errorf(job.EUnprocessable, "invalid spec: resources.nodes: %d nodes requested, but partition %s allows %d per job", r.Nodes, p.Name, p.MaxNodes)
		}
		if r.GPUs > p.MaxNodeGPUs {
			return job.Errorf(job.EUnprocessable, "invalid spec: resources.gpus: %d GPUs requested, but the largest node in partition %s has %d", r.GPUs, p.Name, p.MaxNodeGPUs)
		}
		if p.MaxNodeCPUs > 0 && r.CPUs > p.MaxNodeCPUs {
			return job.Errorf(job.EUnprocessable, "invalid spec: resources.cpus: %d CPUs requested, but the largest node in partition %s has %d", r.CPUs, p.Name, p.MaxNodeCPUs)
		}
		if p.MaxNodeMemoryMB > 0 && r.MemoryMB > p.MaxNodeMemoryMB {
			return job.Errorf(job.EUnprocessable, "invalid spec: resources.memory_mb: %d MB requested, but the largest node in partition %s has %d MB", r.MemoryMB, p.Name, p.MaxNodeMemoryMB)
		}
		return nil
	}
	return job.Errorf(job.EUnprocessable, "invalid spec: resources.partition: Slurm does not know partition %q", r.Partition)
}

// jobs returns the job operations over the server's store and clusters.
func (s *Server) jobs() *jobsvc.Service {
	return &jobsvc.Service{Store: s.Store, Cluster: s.opsCluster, MaxActivePerUser: s.MaxActivePerUser,
		Kick: s.Kick, Transitioned: s.countTransition, Log: s.logger()}
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
