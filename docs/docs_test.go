// Package docs holds the project's documentation. Its test keeps the design doc and the
// README current with the tree: every repository path they name must exist, every
// function they name beside a file must be defined in that file, every relative link
// must resolve, and nothing may point outside the repository.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outside is the sibling directory the design contract lived in before the repository
// had its own (spelled in two parts so that this file does not mention it either).
const outside = ".." + "/shared"

// checked are the documents whose references are verified, relative to the repo root.
var checked = []string{"README.md", "docs/design.md", "docs/slurm-local-stack.md"}

var (
	// codeRE finds `...` spans.
	codeRE = regexp.MustCompile("`([^`\n]+)`")
	// pathRE is a repository path as the documents write it.
	pathRE = regexp.MustCompile(`^(\.ci|cmd|dev|docs|examples|internal|sbatch-templates|trainer|web|client)/[A-Za-z0-9_./-]*$`)
	// fileFuncRE is "`file` `Func`" or "`file` `Type.Method`": the function named beside a file.
	fileFuncRE = regexp.MustCompile("`((?:cmd|internal|trainer|client|web)/[A-Za-z0-9_./-]+\\.(?:go|py))` `([A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)?)`")
	// linkRE is a markdown link.
	linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from docs/: %v", err)
	}
	return root
}

func read(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pathsIn returns the repository paths named in code spans of text.
func pathsIn(text string) []string {
	var out []string
	for _, m := range codeRE.FindAllStringSubmatch(text, -1) {
		p := strings.TrimRight(m[1], ".,:;")
		if strings.ContainsAny(p, "<>*{} ") || !pathRE.MatchString(p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// defines reports whether source (Go or Python) defines name: a function, a method
// (Type.Method), a type or a class.
func defines(source, file, name string) bool {
	typ, fn, ok := strings.Cut(name, ".")
	if !ok {
		typ, fn = "", name
	}
	var pats []string
	if strings.HasSuffix(file, ".py") {
		pats = []string{`(?m)^\s*def ` + fn + `\(`, `(?m)^class ` + fn + `\b`}
		if typ != "" {
			pats = []string{`(?m)^class ` + typ + `\b[\s\S]*^\s+def ` + fn + `\(`}
		}
	} else {
		pats = []string{`(?m)^func (\([^)]*\) )?` + fn + `[\[(]`, `(?m)^type ` + fn + `\b`}
		if typ != "" {
			pats = []string{`(?m)^func \(\w+ \*?` + typ + `\) ` + fn + `\(`, `(?m)^\t` + fn + `\s`}
		}
	}
	for _, p := range pats {
		if regexp.MustCompile(p).MatchString(source) {
			return true
		}
	}
	return false
}

func TestDocsNamePathsThatExist(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	for _, doc := range checked {
		n := 0
		for _, p := range pathsIn(read(t, root, doc)) {
			n++
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s names %s, which does not exist", doc, p)
			}
		}
		if doc != "docs/slurm-local-stack.md" && n < 10 {
			t.Errorf("%s: only %d repository paths found; the path pattern no longer matches the document", doc, n)
		}
	}
}

func TestDocsNameFunctionsThatExist(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	total := 0
	for _, doc := range checked {
		for _, m := range fileFuncRE.FindAllStringSubmatch(read(t, root, doc), -1) {
			file, name := m[1], m[2]
			total++
			b, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Errorf("%s names %s, which does not exist", doc, file)
				continue
			}
			if !defines(string(b), file, name) {
				t.Errorf("%s names %s in %s, which does not define it", doc, name, file)
			}
		}
	}
	if total < 10 {
		t.Errorf("only %d file+function references found; the README's request trace should name them", total)
	}
}

func TestDocsLinksResolveInsideTheRepo(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	for _, doc := range checked {
		text := read(t, root, doc)
		if strings.Contains(text, outside) {
			t.Errorf("%s refers to %s, outside the repository", doc, outside)
		}
		for _, m := range linkRE.FindAllStringSubmatch(text, -1) {
			link, _, _ := strings.Cut(m[1], "#")
			if link == "" || strings.Contains(link, "://") {
				continue
			}
			target := filepath.Clean(filepath.Join(root, filepath.Dir(doc), link))
			if rel, err := filepath.Rel(root, target); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %s, outside the repository", doc, m[1])
				continue
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s links %s, which does not exist", doc, m[1])
			}
		}
	}
}

func TestDefines(t *testing.T) {
	t.Parallel()
	goSrc := "package x\n\ntype Store struct {\n\tPool int\n}\n\nfunc (s *Store) Create() {}\nfunc helper(a int) {}\nfunc Generic[T any]() {}\n"
	pySrc := "class Trainer:\n    def run(self):\n        pass\n\ndef main(argv=None):\n    pass\n"
	tests := []struct {
		src, file, name string
		want            bool
	}{
		{goSrc, "a.go", "Store.Create", true},
		{goSrc, "a.go", "Store.Delete", false},
		{goSrc, "a.go", "Other.Create", false},
		{goSrc, "a.go", "helper", true},
		{goSrc, "a.go", "Create", true},
		{goSrc, "a.go", "Pool", false},
		{goSrc, "a.go", "Store.Pool", true},
		{goSrc, "a.go", "Generic", true},
		{goSrc, "a.go", "Store", true},
		{goSrc, "a.go", "missing", false},
		{pySrc, "a.py", "Trainer.run", true},
		{pySrc, "a.py", "Trainer.stop", false},
		{pySrc, "a.py", "main", true},
		{pySrc, "a.py", "Trainer", true},
		{pySrc, "a.py", "Reporter", false},
	}
	for _, tc := range tests {
		if got := defines(tc.src, tc.file, tc.name); got != tc.want {
			t.Errorf("defines(%s, %s) = %v, want %v", tc.file, tc.name, got, tc.want)
		}
	}
}

func TestPathsIn(t *testing.T) {
	t.Parallel()
	got := pathsIn("see `internal/api/jobs.go`, `cmd/gateway/` and `<job_root>/<user>` or `make test` or `internal/x/*.go`.")
	want := []string{"internal/api/jobs.go", "cmd/gateway/"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("pathsIn = %q, want %q", got, want)
	}
}
