// Package template is `ftctl template`: save a job's spec as a named, versioned
// template, list the templates one may use, show one version, remove one.
package template

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/job"
)

// NewCmdTemplate returns `ftctl template` with its verbs; completeJobs completes the
// JOB of `template save`.
func NewCmdTemplate(f *cmdutil.Factory, completeJobs cobra.CompletionFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "template <save|list|show|rm>",
		Short: "Save job specs as templates and manage them",
		Long: `A template is a named, versioned partial spec: save the spec of a job that
worked, then start new jobs from it with ` + "`ftctl submit --template NAME --set key=value`" + `.

Templates are private to you, or shared with every user (admins share them with
--shared). NAME is your own template of that name, else the shared one; NAME@N is
its version N. Saving under an existing name adds a version; old versions stay.`,
		Example: `  ftctl template save JOB tiny-sft
  ftctl template list
  ftctl template show tiny-sft@1
  ftctl submit --template tiny-sft --set hyperparameters.max_steps=50
  ftctl template rm tiny-sft`,
		Args: cmdutil.NoArgs,
	}
	save := NewCmdSave(f, nil)
	save.ValidArgsFunction = completeJobs
	show, rm := NewCmdShow(f, nil), NewCmdRemove(f, nil)
	show.ValidArgsFunction, rm.ValidArgsFunction = CompleteNames(f), CompleteNames(f)
	cmd.AddCommand(save, NewCmdList(f, nil), show, rm)
	return cmd
}

// SaveOptions are the options of `ftctl template save`.
type SaveOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	JobID  string
	Name   string
	Shared bool
	JSON   bool
}

// NewCmdSave returns `ftctl template save JOB NAME`.
func NewCmdSave(f *cmdutil.Factory, runF func(context.Context, *SaveOptions) error) *cobra.Command {
	opts := &SaveOptions{}
	cmd := &cobra.Command{
		Use:   "save JOB NAME [--shared]",
		Short: "Save a job's spec as a template (a new version if NAME exists)",
		Long: `Save the spec of job JOB (one of yours) as template NAME. When you already
have a template NAME (or, for admins with --shared, a shared one exists), the spec
becomes its next version. The gateway checks the spec's fields, cluster and
partition as it would for a job.

NAME: letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit).`,
		Example: `  ftctl template save 0b4e7c1a-1d2e-4c3f-9a8b-7c6d5e4f3a2b tiny-sft
  ftctl template save JOB lab-baseline --shared   # admins: every user sees it`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return cmdutil.UsageErrorf("%s needs JOB and NAME, got %d arguments", cmd.CommandPath(), len(args))
			}
			if err := cmdutil.JobArg(cmd, args[:1]); err != nil {
				return err
			}
			return nameArg(args[1])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.JobID, opts.Name = f.IO, f.APIClient, args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runSave(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Shared, "shared", false, "share the template with every user (admins only)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the saved template as JSON")
	return cmd
}

func nameArg(name string) error {
	if !job.ValidName(name) {
		return cmdutil.UsageErrorf("NAME %q: letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)", name)
	}
	return nil
}

// refArg checks NAME or NAME@VERSION (only NAME unless versions).
func refArg(ref string, versions bool) error {
	name, v, err := job.ParseTemplateRef("template", ref)
	switch {
	case err != nil:
		return cmdutil.UsageErrorf("%s", job.ErrorMessage(err))
	case v != 0 && !versions:
		return cmdutil.UsageErrorf("%q: give the template's NAME (%s) without @VERSION: this acts on every version", ref, name)
	}
	return nil
}

func runSave(ctx context.Context, opts *SaveOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	req := client.TemplateRequest{Name: opts.Name, FromJob: opts.JobID, Visibility: job.VisibilityPrivate}
	if opts.Shared {
		req.Visibility = job.VisibilityShared
	}
	t, err := c.CreateTemplate(ctx, req)
	if client.IsStatus(err, http.StatusConflict) {
		// The name is taken by a template we may change: save its next version.
		req.Name = ""
		if !opts.Shared {
			req.Visibility = ""
		}
		t, err = c.UpdateTemplate(ctx, opts.Name, req)
	}
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, t)
	}
	fmt.Fprintf(opts.IO.Out, "Saved job %s as template %s@%d (%s); start a job from it with `ftctl submit --template %s`\n",
		opts.JobID, t.Name, t.Version, t.Visibility, t.Name)
	return nil
}

// ListOptions are the options of `ftctl template list`.
type ListOptions struct {
	IO         *cmdutil.IOStreams
	Client     func() (*client.Client, error)
	Now        func() time.Time
	Visibility string
	Limit      int
	Cursor     string
	JSON       bool
}

