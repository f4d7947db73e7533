package ftctl

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
)

// GPUStatOptions are the options of `ftctl gpustat`.
type GPUStatOptions struct {
	Out      io.Writer
	Interval time.Duration
	File     string
	Once     bool
	Visible  string
	// Open returns the GPU source; OpenNVML by default.
	Open func(visible string) (gpustat.Source, func(), error)
}

// NewCmdGPUStat returns `ftctl gpustat`, the node-side GPU sampler the batch script
// starts beside the trainer.
func NewCmdGPUStat(runF func(context.Context, *GPUStatOptions) error) *cobra.Command {
	opts := &GPUStatOptions{Open: openNVML}
	cmd := &cobra.Command{
		Use:   "gpustat --out FILE [--interval 5s]",
		Short: "Sample the job's GPUs into a JSON file (runs on compute nodes)",
		Long: `Sample the GPUs visible to the job (CUDA_VISIBLE_DEVICES) through NVML:
utilization, memory used and total, power and temperature, and replace FILE
atomically with each sample (the job's gpu.json). Without NVML it prints one line
saying so and exits 0, so a job never fails because of it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.ErrOrStderr()
			opts.Visible = os.Getenv("CUDA_VISIBLE_DEVICES")
			if opts.File == "" {
				return usageErrorf("--out is required")
			}
			if opts.Interval < 100*time.Millisecond {
				return usageErrorf("--interval must be at least 100ms, got %s", opts.Interval)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if runF != nil {
				return runF(ctx, opts)
			}
			return runGPUStat(ctx, opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Interval, "interval", 5*time.Second, "time between samples")
	cmd.Flags().StringVar(&opts.File, "out", "", "file to replace with each sample (gpu.json)")
	cmd.Flags().BoolVar(&opts.Once, "once", false, "take one sample and exit")
	return cmd
}

func openNVML(visible string) (gpustat.Source, func(), error) {
	n, err := gpustat.OpenNVML(visible)
	if err != nil {
		return nil, nil, err
	}
	return n, n.Close, nil
}

func runGPUStat(ctx context.Context, opts *GPUStatOptions) error {
	src, closeFn, err := opts.Open(opts.Visible)
	if errors.Is(err, gpustat.ErrNoNVML) {
		fmt.Fprintf(opts.Out, "ftctl gpustat: %v; not sampling GPUs\n", err)
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

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}
