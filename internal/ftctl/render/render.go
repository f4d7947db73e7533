// Package render formats ftctl's terminal output: aligned tables, progress bars,
// sparklines, durations, sizes.
package render

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Table writes aligned columns: two spaces between columns, no trailing spaces.
type Table struct {
	header []string
	rows   [][]string
	right  map[int]bool
}

// NewTable starts a table with a header row.
func NewTable(header ...string) *Table {
	return &Table{header: header, right: map[int]bool{}}
}

// AlignRight right-aligns the given columns (numbers).
func (t *Table) AlignRight(cols ...int) {
	for _, c := range cols {
		t.right[c] = true
	}
}

// Row adds a row.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// Len is the number of rows.
func (t *Table) Len() int { return len(t.rows) }

// Render writes the table to w.
func (t *Table) Render(w io.Writer) error {
	all := append([][]string{t.header}, t.rows...)
	widths := make([]int, len(t.header))
	for _, r := range all {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	var b strings.Builder
	for _, r := range all {
		var line strings.Builder
		for i := range widths {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if t.right[i] {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// Sparkline renders values as one line of block characters, the last width values.
func Sparkline(values []float64, width int) string {
	if width > 0 && len(values) > width {
		values = values[len(values)-width:]
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	var b strings.Builder
	for _, v := range values {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			b.WriteRune(' ')
		case hi == lo:
			b.WriteRune(sparkRunes[len(sparkRunes)/2])
		default:
			i := int(math.Round((v - lo) / (hi - lo) * float64(len(sparkRunes)-1)))
			b.WriteRune(sparkRunes[i])
		}
	}
	return b.String()
}

// ProgressBar renders done/total as [#####.....] with the given inner width. A total
// of zero or less renders an empty bar.
func ProgressBar(done, total int64, width int) string {
	if width < 1 {
		width = 1
	}
	fill := 0
	if total > 0 {
		fill = int(float64(width) * float64(min(max(done, 0), total)) / float64(total))
	}
	return "[" + strings.Repeat("#", fill) + strings.Repeat(".", width-fill) + "]"
}

// Percent formats done/total as "42%", or "-" without a total.
func Percent(done, total int64) string {
	if total <= 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", min(100, done*100/total))
}

// FormatDuration renders d compactly: 45s, 3m12s, 2h05m, 3d4h.
func FormatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

// FormatAge renders how long ago t was, like kubectl: 5s, 3m, 2h, 4d.
func FormatAge(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// FormatBytes renders n bytes with a binary unit.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// FormatLoss renders a loss with 4 significant digits, or "-".
func FormatLoss(l *float64) string {
	if l == nil || math.IsNaN(*l) {
		return "-"
	}
	return fmt.Sprintf("%.4g", *l)
}

// Plural renders n with the singular or plural noun: 1 file, 2 files.
func Plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Dash renders an empty cell as "-".
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// OrDefault returns s, or def when s is empty.
func OrDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
