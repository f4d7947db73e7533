package sshconn

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"
)

// shells the round trip is checked with: /bin/sh (dash on Debian) and bash, the login
// shell of the cluster users.
func shells(t testing.TB) []string {
	var out []string
	for _, sh := range []string{"/bin/sh", "/bin/bash"} {
		if _, err := os.Stat(sh); err == nil {
			out = append(out, sh)
		}
	}
	if len(out) == 0 {
		t.Skip("no shell")
	}
	return out
}

// roundTrip runs `printf '%s\0' <quoted args>` through sh -c in an empty directory
// and returns the words it printed and whether anything appeared in the directory.
func roundTrip(t testing.TB, shell string, args []string) ([]string, bool) {
	t.Helper()
	dir := t.TempDir()
	cmd, err := Command(append([]string{"printf", `%s\0`}, args...))
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(shell, "-c", cmd)
	c.Dir = dir
	c.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "IFS= \t\n", "PWNED=yes"}
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v", shell, cmd, err)
	}
	ents, _ := os.ReadDir(dir)
	words := strings.Split(string(out), "\x00")
	return words[:len(words)-1], len(ents) > 0
}

func TestQuoteTable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "''"},
		{"plain", "plain"},
		{"/abs/path_1.2-x", "/abs/path_1.2-x"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$(id)", "'$(id)'"},
		{"~", "'~'"},
		{"a=b", "'a=b'"},
		{"*", "'*'"},
		// The ends of the bare ranges stay bare; their neighbours are quoted.
		{"azAZ09", "azAZ09"},
		{"z", "z"}, {"A", "A"}, {"Z", "Z"}, {"0", "0"}, {"9", "9"},
		{"`", "'`'"}, {"{", "'{'"}, {"[", "'['"}, {"?", "'?'"},
		{"_-.,:@+%/", "_-.,:@+%/"},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQuoteRoundTripHostile(t *testing.T) {
	args := []string{"", " ", "'", `"`, `\`, "$PWNED", "${PWNED}", "$(touch pwned)", "`touch pwned`",
		"; touch pwned", "a\nb", "|| touch pwned", "&& touch pwned", "> pwned", "*", "?", "[a]", "~", "~root",
		"!!", "-n", "--", "\t", "\r", "é ü 漢", "\xff\xfe", "'$(touch pwned)'", `'"'"'`, "{a,b}", "#x", "a=b c"}
	for _, sh := range shells(t) {
		got, side := roundTrip(t, sh, args)
		if side {
			t.Errorf("%s: a file appeared: something executed", sh)
		}
		if len(got) != len(args) {
			t.Fatalf("%s: %d words back, want %d: %q", sh, len(got), len(args), got)
		}
		for i := range args {
			if got[i] != args[i] {
				t.Errorf("%s: word %d = %q, want %q", sh, i, got[i], args[i])
			}
		}
	}
}

// FuzzQuote: any byte string without NUL survives a round trip through sh -c
// unchanged and never executes anything.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", "'", "$(touch pwned)", "`touch pwned`", "a'b\"c\\d", "\n;touch pwned\n"} {
		f.Add(s)
	}
	sh := shells(f)
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			if _, err := Command([]string{s}); err == nil {
				t.Fatal("Command accepted a NUL byte")
			}
			return
		}
		for _, shell := range sh {
			got, side := roundTrip(t, shell, []string{s, s})
			if side {
				t.Fatalf("%s: %q executed something", shell, s)
			}
			if len(got) != 2 || got[0] != s || got[1] != s {
				t.Fatalf("%s: %q came back as %q", shell, s, got)
			}
		}
		if q := Quote(s); utf8.ValidString(s) && !utf8.ValidString(q) {
			t.Fatalf("quoting broke UTF-8: %q", q)
		}
		_ = bytes.MinRead
	})
}
