package slurm

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// squeueFormat is the fixed -O format Poll uses; Reason comes last because it is free text.
const squeueFormat = "JobID:|,ArrayJobID:|,ArrayTaskID:|,State:|,RestartCnt:|,exit_code:|,StartTime:|,EndTime:|,Partition:|,NodeList:|,UserName:|,Reason:|"

// sacctFormat is the fixed -o format for sacct; Reason comes last.
const sacctFormat = "JobID,JobIDRaw,JobName,Partition,User,State,ExitCode,Start,End,NodeList,Reason"

// row is one parsed squeue or sacct line.
type row struct {
	id, raw string
	name    string
	user    string
	st      Status
}

// parseTime reads Slurm's local timestamps; N/A, NONE, Unknown and empty are zero.
func parseTime(s string) time.Time {
	switch s {
	case "", "N/A", "NONE", "None", "Unknown":
		return time.Time{}
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
	if err != nil {
		return time.Time{}
	}
	return t
}

// parseState splits "CANCELLED by 1001" and strips the "+" suffixes some versions add.
func parseState(s string) (State, string) {
	s = strings.TrimSpace(s)
	by := ""
	if st, who, ok := strings.Cut(s, " by "); ok {
		s, by = st, strings.TrimSpace(who)
	}
	s = strings.TrimSuffix(s, "+")
	return State(s), by
}

// parseExitCode reads sacct's "a:b".
func parseExitCode(s string) (code, sig int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("exit code %q: want a:b", s)
	}
	if code, err = strconv.Atoi(a); err != nil {
		return 0, 0, fmt.Errorf("exit code %q: %w", s, err)
	}
	if sig, err = strconv.Atoi(b); err != nil {
		return 0, 0, fmt.Errorf("exit code %q: %w", s, err)
	}
	return code, sig, nil
}

// parseWaitStatus reads squeue's exit_code, a raw wait status (768 = exit 3, 11 = SIGSEGV).
func parseWaitStatus(s string) (code, sig int) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, 0
	}
	return (n >> 8) & 0xff, n & 0x7f
}

// splitFields splits a '|'-terminated line into exactly n fields; the last field takes
// the rest of the line (it may be free text).
func splitFields(line string, n int) ([]string, bool) {
	line = strings.TrimSuffix(line, "|")
	f := strings.SplitN(line, "|", n)
	return f, len(f) == n
}

// parseSqueue parses output of `squeue -h -O squeueFormat`.
func parseSqueue(out string) ([]row, error) {
	var rows []row
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f, ok := splitFields(line, 12)
		if !ok {
			return nil, fmt.Errorf("parse squeue line %q: want 12 fields", line)
		}
		raw := strings.TrimSpace(f[0])
		id := raw
		if task := strings.TrimSpace(f[2]); task != "N/A" && task != "" {
			if strings.ContainsAny(task, "-,") {
				task = "[" + task + "]"
			}
			id = strings.TrimSpace(f[1]) + "_" + task
		}
		st, by := parseState(f[3])
		restarts, _ := strconv.Atoi(strings.TrimSpace(f[4]))
		code, sig := parseWaitStatus(strings.TrimSpace(f[5]))
		user := strings.TrimSpace(f[10])
		reason := strings.TrimSpace(f[11])
		s := Status{
			ID: id, User: user, State: st, CancelledBy: by, Reason: reason,
			ExitCode: code, ExitSignal: sig, Restarts: restarts,
			Start: parseTime(f[6]), End: parseTime(f[7]),
			Partition: f[8], NodeList: f[9], Source: "squeue",
		}
		markHeld(&s)
		rows = append(rows, row{id: id, raw: raw, user: user, st: s})
	}
	return rows, nil
}

func markHeld(s *Status) {
	if s.State != StatePending {
		return
	}
	switch s.Reason {
	case "job requeued in held state", "job_requeued_in_held_state":
		s.Held, s.RequeuedHeld = true, true
	case "JobHeldUser", "JobHeldAdmin":
		s.Held = true
	}
}

// parseSacct parses `sacct -n -P -o sacctFormat`, dropping the placeholder rows sacct
// shows in its first seconds (JobName "allocation" with an empty partition).
func parseSacct(out string) ([]row, error) {
	var rows []row
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", 11)
		if len(f) != 11 {
			return nil, fmt.Errorf("parse sacct line %q: want 11 fields", line)
		}
		if f[2] == "allocation" && f[3] == "" {
			continue
		}
		st, by := parseState(f[5])
		code, sig, err := parseExitCode(f[6])
		if err != nil {
			return nil, fmt.Errorf("parse sacct line %q: %w", line, err)
		}
		nodes := f[9]
		if nodes == "None assigned" {
			nodes = ""
		}
		s := Status{
			ID: f[0], User: f[4], State: st, CancelledBy: by, Reason: f[10],
			ExitCode: code, ExitSignal: sig,
			Start: parseTime(f[7]), End: parseTime(f[8]),
			Partition: f[3], NodeList: nodes, Source: "sacct",
		}
		markHeld(&s)
		rows = append(rows, row{id: f[0], raw: f[1], name: f[2], user: f[4], st: s})
	}
	return rows, nil
}

