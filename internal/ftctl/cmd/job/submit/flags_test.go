package submit_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/submit"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

// TestNewCmdSubmit parses flags through the runF seam: what reaches runSubmit (a
// random idempotency key unless given, the working directory for --set paths), and
// the usage errors caught before anything is read or sent.
func TestNewCmdSubmit(t *testing.T) {
	t.Parallel()
	wd, _ := os.Getwd()
	ftctltest.FlagTable[submit.SubmitOptions]{
		NewCmd: submit.NewCmdSubmit,
		Set:    []string{"IO", "Client"},
		Check: func(t *testing.T, got *submit.SubmitOptions, want submit.SubmitOptions) {
			if want.IdempotencyKey == "" {
				if !strings.HasPrefix(got.IdempotencyKey, "ftctl-") || len(got.IdempotencyKey) != len("ftctl-")+32 {
					t.Errorf("idempotency key %q, want a random ftctl- key", got.IdempotencyKey)
				}
				got.IdempotencyKey = ""
			}
		},
	}.Run(t, []ftctltest.FlagCase[submit.SubmitOptions]{
		{Args: "-f s.yaml", Want: submit.SubmitOptions{File: "s.yaml", Dir: wd}},
		{Args: "-f - --set a.b=1 --set lora.target_modules=q,v --watch --exit-status --json --idempotency-key k1",
			Want: submit.SubmitOptions{File: "-", Sets: []string{"a.b=1", "lora.target_modules=q,v"}, Watch: true, ExitStatus: true, JSON: true, IdempotencyKey: "k1", Dir: wd}},
		{Args: "--file s.yaml --dry-run", Want: submit.SubmitOptions{File: "s.yaml", DryRun: true, Dir: wd}},
		{Args: "", WantErr: "-f SPEC is required"},
		{Args: "--template tiny@2 --set hyperparameters.max_steps=5 --dry-run",
			Want: submit.SubmitOptions{Template: "tiny@2", Sets: []string{"hyperparameters.max_steps=5"}, DryRun: true, Dir: wd}},
		{Args: "-f s.yaml --template tiny", WantErr: "-f and --template cannot be combined"},
		{Args: "--template tiny@latest", WantErr: "--template: the version after @ must be a positive integer"},
		{Args: "--template a/b", WantErr: "--template: want NAME or NAME@VERSION"},
		{Args: "-f s.yaml --dry-run --watch", WantErr: "--dry-run and --watch cannot be combined"},
		{Args: "-f s.yaml --exit-status", WantErr: "--exit-status needs --watch"},
		{Args: "-f s.yaml extra", WantErr: `submit takes no arguments, got "extra"`},
	})
}

// TestSubmitHelpNamesEverySpecField: `ftctl submit --help` shows every field of
// job.Spec (as "key:" in its example spec) and points at docs/spec.md, so a field
// added to the spec without a line in the help fails here.
func TestSubmitHelpNamesEverySpecField(t *testing.T) {
	t.Parallel()
	long := submit.NewCmdSubmit(ftctltest.FlagFactory(t), nil).Long
	if !strings.Contains(long, "docs/spec.md") {
		t.Errorf("submit --help does not point at docs/spec.md")
	}
	var walk func(tp reflect.Type, prefix string)
	walk = func(tp reflect.Type, prefix string) {
		for i := range tp.NumField() {
			f := tp.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if key == "" || key == "-" {
				continue
			}
			if !strings.Contains(long, " "+key+":") && !strings.Contains(long, "\n"+key+":") {
				t.Errorf("submit --help lacks spec field %s%s: add a line for it to specHelp in submit.go", prefix, key)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+key+".")
			}
		}
	}
	walk(reflect.TypeFor[job.Spec](), "")
}
