package slurm

import (
	"strings"
	"testing"
)

// FuzzParseSqueue: any squeue output parses or fails without panicking; parsed ids and
// owners hold no separator or newline.
func FuzzParseSqueue(f *testing.F) {
	for _, l := range strings.Split(capture("squeue-poll.txt"), "\n")[:4] {
		f.Add(l + "\n")
	}
	f.Add("1|1|N/A|RUNNING|0|0|N/A|N/A|gpu|vm|bob|a|b|c|\n")
	f.Fuzz(func(t *testing.T, out string) {
		rows, err := parseSqueue(out)
		if err != nil {
			return
		}
		for _, r := range rows {
			if strings.ContainsAny(r.raw+r.user, "|\n") {
				t.Fatalf("row %+v", r)
			}
		}
	})
}

// FuzzParseSacct: as FuzzParseSqueue for sacct, plus mergeRuns of the rows.
func FuzzParseSacct(f *testing.F) {
	for _, l := range strings.Split(capture("sacct-final.txt"), "\n")[:4] {
		f.Add(l + "\n")
	}
	f.Add("5|5|ftgate-x|gpu|alice|CANCELLED by 0|0:15|Unknown|N/A|None assigned|None\n")
	f.Fuzz(func(t *testing.T, out string) {
		rows, err := parseSacct(out)
		if err != nil || len(rows) == 0 {
			return
		}
		for _, r := range rows {
			if strings.ContainsAny(r.id+r.user, "|\n") {
				t.Fatalf("row %+v", r)
			}
		}
		st := mergeRuns(rows)
		if st.Restarts != len(rows)-1 {
			t.Fatalf("restarts %d for %d rows", st.Restarts, len(rows))
		}
	})
}

// FuzzParseCapacity: scontrol output never panics the capacity parser.
func FuzzParseCapacity(f *testing.F) {
	f.Add(capture("scontrol-node.txt"), capture("scontrol-partition.txt"))
	f.Fuzz(func(t *testing.T, nodes, parts string) {
		_, _ = parseCapacity(nodes, parts)
	})
}
