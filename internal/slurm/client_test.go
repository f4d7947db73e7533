package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

func capacityHandlers(h map[string]func([]string) (string, string, int)) map[string]func([]string) (string, string, int) {
	if h == nil {
		h = map[string]func([]string) (string, string, int){}
	}
	h["scontrol"] = func(argv []string) (string, string, int) {
		switch strings.Join(argv, " ") {
		case "scontrol show node -o":
			return capture("scontrol-node.txt"), "", 0
		case "scontrol show partition -o":
			return capture("scontrol-partition.txt"), "", 0
		}
		return "", "unexpected", 1
	}
	return h
}

// withProbe gives the client a probe account, so Submit checks capacity.
func withProbe(o *Options) { o.ProbeUser = "ftgate-probe" }

func TestSubmitPipesScriptAndParsesID(t *testing.T) {
	r := &fakeRunner{handlers: capacityHandlers(map[string]func([]string) (string, string, int){
		"sbatch": func(argv []string) (string, string, int) { return "4242;testcluster\n", "", 0 },
	})}
	c := newTestClient(t, r, withProbe)
	got, err := c.Submit(context.Background(), "alice", testRequest())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "4242" || got.Cluster != "testcluster" || !strings.HasPrefix(got.Script, "#!/bin/bash") {
		t.Errorf("%+v", got)
	}
	last := r.calls[len(r.calls)-1]
	if strings.Join(last, " ") != "sbatch --parsable" || r.stdin[len(r.stdin)-1] != got.Script {
		t.Errorf("sbatch call %v", last)
	}
	// The capacity is cached: a second submit runs only sbatch.
	before := len(r.calls)
	if _, err := c.Submit(context.Background(), "alice", testRequest()); err != nil {
		t.Fatal(err)
	}
	if len(r.calls)-before != 1 {
		t.Errorf("second submit made %d calls", len(r.calls)-before)
	}
}

func TestSubmitWithSlurmConfPrefix(t *testing.T) {
	r := &fakeRunner{handlers: capacityHandlers(map[string]func([]string) (string, string, int){
		"sbatch": func(argv []string) (string, string, int) { return "7\n", "", 0 },
	})}
	c := newTestClient(t, r, func(o *Options) { o.SlurmConf = "/etc/slurm x/slurm.conf" })
	if _, err := c.Submit(context.Background(), "alice", testRequest()); err != nil {
		t.Fatal(err)
	}
	last := r.calls[len(r.calls)-1]
	if strings.Join(last[:2], " ") != "env SLURM_CONF=/etc/slurm x/slurm.conf" || last[2] != "sbatch" {
		t.Errorf("argv %q", last)
	}
}

func TestSubmitErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		captured string // args in sbatch-errors.txt, or "" for literal stderr
		stderr   string
		status   int
		code     string
		cause    error
	}{
		{captured: "--gres=gpu:5", code: job.EUnprocessable, cause: ErrNodeConfig},
		{captured: "-p nosuch", code: job.EUnprocessable, cause: ErrUnknownPartition},
		{captured: "--gres=foo:1", code: job.EUnprocessable, cause: ErrInvalidGRES},
		{captured: "--mem=20000", code: job.EUnprocessable, cause: ErrNodeConfig},
		// From the notes (slurmctld stopped) and Slurm's messages for limits.
		{stderr: "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n", status: 1,
			code: job.EUnavailable, cause: ErrController},
		{stderr: "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)\n",
			status: 1, code: job.EUnprocessable, cause: ErrLimits},
		{stderr: "sbatch: error: Batch job submission failed: Invalid qos specification\n", status: 1, code: job.EUnprocessable, cause: ErrLimits},
		// A message the table does not know is retryable, never the request's fault.
		{stderr: "sbatch: error: Batch job submission failed: Something new\n", status: 1, code: job.EUnavailable, cause: ErrUnknown},
		// "limit" inside an unknown message no longer makes it a 422.
		{stderr: "sbatch: error: Batch job submission failed: Socket limit reached on the login node\n", status: 1, code: job.EUnavailable, cause: ErrUnknown},
	} {
		stderr, status := tc.stderr, tc.status
		if tc.captured != "" {
			stderr, status = sbatchError(tc.captured)
		}
		r := &fakeRunner{handlers: capacityHandlers(map[string]func([]string) (string, string, int){
			"sbatch": func([]string) (string, string, int) { return "", stderr, status },
		})}
		c := newTestClient(t, r, nil)
		_, err := c.Submit(context.Background(), "alice", testRequest())
		if job.ErrorCode(err) != tc.code || (tc.cause != nil && !errors.Is(err, tc.cause)) {
			t.Errorf("%q: err = %v, want %s/%v", stderr, err, tc.code, tc.cause)
		}
	}
}

