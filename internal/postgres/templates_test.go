package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
)

func tmpl(owner, name, vis, spec string) job.Template {
	return job.Template{OwnerSubject: "sub-" + owner, Owner: owner, Name: name, Visibility: vis, Spec: []byte(spec)}
}

func TestIntegrationTemplates(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	a, err := s.CreateTemplate(ctx, tmpl("alice", "base", job.VisibilityPrivate, `{"model":"builtin:tiny"}`))
	if err != nil || a.Version != 1 || a.LatestVersion != 1 || a.Owner != "alice" || string(a.Spec) != `{"model": "builtin:tiny"}` || a.CreatedAt.IsZero() {
		t.Fatalf("CreateTemplate = %+v (spec %s), %v", a, a.Spec, err)
	}
	// Names are unique per owner, and among shared templates.
	if _, err := s.CreateTemplate(ctx, tmpl("alice", "base", job.VisibilityPrivate, `{}`)); job.ErrorCode(err) != job.EConflict ||
		!strings.Contains(job.ErrorMessage(err), `template "base" already exists; PUT /api/templates/base saves a new version`) {
		t.Fatalf("same owner, same name: %v", err)
	}
	if _, err := s.CreateTemplate(ctx, tmpl("bob", "base", job.VisibilityPrivate, `{"model":"/m/bob"}`)); err != nil {
		t.Fatalf("bob's own base: %v", err)
	}
	sh, err := s.CreateTemplate(ctx, tmpl("admin", "base", job.VisibilityShared, `{"model":"/m/shared"}`))
	if err != nil || sh.Visibility != job.VisibilityShared {
		t.Fatalf("shared base: %+v, %v", sh, err)
	}
	if _, err := s.CreateTemplate(ctx, tmpl("admin2", "base", job.VisibilityShared, `{}`)); job.ErrorCode(err) != job.EConflict ||
		!strings.Contains(job.ErrorMessage(err), `a shared template named "base" already exists`) {
		t.Fatalf("second shared base: %v", err)
	}
	if _, err := s.CreateTemplate(ctx, tmpl("admin", "only-shared", job.VisibilityShared, `{"model":"/m/only"}`)); err != nil {
		t.Fatal(err)
	}

	// Lookup: one's own template first, then the shared one; others' private ones never.
	for _, tc := range []struct{ subject, name, wantModel string }{
		{"sub-alice", "base", "builtin:tiny"},
		{"sub-bob", "base", "/m/bob"},
		{"sub-carol", "base", "/m/shared"},
		{"sub-alice", "only-shared", "/m/only"},
	} {
		got, err := s.FindTemplate(ctx, tc.subject, tc.name, 0)
		if err != nil || !strings.Contains(string(got.Spec), tc.wantModel) {
			t.Errorf("FindTemplate(%s, %s) = %s, %v; want model %s", tc.subject, tc.name, got.Spec, err, tc.wantModel)
		}
	}
	if _, err := s.CreateTemplate(ctx, tmpl("alice", "mine", job.VisibilityPrivate, `{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindTemplate(ctx, "sub-bob", "mine", 0); job.ErrorCode(err) != job.ENotFound || job.ErrorMessage(err) != `template "mine" not found` {
		t.Errorf("bob reads alice's private template: %v, want not found", err)
	}

	// Versions: each update is the next version; old ones stay readable.
	v2, err := s.AddTemplateVersion(ctx, job.Template{ID: a.ID, Name: "base", Spec: []byte(`{"model":"builtin:tiny","hyperparameters":{"max_steps":5}}`), FromJob: "job-1"})
	if err != nil || v2.Version != 2 || v2.LatestVersion != 2 || v2.FromJob != "job-1" || v2.Visibility != job.VisibilityPrivate {
		t.Fatalf("AddTemplateVersion = %+v, %v", v2, err)
	}
	if got, err := s.FindTemplate(ctx, "sub-alice", "base", 1); err != nil || got.Version != 1 || got.LatestVersion != 2 || strings.Contains(string(got.Spec), "max_steps") {
		t.Errorf("version 1 after an update: %+v, %v", got, err)
	}
	if got, err := s.FindTemplate(ctx, "sub-alice", "base", 0); err != nil || got.Version != 2 || !strings.Contains(string(got.Spec), "max_steps") {
		t.Errorf("latest after an update: %+v, %v", got, err)
	}
	if _, err := s.FindTemplate(ctx, "sub-alice", "base", 7); job.ErrorCode(err) != job.ENotFound || job.ErrorMessage(err) != "template base has no version 7 (the latest is 2)" {
		t.Errorf("missing version: %v", err)
	}
	var wg sync.WaitGroup
	versions := make([]int, 6)
	for i := range versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.AddTemplateVersion(ctx, job.Template{ID: a.ID, Name: "base", Spec: []byte(fmt.Sprintf(`{"hyperparameters":{"seed":%d}}`, i))})
			if err != nil {
				t.Errorf("concurrent version: %v", err)
			}
			versions[i] = v.Version
		}()
	}
	wg.Wait()
	slices.Sort(versions)
	if !slices.Equal(versions, []int{3, 4, 5, 6, 7, 8}) {
		t.Errorf("concurrent versions %v, want 3..8 each once", versions)
	}
	// Making a private template shared collides with the shared one of its name.
	if _, err := s.AddTemplateVersion(ctx, job.Template{ID: a.ID, Name: "base", Spec: []byte(`{}`), Visibility: job.VisibilityShared}); job.ErrorCode(err) != job.EConflict ||
		!strings.Contains(job.ErrorMessage(err), `a shared template named "base" already exists`) {
		t.Errorf("sharing alice's base: %v, want conflict", err)
	}

	// List: own and shared, by name then id, paged; visibility filters.
	names := func(ts []job.Template) string {
		var out []string
		for _, t := range ts {
			if t.Spec != nil {
				out = append(out, "SPEC!")
			}
			out = append(out, fmt.Sprintf("%s/%s@%d", t.Owner, t.Name, t.Version))
		}
		return strings.Join(out, " ")
	}
	var all []job.Template
	cursor := ""
	for page := 0; ; page++ {
		got, next, err := s.ListTemplates(ctx, postgres.TemplateFilter{Subject: "sub-alice", Limit: 2, Cursor: cursor})
		if err != nil || len(got) > 2 || page > 3 {
			t.Fatalf("page %d: %s, %v", page, names(got), err)
		}
		all = append(all, got...)
		if next == "" {
			break
		}
		cursor = next
	}
	if got, want := names(all), "alice/base@8 admin/base@1 alice/mine@1 admin/only-shared@1"; got != want {
		t.Errorf("alice's list %q, want %q", got, want)
	}
	got, _, err := s.ListTemplates(ctx, postgres.TemplateFilter{Subject: "sub-bob", Visibility: job.VisibilityShared})
	if err != nil || names(got) != "admin/base@1 admin/only-shared@1" {
		t.Errorf("bob's shared list %q, %v", names(got), err)
	}
	got, _, err = s.ListTemplates(ctx, postgres.TemplateFilter{Subject: "sub-bob", Visibility: job.VisibilityPrivate})
	if err != nil || names(got) != "bob/base@1" {
		t.Errorf("bob's private list %q, %v", names(got), err)
	}
	if _, _, err := s.ListTemplates(ctx, postgres.TemplateFilter{Subject: "sub-bob", Cursor: "bm9wZQ"}); job.ErrorCode(err) != job.EInvalid {
		t.Errorf("bad cursor: %v", err)
	}

	// Delete removes every version; a job started from it keeps its record.
	j := newJob("alice", "builtin:tiny")
	j.Template = &job.TemplateRef{Name: "base", Version: 8, Owner: "alice"}
	created, _, err := s.Create(ctx, j, quota.Limits{})
	if err != nil || created.Template == nil || *created.Template != *j.Template {
		t.Fatalf("job from a template: %+v, %v", created.Template, err)
	}
	if err := s.DeleteTemplate(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTemplate(ctx, a.ID); job.ErrorCode(err) != job.ENotFound {
		t.Errorf("second delete: %v", err)
	}
	if got, err := s.FindTemplate(ctx, "sub-alice", "base", 0); err != nil || got.Owner != "admin" {
		t.Errorf("after deleting her own base alice sees %+v, %v; want the shared one", got, err)
	}
	if _, err := s.FindTemplate(ctx, "sub-alice", "base", 3); job.ErrorCode(err) != job.ENotFound {
		t.Errorf("version 3 of the deleted template: %v", err)
	}
	if again, err := s.Get(ctx, created.ID); err != nil || again.Template == nil || again.Template.String() != "base@8" {
		t.Errorf("job after its template was deleted: %+v, %v", again.Template, err)
	}
	plain, _, err := s.Create(ctx, newJob("alice", "builtin:tiny"), quota.Limits{})
	if err != nil || plain.Template != nil {
		t.Errorf("job without a template: %+v, %v", plain.Template, err)
	}
}
