package submit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/watch"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/spec"
	"github.com/ftgate/ftgate/internal/job"
)

// SubmitOptions are the options of `ftctl submit`.
type SubmitOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	File   string
	// Template starts the job from a template (NAME or NAME@VERSION) instead of File;
	// Sets are then its overrides.
	Template   string
	Sets       []string
	DryRun     bool
	Watch      bool
	ExitStatus bool
	JSON       bool
	// IdempotencyKey makes retries of this submission safe; random by default.
	IdempotencyKey string
	// Dir resolves relative --set paths (the working directory).
	Dir string
}

const specHelp = `A spec is a YAML (or JSON) file describing one fine-tuning job. Only method,
model and dataset.path are required; every other field has a default.

  name: tiny-sft                # optional; letters, digits, '_', '.', '-' (max 64)
  method: sft                   # sft (prompt/completion or text) or dpo (prompt/chosen/rejected)
  model: builtin:tiny           # builtin:tiny, or an absolute path to a Hugging Face model dir
  dataset:
    path: data/train.jsonl      # JSONL; relative paths are relative to this file
    eval_path: data/eval.jsonl  # optional
  hyperparameters:
    learning_rate: 0.001        # default 1e-4, in (0, 1]
    epochs: 1                   # default 1
    max_steps: 200              # 0 (default): run all epochs
    batch_size: 8               # default 8
    gradient_accumulation: 1    # default 1
    max_length: 128             # tokens per sample, default 512
    warmup_steps: 10            # default 0
    seed: 42                    # default 0
    dpo_beta: 0.1               # DPO only, default 0.1
    weight_decay: 0.0           # default 0, in [0, 1]
    precision: auto             # auto (default: bf16 on GPUs that support it, else fp32), bf16, fp16, fp32
    gradient_checkpointing: false  # recompute activations: less memory
    packing: false              # SFT: several rows per max_length sequence
  lora:
    enabled: true               # default false: train all weights
    r: 8                        # default 8
    alpha: 16                   # default 2*r
    dropout: 0.0
    target_modules: [q_proj, v_proj]   # default: every linear layer of the blocks
    merge: false                # also write the merged weights (model/merged/)
  quantization: none            # none (default), 8bit or 4bit (needs lora.enabled)
  logging:
    log_every: 10               # steps between metrics lines, default 10
    eval_every: 50              # default 50
    save_every: 50              # steps between checkpoints, default 50
    progress_interval_seconds: 5
  checkpoints:
    keep_last: 2                # default 2
    keep_best: 1                # default 0
  resources:
    cluster: dev                # default: the gateway's first cluster
    partition: gpu              # default: the cluster's default partition
    nodes: 1                    # default 1; gpus, cpus and memory_mb are per node
    gpus: 1                     # per node, default 0
    gpu_type: ""                # optional, e.g. a100
    cpus: 2                     # default 2
    memory_mb: 4096             # default 4096
    time_limit_minutes: 60      # default 60; the job checkpoints before the limit
                                # and continues from there
    no_wait: false              # true: refused (409, free GPUs named) instead of queued
                                # when the partition has no room now (allow_no_wait clusters)
  distributed:
    strategy: ddp               # ddp (default) or fsdp (full fine-tuning, sharded)
    processes_per_node: 1       # default: gpus (one per GPU), or 1; CPU processes use gloo
  notify:                       # optional: a webhook for this job only (docs/webhooks.md)
    webhook:
      url: https://hooks.example.edu/ftgate   # checked against the gateway's target policy
      events: [job.succeeded, job.failed]     # default: succeeded, failed, cancelled

Relative dataset paths in the file are resolved against the spec file's directory,
and relative paths given with --set against the current directory, into absolute
paths before the spec is sent: the cluster must see the same filesystem.
Unknown fields and wrong types are refused before anything is sent, with the
file, line and field named. See docs/spec.md for every field and its limits.`

