package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

// The template routes and execute from a template, through the gateway's real
// handlers over the in-memory stores of ftctltest.

type answer struct {
	code int
	hdr  http.Header
	body map[string]any
	raw  string
}

func call(t *testing.T, e *ftctltest.Env, user, method, path string, body any, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.Srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+user)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, hdr: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// errMsg is the message of an error answer.
func (a answer) errMsg() string {
	e, _ := a.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// expect checks an error answer's status and that its message contains want.
func (a answer) expect(t *testing.T, what string, code int, want string) {
	t.Helper()
	if a.code != code || !strings.Contains(a.errMsg(), want) {
		t.Errorf("%s: %d %s; want %d with %q", what, a.code, a.raw, code, want)
	}
}

func get(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, _ := v.(map[string]any)
		v = mm[k]
	}
	return v
}

const tinySpec = `{"method":"sft","model":"builtin:tiny","dataset":{"path":"/data/train.jsonl"},"hyperparameters":{"max_steps":40,"learning_rate":0.003},"resources":{"partition":"urgent"}}`

func TestTemplateRoutes(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j1", "alice", job.Succeeded, nil)
	e.Seed("j9", "bob", job.Succeeded, nil)

	a := call(t, e, "alice", "POST", "/api/templates", `{"name":"base","spec":`+tinySpec+`}`)
	if a.code != 201 || a.hdr.Get("Location") != "/api/templates/base" || a.body["version"] != 1.0 || a.body["latest_version"] != 1.0 ||
		a.body["visibility"] != "private" || a.body["owner"] != "alice" || get(a.body, "spec.hyperparameters.max_steps") != 40.0 {
		t.Fatalf("create: %d %v %s", a.code, a.hdr.Get("Location"), a.raw)
	}
	for _, tc := range []struct {
		what, user, body string
		code             int
		want             string
	}{
		{"same name again", "alice", `{"name":"base","spec":{}}`, 409, `template "base" already exists; PUT /api/templates/base saves a new version`},
		{"bad name", "alice", `{"name":"a b","spec":{}}`, 400, `name: must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$, got "a b"`},
		{"no name", "alice", `{"spec":{}}`, 400, `name: must match`},
		{"unknown spec field", "alice", `{"name":"x","spec":{"hyperparameters":{"max_stepz":5}}}`, 400, `unknown field "max_stepz"`},
		{"wrong type", "alice", `{"name":"x","spec":{"resources":{"gpus":"two"}}}`, 400, `field "resources.gpus": want int, got string`},
		{"value out of range", "alice", `{"name":"x","spec":{"hyperparameters":{"max_steps":-1}}}`, 422, `invalid spec: hyperparameters.max_steps: must be between 0 and 10000000, got -1`},
		{"partition not allowed", "alice", `{"name":"x","spec":{"resources":{"partition":"debug"}}}`, 422, `invalid spec: resources.partition: "debug" is not allowed on cluster dev (allowed: gpu, urgent)`},
		{"unknown cluster", "alice", `{"name":"x","spec":{"resources":{"cluster":"gone"}}}`, 422, `invalid spec: resources.cluster: unknown cluster "gone" (known: dev)`},
		{"shared by a user", "alice", `{"name":"x","visibility":"shared","spec":{}}`, 403, "visibility: only admins create or change shared templates"},
		{"bad visibility", "alice", `{"name":"x","visibility":"public","spec":{}}`, 400, `visibility: want private or shared, got "public"`},
		{"spec and from_job", "alice", `{"name":"x","spec":{},"from_job":"j1"}`, 400, "give spec (a partial spec) or from_job"},
		{"neither", "alice", `{"name":"x"}`, 400, "exactly one of the two"},
		{"another user's job", "alice", `{"name":"x","from_job":"j9"}`, 404, "job j9 not found"},
		{"unknown body field", "alice", `{"name":"x","spec":{},"extra":1}`, 400, `unknown field "extra"`},
		{"spec not an object", "alice", `{"name":"x","spec":[1]}`, 400, "spec: want a JSON object of spec fields"},
	} {
		call(t, e, tc.user, "POST", "/api/templates", tc.body).expect(t, tc.what, tc.code, tc.want)
	}

	// From a job: the job's whole spec, and where it came from.
	a = call(t, e, "alice", "POST", "/api/templates", map[string]any{"name": "from-j1", "from_job": "j1"})
	if a.code != 201 || a.body["from_job"] != "j1" || get(a.body, "spec.name") != "tiny-j1" || get(a.body, "spec.resources.partition") != "gpu" ||
		get(a.body, "spec.resources.gpus") != 1.0 || get(a.body, "spec.hyperparameters") != nil || get(a.body, "spec.distributed") != nil {
		t.Fatalf("from job: %d %s; want the job's spec without its defaults", a.code, a.raw)
	}
	// Values derived from another field follow an override of it.
	if a := call(t, e, "alice", "POST", "/api/training/execute?dry_run=1", `{"template":"from-j1","overrides":{"resources":{"gpus":2}}}`); a.code != 200 ||
		get(a.body, "spec.distributed.processes_per_node") != 2.0 || get(a.body, "spec.hyperparameters.batch_size") != 8.0 {
		t.Errorf("from-j1 with 2 GPUs: %d %s", a.code, a.raw)
	}

	// Versions.
	a = call(t, e, "alice", "PUT", "/api/templates/base", `{"spec":{"model":"builtin:tiny","hyperparameters":{"max_steps":7}}}`)
	if a.code != 200 || a.body["version"] != 2.0 || get(a.body, "spec.hyperparameters.max_steps") != 7.0 || a.body["visibility"] != "private" {
		t.Fatalf("put: %d %s", a.code, a.raw)
	}
	for path, want := range map[string]float64{"/api/templates/base": 2, "/api/templates/base@1": 1, "/api/templates/base?version=1": 1, "/api/templates/base@2?version=2": 2} {
		a := call(t, e, "alice", "GET", path, nil)
		if a.code != 200 || a.body["version"] != want || a.body["latest_version"] != 2.0 {
			t.Errorf("GET %s: %d %s; want version %v", path, a.code, a.raw, want)
		}
	}
	if a := call(t, e, "alice", "GET", "/api/templates/base@1", nil); get(a.body, "spec.hyperparameters.max_steps") != 40.0 {
		t.Errorf("version 1 changed: %s", a.raw)
	}
	for _, tc := range []struct {
		what, user, method, path, body string
		code                           int
		want                           string
	}{
		{"missing version", "alice", "GET", "/api/templates/base@3", "", 404, "template base has no version 3 (the latest is 2)"},
		{"version contradicts", "alice", "GET", "/api/templates/base@1?version=2", "", 400, "version: 2 contradicts the path's @1"},
		{"bad version", "alice", "GET", "/api/templates/base@x", "", 400, "template: the version after @ must be a positive integer"},
		{"unknown parameter", "alice", "GET", "/api/templates/base?v=1", "", 400, `unknown query parameter "v"`},
		{"another user's private template", "bob", "GET", "/api/templates/base", "", 404, `template "base" not found`},
		{"another user's private template", "bob", "PUT", "/api/templates/base", `{"spec":{}}`, 404, `template "base" not found`},
		{"another user's private template", "bob", "DELETE", "/api/templates/base", "", 404, `template "base" not found`},
		{"put a version", "alice", "PUT", "/api/templates/base@1", `{"spec":{}}`, 400, "give NAME without @VERSION"},
		{"rename", "alice", "PUT", "/api/templates/base", `{"name":"other","spec":{}}`, 400, `name: "other" differs from the path's "base"`},
		{"put missing", "alice", "PUT", "/api/templates/nope", `{"spec":{}}`, 404, `template "nope" not found`},
		{"share by a user", "alice", "PUT", "/api/templates/base", `{"visibility":"shared","spec":{}}`, 403, "only admins"},
		{"put bad value", "alice", "PUT", "/api/templates/base", `{"spec":{"lora":{"target_modules":["ok","no way"]}}}`, 422, `invalid spec: lora.target_modules[1]: must match`},
	} {
		call(t, e, tc.user, tc.method, tc.path, tc.body).expect(t, tc.what+" ("+tc.method+" "+tc.path+")", tc.code, tc.want)
	}

	// Shared templates: admins create and change them, every user sees and uses them.
	if a := call(t, e, "admin", "POST", "/api/templates", `{"name":"shared-base","visibility":"shared","spec":{"model":"builtin:tiny"}}`); a.code != 201 || a.body["visibility"] != "shared" {
		t.Fatalf("admin shares: %d %s", a.code, a.raw)
	}
	if a := call(t, e, "bob", "GET", "/api/templates/shared-base", nil); a.code != 200 || a.body["owner"] != "admin" {
		t.Errorf("bob reads the shared template: %d %s", a.code, a.raw)
	}
	call(t, e, "bob", "PUT", "/api/templates/shared-base", `{"spec":{}}`).expect(t, "bob changes the shared template", 403, "template shared-base is shared: only admins change or delete shared templates")
	call(t, e, "bob", "DELETE", "/api/templates/shared-base", nil).expect(t, "bob deletes the shared template", 403, "only admins")
	if a := call(t, e, "admin", "PUT", "/api/templates/shared-base", `{"spec":{"model":"builtin:tiny","hyperparameters":{"seed":3}}}`); a.code != 200 || a.body["version"] != 2.0 {
		t.Errorf("admin updates the shared template: %d %s", a.code, a.raw)
	}
	call(t, e, "admin", "POST", "/api/templates", `{"name":"shared-base","visibility":"shared","spec":{}}`).expect(t, "second shared name", 409, "already exists")

	// Lists: own and shared, by name, paged, without specs.
	list := func(user, query string) (names []string, next string) {
		t.Helper()
		a := call(t, e, user, "GET", "/api/templates"+query, nil)
		if a.code != 200 {
			t.Fatalf("list %s: %d %s", query, a.code, a.raw)
		}
		for _, it := range a.body["templates"].([]any) {
			m := it.(map[string]any)
			if _, ok := m["spec"]; ok {
				t.Errorf("list item with a spec: %v", m)
			}
			names = append(names, m["owner"].(string)+"/"+m["name"].(string))
		}
		next, _ = a.body["next_cursor"].(string)
		return names, next
	}
	var all []string
	for cur, page := "", 0; page < 5; page++ {
		names, next := list("alice", "?limit=1&cursor="+cur)
		all = append(all, names...)
		if next == "" {
			break
		}
		cur = next
	}
	if got := strings.Join(all, " "); got != "alice/base alice/from-j1 admin/shared-base" {
		t.Errorf("alice's pages: %q", got)
	}
	if got, _ := list("bob", ""); strings.Join(got, " ") != "admin/shared-base" {
		t.Errorf("bob's list: %q", got)
	}
	if got, _ := list("alice", "?visibility=private"); strings.Join(got, " ") != "alice/base alice/from-j1" {
		t.Errorf("alice's private list: %q", got)
	}
	if got, _ := list("carol", ""); len(got) != 1 {
		t.Errorf("carol's list: %q", got)
	}
	call(t, e, "alice", "GET", "/api/templates?limit=0", nil).expect(t, "limit 0", 400, "limit: want an integer between 1 and 200")
	call(t, e, "alice", "GET", "/api/templates?sort=name", nil).expect(t, "unknown parameter", 400, `unknown query parameter "sort"`)
	call(t, e, "alice", "GET", "/api/templates?cursor=!!", nil).expect(t, "bad cursor", 400, "cursor: not a cursor returned by this API")
	call(t, e, "alice", "GET", "/api/templates?visibility=all", nil).expect(t, "bad visibility", 400, `visibility: want private or shared`)

	// Delete removes every version.
	if a := call(t, e, "alice", "DELETE", "/api/templates/base", nil); a.code != 200 || a.body["deleted"] != true || a.body["name"] != "base" {
		t.Fatalf("delete: %d %s", a.code, a.raw)
	}
	call(t, e, "alice", "GET", "/api/templates/base@1", nil).expect(t, "deleted template", 404, `template "base" not found`)
	call(t, e, "alice", "DELETE", "/api/templates/base@1", nil).expect(t, "delete a version", 400, "give NAME without @VERSION")
}

