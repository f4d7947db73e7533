package render

import (
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	t.Parallel()
	tb := NewTable("NAME", "N")
	tb.AlignRight(1)
	tb.Row("a", "1")
	tb.Row("longer", "100")
	tb.Row("ü", "")
	var b strings.Builder
	if err := tb.Render(&b); err != nil {
		t.Fatal(err)
	}
	if want := "NAME      N\na         1\nlonger  100\nü\n"; b.String() != want {
		t.Errorf("table\n%q\nwant\n%q", b.String(), want)
	}
	for _, tc := range []struct{ got, want string }{
		{Sparkline([]float64{1, 2, 3, 4, 5, 6, 7, 8}, 0), "▁▂▃▄▅▆▇█"},
		{Sparkline([]float64{5, 5}, 0), "▅▅"},
		{Sparkline([]float64{9, 1, 2, 3}, 3), "▁▅█"},
		{Sparkline(nil, 10), ""},
		{ProgressBar(5, 10, 10), "[#####.....]"},
		{ProgressBar(20, 10, 4), "[####]"},
		{ProgressBar(3, 0, 4), "[....]"},
		{Percent(1, 3), "33%"},
		{Percent(1, 0), "-"},
		{FormatDuration(45 * time.Second), "45s"},
		{FormatDuration(192 * time.Second), "3m12s"},
		{FormatDuration(2*time.Hour + 5*time.Minute), "2h05m"},
		{FormatDuration(76 * time.Hour), "3d4h"},
		{FormatAge(t0.Add(-90*time.Minute), t0), "1h"},
		{FormatAge(time.Time{}, t0), "-"},
		{FormatBytes(512), "512 B"},
		{FormatBytes(1536), "1.5 KiB"},
		{FormatBytes(3 << 30), "3.0 GiB"},
		{FormatLoss(nil), "-"},
		{FormatLoss(ptr(0.123456)), "0.1235"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestPluralDash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{Plural(1, "file", "files"), "1 file"},
		{Plural(0, "file", "files"), "0 files"},
		{Plural(3, "GPU", "GPUs"), "3 GPUs"},
		{Dash(""), "-"},
		{Dash("x"), "x"},
		{OrDefault("", "d"), "d"},
		{OrDefault("s", "d"), "s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }
