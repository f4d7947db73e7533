package template_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/template"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

func TestTemplateSaveShowListRemove(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j1", "alice", job.Succeeded, func(j *job.Job) { j.Spec.Hyperparameters.MaxSteps = 300 })
	e.Seed("j4", "bob", job.Succeeded, nil)
	e.Templates.Put("admin", "lab-base", job.VisibilityShared, `{"method":"sft","model":"builtin:tiny"}`)

	code, out, errOut := e.Run("template", "save", "j1", "tiny-sft")
	if want := "Saved job j1 as template tiny-sft@1 (private); start a job from it with `ftctl submit --template tiny-sft`\n"; code != 0 || out != want {
		t.Fatalf("save: exit %d stdout %q stderr %q", code, out, errOut)
	}
	// Saving under the same name adds a version.
	code, out, errOut = e.Run("template", "save", "j1", "tiny-sft", "--json")
	var saved map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &saved) != nil || saved["version"] != 2.0 || saved["from_job"] != "j1" || saved["visibility"] != "private" {
		t.Fatalf("second save: exit %d stdout %q stderr %q", code, out, errOut)
	}

	code, out, errOut = e.Run("template", "show", "tiny-sft@1")
	if code != 0 {
		t.Fatalf("show: exit %d stderr %q", code, errOut)
	}
	ftctltest.Golden(t, "show.txt", out)
	code, out, _ = e.Run("template", "show", "tiny-sft", "--json")
	var shown job.Template
	var shownSpec job.Spec
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Version != 2 || json.Unmarshal(shown.Spec, &shownSpec) != nil ||
		shownSpec.Hyperparameters.MaxSteps != 300 {
		t.Errorf("show --json: exit %d %q", code, out)
	}

	code, out, errOut = e.Run("template", "list")
	if code != 0 || errOut != "" {
		t.Fatalf("list: exit %d stderr %q", code, errOut)
	}
	ftctltest.Golden(t, "list.txt", out)
	code, out, errOut = e.Run("template", "ls", "--limit", "1")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.HasPrefix(errOut, "More templates: add --cursor ") {
		t.Errorf("list --limit 1: exit %d stdout %q stderr %q", code, out, errOut)
	}
	cursor := strings.TrimSpace(strings.TrimPrefix(errOut, "More templates: add --cursor "))
	if code, out, _ := e.Run("template", "list", "--limit", "1", "--cursor", cursor); code != 0 || !strings.Contains(out, "tiny-sft") {
		t.Errorf("second page: exit %d %q", code, out)
	}
	code, out, _ = e.Run("template", "list", "--visibility", "shared", "--json")
	var page struct {
		Templates []job.Template `json:"templates"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Templates) != 1 || page.Templates[0].Name != "lab-base" {
		t.Errorf("list --visibility shared --json: exit %d %q", code, out)
	}

	// Errors are one line with the gateway's reason.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"template", "save", "j4", "bobs-job"}, 1, "ftctl: job j4 not found (HTTP 404)"},
		{[]string{"template", "save", "j1", "shared-one", "--shared"}, 1, "ftctl: visibility: only admins create or change shared templates (HTTP 403)"},
		{[]string{"template", "rm", "lab-base"}, 1, "ftctl: template lab-base is shared: only admins change or delete shared templates (HTTP 403)"},
		{[]string{"template", "show", "tiny-sft@9"}, 1, "ftctl: template tiny-sft has no version 9 (the latest is 2) (HTTP 404)"},
	} {
		code, out, errOut := e.Run(tc.args...)
		if code != tc.code || out != "" || !strings.HasPrefix(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d stdout %q stderr %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}

	code, out, _ = e.Run("template", "rm", "tiny-sft")
	if want := "Deleted template tiny-sft (owner alice) with every version\n"; code != 0 || out != want {
		t.Errorf("rm: exit %d %q", code, out)
	}
	if code, _, errOut := e.Run("template", "show", "tiny-sft"); code != 1 || !strings.Contains(errOut, `template "tiny-sft" not found`) {
		t.Errorf("show after rm: exit %d %q", code, errOut)
	}
	// An admin shares one; bob sees it.
	e.Token = "admin"
	e.Login()
	e.Seed("j7", "admin", job.Succeeded, nil)
	if code, out, errOut := e.Run("template", "save", "j7", "lab-base", "--shared"); code != 0 || !strings.Contains(out, "as template lab-base@2 (shared)") {
		t.Errorf("admin saves a new version of the shared template: exit %d %q %q", code, out, errOut)
	}
	e.Token = "bob"
	e.Login()
	if code, out, _ := e.Run("template", "list"); code != 0 || !strings.Contains(out, "lab-base") || strings.Contains(out, "tiny-sft") {
		t.Errorf("bob's list: exit %d %q", code, out)
	}
	e.Token = "carol"
	e.Login()
	if code, _, errOut := e.Run("template", "list", "--visibility", "private"); code != 0 || !strings.HasPrefix(errOut, "No templates yet") {
		t.Errorf("empty list: exit %d %q", code, errOut)
	}
}

// TestTemplateFlags parses arguments and flags through the runF seam: the usage
// errors (exit 2) come before any request.
func TestTemplateFlags(t *testing.T) {
	t.Parallel()
	run := func(args ...string) (any, error) {
		var got any
		f := ftctltest.FlagFactory(t)
		var cmd = map[string]func() error{
			"save": func() error {
				c := template.NewCmdSave(f, func(_ context.Context, o *template.SaveOptions) error {
					o.IO, o.Client = nil, nil
					got = *o
					return nil
				})
				c.SetContext(context.Background())
				return ftctltest.Exec(c, args[1:]...)
			},
			"list": func() error {
				c := template.NewCmdList(f, func(_ context.Context, o *template.ListOptions) error {
					o.IO, o.Client, o.Now = nil, nil, nil
					got = *o
					return nil
				})
				c.SetContext(context.Background())
				return ftctltest.Exec(c, args[1:]...)
			},
			"show": func() error {
				c := template.NewCmdShow(f, func(_ context.Context, o *template.ShowOptions) error {
					o.IO, o.Client, o.Now = nil, nil, nil
					got = *o
					return nil
				})
				c.SetContext(context.Background())
				return ftctltest.Exec(c, args[1:]...)
			},
			"rm": func() error {
				c := template.NewCmdRemove(f, func(_ context.Context, o *template.RemoveOptions) error {
					o.IO, o.Client = nil, nil
					got = *o
					return nil
				})
				c.SetContext(context.Background())
				return ftctltest.Exec(c, args[1:]...)
			},
		}[args[0]]
		return got, cmd()
	}
	for _, tc := range []struct {
		args    string
		want    any
		wantErr string
	}{
		{args: "save j1 tiny-sft", want: template.SaveOptions{JobID: "j1", Name: "tiny-sft"}},
		{args: "save j1 lab --shared --json", want: template.SaveOptions{JobID: "j1", Name: "lab", Shared: true, JSON: true}},
		{args: "save j1", wantErr: "needs JOB and NAME, got 1 arguments"},
		{args: "save j1 a@2", wantErr: `NAME "a@2": letters, digits`},
		{args: "save ../j tiny", wantErr: `JOB "../j" is not a job id`},
		{args: "list", want: template.ListOptions{Limit: 50}},
		{args: "list --visibility shared -L 10 --cursor c1 --json", want: template.ListOptions{Visibility: "shared", Limit: 10, Cursor: "c1", JSON: true}},
		{args: "list --visibility public", wantErr: `--visibility "public": want private or shared`},
		{args: "list --limit 0", wantErr: "--limit must be between 1 and 200, got 0"},
		{args: "list extra", wantErr: `list takes no arguments, got "extra"`},
		{args: "show tiny@3 --json", want: template.ShowOptions{Ref: "tiny@3", JSON: true}},
		{args: "show", wantErr: "needs exactly one NAME[@VERSION] argument, got 0"},
		{args: "show tiny@0", wantErr: "template: the version after @ must be a positive integer"},
		{args: "rm tiny", want: template.RemoveOptions{Name: "tiny"}},
		{args: "rm tiny@2", wantErr: `"tiny@2": give the template's NAME (tiny) without @VERSION`},
		{args: "rm a b", wantErr: "needs exactly one NAME argument, got 2"},
	} {
		got, err := run(strings.Fields(tc.args)...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitUsage || got != nil {
				t.Errorf("%q: error %v (exit %d, options %+v), want usage error %q", tc.args, err, cmdutil.ExitCode(err), got, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}