func TestExecuteFromTemplate(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Templates.Put("alice", "base", job.VisibilityPrivate, tinySpec,
		`{"method":"sft","model":"builtin:tiny","dataset":{"path":"/data/v2.jsonl"},"hyperparameters":{"max_steps":99}}`)
	e.Templates.Put("admin", "shared-tiny", job.VisibilityShared, `{"method":"dpo","model":"builtin:tiny","dataset":{"path":"/data/p.jsonl"}}`)
	// Templates saved when the gateway allowed what it no longer does.
	e.Templates.Put("alice", "old-partition", job.VisibilityPrivate, `{"method":"sft","model":"builtin:tiny","dataset":{"path":"/d.jsonl"},"resources":{"partition":"debug"}}`)
	e.Templates.Put("alice", "old-cluster", job.VisibilityPrivate, `{"method":"sft","model":"builtin:tiny","dataset":{"path":"/d.jsonl"},"resources":{"cluster":"gone"}}`)

	a := call(t, e, "alice", "POST", "/api/training/execute", `{"template":"base@1","overrides":{"name":"from-tpl","hyperparameters":{"max_steps":12}}}`)
	if a.code != 202 || get(a.body, "template.name") != "base" || get(a.body, "template.version") != 1.0 || get(a.body, "template.owner") != "alice" ||
		get(a.body, "spec.name") != "from-tpl" || get(a.body, "spec.hyperparameters.max_steps") != 12.0 ||
		get(a.body, "spec.hyperparameters.learning_rate") != 0.003 || get(a.body, "spec.resources.partition") != "urgent" ||
		get(a.body, "spec.hyperparameters.batch_size") != 8.0 {
		t.Fatalf("execute from base@1: %d %s", a.code, a.raw)
	}
	j, err := e.Store.Get(t.Context(), a.body["id"].(string))
	if err != nil || j.Template == nil || j.Template.String() != "base@1" {
		t.Fatalf("stored job's template: %+v, %v", j.Template, err)
	}
	if s := call(t, e, "alice", "GET", "/api/training/status/"+j.ID, nil); get(s.body, "template.version") != 1.0 {
		t.Errorf("status shows no template: %s", s.raw)
	}
	// The latest version without @; no overrides at all.
	if a := call(t, e, "alice", "POST", "/api/training/execute", `{"template":"base"}`); a.code != 202 || get(a.body, "template.version") != 2.0 ||
		get(a.body, "spec.dataset.path") != "/data/v2.jsonl" || get(a.body, "spec.resources.partition") != "gpu" {
		t.Errorf("execute from the latest: %d %s", a.code, a.raw)
	}
	// A dry run shows the merged spec and the template version; nothing is created.
	created := e.Store.Created()
	if a := call(t, e, "alice", "POST", "/api/training/execute?dry_run=1", `{"template":"base@1","overrides":{"resources":{"gpus":2}}}`); a.code != 200 ||
		a.body["dry_run"] != true || get(a.body, "template.version") != 1.0 || get(a.body, "spec.resources.gpus") != 2.0 ||
		get(a.body, "spec.distributed.processes_per_node") != 2.0 || !strings.Contains(a.body["script"].(string), "--partition=urgent") || e.Store.Created() != created {
		t.Errorf("dry run: %d %s", a.code, a.raw)
	}
	// null removes the template's value: the default applies.
	if a := call(t, e, "alice", "POST", "/api/training/execute", `{"template":"old-partition","overrides":{"resources":{"partition":null}}}`); a.code != 202 ||
		get(a.body, "spec.resources.partition") != "gpu" {
		t.Errorf("null override: %d %s", a.code, a.raw)
	}
	// Bob uses the shared template; alice's private one does not exist for him.
	if a := call(t, e, "bob", "POST", "/api/training/execute", `{"template":"shared-tiny","overrides":{"dataset":{"eval_path":"/data/e.jsonl"}}}`); a.code != 202 ||
		get(a.body, "template.owner") != "admin" || a.body["user"] != "bob" || get(a.body, "spec.method") != "dpo" || get(a.body, "spec.dataset.path") != "/data/p.jsonl" {
		t.Errorf("bob from the shared template: %d %s", a.code, a.raw)
	}
	for _, tc := range []struct {
		what, user, body string
		code             int
		want             string
	}{
		{"another user's private template", "bob", `{"template":"base"}`, 404, `template "base" not found`},
		{"no such template", "alice", `{"template":"nope@1"}`, 404, `template "nope" not found`},
		{"no such version", "alice", `{"template":"base@5"}`, 404, "template base has no version 5 (the latest is 2)"},
		{"bad reference", "alice", `{"template":"base@v1"}`, 400, "template: the version after @ must be a positive integer"},
		{"template not a string", "alice", `{"template":3}`, 400, "template: want a string NAME or NAME@VERSION"},
		{"spec fields beside the template", "alice", `{"template":"base","model":"/m"}`, 400, `unknown field "model": with "template" the body holds only "overrides"`},
		{"overrides not an object", "alice", `{"template":"base","overrides":"max_steps=3"}`, 400, "overrides: want a JSON object of spec fields"},
		{"override of the wrong type", "alice", `{"template":"base@1","overrides":{"hyperparameters":{"max_steps":"many"}}}`, 400,
			`field "hyperparameters.max_steps": want int, got string (spec from template base@1 with the overrides)`},
		{"unknown override field", "alice", `{"template":"base","overrides":{"hyperparameters":{"max_stepz":3}}}`, 400, `unknown field "max_stepz" (spec from template base@2`},
		{"override out of range", "alice", `{"template":"base","overrides":{"hyperparameters":{"max_steps":-3}}}`, 422,
			"invalid spec: hyperparameters.max_steps: must be between 0 and 10000000, got -3 (spec from template base@2 with the overrides)"},
		{"override to a partition not allowed", "alice", `{"template":"base","overrides":{"resources":{"partition":"debug"}}}`, 422,
			`invalid spec: resources.partition: "debug" is not allowed on cluster dev (allowed: gpu, urgent)`},
		{"template's partition no longer allowed", "alice", `{"template":"old-partition"}`, 422,
			`invalid spec: resources.partition: "debug" is not allowed on cluster dev (allowed: gpu, urgent) (spec from template old-partition@1 with the overrides)`},
		{"template's cluster no longer served", "alice", `{"template":"old-cluster"}`, 422,
			`invalid spec: resources.cluster: unknown cluster "gone" (known: dev) (spec from template old-cluster@1`},
		{"dry run of a template no longer allowed", "alice", `{"template":"old-partition"}`, 422, `resources.partition: "debug" is not allowed`},
	} {
		path := "/api/training/execute"
		if strings.HasPrefix(tc.what, "dry run") {
			path += "?dry_run=1"
		}
		call(t, e, tc.user, "POST", path, tc.body).expect(t, tc.what, tc.code, tc.want)
	}
}

