package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestStaticStampedBuild builds ftctl as `make dist` does (CGO_ENABLED=0, version and
// commit stamped with -ldflags) and checks that it is one static file that prints both.
func TestStaticStampedBuild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checks an ELF binary")
	}
	bin := filepath.Join(t.TempDir(), "ftctl")
	pkg := "github.com/ftgate/ftgate/internal/version"
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X "+pkg+".Version=v9.8.7 -X "+pkg+".Commit=0123abcd", ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("ftctl has a dynamic loader (PT_INTERP): not a static file")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("ftctl links shared libraries %v", libs)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || string(out) != "ftctl v9.8.7 (commit 0123abcd)\n" {
		t.Errorf("--version printed %q, %v; want the stamped version and commit", out, err)
	}
}

// TestNoCgoDependency: no package ftctl imports outside the standard library uses
// cgo (go-nvml belongs to ftgate-gpustat alone).
func TestNoCgoDependency(t *testing.T) {
	list := exec.Command("go", "list", "-deps", "-f", "{{if and (not .Standard) .CgoFiles}}{{.ImportPath}}{{end}}", ".")
	list.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("ftctl depends on cgo packages:\n%s", s)
	}
}
