package benchtable

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordReadWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "table.jsonl")
	t.Setenv(Env, path)
	Record(Row{Figure: "submit p50", Value: 12, Reference: "raw sbatch", RefValue: 10, Unit: "ms", Goal: 1.5})
	Record(Row{Figure: "download", Value: 150, Reference: "OpenSSH sftp", RefValue: 250, Unit: "MiB/s", HigherIsBetter: true, Goal: 0.8})
	Record(Row{Figure: "submit p50", Value: 30, Reference: "raw sbatch", RefValue: 10, Unit: "ms", Goal: 1.5}) // rerun wins
	Record(Row{Figure: "pass", Value: 5, Unit: "ms"})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Value != 30 {
		t.Fatalf("rows %+v", rows)
	}
	var out bytes.Buffer
	Write(&out, rows)
	want := []string{
		"| submit p50 | 30 ms | raw sbatch | 10 ms | 3.00 | ≤ 1.50 | NO |",
		"| download | 150 MiB/s | OpenSSH sftp | 250 MiB/s | 0.60 | ≥ 0.80 | NO |",
		"| pass | 5 ms | — | — ms | — |  |  |",
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, out.String())
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if Percentile(ds, 0.5) != 3 || Percentile(ds, 0) != 1 || Percentile(ds, 1) != 5 || ds[0] != 5 {
		t.Errorf("percentiles wrong or input modified: %v", ds)
	}
}