func TestSubmitRefusesWhatThePartitionCanNeverRun(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(*Request)
	}{
		{"resources.cpus", func(r *Request) { r.CPUs = 17 }},
		{"resources.gpus", func(r *Request) { r.GPUs = 5 }},
		{"resources.memory_mb", func(r *Request) { r.MemoryMB = 20000 }},
	} {
		r := &fakeRunner{handlers: capacityHandlers(nil)}
		c := newTestClient(t, r, withProbe)
		req := testRequest()
		tc.mod(&req)
		_, err := c.Submit(context.Background(), "alice", req)
		if job.ErrorCode(err) != job.EUnprocessable || !errors.Is(err, ErrNodeConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err = %v", tc.field, err)
		}
		if r.count("sbatch") != 0 {
			t.Errorf("%s: sbatch was called", tc.field)
		}
	}
	// A partition allowed by config but unknown to the cluster.
	r := &fakeRunner{handlers: capacityHandlers(nil)}
	c := newTestClient(t, r, func(o *Options) { withProbe(o); o.Partitions = []string{"gpu", "gone"} })
	req := testRequest()
	req.Partition = "gone"
	if _, err := c.Submit(context.Background(), "alice", req); !errors.Is(err, ErrUnknownPartition) {
		t.Errorf("unknown partition: %v", err)
	}
}

func squeueFor(lines string) func([]string) (string, string, int) {
	return func(argv []string) (string, string, int) {
		want := map[string]bool{}
		all := true
		for i, a := range argv {
			if a == "-j" {
				all = false
				for _, id := range strings.Split(argv[i+1], ",") {
					want[id] = true
				}
			}
		}
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
			f := strings.Split(l, "|")
			id := f[0]
			if f[2] != "N/A" {
				id = f[1] + "_" + f[2]
			}
			if all || want[f[0]] || want[id] {
				out = append(out, l)
			}
		}
		if !all && len(out) == 0 && len(want) == 1 {
			return "", "slurm_load_jobs error: Invalid job id specified\n", 1
		}
		return strings.Join(out, "\n") + "\n", "", 0
	}
}

