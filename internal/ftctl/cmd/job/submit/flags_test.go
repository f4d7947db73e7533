package submit_test

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/submit"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

// TestNewCmdSubmit parses flags through the runF seam: what reaches runSubmit (a
// random idempotency key unless given, the working directory for --set paths), and
// the usage errors caught before anything is read or sent.
func TestNewCmdSubmit(t *testing.T) {
	t.Parallel()
	wd, _ := os.Getwd()
	for _, tc := range []struct {
		args    []string
		want    submit.SubmitOptions // IO, Client and a random IdempotencyKey are checked, not compared
		wantErr string
	}{
		{args: []string{"-f", "s.yaml"}, want: submit.SubmitOptions{File: "s.yaml", Dir: wd}},
		{args: []string{"-f", "-", "--set", "a.b=1", "--set", "lora.target_modules=q,v", "--watch", "--exit-status", "--json", "--idempotency-key", "k1"},
			want: submit.SubmitOptions{File: "-", Sets: []string{"a.b=1", "lora.target_modules=q,v"}, Watch: true, ExitStatus: true, JSON: true, IdempotencyKey: "k1", Dir: wd}},
		{args: []string{"--file", "s.yaml", "--dry-run"}, want: submit.SubmitOptions{File: "s.yaml", DryRun: true, Dir: wd}},
		{args: []string{}, wantErr: "-f SPEC is required"},
		{args: []string{"--template", "tiny@2", "--set", "hyperparameters.max_steps=5", "--dry-run"},
			want: submit.SubmitOptions{Template: "tiny@2", Sets: []string{"hyperparameters.max_steps=5"}, DryRun: true, Dir: wd}},
		{args: []string{"-f", "s.yaml", "--template", "tiny"}, wantErr: "-f and --template cannot be combined"},
		{args: []string{"--template", "tiny@latest"}, wantErr: "--template: the version after @ must be a positive integer"},
		{args: []string{"--template", "a/b"}, wantErr: "--template: want NAME or NAME@VERSION"},
		{args: []string{"-f", "s.yaml", "--dry-run", "--watch"}, wantErr: "--dry-run and --watch cannot be combined"},
		{args: []string{"-f", "s.yaml", "--exit-status"}, wantErr: "--exit-status needs --watch"},
		{args: []string{"-f", "s.yaml", "extra"}, wantErr: `submit takes no arguments, got "extra"`},
	} {
		var got *submit.SubmitOptions
		cmd := submit.NewCmdSubmit(ftctltest.FlagFactory(t), func(_ context.Context, o *submit.SubmitOptions) error { got = o; return nil })
		cmd.SetContext(context.Background())
		err := ftctltest.Exec(cmd, tc.args...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitUsage {
				t.Errorf("%q: error %v (exit %d), want usage error %q", tc.args, err, cmdutil.ExitCode(err), tc.wantErr)
			}
			if got != nil {
				t.Errorf("%q: runF was called despite the error", tc.args)
			}
			continue
		}
		if err != nil || got == nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got.IO == nil || got.Client == nil {
			t.Errorf("%q: IO or Client not set", tc.args)
		}
		if tc.want.IdempotencyKey == "" {
			if !strings.HasPrefix(got.IdempotencyKey, "ftctl-") || len(got.IdempotencyKey) != len("ftctl-")+32 {
				t.Errorf("%q: idempotency key %q, want a random ftctl- key", tc.args, got.IdempotencyKey)
			}
			got.IdempotencyKey = ""
		}
		got.IO, got.Client = nil, nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: options %+v, want %+v", tc.args, *got, tc.want)
		}
	}
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
