// Command ftgate-gpustat is the node-side GPU sampler the batch script starts beside
// the trainer: it writes the job's gpu.json through NVML. It is the only ftgate binary
// built with cgo (go-nvml); without NVML on the node it exits 0 and samples nothing.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/gpustat"
	"github.com/ftgate/ftgate/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr, nil))
}

// run runs the command with args and returns the exit code: 0, 1 on an error, 2 on a
// usage mistake.
func run(args []string, stderr io.Writer, runF func(context.Context, *Options) error) int {
	cmd := NewCmd(runF)
	cmd.SetArgs(args)
	cmd.SetOut(stderr)
	cmd.SetErr(stderr)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "ftgate-gpustat:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// Options are the options of ftgate-gpustat.
type Options struct {
	Out      io.Writer
	Interval time.Duration
	File     string
	Once     bool
	Visible  string
	// Open returns the GPU source; NVML by default.
	Open func(visible string) (gpustat.Source, func(), error)
}

// NewCmd returns the ftgate-gpustat command; runF replaces the sampling (flag tests).
func NewCmd(runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Open: openNVML}
	cmd := &cobra.Command{
		Use:   "ftgate-gpustat --out FILE [--interval 5s] [--once]",
		Short: "Sample the job's GPUs into a JSON file (runs on compute nodes)",
		Long: `Sample the GPUs visible to the job (CUDA_VISIBLE_DEVICES) through NVML:
utilization, memory used and total, power and temperature, and replace FILE
atomically with each sample (the job's gpu.json). Without NVML it prints one line
saying so and exits 0, so a job never fails because of it. SIGTERM or SIGINT stops it.`,
		Example: `  ftgate-gpustat --out "$job_dir/gpu.json" --interval 5s &
  ftgate-gpustat --out /tmp/gpu.json --once && cat /tmp/gpu.json`,
		Version: version.String(),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &usageError{fmt.Sprintf("takes no arguments, got %q (the old `ftctl gpustat` is now this command)", args[0])}
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.ErrOrStderr()
			opts.Visible = os.Getenv("CUDA_VISIBLE_DEVICES")
			if opts.File == "" {
				return &usageError{"--out is required"}
			}
			if opts.Interval < 100*time.Millisecond {
				return &usageError{fmt.Sprintf("--interval must be at least 100ms, got %s", opts.Interval)}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if runF != nil {
				return runF(ctx, opts)
			}
			return runSample(ctx, opts)
		},
	}
	cmd.SetVersionTemplate("ftgate-gpustat {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	cmd.Flags().DurationVar(&opts.Interval, "interval", 5*time.Second, "time between samples")
	cmd.Flags().StringVar(&opts.File, "out", "", "file to replace with each sample (gpu.json)")
	cmd.Flags().BoolVar(&opts.Once, "once", false, "take one sample and exit")
	return cmd
}

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func openNVML(visible string) (gpustat.Source, func(), error) {
	n, err := gpustat.OpenNVML(visible)
	if err != nil {
		return nil, nil, err
	}
	return n, n.Close, nil
}

func runSample(ctx context.Context, opts *Options) error {
	src, closeFn, err := opts.Open(opts.Visible)
	if errors.Is(err, gpustat.ErrNoNVML) {
		fmt.Fprintf(opts.Out, "ftgate-gpustat: %v; not sampling GPUs\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	defer closeFn()
	if opts.Once {
		return gpustat.WriteSample(src, opts.File, time.Now())
	}
	return gpustat.Run(ctx, src, opts.File, opts.Interval)
}