// mergeRuns folds the sacct --duplicates rows of one job into its current status: the
// newest record (a pending one with no start, else the latest start) is current, the
// others become Runs, oldest first, and count as restarts.
func mergeRuns(rows []row) Status {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i].st, rows[j].st
		if a.Start.IsZero() != b.Start.IsZero() {
			return b.Start.IsZero() // unknown start (pending again) sorts last
		}
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return !a.End.IsZero() && (b.End.IsZero() || a.End.Before(b.End))
	})
	cur := rows[len(rows)-1].st
	for _, r := range rows[:len(rows)-1] {
		cur.Runs = append(cur.Runs, Run{State: r.st.State, ExitCode: r.st.ExitCode, ExitSignal: r.st.ExitSignal,
			Start: r.st.Start, End: r.st.End})
	}
	cur.Restarts = len(cur.Runs)
	return cur
}

// parseSubmit reads `sbatch --parsable` output: "id" or "id;cluster".
func parseSubmit(out string) (id, cluster string, err error) {
	line := strings.TrimSpace(out)
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = strings.TrimSpace(line[i+1:])
	}
	id, cluster, _ = strings.Cut(line, ";")
	if !job.ValidSlurmID(id) || strings.Contains(id, "_") {
		return "", "", fmt.Errorf("parse sbatch output %q: no job id", out)
	}
	return id, cluster, nil
}

var kvKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_/:]*=`)

// parseKV parses one `scontrol show ... -o` line into key/value pairs; tokens without
// "Key=" belong to the previous value (values such as OS= or Reason= contain spaces).
func parseKV(line string) map[string]string {
	m := map[string]string{}
	last := ""
	for _, tok := range strings.Fields(line) {
		if kvKeyRE.MatchString(tok) {
			k, v, _ := strings.Cut(tok, "=")
			m[k] = v
			last = k
			continue
		}
		if last != "" {
			m[last] += " " + tok
		}
	}
	return m
}

// tresCount returns the integer value of key in a TRES list "cpu=2,mem=512M,gres/gpu=3".
func tresCount(tres, key string) int {
	for _, kv := range strings.Split(tres, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == key {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// gpuType returns <type> from a node's Gres=gpu:<type>:<n>(S:..), or "".
func gpuType(gres string) string {
	for _, g := range strings.Split(gres, ",") {
		if i := strings.IndexByte(g, '('); i >= 0 {
			g = g[:i]
		}
		parts := strings.Split(g, ":")
		if len(parts) == 3 && parts[0] == "gpu" {
			return parts[1]
		}
	}
	return ""
}

var unavailableStates = []string{"DOWN", "DRAIN", "FAIL", "INVAL", "NOT_RESPONDING", "FUTURE", "POWERED_DOWN", "POWERING_DOWN", "REBOOT", "UNKNOWN", "*"}

// parseCapacity builds Capacity from `scontrol show node -o` and `scontrol show partition -o`.
func parseCapacity(nodesOut, partsOut string) (*Capacity, error) {
	c := &Capacity{}
	for _, line := range strings.Split(nodesOut, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := parseKV(line)
		if m["NodeName"] == "" {
			return nil, fmt.Errorf("parse scontrol node line %q: no NodeName", line)
		}
		n := Node{
			Name:          m["NodeName"],
			State:         m["State"],
			CPUs:          atoi(m["CPUTot"]),
			CPUsAlloc:     atoi(m["CPUAlloc"]),
			MemoryMB:      atoi(m["RealMemory"]),
			MemoryAllocMB: atoi(m["AllocMem"]),
			GPUs:          tresCount(m["CfgTRES"], "gres/gpu"),
			GPUsAlloc:     tresCount(m["AllocTRES"], "gres/gpu"),
			GPUType:       gpuType(m["Gres"]),
		}
		if p := m["Partitions"]; p != "" {
			n.Partitions = strings.Split(p, ",")
		}
		n.Available = n.State != ""
		for _, bad := range unavailableStates {
			if strings.Contains(n.State, bad) {
				n.Available = false
			}
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, line := range strings.Split(partsOut, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := parseKV(line)
		if m["PartitionName"] == "" {
			return nil, fmt.Errorf("parse scontrol partition line %q: no PartitionName", line)
		}
		p := Partition{Name: m["PartitionName"], State: m["State"], Default: m["Default"] == "YES"}
		if mn := m["MaxNodes"]; mn != "UNLIMITED" {
			p.MaxNodes = atoi(mn)
		}
		for _, n := range c.Nodes {
			if !contains(n.Partitions, p.Name) {
				continue
			}
			p.Nodes = append(p.Nodes, n.Name)
			p.CPUs += n.CPUs
			p.CPUsAlloc += n.CPUsAlloc
			p.GPUs += n.GPUs
			p.GPUsAlloc += n.GPUsAlloc
			p.MemoryMB += n.MemoryMB
			p.MemoryAllocMB += n.MemoryAllocMB
			p.MaxNodeCPUs = max(p.MaxNodeCPUs, n.CPUs)
			p.MaxNodeGPUs = max(p.MaxNodeGPUs, n.GPUs)
			p.MaxNodeMemoryMB = max(p.MaxNodeMemoryMB, n.MemoryMB)
		}
		c.Partitions = append(c.Partitions, p)
	}
	return c, nil
}

// Partition returns the named partition.
func (c *Capacity) Partition(name string) (*Partition, bool) {
	for i := range c.Partitions {
		if c.Partitions[i].Name == name {
			return &c.Partitions[i], true
		}
	}
	return nil, false
}