// NewCmdList returns `ftctl template list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{}
	cmd := &cobra.Command{
		Use:     "list [--visibility private|shared] [--limit N]",
		Aliases: []string{"ls"},
		Short:   "List the templates you may use: yours and the shared ones",
		Long: `List your templates and the shared ones by name, as a table: name, latest
version, visibility, owner, the job it was saved from and when.`,
		Example: `  ftctl template list
  ftctl template ls --visibility shared
  ftctl template list --cursor NEXT     # the next page, as printed after a full page`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.Now = f.IO, f.APIClient, f.Clock()
			if err := cmdutil.CheckLimit(opts.Limit); err != nil {
				return err
			}
			if opts.Visibility != "" && !job.ValidVisibility(opts.Visibility) {
				return cmdutil.UsageErrorf("--visibility %q: want private or shared", opts.Visibility)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runList(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Visibility, "visibility", "", "only private (yours) or shared templates")
	cmdutil.AddPageFlags(cmd, &opts.Limit, &opts.Cursor, 50, "templates")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	return cmd
}

func runList(ctx context.Context, opts *ListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	page, err := c.Templates(ctx, client.TemplateListOptions{Visibility: opts.Visibility, Limit: opts.Limit, Cursor: opts.Cursor})
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, page)
	}
	if len(page.Templates) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "No templates yet: save one with `ftctl template save JOB NAME`.")
		return nil
	}
	now := opts.Now()
	t := render.NewTable("NAME", "VERSION", "VISIBILITY", "OWNER", "FROM JOB", "UPDATED")
	t.AlignRight(1)
	for _, tp := range page.Templates {
		t.Row(tp.Name, strconv.Itoa(tp.LatestVersion), tp.Visibility, tp.Owner, render.Dash(tp.FromJob), render.FormatAge(tp.UpdatedAt, now))
	}
	if err := t.Render(opts.IO.Out); err != nil {
		return err
	}
	cmdutil.PrintNextPage(opts.IO.ErrOut, "templates", page.NextCursor)
	return nil
}

// ShowOptions are the options of `ftctl template show`.
type ShowOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time
	Ref    string
	JSON   bool
}

// NewCmdShow returns `ftctl template show NAME[@VERSION]`.
func NewCmdShow(f *cmdutil.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{}
	cmd := &cobra.Command{
		Use:   "show NAME[@VERSION]",
		Short: "Show a template's spec (the latest version, or NAME@VERSION)",
		Long: `Show one version of a template: who owns it, where it came from, and its
partial spec as YAML (the fields a job started from it gets before your --set
overrides).`,
		Example: `  ftctl template show tiny-sft
  ftctl template show tiny-sft@1 --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageErrorf("%s needs exactly one NAME[@VERSION] argument, got %d", cmd.CommandPath(), len(args))
			}
			return refArg(args[0], true)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.Now, opts.Ref = f.IO, f.APIClient, f.Clock(), args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runShow(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the template as JSON")
	return cmd
}

func runShow(ctx context.Context, opts *ShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	t, err := c.Template(ctx, opts.Ref)
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, t)
	}
	var spec any
	if err := json.Unmarshal(t.Spec, &spec); err != nil {
		return fmt.Errorf("decode template spec: %w", err)
	}
	var body bytes.Buffer
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2)
	if err := enc.Encode(spec); err != nil {
		return fmt.Errorf("encode template spec: %w", err)
	}
	from := ""
	if t.FromJob != "" {
		from = " from job " + t.FromJob
	}
	out := opts.IO.Out
	fmt.Fprintf(out, "# Template %s@%d (latest %d), %s, owner %s\n", t.Name, t.Version, t.LatestVersion, t.Visibility, t.Owner)
	fmt.Fprintf(out, "# Saved %s ago%s; start a job from it with `ftctl submit --template %s@%d`\n",
		render.FormatAge(t.UpdatedAt, opts.Now()), from, t.Name, t.Version)
	_, err = out.Write(body.Bytes())
	return err
}

// RemoveOptions are the options of `ftctl template rm`.
type RemoveOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	Name   string
	JSON   bool
}

// NewCmdRemove returns `ftctl template rm NAME`.
func NewCmdRemove(f *cmdutil.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	opts := &RemoveOptions{}
	cmd := &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"delete"},
		Short:   "Delete a template with every version",
		Long: `Delete your template NAME with every version (admins: also a shared one).
Jobs started from it keep their record of the template and version.`,
		Example: "  ftctl template rm tiny-sft",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageErrorf("%s needs exactly one NAME argument, got %d", cmd.CommandPath(), len(args))
			}
			return refArg(args[0], false)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.Name = f.IO, f.APIClient, args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRemove(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	return cmd
}

func runRemove(ctx context.Context, opts *RemoveOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	d, err := c.DeleteTemplate(ctx, opts.Name)
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, d)
	}
	fmt.Fprintf(opts.IO.Out, "Deleted template %s (owner %s) with every version\n", d.Name, d.Owner)
	return nil
}

// CompleteNames completes a template NAME argument (or flag value) with the
// templates the caller may use.
func CompleteNames(f *cmdutil.Factory) cobra.CompletionFunc {
	return cmdutil.Completion(f, func(ctx context.Context, c *client.Client, prefix string) ([]string, error) {
		page, err := c.Templates(ctx, client.TemplateListOptions{Limit: 200})
		var out []string
		for _, t := range page.Templates {
			if strings.HasPrefix(t.Name, prefix) {
				out = append(out, fmt.Sprintf("%s\t%s, v%d, %s", t.Name, t.Visibility, t.LatestVersion, t.Owner))
			}
		}
		return out, err
	})
}
