package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
	"github.com/ftgate/ftgate/internal/wiring"
)

// secondCluster returns the stack's second cluster from the gateway config (dev/stack
// writes two: dev and dev2, separate controllers behind the same login sshd).
func secondCluster(t testing.TB, st *stacktest.Stack, cfg *config.Config) *config.Cluster {
	t.Helper()
	name := st.Env["STACK_CLUSTER2"]
	cl, ok := cfg.Cluster(name)
	if name == "" || !ok || len(cfg.Clusters) < 2 {
		t.Fatalf("the stack's gateway config has no second cluster %q (%d clusters): run dev/stack up", name, len(cfg.Clusters))
	}
	return cl
}

// TestIntegrationTwoClusters runs one job on each of the stack's two Slurm clusters
// through one gateway: each lands in its own cluster's Slurm (the second one's job is
// unknown to the first's controller), both succeed, and system status lists both
// clusters with their own partitions and GPUs.
func TestIntegrationTwoClusters(t *testing.T) {
	st := stacktest.Require(t)
	e := startE2E(t, func(c *config.Config) {
		for i := range c.Clusters {
			c.Clusters[i].PollInterval = 500 * time.Millisecond
		}
	})
	cl2 := secondCluster(t, st, e.cfg)

	first := e.execute(20, 1)
	spec := e.spec(20, 1)
	spec["resources"].(map[string]any)["cluster"] = cl2.Name
	code, m := e.do("POST", "/api/training/execute", spec)
	if code != http.StatusAccepted || m["cluster"] != cl2.Name {
		t.Fatalf("execute on %s: %d %v", cl2.Name, code, m)
	}
	second := m["id"].(string)

	a := e.wait(first, 3*time.Minute, "succeeded", stateIs("succeeded"))
	b := e.wait(second, 3*time.Minute, "succeeded", stateIs("succeeded"))
	if a["cluster"] != e.cfg.Clusters[0].Name || b["cluster"] != cl2.Name {
		t.Fatalf("clusters: first job on %v, second on %v", a["cluster"], b["cluster"])
	}

	// Each Slurm id belongs to its own cluster: the second cluster's controller knows
	// the second job as alice's and finished.
	scfg, err := wiring.SSHConfig(cl2)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := sshconn.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	sc2, err := slurm.New(sp, wiring.SlurmOptions(cl2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id2 := b["slurm_id"].(string)
	got, err := sc2.Poll(ctx, "alice", []string{id2})
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := got[id2]; !ok || s.User != "alice" || s.State != slurm.StateCompleted {
		t.Fatalf("cluster %s's Slurm job %s: %+v (found %v)", cl2.Name, id2, s, ok)
	}

	code, sys := e.do("GET", "/api/system/status", nil)
	if code != 200 {
		t.Fatalf("system status: %d %v", code, sys)
	}
	parts := map[string][]string{}
	gpus := map[string]float64{}
	for _, c := range sys["clusters"].([]any) {
		c := c.(map[string]any)
		name := c["name"].(string)
		for _, p := range c["partitions"].([]any) {
			p := p.(map[string]any)
			parts[name] = append(parts[name], p["name"].(string))
			gpus[name] += p["gpus_total"].(float64)
		}
	}
	if len(parts) != 2 || len(parts[cl2.Name]) != 1 || parts[cl2.Name][0] != cl2.DefaultPartition || gpus[cl2.Name] != 2 {
		t.Fatalf("system status clusters: partitions %v, GPUs %v; want both clusters, %s with its one partition and 2 GPUs", parts, gpus, cl2.Name)
	}
	t.Logf("two clusters: %v, GPUs %v; jobs %s (Slurm %v) and %s (Slurm %s on %s)", parts, gpus, first, a["slurm_id"], second, id2, cl2.Name)
}
