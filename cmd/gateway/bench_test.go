package main

import (
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkSubmitLatency measures, on the real stack, the time from POST
// /api/training/execute to the job being queued in Slurm (202, submitter claim, SSH
// mkdir + job.json + job.sbatch over SFTP, sbatch) and reports p50/p90. Each job is
// cancelled once queued.
func BenchmarkSubmitLatency(b *testing.B) {
	e := startE2E(b)
	spec := e.spec(2000, 0)
	spec["resources"].(map[string]any)["cpus"] = 16
	var accept, queued []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		code, m := e.do("POST", "/api/training/execute", spec)
		if code != http.StatusAccepted {
			b.Fatalf("execute: %d %v", code, m)
		}
		accept = append(accept, time.Since(start))
		id := m["id"].(string)
		for {
			_, m = e.do("GET", "/api/training/status/"+id, nil)
			if m["state"] != "submitting" {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("job %s still submitting after a minute", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
		queued = append(queued, time.Since(start))
		e.do("POST", "/api/training/cancel/"+id, nil)
	}
	b.StopTimer()
	pct := func(ds []time.Duration, p float64) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[int(p*float64(len(s)-1))]
	}
	b.ReportMetric(float64(pct(accept, 0.5).Microseconds())/1000, "accept-p50-ms")
	b.ReportMetric(float64(pct(queued, 0.5).Microseconds())/1000, "queued-p50-ms")
	b.ReportMetric(float64(pct(queued, 0.9).Microseconds())/1000, "queued-p90-ms")
}
