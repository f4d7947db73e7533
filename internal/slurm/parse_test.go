package slurm

import (
	"strings"
	"testing"
	"time"
)

func TestParseSqueueCaptured(t *testing.T) {
	rows, err := parseSqueue(capture("squeue-poll.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Status{}
	for _, r := range rows {
		got[r.id] = r.st
	}
	for _, tc := range []struct {
		id       string
		state    State
		reason   string
		code     int
		sig      int
		restarts int
		held     bool
		rqHeld   bool
	}{
		{"9", StateCompleted, "None", 0, 0, 0, false, false},
		{"10", StateFailed, "NonZeroExitCode", 3, 0, 0, false, false},
		{"11", StateFailed, "JobLaunchFailure", 0, 11, 0, false, false},
		{"12", StateCancelled, "None", 0, 15, 0, false, false},
		{"13", StateCancelled, "PartitionConfig", 0, 0, 0, false, false},
		{"16", StateTimeout, "TimeLimit", 0, 15, 0, false, false},
		{"17_0", StateCompleted, "None", 0, 0, 0, false, false},
		{"17_1", StateCompleted, "None", 0, 0, 0, false, false},
		{"18", StateCancelled, "None", 0, 15, 1, false, false},
		{"22", StatePending, "JobHeldUser", 0, 0, 0, true, false},
		{"24", StatePending, "job requeued in held state", 0, 0, 1, true, true},
		{"25_[0-3]", StatePending, "JobHeldUser", 0, 0, 0, true, false},
		{"26", StatePending, "PartitionConfig", 0, 0, 0, false, false},
		{"23", StateRunning, "None", 0, 0, 0, false, false},
		{"21", StateCompleted, "None", 0, 0, 0, false, false},
	} {
		s, ok := got[tc.id]
		if !ok {
			t.Errorf("%s: missing; have %v", tc.id, keys(got))
			continue
		}
		if s.State != tc.state || s.Reason != tc.reason || s.ExitCode != tc.code || s.ExitSignal != tc.sig ||
			s.Restarts != tc.restarts || s.Held != tc.held || s.RequeuedHeld != tc.rqHeld {
			t.Errorf("%s: got %+v", tc.id, s)
		}
	}
	if s := got["23"]; s.Start.IsZero() || s.NodeList != "vm" || s.Partition != "gpu" || s.Source != "squeue" {
		t.Errorf("running job details: %+v", s)
	}
	if s := got["22"]; !s.Start.IsZero() {
		t.Errorf("N/A start parsed as %v", s.Start)
	}
	if got["21"].Partition != "urgent" {
		t.Errorf("21 partition %q", got["21"].Partition)
	}
}

func keys(m map[string]Status) []string {
	var k []string
	for id := range m {
		k = append(k, id)
	}
	return k
}

func TestParseSacctCapturedWithDuplicates(t *testing.T) {
	rows, err := parseSacct(capture("sacct-final.txt"))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string][]row{}
	for _, r := range rows {
		byID[r.id] = append(byID[r.id], r)
	}
	for _, tc := range []struct {
		id       string
		state    State
		by       string
		code     int
		sig      int
		restarts int
		runs     []State
	}{
		{"9", StateCompleted, "", 0, 0, 0, nil},
		{"10", StateFailed, "", 3, 0, 0, nil},
		{"11", StateFailed, "", 0, 11, 0, nil},
		{"12", StateCancelled, "1001", 0, 0, 0, nil},
		{"13", StateCancelled, "1001", 0, 0, 0, nil},
		{"15", StateCompleted, "", 0, 0, 1, []State{StateRequeued}},
		{"16", StateTimeout, "", 0, 0, 0, nil},
		{"18", StateCancelled, "1001", 0, 0, 1, []State{StatePreempted}},
		{"19", StateCancelled, "1001", 0, 0, 1, []State{StateRequeued}},
		{"17_0", StateCompleted, "", 0, 0, 0, nil},
	} {
		g := byID[tc.id]
		if len(g) == 0 {
			t.Errorf("%s missing", tc.id)
			continue
		}
		s := mergeRuns(g)
		if s.State != tc.state || s.CancelledBy != tc.by || s.ExitCode != tc.code || s.ExitSignal != tc.sig || s.Restarts != tc.restarts {
			t.Errorf("%s: got %+v", tc.id, s)
		}
		var runs []State
		for _, r := range s.Runs {
			runs = append(runs, r.State)
		}
		if strings.Join(stateStrings(runs), ",") != strings.Join(stateStrings(tc.runs), ",") {
			t.Errorf("%s: runs %v, want %v", tc.id, runs, tc.runs)
		}
	}
	if r := byID["17_0"][0]; r.raw != "20" || r.user != "alice" {
		t.Errorf("array row raw/user: %+v", r)
	}
	if s := mergeRuns(byID["13"]); s.NodeList != "" || !s.Start.IsZero() {
		t.Errorf("pending-cancelled: nodelist %q start %v", s.NodeList, s.Start)
	}
}

func stateStrings(s []State) []string {
	var out []string
	for _, x := range s {
		out = append(out, string(x))
	}
	return out
}

func TestParseSacctPlaceholderAndStates(t *testing.T) {
	// The first line is the placeholder row sacct shows in its first seconds (notes §7);
	// the rest cover states the local cluster cannot produce (OUT_OF_MEMORY needs cgroups).
	out := strings.Join([]string{
		"30|30|allocation||root|PENDING|0:0|2026-11-29T14:00:00|Unknown|vm|None",
		"31|31|ftgate-a|gpu|alice|OUT_OF_MEMORY|0:125|2026-11-29T14:00:00|2026-11-29T14:01:00|vm|None",
		"32|32|ftgate-b|gpu|alice|NODE_FAIL|0:0|2026-11-29T14:00:00|2026-11-29T14:01:00|vm|None",
		"33|33|ftgate-c|gpu|alice|BOOT_FAIL|0:0|2026-11-29T14:00:00|2026-11-29T14:01:00|vm|None",
		"34|34|ftgate-d|gpu|alice|DEADLINE|0:0|2026-11-29T14:00:00|2026-11-29T14:01:00|vm|None",
		"35|35|ftgate-e|gpu|alice|COMPLETING|0:0|2026-11-29T14:00:00|Unknown|vm|None",
		"36|36|ftgate-f|gpu|alice|CANCELLED by 0|0:0|2026-11-29T14:00:00|2026-11-29T14:01:00|vm|None",
		"37|37|ftgate-g|gpu|alice|REQUEUED|0:0|2026-11-29T14:00:00|2026-11-29T14:01:00|vm|None",
		"",
	}, "\n")
	rows, err := parseSacct(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 || rows[0].id != "31" {
		t.Fatalf("placeholder not dropped: %d rows, first %q", len(rows), rows[0].id)
	}
	want := []State{StateOutOfMemory, StateNodeFail, StateBootFail, StateDeadline, StateCompleting, StateCancelled, StateRequeued}
	terminal := []bool{true, true, true, true, false, true, false}
	for i, r := range rows {
		if r.st.State != want[i] || r.st.State.Terminal() != terminal[i] {
			t.Errorf("row %d: %s terminal=%v", i, r.st.State, r.st.State.Terminal())
		}
	}
	if rows[0].st.ExitSignal != 125 || rows[5].st.CancelledBy != "0" {
		t.Errorf("exit/cancel parse: %+v %+v", rows[0].st, rows[5].st)
	}
	if _, err := parseSacct("1|1|x|gpu|alice|FAILED|bad|N/A|N/A|vm|None"); err == nil {
		t.Error("bad exit code accepted")
	}
	if _, err := parseSacct("1|2|3"); err == nil {
		t.Error("short line accepted")
	}
}

func TestParseTimes(t *testing.T) {
	for _, s := range []string{"N/A", "NONE", "Unknown", "None", "", "garbage"} {
		if !parseTime(s).IsZero() {
			t.Errorf("%q parsed", s)
		}
	}
	want := time.Date(2026, 11, 29, 14, 17, 4, 0, time.Local)
	if got := parseTime("2026-11-29T14:17:04"); !got.Equal(want) {
		t.Errorf("got %v", got)
	}
}

func TestParseSubmit(t *testing.T) {
	for _, tc := range []struct{ in, id, cluster string }{
		{"42\n", "42", ""},
		{"42;testcluster\n", "42", "testcluster"},
		{"sbatch: warning: something\n43\n", "43", ""},
	} {
		id, cl, err := parseSubmit(tc.in)
		if err != nil || id != tc.id || cl != tc.cluster {
			t.Errorf("%q: %q %q %v", tc.in, id, cl, err)
		}
	}
	for _, bad := range []string{"", "Submitted batch job 4", "x;y"} {
		if _, _, err := parseSubmit(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseCapacityCaptured(t *testing.T) {
	c, err := parseCapacity(capture("scontrol-node.txt"), capture("scontrol-partition.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 1 {
		t.Fatalf("nodes: %+v", c.Nodes)
	}
	n := c.Nodes[0]
	if n.Name != "vm" || n.CPUs != 16 || n.MemoryMB != 16000 || n.GPUs != 4 || n.State != "MIXED" || !n.Available ||
		strings.Join(n.Partitions, ",") != "gpu,urgent" || n.GPUType != "" {
		t.Errorf("node: %+v", n)
	}
	p, ok := c.Partition("gpu")
	if !ok || !p.Default || p.State != "UP" || p.MaxNodeCPUs != 16 || p.MaxNodeGPUs != 4 || p.MaxNodeMemoryMB != 16000 || p.MaxNodes != 0 {
		t.Errorf("gpu partition: %+v", p)
	}
	if u, _ := c.Partition("urgent"); u.Default || len(u.Nodes) != 1 {
		t.Errorf("urgent: %+v", u)
	}
}

func TestParseCapacityTypedAndDown(t *testing.T) {
	// Hand-written in the shape of scontrol show node -o (notes §4) for what the local
	// cluster does not have: typed GPUs with allocations, a drained node, a down one.
	nodes := strings.Join([]string{
		"NodeName=g1 Arch=x86_64 CPUAlloc=8 CPUTot=32 Gres=gpu:a100:4(S:0-1) RealMemory=256000 AllocMem=64000 State=MIXED Partitions=gpu CfgTRES=cpu=32,mem=250G,billing=32,gres/gpu=4,gres/gpu:a100=4 AllocTRES=cpu=8,mem=62.50G,gres/gpu=3,gres/gpu:a100=3 OS=Linux 6.1 #1 SMP Reason=n/a",
		"NodeName=g2 CPUAlloc=0 CPUTot=64 Gres=gpu:a100:8 RealMemory=512000 AllocMem=0 State=IDLE+DRAIN Partitions=gpu CfgTRES=cpu=64,gres/gpu=8 AllocTRES= Reason=bad fan [root@2026-01-01T00:00:00]",
		"NodeName=g3 CPUAlloc=0 CPUTot=16 RealMemory=1000 AllocMem=0 State=DOWN* Partitions=gpu,cpu CfgTRES=cpu=16",
	}, "\n")
	parts := "PartitionName=gpu Default=YES MaxNodes=2 State=UP\nPartitionName=cpu Default=NO MaxNodes=UNLIMITED State=DOWN\n"
	c, err := parseCapacity(nodes, parts)
	if err != nil {
		t.Fatal(err)
	}
	g1, g2, g3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	if g1.GPUs != 4 || g1.GPUsAlloc != 3 || g1.GPUType != "a100" || !g1.Available || g1.CPUsAlloc != 8 {
		t.Errorf("g1 %+v", g1)
	}
	if g2.Available || g2.GPUs != 8 || g2.GPUsAlloc != 0 {
		t.Errorf("g2 %+v", g2)
	}
	if g3.Available || g3.GPUs != 0 {
		t.Errorf("g3 %+v", g3)
	}
	p, _ := c.Partition("gpu")
	if p.GPUs != 12 || p.GPUsAlloc != 3 || p.CPUs != 112 || p.MaxNodeCPUs != 64 || p.MaxNodeGPUs != 8 || p.MaxNodes != 2 || len(p.Nodes) != 3 {
		t.Errorf("gpu %+v", p)
	}
	if _, err := parseCapacity("garbage line", ""); err == nil {
		t.Error("garbage accepted")
	}
}

func TestParseKV(t *testing.T) {
	m := parseKV("NodeName=vm OS=Linux 6.18 #1 SMP  RealMemory=16000 AllocNode:Sid=localhost:1 Reason=Not responding [slurm@x]")
	if m["OS"] != "Linux 6.18 #1 SMP" || m["RealMemory"] != "16000" || m["AllocNode:Sid"] != "localhost:1" || m["Reason"] != "Not responding [slurm@x]" {
		t.Errorf("%q", m)
	}
}
