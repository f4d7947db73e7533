package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// TestIntegrationTemplates: on the real stack (Postgres, Dex tokens of alice, bob and
// admin, Slurm, the trainer) a succeeded job is saved as a template, a job started
// from it with an override runs to the end with the override, private and shared
// templates are seen by the right users, and a template whose partition the gateway
// no longer allows is refused with a 422 naming the field.
func TestIntegrationTemplates(t *testing.T) {
	st := stacktest.Require(t)
	pool, _ := pgtest.Open(t, st.PGURL, true)
	e := startE2EOn(t, pool)
	bob, admin := dexToken(t, st, "bob"), dexToken(t, st, "admin")
	errMsg := func(m map[string]any) string {
		em, _ := m["error"].(map[string]any)
		s, _ := em["message"].(string)
		return s
	}
	field := func(m map[string]any, path string) any {
		var v any = m
		for _, k := range strings.Split(path, ".") {
			mm, _ := v.(map[string]any)
			v = mm[k]
		}
		return v
	}

	// Save a succeeded job as a template.
	src := e.execute(5, 0)
	e.wait(src, 6*time.Minute, "succeeded", stateIs("succeeded"))
	code, m := e.do("POST", "/api/templates", map[string]any{"name": "tiny-sft", "from_job": src})
	if code != http.StatusCreated || m["version"] != 1.0 || m["from_job"] != src || m["visibility"] != "private" ||
		field(m, "spec.hyperparameters.max_steps") != 5.0 || field(m, "spec.resources.partition") != "gpu" {
		t.Fatalf("save from job %s: %d %v", src, code, m)
	}

	// Start a job from it with an override: the trainer's job.json on the cluster
	// has the override and the template's other fields.
	code, m = e.do("POST", "/api/training/execute", map[string]any{"template": "tiny-sft",
		"overrides": map[string]any{"name": "from-template", "hyperparameters": map[string]any{"max_steps": 12}}})
	if code != http.StatusAccepted || field(m, "template.name") != "tiny-sft" || field(m, "template.version") != 1.0 ||
		field(m, "spec.hyperparameters.max_steps") != 12.0 || field(m, "spec.name") != "from-template" {
		t.Fatalf("execute from the template: %d %v", code, m)
	}
	id := m["id"].(string)
	m = e.wait(id, 2*time.Minute, "submitted", stateIs("queued", "running", "succeeded"))
	if field(m, "template.version") != 1.0 || m["slurm_id"] == "" {
		t.Fatalf("job from the template after its submission: %v", m)
	}
	var onCluster job.Spec
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files, err := e.slurm.ReadFiles(ctx, "alice", []string{m["job_dir"].(string) + "/job.json"}, 1<<16)
	if err != nil || !files[0].Exists || json.Unmarshal(files[0].Data, &onCluster) != nil {
		t.Fatalf("read job.json of the job from the template: %v", err)
	}
	if h := onCluster.Hyperparameters; h.MaxSteps != 12 || h.LearningRate != 0.003 || h.MaxLength != 96 || onCluster.Name != "from-template" {
		t.Errorf("job.json of the job from the template: %+v, want max_steps 12 and the source job's learning_rate 0.003, max_length 96", onCluster)
	}
	if code, m := e.do("POST", "/api/training/cancel/"+id, nil); code != http.StatusOK {
		t.Errorf("cancel the job from the template: %d %v", code, m)
	}
	_, list := e.do("GET", "/api/jobs?q=from-template", nil)
	if jobs, _ := list["jobs"].([]any); len(jobs) != 1 || field(jobs[0].(map[string]any), "template.name") != "tiny-sft" {
		t.Errorf("job list entry of the job from the template: %v", list)
	}

	// Private templates are the owner's alone; shared ones (admins') everyone's.
	if code, m := e.doAs(bob, "GET", "/api/templates/tiny-sft", nil); code != http.StatusNotFound {
		t.Errorf("bob reads alice's private template: %d %v", code, m)
	}
	if code, m := e.doAs(bob, "POST", "/api/training/execute", map[string]any{"template": "tiny-sft"}); code != http.StatusNotFound {
		t.Errorf("bob starts from alice's private template: %d %v", code, m)
	}
	if code, m := e.doAs(bob, "POST", "/api/templates", map[string]any{"name": "bobs", "visibility": "shared", "spec": map[string]any{}}); code != http.StatusForbidden {
		t.Errorf("bob shares a template: %d %v", code, m)
	}
	if code, m := e.doAs(admin, "POST", "/api/templates", map[string]any{"name": "lab-tiny", "visibility": "shared", "spec": e.spec(12, 0)}); code != http.StatusCreated {
		t.Fatalf("admin shares a template: %d %v", code, m)
	}
	code, m = e.doAs(bob, "POST", "/api/training/execute?dry_run=1", map[string]any{"template": "lab-tiny",
		"overrides": map[string]any{"hyperparameters": map[string]any{"seed": 7}}})
	if code != http.StatusOK || field(m, "template.owner") != "admin" || field(m, "spec.hyperparameters.seed") != 7.0 ||
		!strings.Contains(m["job_dir"].(string), "/bob/") {
		t.Errorf("bob's dry run from the shared template: %d %v", code, m)
	}
	if code, m := e.doAs(bob, "PUT", "/api/templates/lab-tiny", map[string]any{"spec": map[string]any{}}); code != http.StatusForbidden {
		t.Errorf("bob changes the shared template: %d %v", code, m)
	}
	for user, tok := range map[string]string{"alice": e.token, "bob": bob} {
		_, m := e.doAs(tok, "GET", "/api/templates", nil)
		var names []string
		for _, it := range m["templates"].([]any) {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		want := map[string]string{"alice": "lab-tiny tiny-sft", "bob": "lab-tiny"}[user]
		if strings.Join(names, " ") != want {
			t.Errorf("%s's templates: %v, want %s", user, names, want)
		}
	}

	// A template saved for a partition the gateway allowed then, started on a
	// gateway (a replica on the same database) whose config no longer allows it.
	spec := e.spec(12, 0)
	spec["resources"].(map[string]any)["partition"] = "urgent"
	if code, m := e.do("POST", "/api/templates", map[string]any{"name": "urgent-tiny", "spec": spec}); code != http.StatusCreated {
		t.Fatalf("save on partition urgent: %d %v", code, m)
	}
	strict := startE2EOn(t, pool, func(c *config.Config) { c.Clusters[0].Partitions = []string{"gpu"} })
	for _, path := range []string{"/api/training/execute", "/api/training/execute?dry_run=1"} {
		code, m := strict.do("POST", path, map[string]any{"template": "urgent-tiny"})
		want := `invalid spec: resources.partition: "urgent" is not allowed on cluster dev (allowed: gpu) (spec from template urgent-tiny@1 with the overrides)`
		if code != http.StatusUnprocessableEntity || errMsg(m) != want {
			t.Errorf("POST %s from a template on a partition no longer allowed: %d %q, want 422 %q", path, code, errMsg(m), want)
		}
	}
	// The override that moves it to an allowed partition is accepted.
	if code, m := strict.do("POST", "/api/training/execute?dry_run=1", map[string]any{"template": "urgent-tiny",
		"overrides": map[string]any{"resources": map[string]any{"partition": nil}}}); code != http.StatusOK || field(m, "spec.resources.partition") != "gpu" {
		t.Errorf("override back to the default partition: %d %v", code, m)
	}
}