// NewCmdSubmit returns `ftctl submit`.
func NewCmdSubmit(f *cmdutil.Factory, runF func(context.Context, *SubmitOptions) error) *cobra.Command {
	opts := &SubmitOptions{}
	cmd := &cobra.Command{
		Use:   "submit (-f SPEC | --template NAME[@VERSION]) [--set key=value]... [--dry-run] [--watch]",
		Short: "Submit a fine-tuning job from a spec file or a template",
		Long: "Submit a fine-tuning job described by a spec file, or started from a template.\n\n" + specHelp + `

--template NAME[@VERSION] starts from a saved template (` + "`ftctl template list`" + `) instead
of a file: your own template NAME, else the shared one; the latest version unless
@VERSION. Each --set then overrides one field of the template's spec (dotted path,
the value typed by the field: numbers, true/false, lists comma-separated; null
removes the template's value so the default applies). The gateway merges and
validates the result like any spec, and records the template version on the job.`,
		Example: `  ftctl submit -f examples/sft-tiny.yaml
  ftctl submit -f examples/sft-tiny.yaml --set hyperparameters.max_steps=50 --watch
  ftctl submit -f examples/dpo-tiny.yaml --set resources.gpus=2 --set lora.target_modules=q_proj,k_proj,v_proj
  ftctl submit -f spec.yaml --dry-run        # print the validated spec and the sbatch script
  cat spec.json | ftctl submit -f -
  ftctl submit --template tiny-sft --set hyperparameters.max_steps=50 --set model=/models/llama-3-8b
  ftctl submit --template tiny-sft@2 --set resources.partition=null --dry-run`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO = f.IO
			opts.Client = f.APIClient
			if opts.Dir == "" {
				opts.Dir, _ = os.Getwd()
			}
			switch {
			case opts.File != "" && opts.Template != "":
				return cmdutil.UsageErrorf("-f and --template cannot be combined: override the template's fields with --set")
			case opts.File == "" && opts.Template == "":
				return cmdutil.UsageErrorf("-f SPEC is required (a YAML or JSON spec file, or - for stdin), or --template NAME[@VERSION]")
			case opts.Template != "":
				if _, _, err := job.ParseTemplateRef("--template", opts.Template); err != nil {
					return cmdutil.UsageErrorf("%s", job.ErrorMessage(err))
				}
			}
			if opts.DryRun && opts.Watch {
				return cmdutil.UsageErrorf("--dry-run and --watch cannot be combined")
			}
			if opts.ExitStatus && !opts.Watch {
				return cmdutil.UsageErrorf("--exit-status needs --watch")
			}
			if opts.IdempotencyKey == "" {
				opts.IdempotencyKey = newIdempotencyKey()
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runSubmit(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "spec file (YAML or JSON; - reads standard input)")
	cmd.Flags().StringVar(&opts.Template, "template", "", "start from this template (NAME or NAME@VERSION) instead of a spec file")
	cmd.Flags().StringArrayVar(&opts.Sets, "set", nil, "override a field: key=value with a dotted key, lists comma-separated, null for the default (repeatable)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "validate on the gateway and print the spec and sbatch script without submitting")
	cmd.Flags().BoolVarP(&opts.Watch, "watch", "w", false, "follow the job live after submitting")
	cmd.Flags().BoolVar(&opts.ExitStatus, "exit-status", false, "with --watch: exit 8 unless the job succeeds")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	cmd.Flags().StringVar(&opts.IdempotencyKey, "idempotency-key", "", "key that makes a repeated submission return the first job (random by default)")
	return cmd
}

func newIdempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "ftctl-" + hex.EncodeToString(b)
}

// requestBody is what runSubmit sends: the checked spec of the file, or the template
// with the --set overrides (the gateway merges and validates them).
func requestBody(opts *SubmitOptions) ([]byte, error) {
	if opts.Template != "" {
		ov, err := spec.Overrides(opts.Sets, opts.Dir)
		if err != nil {
			return nil, err
		}
		raw, err := json.Marshal(ov)
		if err != nil {
			return nil, fmt.Errorf("encode overrides: %w", err)
		}
		return json.Marshal(client.TemplateRun{Template: opts.Template, Overrides: raw})
	}
	sp, err := spec.Load(spec.Source{File: opts.File, Sets: opts.Sets, Stdin: opts.IO.In, Dir: opts.Dir})
	if err != nil {
		return nil, err
	}
	if err := spec.Check(sp); err != nil {
		return nil, err
	}
	return json.Marshal(sp)
}

func runSubmit(ctx context.Context, opts *SubmitOptions) error {
	body, err := requestBody(opts)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	// The spec goes as the JSON checked here, retried with the same idempotency key.
	var j client.Job
	var dry client.DryRun
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
		if opts.DryRun {
			dry, err = c.DryRun(rctx, json.RawMessage(body))
		} else {
			j, _, err = c.Execute(rctx, json.RawMessage(body), client.ExecuteOptions{IdempotencyKey: opts.IdempotencyKey})
		}
		cancel()
		if err == nil || attempt == 3 || !retryable(err) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
	if err != nil {
		return err
	}
	out := opts.IO.Out
	switch {
	case opts.DryRun && opts.JSON:
		return cmdutil.PrintJSON(out, dry)
	case opts.DryRun:
		return printDryRun(opts, dry)
	case opts.JSON && !opts.Watch:
		return cmdutil.PrintJSON(out, j)
	}
	name := ""
	if j.Spec.Name != "" {
		name = " (" + j.Spec.Name + ")"
	}
	from := ""
	if j.Template != nil {
		from = " from template " + j.Template.String()
	}
	fmt.Fprintf(out, "Submitted job %s%s to cluster %s%s; follow it with `ftctl watch %s`\n", j.ID, name, j.Cluster, from, j.ID)
	if w := j.Webhook; w != nil {
		// Shown once: the gateway never answers with the secret again.
		fmt.Fprintf(out, "Job webhook %s -> %s (%s)\nIts signing secret, shown only now: %s\nDeliveries: ftctl webhook deliveries %s\n",
			w.ID, w.URL, strings.Join(w.Events, ", "), w.Secret, w.ID)
	}
	if !opts.Watch {
		return nil
	}
	return watch.Run(ctx, &watch.WatchOptions{IO: opts.IO, Client: opts.Client, JobID: j.ID, ExitStatus: opts.ExitStatus, JSON: opts.JSON})
}

// retryable reports whether a submission may be retried with the same idempotency
// key: the connection failed after it was made, or the gateway was briefly unavailable.
func retryable(err error) bool {
	var ce *apiclient.ConnError
	if errors.As(err, &ce) {
		return !errors.Is(err, syscall.ECONNREFUSED)
	}
	var ae *client.Error
	return errors.As(err, &ae) && (ae.Status == http.StatusBadGateway || ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusGatewayTimeout)
}

func printDryRun(opts *SubmitOptions, d client.DryRun) error {
	spec, err := json.MarshalIndent(d.Spec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode dry run spec: %w", err)
	}
	out := opts.IO.Out
	if d.Template != nil {
		fmt.Fprintf(out, "# From template %s (owner %s) with the --set overrides\n", d.Template, d.Template.Owner)
	}
	fmt.Fprintf(out, "# Validated spec (defaults filled), written as job.json:\n%s\n", spec)
	fmt.Fprintf(out, "# sbatch script for cluster %s (job directory %s):\n%s", d.Cluster, d.JobDir, d.Script)
	if len(d.Script) > 0 && d.Script[len(d.Script)-1] != '\n' {
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "# Dry run: nothing was submitted.")
	return nil
}
