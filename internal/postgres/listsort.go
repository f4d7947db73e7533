package postgres

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// Sort, the list order, is job.Sort; the aliases keep List's callers short.
type Sort = job.Sort

// The list orders (job.SortCreated...).
const (
	SortCreated  = job.SortCreated
	SortDuration = job.SortDuration
	SortLoss     = job.SortLoss
	SortEvalLoss = job.SortEvalLoss
)

// nullable reports whether some jobs have no value for the sort.
func nullable(s Sort) bool { return s != SortCreated }

// SortKey is a job's value under a sort: ok false when it has none (sorted last).
// Created and duration are microseconds; asOf ends the running time of a job that
// has not ended, so every page of one listing measures against the same instant.
func SortKey(s Sort, j job.Job, asOf time.Time) (float64, bool) {
	switch s {
	case SortDuration:
		if j.StartedAt == nil {
			return 0, false
		}
		end := asOf
		if j.EndedAt != nil {
			end = *j.EndedAt
		}
		return float64(end.Truncate(time.Microsecond).Sub(j.StartedAt.Truncate(time.Microsecond)).Microseconds()), true
	case SortLoss:
		return floatKey(j.Progress.Loss)
	case SortEvalLoss:
		return floatKey(j.Progress.EvalLoss)
	}
	return float64(j.CreatedAt.UnixMicro()), true
}

func floatKey(p *float64) (float64, bool) {
	if p == nil || math.IsNaN(*p) {
		return 0, false
	}
	return *p, true
}

// Compare orders a and b as List returns them under f's sort (negative: a first).
func (f Filter) Compare(a, b job.Job) int {
	ka, oka := SortKey(f.sort(), a, f.AsOf)
	kb, okb := SortKey(f.sort(), b, f.AsOf)
	switch {
	case oka != okb:
		if oka {
			return -1
		}
		return 1
	case oka && ka != kb:
		c := -1
		if ka > kb {
			c = 1
		}
		if f.desc() {
			c = -c
		}
		return c
	}
	c := strings.Compare(a.ID, b.ID)
	if f.desc() {
		c = -c
	}
	return c
}

func (f Filter) sort() Sort {
	if f.Sort == "" {
		return SortCreated
	}
	return f.Sort
}

// desc is the effective direction: Desc, or newest first for a Filter without Sort.
func (f Filter) desc() bool { return f.Sort == "" || f.Desc }

// Cursor is a decoded keyset position: the last job of a page under one sort.
type Cursor struct {
	Sort  Sort
	Desc  bool
	AsOf  time.Time // duration: the instant the first page measured against
	Null  bool      // the job had no value for the sort
	Value float64   // SortKey
	ID    string
}

// EncodeCursor is the opaque cursor after j, the last job of a page listed with f.
func EncodeCursor(f Filter, j job.Job) string {
	v, ok := SortKey(f.sort(), j, f.AsOf)
	dir := "a"
	if f.desc() {
		dir = "d"
	}
	val := ""
	if ok {
		val = strconv.FormatFloat(v, 'g', -1, 64)
	}
	raw := strings.Join([]string{"2", string(f.sort()), dir, strconv.FormatInt(f.AsOf.UnixMicro(), 10), val, j.ID}, "|")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

var errCursor = job.Errorf(job.EInvalid, "cursor: not a cursor returned by this API")

// DecodeCursor reads a cursor of EncodeCursor and checks it belongs to f's sort and
// order (a cursor continues the listing it came from).
func DecodeCursor(f Filter, c string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return Cursor{}, errCursor
	}
	parts := strings.Split(string(b), "|")
	if len(parts) == 2 { // the format before sort=: (created_at, id), newest first
		parts = []string{"2", string(SortCreated), "d", "0", parts[0], parts[1]}
	}
	if len(parts) != 6 || parts[0] != "2" || (parts[2] != "a" && parts[2] != "d") || parts[5] == "" {
		return Cursor{}, errCursor
	}
	cur := Cursor{Sort: Sort(parts[1]), Desc: parts[2] == "d", ID: parts[5], Null: parts[4] == ""}
	us, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return Cursor{}, errCursor
	}
	cur.AsOf = time.UnixMicro(us)
	if !cur.Null {
		if cur.Value, err = strconv.ParseFloat(parts[4], 64); err != nil || math.IsNaN(cur.Value) || math.IsInf(cur.Value, 0) {
			return Cursor{}, errCursor
		}
	}
	if cur.Sort != f.sort() || cur.Desc != f.desc() {
		return Cursor{}, job.Errorf(job.EInvalid, "cursor: it continues a list sorted by %s %s; pass the same sort and order", cur.Sort, map[bool]string{false: "asc", true: "desc"}[cur.Desc])
	}
	if cur.Null && !nullable(cur.Sort) {
		return Cursor{}, errCursor
	}
	return cur, nil
}

// After reports whether j comes after the cursor position under f (for in-memory
// stores paging like List).
func (c Cursor) After(f Filter, j job.Job) bool {
	k, ok := SortKey(f.sort(), j, c.AsOf)
	switch {
	case c.Null && ok:
		return false
	case !c.Null && !ok:
		return true
	case ok && k != c.Value:
		return (k > c.Value) != f.desc()
	}
	if f.desc() {
		return j.ID < c.ID
	}
	return j.ID > c.ID
}

// Matches reports whether j passes f's filters as List applies them.
func (f Filter) Matches(j job.Job) bool {
	contains := func(s, sub string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(sub)) }
	switch {
	case f.Owner != "" && j.OwnerSubject != f.Owner,
		f.User != "" && j.User != f.User,
		len(f.States) > 0 && !slices.Contains(f.States, j.State),
		!f.From.IsZero() && j.CreatedAt.Before(f.From),
		!f.To.IsZero() && !j.CreatedAt.Before(f.To),
		f.Model != "" && !contains(j.Spec.Model, f.Model),
		f.Search != "" && !contains(j.Spec.Name, f.Search) && !contains(j.Spec.Model, f.Search),
		f.Cluster != "" && j.Cluster != f.Cluster:
		return false
	}
	return true
}

// Page is List over jobs held in memory (the unit tests' fake stores): the same
// filters, order, cursors and page size, with now as the listing's instant.
func Page(f Filter, jobs []job.Job, now time.Time) ([]job.Job, string, error) {
	f.AsOf = now.Truncate(time.Microsecond)
	var cur *Cursor
	if f.Cursor != "" {
		c, err := DecodeCursor(f, f.Cursor)
		if err != nil {
			return nil, "", err
		}
		cur, f.AsOf = &c, c.AsOf
	}
	var out []job.Job
	for _, j := range jobs {
		if f.Matches(j) && (cur == nil || cur.After(f, j)) {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, f.Compare)
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	if len(out) <= limit {
		return out, "", nil
	}
	out = out[:limit]
	return out, EncodeCursor(f, out[limit-1]), nil
}