func TestExecuteFromTemplateIdempotency(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Templates.Put("alice", "base", job.VisibilityPrivate, tinySpec)
	body := `{"template":"base","overrides":{"hyperparameters":{"max_steps":5}}}`
	first := call(t, e, "alice", "POST", "/api/training/execute", body, "Idempotency-Key", "k1")
	if first.code != 202 {
		t.Fatalf("first: %d %s", first.code, first.raw)
	}
	// A new version meanwhile: the retry of the same request still answers its job.
	if a := call(t, e, "alice", "PUT", "/api/templates/base", `{"spec":{"method":"sft","model":"builtin:tiny","dataset":{"path":"/data/v2.jsonl"}}}`); a.code != 200 {
		t.Fatalf("put: %d %s", a.code, a.raw)
	}
	again := call(t, e, "alice", "POST", "/api/training/execute", `{"overrides": {"hyperparameters": {"max_steps": 5}}, "template": "base"}`, "Idempotency-Key", "k1")
	if again.code != 202 || again.body["id"] != first.body["id"] || again.hdr.Get("Idempotent-Replayed") != "true" || e.Store.Created() != 1 {
		t.Errorf("retry: %d %s (replayed %q), jobs %d; want the first job again", again.code, again.raw, again.hdr.Get("Idempotent-Replayed"), e.Store.Created())
	}
	call(t, e, "alice", "POST", "/api/training/execute", `{"template":"base","overrides":{"hyperparameters":{"max_steps":6}}}`, "Idempotency-Key", "k1").
		expect(t, "same key, other overrides", 409, `Idempotency-Key "k1" was already used with a different body`)
	call(t, e, "alice", "POST", "/api/training/execute", tinySpec, "Idempotency-Key", "k1").
		expect(t, "same key, a plain spec", 409, "already used with a different body")
}