func TestPollTiered(t *testing.T) {
	sacctArgs := ""
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){
		"squeue": squeueFor(capture("squeue-poll.txt")),
		"sacct": func(argv []string) (string, string, int) {
			sacctArgs = strings.Join(argv, " ")
			return capture("sacct-final.txt"), "", 0
		},
	}}
	c := newTestClient(t, r, nil)
	// 23 is live in squeue, 17_0 by its array id, 10 finished but still in squeue,
	// 16 and 19 only in sacct (pretend purged), 99999 unknown everywhere.
	ids := []string{"23", "17_0", "10", "16", "19", "99999", "23"}
	r.handlers["squeue"] = func(argv []string) (string, string, int) {
		return squeueFor(capture("squeue-poll.txt"))(append([]string{}, "squeue", "-j", "23,17_0,10")) // others purged
	}
	st, err := c.Poll(context.Background(), "alice", ids)
	if err != nil {
		t.Fatal(err)
	}
	if r.count("squeue") != 1 || r.count("sacct") != 1 {
		t.Errorf("calls: %v", r.calls)
	}
	if !strings.Contains(sacctArgs, "-j 16,19,99999") || !strings.Contains(sacctArgs, "-D") || !strings.Contains(sacctArgs, "-X") {
		t.Errorf("sacct args %q", sacctArgs)
	}
	for id, want := range map[string]struct {
		state  State
		source string
	}{
		"23": {StateRunning, "squeue"}, "17_0": {StateCompleted, "squeue"}, "10": {StateFailed, "squeue"},
		"16": {StateTimeout, "sacct"}, "19": {StateCancelled, "sacct"},
	} {
		if s := st[id]; s.State != want.state || s.Source != want.source || s.ID != id {
			t.Errorf("%s: %+v", id, s)
		}
	}
	if _, ok := st["99999"]; ok || len(st) != 5 {
		t.Errorf("unknown id present or wrong count: %d", len(st))
	}
	if st["19"].Restarts != 1 {
		t.Errorf("19 restarts %d", st["19"].Restarts)
	}
}

func TestPollSurvivesInvalidJobIDError(t *testing.T) {
	// Real squeue 22.05: rc 1 "Invalid job id specified" when it knows none of the given
	// ids (captured for one id; the notes report it for purged ids in a list too).
	calls := 0
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){
		"squeue": func(argv []string) (string, string, int) {
			calls++
			for _, a := range argv {
				if a == "-j" {
					return "", "slurm_load_jobs error: Invalid job id specified\n", 1
				}
			}
			return capture("squeue-poll.txt"), "", 0
		},
		"sacct": func([]string) (string, string, int) { return "", "", 0 },
	}}
	c := newTestClient(t, r, nil)
	st, err := c.Poll(context.Background(), "alice", []string{"23", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if st["23"].State != StateRunning || calls != 2 {
		t.Errorf("23: %+v after %d squeue calls", st["23"], calls)
	}
	if _, ok := st["5"]; ok {
		t.Error("5 present")
	}
	// A single unknown id: no fallback, just absent.
	calls = 0
	st, err = c.Poll(context.Background(), "alice", []string{"5"})
	if err != nil || len(st) != 0 || calls != 1 {
		t.Errorf("single unknown: %v %v calls=%d", st, err, calls)
	}
}

// TestPollManyIDsByOwner: above manyIDs ids squeue is asked for the owners' jobs (-u)
// rather than for the ids (-j, which compares each job with each id), and the rows are
// still matched by id; an owner that is not an account name is refused unrun.
func TestPollManyIDsByOwner(t *testing.T) {
	var argvs []string
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){
		"squeue": func(argv []string) (string, string, int) {
			argvs = append(argvs, strings.Join(argv, " "))
			return squeueFor(capture("squeue-poll.txt"))(argv)
		},
		"sacct": func([]string) (string, string, int) { return "", "", 0 },
	}}
	c := newTestClient(t, r, nil)
	ids := func(n int) []string {
		out := []string{"23"}
		for i := 1; len(out) < n; i++ {
			out = append(out, strconv.Itoa(100000+i))
		}
		return out
	}
	for _, tc := range []struct {
		n      int
		owners []string
		want   string // the filter of the squeue
	}{
		{manyIDs, []string{"alice"}, " -j 100001,"},
		{manyIDs + 1, []string{"bob", "alice", "bob"}, " -u alice,bob "},
		{manyIDs + 1, nil, " -j 100001,"},
	} {
		argvs = nil
		st, err := c.PollAs(context.Background(), "svc", tc.owners, ids(tc.n))
		if err != nil {
			t.Fatalf("%d ids: %v", tc.n, err)
		}
		if len(argvs) != 1 || !strings.Contains(argvs[0], tc.want) {
			t.Errorf("%d ids, owners %v: squeue %q, want one with %q", tc.n, tc.owners, argvs, tc.want)
		}
		if st["23"].State != StateRunning || len(st) != 1 {
			t.Errorf("%d ids, owners %v: %d statuses, 23 is %+v; want only 23, running", tc.n, tc.owners, len(st), st["23"])
		}
	}
	calls := len(r.calls)
	if _, err := c.PollAs(context.Background(), "svc", []string{"alice", "bob,root"}, ids(manyIDs+1)); job.ErrorCode(err) != job.EInvalid || len(r.calls) != calls {
		t.Errorf("owner %q: err %v after %d more commands, want EInvalid and none", "bob,root", err, len(r.calls)-calls)
	}
}

