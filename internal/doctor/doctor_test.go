package doctor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
)

func TestInvalidConfigIsOneFailedLine(t *testing.T) {
	f := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(f, []byte("database: {url: postgres://x}\noidc: {issuer: http://127.0.0.1:1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rs := Run(context.Background(), Options{ConfigPath: f, Out: &out})
	if len(rs) != 1 || rs[0].Status != Fail || rs[0].Name != "config" || Failed(rs) != 1 {
		t.Fatalf("results %+v", rs)
	}
	line := strings.TrimSpace(out.String())
	if strings.Count(line, "\n") != 0 || !strings.HasPrefix(line, "FAIL config: ") ||
		!strings.Contains(line, "oidc.audiences") || !strings.Contains(line, "fix: ") {
		t.Errorf("printed %q", line)
	}
}

func TestParseSlurmTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"UNLIMITED", 0, false},
		{"INFINITE", 0, false},
		{"30", 30 * time.Minute, false},
		{"30:15", 30*time.Minute + 15*time.Second, false},
		{"02:00:00", 2 * time.Hour, false},
		{"1-00:00:00", 24 * time.Hour, false},
		{"2-12", 2*24*time.Hour + 12*time.Hour, false},
		{"1-02:30", 24*time.Hour + 2*time.Hour + 30*time.Minute, false},
		{"x", 0, true},
		{"1:2:3:4", 0, true},
	} {
		got, err := parseSlurmTime(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parseSlurmTime(%q) = %v, %v; want %v (bad %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestSignalLeadAgainstPartitionLimits(t *testing.T) {
	lim, err := parsePartitionLimits("PartitionName=gpu AllowGroups=ALL MaxTime=UNLIMITED State=UP\n" +
		"PartitionName=short MaxTime=00:03:00 DefaultTime=NONE\nPartitionName=day MaxTime=1-00:00:00\n")
	if err != nil {
		t.Fatal(err)
	}
	if lim["short"].MaxTime != 3*time.Minute || lim["gpu"].MaxTime != 0 || lim["day"].MaxTime != 24*time.Hour {
		t.Fatalf("limits %+v", lim)
	}
	c := testCluster([]string{"gpu", "day"}, 90*time.Second)
	if r := c.signalLead(lim, nil); r.Status != OK {
		t.Errorf("gpu+day: %v", r)
	}
	c = testCluster([]string{"gpu", "short"}, 2*time.Minute)
	if r := c.signalLead(lim, nil); r.Status != Fail || !strings.Contains(r.Detail, "short") || strings.Contains(r.Detail, "gpu (") {
		t.Errorf("short: %v", r)
	}
	c = testCluster([]string{"missing"}, time.Minute)
	if r := c.signalLead(lim, nil); r.Status != Skip {
		t.Errorf("missing: %v", r)
	}
}

func testCluster(parts []string, lead time.Duration) *clusterCheck {
	return &clusterCheck{r: &run{}, cl: &config.Cluster{Name: "c", Partitions: parts, SignalLead: lead}, user: "alice"}
}
