package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ftgate/ftgate/internal/job"
)

// templateCols are a template's columns joined with one of its versions (t, v).
const templateCols = `t.id, t.owner_subject, t.owner_user, t.name, t.visibility, v.version, t.latest_version, v.spec, v.from_job,
 t.created_at, v.created_at`

// templateLatest joins each template with its latest version.
const templateLatest = ` FROM templates t JOIN template_versions v ON v.template_id = t.id AND v.version = t.latest_version`

func scanTemplate(row pgx.Row) (job.Template, error) {
	var t job.Template
	var spec []byte
	err := row.Scan(&t.ID, &t.OwnerSubject, &t.Owner, &t.Name, &t.Visibility, &t.Version, &t.LatestVersion, &spec, &t.FromJob,
		&t.CreatedAt, &t.UpdatedAt)
	t.Spec = spec
	return t, err
}

// templateError translates err, naming the unique index a name collided with.
func templateError(err error, name string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		switch pe.ConstraintName {
		case "templates_owner_name":
			return &job.Error{Code: job.EConflict, Message: fmt.Sprintf("template %q already exists; PUT /api/templates/%s saves a new version", name, name), Err: err}
		case "templates_shared_name":
			return &job.Error{Code: job.EConflict, Message: fmt.Sprintf("a shared template named %q already exists; choose another name", name), Err: err}
		}
	}
	return translate(err, "template "+name)
}

// CreateTemplate stores t (owner, name, visibility, spec, from-job) as version 1 of a
// new template. A name the owner already uses, or that a shared template uses when t
// is shared, is EConflict.
func (s *Store) CreateTemplate(ctx context.Context, t job.Template) (job.Template, error) {
	var out job.Template
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		now := s.now()
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO templates (owner_subject, owner_user, name, visibility, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) RETURNING id`, t.OwnerSubject, t.Owner, t.Name, t.Visibility, now).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = insertVersion(ctx, tx, id, 1, t, now)
		return err
	})
	if err != nil {
		return job.Template{}, templateError(err, t.Name)
	}
	return out, nil
}

// AddTemplateVersion saves t's spec and from-job as the next version of template
// t.ID (t.Name names it in errors); a non-empty t.Visibility changes the template's
// visibility.
func (s *Store) AddTemplateVersion(ctx context.Context, t job.Template) (job.Template, error) {
	var out job.Template
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		now := s.now()
		var version int
		// The row lock orders concurrent versions of one template.
		if err := tx.QueryRow(ctx, `UPDATE templates SET latest_version = latest_version + 1, updated_at = $2,
			visibility = coalesce(nullif($3, ''), visibility) WHERE id = $1 RETURNING latest_version`,
			t.ID, now, t.Visibility).Scan(&version); err != nil {
			return err
		}
		var err error
		out, err = insertVersion(ctx, tx, t.ID, version, t, now)
		return err
	})
	if err != nil {
		return job.Template{}, templateError(err, t.Name)
	}
	return out, nil
}

func insertVersion(ctx context.Context, tx pgx.Tx, id int64, version int, v job.Template, now time.Time) (job.Template, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO template_versions (template_id, version, spec, from_job, created_at)
		VALUES ($1, $2, $3, $4, $5)`, id, version, []byte(v.Spec), v.FromJob, now); err != nil {
		return job.Template{}, err
	}
	return scanTemplate(tx.QueryRow(ctx, `SELECT `+templateCols+templateLatest+` WHERE t.id = $1`, id))
}

// FindTemplate returns version (0: the latest) of the template called name that
// subject sees: their own, else the shared one. Others' private templates are
// ENotFound, like missing ones.
func (s *Store) FindTemplate(ctx context.Context, subject, name string, version int) (job.Template, error) {
	const pick = `SELECT id FROM templates WHERE name = $2 AND (owner_subject = $1 OR visibility = 'shared')
		ORDER BY owner_subject = $1 DESC LIMIT 1`
	t, err := scanTemplate(s.Pool.QueryRow(ctx, `SELECT `+templateCols+` FROM templates t
		JOIN template_versions v ON v.template_id = t.id AND v.version = CASE WHEN $3 = 0 THEN t.latest_version ELSE $3 END
		WHERE t.id = (`+pick+`)`, subject, name, version))
	if errors.Is(err, pgx.ErrNoRows) && version > 0 {
		var latest int
		if err := s.Pool.QueryRow(ctx, `SELECT latest_version FROM templates WHERE id = (`+pick+`)`, subject, name).Scan(&latest); err == nil {
			return job.Template{}, job.Errorf(job.ENotFound, "template %s has no version %d (the latest is %d)", name, version, latest)
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return job.Template{}, job.Errorf(job.ENotFound, "template %q not found", name)
	}
	return t, translate(err, "template "+name)
}

// TemplateFilter selects the templates ListTemplates returns.
type TemplateFilter struct {
	// Subject is the caller: their templates and the shared ones are listed.
	Subject string
	// Visibility, when set, keeps only private (the caller's) or shared templates.
	Visibility string
	Limit      int
	Cursor     string
}

var errTemplateCursor = job.Errorf(job.EInvalid, "cursor: not a cursor returned by this API")

// EncodeTemplateCursor is the cursor of the page after template t (by name, then id).
func EncodeTemplateCursor(t job.Template) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.ID, 10) + "|" + t.Name))
}

// DecodeTemplateCursor reads a cursor of EncodeTemplateCursor: the name and id to
// continue after.
func DecodeTemplateCursor(c string) (name string, id int64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", 0, errTemplateCursor
	}
	n, name, ok := strings.Cut(string(b), "|")
	id, err = strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || !job.ValidName(name) {
		return "", 0, errTemplateCursor
	}
	return name, id, nil
}

// ListTemplates returns one page of the templates f.Subject sees, by name (then id),
// each at its latest version without its spec, and the next page's cursor ("" at
// the end).
func (s *Store) ListTemplates(ctx context.Context, f TemplateFilter) ([]job.Template, string, error) {
	args := []any{f.Subject}
	where := []string{"(t.owner_subject = $1 OR t.visibility = 'shared')"}
	if f.Visibility != "" {
		args = append(args, f.Visibility)
		where = append(where, "t.visibility = $2")
	}
	if f.Cursor != "" {
		name, id, err := DecodeTemplateCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, name, id)
		where = append(where, fmt.Sprintf("(t.name, t.id) > ($%d, $%d)", len(args)-1, len(args)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	cols := strings.Replace(templateCols, "v.spec", "NULL::jsonb", 1)
	rows, err := s.Pool.Query(ctx, `SELECT `+cols+templateLatest+` WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY t.name, t.id LIMIT %d`, limit+1), args...)
	if err != nil {
		return nil, "", translate(err, "templates")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (job.Template, error) { return scanTemplate(r) })
	if err != nil {
		return nil, "", translate(err, "templates")
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = EncodeTemplateCursor(out[limit-1])
	}
	return out, next, nil
}

// DeleteTemplate deletes template id with every version. Jobs started from it keep
// their record of the name and version.
func (s *Store) DeleteTemplate(ctx context.Context, id int64) error {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM templates WHERE id = $1`, id)
	if err != nil {
		return translate(err, "template")
	}
	if tag.RowsAffected() == 0 {
		return job.Errorf(job.ENotFound, "template not found")
	}
	return nil
}