func TestPollControllerDown(t *testing.T) {
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){
		"squeue": func([]string) (string, string, int) {
			return "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n", 1
		},
	}}
	c := newTestClient(t, r, nil)
	_, err := c.Poll(context.Background(), "alice", []string{"1", "2"})
	if job.ErrorCode(err) != job.EUnavailable || !errors.Is(err, ErrController) {
		t.Fatalf("err = %v", err)
	}
}

func TestFindByTag(t *testing.T) {
	squeueOut := ""
	sacctOut := ""
	var sacctArgv []string
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){
		"squeue": func([]string) (string, string, int) { return squeueOut, "", 0 },
		"sacct": func(argv []string) (string, string, int) {
			sacctArgv = argv
			return sacctOut, "", 0
		},
	}}
	c := newTestClient(t, r, nil)
	ctx := context.Background()
	since := time.Date(2026, 11, 29, 14, 0, 0, 0, time.Local)

	squeueOut = "30|30|N/A|RUNNING|0|0|2026-11-29T14:17:04|NONE|gpu|vm|alice|None|\n31|31|N/A|PENDING|0|0|N/A|N/A|gpu||alice|Priority|\n"
	f, err := c.FindByTag(ctx, "alice", "j1", since)
	if err != nil || f == nil || f.ID != "31" || f.State != StatePending || r.count("sacct") != 0 {
		t.Fatalf("squeue hit: %+v %v", f, err)
	}
	if args := strings.Join(r.calls[0], " "); !strings.Contains(args, "--name=ftgate-j1") {
		t.Errorf("squeue args %q", args)
	}

	squeueOut = ""
	sacctOut = "30|30|allocation||root|PENDING|0:0|Unknown|Unknown|None assigned|None\n29|29|ftgate-j1|gpu|alice|COMPLETED|0:0|2026-11-29T14:17:04|2026-11-29T14:17:05|vm|None\n"
	f, err = c.FindByTag(ctx, "alice", "j1", since)
	if err != nil || f == nil || f.ID != "29" || f.State != StateCompleted {
		t.Fatalf("sacct hit: %+v %v", f, err)
	}
	if args := strings.Join(sacctArgv, " "); !strings.Contains(args, "--name=ftgate-j1") || !strings.Contains(args, "-S 2026-11-29T13:00:00") {
		t.Errorf("sacct args %q", args)
	}

	sacctOut = ""
	if f, err := c.FindByTag(ctx, "alice", "j1", since); err != nil || f != nil {
		t.Errorf("none: %+v %v", f, err)
	}
}

