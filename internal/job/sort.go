package job

import (
	"slices"
	"strings"
)

// Sort is the order of a job list (GET /api/jobs?sort=). Every order breaks ties by
// job id in the same direction; jobs without a value (no loss yet, never started)
// come last in both directions.
type Sort string

// The list orders.
const (
	SortCreated  Sort = "created"   // creation time (the default, newest first)
	SortDuration Sort = "duration"  // running time so far: (end or now) - first start
	SortLoss     Sort = "loss"      // latest train loss
	SortEvalLoss Sort = "eval_loss" // latest eval loss
)

// Sorts lists the orders, for messages and documentation.
var Sorts = []Sort{SortCreated, SortDuration, SortLoss, SortEvalLoss}

// DefaultDesc is the direction of a sort without order=: newest first and longest
// first; the losses lowest (best) first.
func (s Sort) DefaultDesc() bool { return s == SortCreated || s == SortDuration }

// SortNames is Sorts joined for messages: "created, duration, loss, eval_loss".
func SortNames() string {
	names := make([]string, len(Sorts))
	for i, v := range Sorts {
		names[i] = string(v)
	}
	return strings.Join(names, ", ")
}

// ParseSort reads the sort= and order= query values ("" takes the defaults) into
// the sort and whether it is descending. Errors name the parameter.
func ParseSort(sort, order string) (Sort, bool, error) {
	s := Sort(sort)
	if sort == "" {
		s = SortCreated
	}
	if !slices.Contains(Sorts, s) {
		return "", false, Errorf(EInvalid, "sort: want one of %s, got %q", SortNames(), truncate(sort, 40))
	}
	switch order {
	case "":
		return s, s.DefaultDesc(), nil
	case "asc":
		return s, false, nil
	case "desc":
		return s, true, nil
	}
	return "", false, Errorf(EInvalid, "order: want asc or desc, got %q", truncate(order, 40))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
