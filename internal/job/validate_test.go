package job

import (
	"strings"
	"testing"
)

func TestCheckpointName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		step int64
		ok   bool
	}{
		{"step-10", 10, true},
		{"step-0", 0, true},
		{"step-", 0, false},
		{"step-1/..", 0, false},
		{"..", 0, false},
		{".tmp-step-3-1", 0, false},
		{"step-1x", 0, false},
		{"step-1234567890123", 0, false},
		{"step-\n1", 0, false},
	}
	for _, tt := range tests {
		n, err := CheckpointName(tt.in)
		if (err == nil) != tt.ok || n != tt.step || (err != nil && ErrorCode(err) != EInvalid) {
			t.Errorf("CheckpointName(%q) = %d, %v; want %d ok=%v", tt.in, n, err, tt.step, tt.ok)
		}
		if m, ok := CheckpointStep(tt.in); ok != tt.ok || m != tt.step {
			t.Errorf("CheckpointStep(%q) = %d, %v; want %d %v", tt.in, m, ok, tt.step, tt.ok)
		}
	}
}

func TestValidators(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f    func(string) bool
		name string
		good []string
		bad  []string
	}{
		{ValidUser, "ValidUser", []string{"alice", "_svc", "a-b_9"}, []string{"", "Root", "9a", "a;b", "../x", strings.Repeat("a", 33)}},
		{ValidName, "ValidName", []string{"gpu", "a.b-c_d", "A1"}, []string{"", ".x", "-x", "a b", "a/b", strings.Repeat("a", 65)}},
		{ValidID, "ValidID", []string{"j1", "0f8fad5b-d9cb-469f-a165-70867728950e", "A_b-9", strings.Repeat("a", 64)},
			[]string{"", "-x", "_x", "a.b", "a/b", "../x", "a b", "a;b", strings.Repeat("a", 65)}},
		{ValidSlurmID, "ValidSlurmID", []string{"1", "4294967295", "12_3"}, []string{"", "12345678901", "1_", "_1", "1;2", "a1"}},
	}
	for _, tt := range tests {
		for _, s := range tt.good {
			if !tt.f(s) {
				t.Errorf("%s(%q) = false", tt.name, s)
			}
		}
		for _, s := range tt.bad {
			if tt.f(s) {
				t.Errorf("%s(%q) = true", tt.name, s)
			}
		}
	}
}

func TestCheckPath(t *testing.T) {
	t.Parallel()
	for p, ok := range map[string]bool{
		"/data/x.jsonl": true, "/": true, "": false, "data/x": false, "/a/../b": false, "/a/./b": false,
		"/a//b": false, "/a/": false, "/a\x00b": false, "/a\nb": false, "/" + strings.Repeat("a", 4096): false,
	} {
		if err := CheckPath(p); (err == nil) != ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

func TestCheckRemotePath(t *testing.T) {
	t.Parallel()
	for p, ok := range map[string]bool{
		"/a/./b": true, "/a//b/": true, "/": true, "": false, "a": false, "/a/../b": false, "/..": false, "/a\x00": false, "/a..b": true,
	} {
		if err := CheckRemotePath(p); (err == nil) != ok {
			t.Errorf("CheckRemotePath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}
