// Package apitest holds in-memory stores for tests of the API's handlers and of its
// clients. Only tests import it.
package apitest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
)

// MemTemplates implements api.Templates in memory with the rules of the Postgres
// store: names unique per owner and among shared templates, one's own template
// before the shared one of the same name, lists by name then id.
type MemTemplates struct {
	now    func() time.Time
	mu     sync.Mutex
	nextID int64
	// byID holds every version of each template, oldest first.
	byID map[int64][]job.Template
}

// NewMemTemplates returns an empty template store whose clock is now.
func NewMemTemplates(now func() time.Time) *MemTemplates {
	return &MemTemplates{now: now, byID: map[int64][]job.Template{}}
}

// latest is the newest version of each template, by name then id.
func (m *MemTemplates) latest() []job.Template {
	var out []job.Template
	for _, vs := range m.byID {
		t := vs[len(vs)-1]
		t.LatestVersion = len(vs)
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b job.Template) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })
	return out
}

func (m *MemTemplates) conflict(t job.Template, visibility string) error {
	for _, o := range m.latest() {
		switch {
		case o.ID == t.ID || o.Name != t.Name:
		case o.OwnerSubject == t.OwnerSubject:
			return job.Errorf(job.EConflict, "template %q already exists; PUT /api/templates/%s saves a new version", t.Name, t.Name)
		case visibility == job.VisibilityShared && o.Visibility == job.VisibilityShared:
			return job.Errorf(job.EConflict, "a shared template named %q already exists; choose another name", t.Name)
		}
	}
	return nil
}

// CreateTemplate stores t as version 1 of a new template.
func (m *MemTemplates) CreateTemplate(ctx context.Context, t job.Template) (job.Template, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.conflict(t, t.Visibility); err != nil {
		return job.Template{}, err
	}
	m.nextID++
	t.ID, t.Version, t.LatestVersion = m.nextID, 1, 1
	t.CreatedAt, t.UpdatedAt = m.now(), m.now()
	m.byID[t.ID] = []job.Template{t}
	return t, nil
}

// AddTemplateVersion saves t's spec and from-job as the next version of template t.ID.
func (m *MemTemplates) AddTemplateVersion(ctx context.Context, t job.Template) (job.Template, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs, ok := m.byID[t.ID]
	if !ok {
		return job.Template{}, job.Errorf(job.ENotFound, "template %s not found", t.Name)
	}
	next := vs[len(vs)-1]
	if t.Visibility != "" {
		if err := m.conflict(next, t.Visibility); err != nil {
			return job.Template{}, err
		}
		next.Visibility = t.Visibility
	}
	next.Version = len(vs) + 1
	next.Spec, next.FromJob, next.UpdatedAt = t.Spec, t.FromJob, m.now()
	for i := range vs {
		vs[i].Visibility = next.Visibility
	}
	m.byID[t.ID] = append(vs, next)
	next.LatestVersion = next.Version
	return next, nil
}

// FindTemplate returns version (0: the latest) of subject's own template name, else
// of the shared one.
func (m *MemTemplates) FindTemplate(ctx context.Context, subject, name string, version int) (job.Template, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var found []job.Template
	for _, t := range m.latest() {
		if t.Name == name && (t.OwnerSubject == subject || t.Visibility == job.VisibilityShared) {
			found = append(found, t)
		}
	}
	if len(found) == 0 {
		return job.Template{}, job.Errorf(job.ENotFound, "template %q not found", name)
	}
	pick := found[0]
	for _, t := range found {
		if t.OwnerSubject == subject {
			pick = t
		}
	}
	vs := m.byID[pick.ID]
	if version == 0 {
		version = len(vs)
	}
	if version > len(vs) {
		return job.Template{}, job.Errorf(job.ENotFound, "template %s has no version %d (the latest is %d)", name, version, len(vs))
	}
	t := vs[version-1]
	t.LatestVersion = len(vs)
	return t, nil
}

// ListTemplates pages the latest versions subject sees, without their specs.
func (m *MemTemplates) ListTemplates(ctx context.Context, f postgres.TemplateFilter) ([]job.Template, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	afterName, afterID := "", int64(0)
	if f.Cursor != "" {
		var err error
		if afterName, afterID, err = postgres.DecodeTemplateCursor(f.Cursor); err != nil {
			return nil, "", err
		}
	}
	limit := cmp.Or(f.Limit, 50)
	var out []job.Template
	next := ""
	for _, t := range m.latest() {
		if (t.OwnerSubject != f.Subject && t.Visibility != job.VisibilityShared) || (f.Visibility != "" && t.Visibility != f.Visibility) {
			continue
		}
		if f.Cursor != "" && cmp.Or(cmp.Compare(t.Name, afterName), cmp.Compare(t.ID, afterID)) <= 0 {
			continue
		}
		if len(out) == limit {
			next = postgres.EncodeTemplateCursor(out[limit-1])
			break
		}
		t.Spec = nil
		out = append(out, t)
	}
	return out, next, nil
}

// DeleteTemplate deletes template id with every version.
func (m *MemTemplates) DeleteTemplate(ctx context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[id]; !ok {
		return job.Errorf(job.ENotFound, "template not found")
	}
	delete(m.byID, id)
	return nil
}

// Put stores a template as user's (owner subject sub-<user>) with one version per
// spec, for tests that start from existing templates.
func (m *MemTemplates) Put(user, name, visibility string, specs ...string) job.Template {
	var t job.Template
	var err error
	for i, s := range specs {
		if i == 0 {
			t, err = m.CreateTemplate(context.Background(), job.Template{OwnerSubject: "sub-" + user, Owner: user, Name: name, Visibility: visibility, Spec: []byte(s)})
		} else {
			t, err = m.AddTemplateVersion(context.Background(), job.Template{ID: t.ID, Name: name, Spec: []byte(s)})
		}
		if err != nil {
			panic(fmt.Sprintf("put template %s: %v", name, err))
		}
	}
	return t
}
