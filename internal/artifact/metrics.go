package artifact

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/ftgate/ftgate/internal/job"
)

// Series are a job's metrics.jsonl lines as one series per numeric field, for charts.
type Series struct {
	// LastStep is the highest step returned (or the since_step asked for): pass it as
	// since_step to get only newer points.
	LastStep int64 `json:"last_step"`
	// Series maps a field (loss, learning_rate, tokens_per_second, eval_loss...) to
	// [step, value] points, ascending by step. A step logged again after a restart
	// keeps its latest value.
	Series map[string][][2]float64 `json:"series"`
	// Skipped counts lines that were not valid JSON objects with a step, or longer
	// than MaxMetricsLine.
	Skipped int `json:"skipped_lines"`
	// Truncated: the file is larger than MaxMetricsBytes; only its last
	// MaxMetricsBytes were read.
	Truncated bool `json:"truncated,omitempty"`
}

// Bounds of one metrics read: bytes read (the file's tail), line length, steps kept,
// fields per line.
const (
	MaxMetricsBytes  = 32 << 20
	MaxMetricsLine   = 64 << 10
	MaxMetricsPoints = 10000
	maxMetricsFields = 64
)

// seriesSkip are bookkeeping fields, not series.
var seriesSkip = map[string]bool{"step": true, "time": true, "restart_count": true}

// ReadSeries reads metrics.jsonl, streamed, keeping lines whose step is beyond
// sinceStep; at most maxPoints steps are kept (the last ones; 0 or more than
// MaxMetricsPoints means MaxMetricsPoints). At most MaxMetricsBytes are read; lines
// longer than MaxMetricsLine are skipped without being buffered. Memory stays
// O(maxPoints) whatever the input.
func ReadSeries(r io.Reader, sinceStep int64, maxPoints int) (*Series, error) {
	if maxPoints <= 0 || maxPoints > MaxMetricsPoints {
		maxPoints = MaxMetricsPoints
	}
	rows := map[int64]map[string]float64{}
	out := &Series{Series: map[string][][2]float64{}}
	lr := &io.LimitedReader{R: r, N: MaxMetricsBytes}
	br := bufio.NewReaderSize(lr, MaxMetricsLine)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull { // longer than MaxMetricsLine: skip to its end
			out.Skipped++
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err == nil {
				continue
			}
			line = nil
		}
		if len(bytes.TrimSpace(line)) > 0 && (err == nil || err == io.EOF) {
			// A final line without a newline may be half written: only take it whole.
			if err == io.EOF && !json.Valid(bytes.TrimSpace(line)) {
				break
			}
			addRow(rows, line, sinceStep, out)
			if len(rows) > 2*maxPoints {
				pruneRows(rows, maxPoints)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if lr.N <= 0 {
		out.Truncated = true
	}
	steps := make([]int64, 0, len(rows))
	for s := range rows {
		steps = append(steps, s)
	}
	slices.Sort(steps)
	if len(steps) > maxPoints {
		steps = steps[len(steps)-maxPoints:]
	}
	for _, s := range steps {
		for k, v := range rows[s] {
			out.Series[k] = append(out.Series[k], [2]float64{float64(s), v})
		}
		out.LastStep = max(out.LastStep, s)
	}
	if out.LastStep < sinceStep {
		out.LastStep = sinceStep
	}
	return out, nil
}

// pruneRows keeps the keep highest steps of rows.
func pruneRows(rows map[int64]map[string]float64, keep int) {
	steps := make([]int64, 0, len(rows))
	for s := range rows {
		steps = append(steps, s)
	}
	slices.Sort(steps)
	for _, s := range steps[:len(steps)-keep] {
		delete(rows, s)
	}
}

func addRow(rows map[int64]map[string]float64, line []byte, sinceStep int64, out *Series) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		out.Skipped++
		return
	}
	st, ok := m["step"].(float64)
	if !ok || st != math.Trunc(st) || st < 0 {
		out.Skipped++
		return
	}
	step := int64(st)
	if step <= sinceStep {
		return
	}
	row := rows[step]
	if row == nil {
		row = map[string]float64{}
		rows[step] = row
	}
	for k, v := range m {
		f, ok := v.(float64)
		if !ok || seriesSkip[k] || math.IsNaN(f) || math.IsInf(f, 0) || len(k) > 64 || strings.ContainsAny(k, "\x00\n") {
			continue
		}
		if _, have := row[k]; !have && len(row) >= maxMetricsFields {
			continue
		}
		row[k] = f
	}
}

// Metrics reads the job's metrics.jsonl into series (see ReadSeries). A job without
// the file yet has empty series.
func (d *Dir) Metrics(ctx context.Context, sinceStep int64, maxPoints int) (*Series, error) {
	real, fi, err := d.Stat(ctx, job.MetricsJSONL)
	if job.ErrorCode(err) == job.ENotFound {
		return &Series{LastStep: sinceStep, Series: map[string][][2]float64{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var off int64
	if fi != nil && fi.Size() > MaxMetricsBytes {
		off = fi.Size() - MaxMetricsBytes // the newest points; the first (partial) line is skipped as invalid
	}
	rc, err := d.Open(ctx, real, off)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out, err := ReadSeries(rc, sinceStep, maxPoints)
	if err == nil && off > 0 {
		out.Truncated = true
	}
	return out, err
}