func TestControlCommands(t *testing.T) {
	var got []string
	stderr, status := "", 0
	r := &fakeRunner{handlers: map[string]func([]string) (string, string, int){}}
	rec := func(argv []string) (string, string, int) {
		got = append(got, strings.Join(argv, " "))
		return "", stderr, status
	}
	r.handlers["scancel"], r.handlers["scontrol"] = rec, rec
	r.handlers["squeue"] = squeueFor(capture("squeue-poll.txt"))
	r.handlers["sacct"] = func([]string) (string, string, int) { return "", "", 0 }
	c := newTestClient(t, r, nil)
	ctx := context.Background()

	for _, f := range []func() error{
		func() error { return c.Cancel(ctx, "alice", "23") },
		func() error { return c.Signal(ctx, "alice", "23") },
		func() error { return c.Hold(ctx, "alice", "22") },
		func() error { return c.Release(ctx, "alice", "24") },
		func() error { return c.Requeue(ctx, "alice", "23") },
		func() error { return c.RequeueHold(ctx, "alice", "23") },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"scancel 23", "scancel --batch --signal=USR2 23", "scontrol hold 22", "scontrol release 24",
		"scontrol requeue 23", "scontrol requeuehold 23"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Signals are refused for pending and finished jobs, before scancel.
	got = nil
	for id, code := range map[string]string{"22": job.EConflict, "24": job.EConflict, "9": job.EConflict, "424242": job.ENotFound} {
		if err := c.Signal(ctx, "alice", id); job.ErrorCode(err) != code {
			t.Errorf("signal %s: %v, want %s", id, err, code)
		}
	}
	if len(got) != 0 {
		t.Errorf("scancel called: %v", got)
	}
	if err := c.Signal(ctx, "alice", "22"); !errors.Is(err, ErrPending) {
		t.Errorf("pending: %v", err)
	}

	// Cancelling an unknown job is success; other errors map to codes.
	for _, tc := range []struct {
		stderr string
		status int
		op     func() error
		code   string
	}{
		{"scancel: error: Kill job error on job id 5: Invalid job id specified\n", 1, func() error { return c.Cancel(ctx, "alice", "5") }, ""},
		{"scancel: error: Kill job error on job id 80: Unable to contact slurm controller (connect failure)\n", 8, func() error { return c.Cancel(ctx, "alice", "80") }, job.EUnavailable},
		{"Invalid job id specified for job 999999\n", 1, func() error { return c.Requeue(ctx, "alice", "999999") }, job.ENotFound},
		{"Job is pending execution for job 179\n", 1, func() error { return c.RequeueHold(ctx, "alice", "179") }, job.EConflict},
		{"Requested operation is presently disabled for job 47\n", 1, func() error { return c.Requeue(ctx, "alice", "47") }, job.EConflict},
		{"Access/permission denied for job 3\n", 1, func() error { return c.Hold(ctx, "alice", "3") }, job.EForbidden},
	} {
		stderr, status = tc.stderr, tc.status
		if err := tc.op(); job.ErrorCode(err) != tc.code {
			t.Errorf("%q: %v, want %q", tc.stderr, err, tc.code)
		}
	}
}

func TestReadFilesFraming(t *testing.T) {
	c := newTestClient(t, localRunner{}, nil)
	dir := t.TempDir()
	files := map[string]string{
		"progress.json": `{"phase":"training","step":3}`,
		"weird":         "F line\nM\n\x00\xff binary\n\n",
		"big":           strings.Repeat("x", 100),
		"empty":         "",
	}
	for name, body := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	paths := []string{dir + "/progress.json", dir + "/missing", dir + "/weird", dir + "/big", dir + "/empty", dir + "/adir",
		dir + "/it's here; $(touch pwned)"}
	os.WriteFile(paths[6], []byte("quoted ok"), 0o644)
	got, err := c.ReadFiles(context.Background(), "alice", paths, 50)
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{Path: paths[0], Exists: true, Data: []byte(files["progress.json"])},
		{Path: paths[1]},
		{Path: paths[2], Exists: true, Data: []byte(files["weird"])},
		{Path: paths[3], Exists: true, Data: []byte(strings.Repeat("x", 50)), Truncated: true},
		{Path: paths[4], Exists: true, Data: []byte{}},
		{Path: paths[5]},
		{Path: paths[6], Exists: true, Data: []byte("quoted ok")},
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Path != w.Path || g.Exists != w.Exists || string(g.Data) != string(w.Data) || g.Truncated != w.Truncated {
			t.Errorf("%d: got %+v, want %+v", i, g, w)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a path was executed")
	}
}

var _ = fmt.Sprint
