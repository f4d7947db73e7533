// Package benchtable collects the figures benchmarks print into one table: each
// figure, the reference it is compared with (measured in the same run), their ratio
// and the goal. Benchmarks call Record; `make bench` points FTGATE_BENCH_TABLE at a
// file and prints it at the end with `go run ./internal/benchtable/print FILE`.
// Nothing here asserts a time.
package benchtable

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
)

// Env names the file rows are appended to (JSON lines); unset: Record only prints.
const Env = "FTGATE_BENCH_TABLE"

// Row is one line of the table.
type Row struct {
	Figure    string  `json:"figure"`    // what was measured, e.g. "submit POST→queued p50"
	Value     float64 `json:"value"`     // its value
	Reference string  `json:"reference"` // what it is compared with, e.g. "raw sbatch, same SSH connection"
	RefValue  float64 `json:"ref_value"` // the reference's value, same unit ("" reference: none)
	Unit      string  `json:"unit"`      // ms, MiB/s, jobs/s
	// HigherIsBetter: throughput (ratio = value/ref) rather than latency (ratio = value/ref too,
	// but the goal reads "≤").
	HigherIsBetter bool    `json:"higher_is_better"`
	Goal           float64 `json:"goal"` // goal ratio (0: none), e.g. 1.5 for "≤ 1.5×", 0.8 for "≥ 80 %"
}

// Ratio is Value/RefValue (NaN without a reference).
func (r Row) Ratio() float64 {
	if r.RefValue == 0 {
		return math.NaN()
	}
	return r.Value / r.RefValue
}

// Met reports whether the goal is reached ("" without a goal).
func (r Row) Met() string {
	if r.Goal == 0 || math.IsNaN(r.Ratio()) {
		return ""
	}
	if (r.HigherIsBetter && r.Ratio() >= r.Goal) || (!r.HigherIsBetter && r.Ratio() <= r.Goal) {
		return "yes"
	}
	return "NO"
}

var mu sync.Mutex

// Record prints r and appends it to $FTGATE_BENCH_TABLE when set.
func Record(r Row) {
	fmt.Printf("bench: %s = %.4g %s; %s = %.4g %s; ratio %.2f\n", r.Figure, r.Value, r.Unit, r.Reference, r.RefValue, r.Unit, r.Ratio())
	path := os.Getenv(Env)
	if path == "" {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}

// Read parses a file written by Record; a later row with the same figure replaces an
// earlier one (a benchmark that ran twice).
func Read(r io.Reader) ([]Row, error) {
	dec := json.NewDecoder(r)
	var rows []Row
	idx := map[string]int{}
	for {
		var row Row
		if err := dec.Decode(&row); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read bench table: %w", err)
		}
		if i, ok := idx[row.Figure]; ok {
			rows[i] = row
			continue
		}
		idx[row.Figure] = len(rows)
		rows = append(rows, row)
	}
	return rows, nil
}

// Write prints rows as one Markdown table, in the order recorded.
func Write(w io.Writer, rows []Row) {
	num := func(v float64) string {
		if v == 0 || math.IsNaN(v) {
			return "—"
		}
		return fmt.Sprintf("%.4g", v)
	}
	fmt.Fprintln(w, "| figure | value | reference (same run) | reference value | ratio | goal | met |")
	fmt.Fprintln(w, "| --- | ---: | --- | ---: | ---: | --- | --- |")
	for _, r := range rows {
		goal := ""
		switch {
		case r.Goal == 0:
		case r.HigherIsBetter:
			goal = fmt.Sprintf("≥ %.2f", r.Goal)
		default:
			goal = fmt.Sprintf("≤ %.2f", r.Goal)
		}
		ratio := "—"
		if !math.IsNaN(r.Ratio()) {
			ratio = fmt.Sprintf("%.2f", r.Ratio())
		}
		fmt.Fprintf(w, "| %s | %s %s | %s | %s %s | %s | %s | %s |\n", r.Figure, num(r.Value), r.Unit,
			firstNonEmpty(r.Reference, "—"), num(r.RefValue), r.Unit, ratio, goal, r.Met())
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if strings.TrimSpace(x) != "" {
			return x
		}
	}
	return ""
}

// Percentile returns the p-quantile (0..1) of ds by nearest rank (ds is not modified).
func Percentile[T ~int64 | ~float64](ds []T, p float64) T {
	if len(ds) == 0 {
		return 0
	}
	s := append([]T(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(math.Round(p*float64(len(s)-1)))]
}
