package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/shared"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/job"
)

// WatchOptions are the options of `ftctl watch`.
type WatchOptions struct {
	IO         *cmdutil.IOStreams
	Client     func() (*client.Client, error)
	Now        func() time.Time
	JobID      string
	ExitStatus bool
	JSON       bool
	// Interval is how often the job is re-read besides events (and the polling period
	// when the gateway has no event stream).
	Interval time.Duration
	// Live redraws the view in place (an interactive terminal).
	Live bool
}

// NewCmdWatch returns `ftctl watch JOB`.
func NewCmdWatch(f *cmdutil.Factory, runF func(context.Context, *WatchOptions) error) *cobra.Command {
	opts := &WatchOptions{}
	cmd := &cobra.Command{
		Use:   "watch JOB [--exit-status]",
		Short: "Follow a job live until it ends or pauses",
		Long: `Follow a job live from the gateway's event stream: state changes, a progress bar
(step/total, ETA, tokens/s), a sparkline of the training loss and GPU use. The view
reconnects by itself (resuming the stream with Last-Event-ID) and ends when the job
finishes or is paused. On a terminal it redraws in place; otherwise it prints one line
per change.

With --exit-status, ftctl exits 8 unless the job succeeded (0 also when it paused).`,
		Example: `  ftctl watch 01JD5X3M8ZQ
  ftctl watch 01JD5X3M8ZQ --exit-status && echo trained`,
		Args: cmdutil.JobArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.Now, opts.JobID = f.IO, f.APIClient, f.Clock(), args[0]
			opts.Live = !opts.JSON && cmdutil.IsTerminal(f.IO.Out)
			if opts.Interval < 100*time.Millisecond {
				return cmdutil.UsageErrorf("--interval must be at least 100ms, got %s", opts.Interval)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.ExitStatus, "exit-status", false, "exit 8 unless the job succeeds")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the job as one JSON line per change")
	cmd.Flags().DurationVar(&opts.Interval, "interval", 5*time.Second, "how often to re-read the job besides events")
	return cmd
}

// watcher holds the live view's state.
type watcher struct {
	o      *WatchOptions
	c      *client.Client
	mu     sync.Mutex
	gpus   []job.GPU
	losses []float64
	last   int64 // last metrics step read
	lines  int   // lines drawn by the last live frame
	prev   string
}

// Run follows the job until it ends or pauses (also `ftctl submit --watch`).
func Run(ctx context.Context, o *WatchOptions) error {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	w := &watcher{o: o, c: c, last: -1}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j, err := w.fetch(ctx)
	if err != nil {
		return err
	}
	w.metrics(ctx, j)
	if done := w.show(j); done {
		return w.finish(j)
	}
	kick := make(chan struct{}, 1)
	noStream := make(chan struct{})
	go w.stream(ctx, kick, noStream)
	interval := o.Interval
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-noStream:
			noStream = nil
			interval = min(interval, 2*time.Second)
			tick.Reset(interval)
			continue
		case <-kick:
		case <-tick.C:
		}
		j, err = w.fetch(ctx)
		if err != nil {
			var le *apiclient.LoginRequiredError
			var ae *client.Error
			if errors.As(err, &le) || (errors.As(err, &ae) && ae.Status < 500) || failures >= 20 {
				return err
			}
			failures++
			continue
		}
		failures = 0
		w.metrics(ctx, j)
		if done := w.show(j); done {
			return w.finish(j)
		}
	}
}

func (w *watcher) fetch(ctx context.Context) (job.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	return w.c.Job(ctx, w.o.JobID)
}

// metrics appends the loss values logged since the last read.
func (w *watcher) metrics(ctx context.Context, j job.Job) {
	if w.o.JSON || (j.Progress.Step <= w.last && len(w.losses) > 0) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	s, err := w.c.Metrics(ctx, j.ID, client.MetricsOptions{SinceStep: w.last})
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, pt := range s.Series["loss"] {
		if int64(pt[0]) > w.last {
			w.losses = append(w.losses, pt[1])
		}
	}
	if len(w.losses) > 200 {
		w.losses = w.losses[len(w.losses)-200:]
	}
	w.last = max(w.last, s.LastStep)
}

// stream follows the job's event stream, reconnecting with Last-Event-ID, and kicks a
// refresh on each event. It closes noStream when the gateway has no event stream.
func (w *watcher) stream(ctx context.Context, kick chan<- struct{}, noStream chan<- struct{}) {
	var lastID int64
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		resp, err := w.c.Events(ctx, w.o.JobID, client.EventOptions{After: lastID})
		var ae *client.Error
		if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed || ae.Status == http.StatusServiceUnavailable) {
			// No event stream on this gateway: poll instead.
			close(noStream)
			return
		}
		if err == nil {
			backoff = 500 * time.Millisecond
			_ = client.ReadSSE(resp.Body, func(ev client.SSEEvent) error {
				if id, perr := strconv.ParseInt(ev.ID, 10, 64); perr == nil {
					lastID = id
				}
				if ev.Data == "" {
					return nil // id-only: nothing to refresh
				}
				if g := findGPUs([]byte(ev.Data)); g != nil {
					w.mu.Lock()
					w.gpus = g
					w.mu.Unlock()
				}
				select {
				case kick <- struct{}{}:
				default:
				}
				return nil
			})
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// findGPUs looks for a "gpus" list of GPU samples anywhere in an event's JSON.
func findGPUs(data []byte) []job.GPU {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil
	}
	var walk func(v any, depth int) []job.GPU
	walk = func(v any, depth int) []job.GPU {
		m, ok := v.(map[string]any)
		if !ok || depth > 4 {
			return nil
		}
		if g, ok := m["gpus"]; ok {
			b, _ := json.Marshal(g)
			var out []job.GPU
			if json.Unmarshal(b, &out) == nil && len(out) > 0 {
				return out
			}
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if g := walk(m[k], depth+1); g != nil {
				return g
			}
		}
		return nil
	}
	return walk(v, 0)
}

func finished(s job.State) bool { return s.Terminal() || s == job.Paused }

// show renders j and reports whether watching is over.
func (w *watcher) show(j job.Job) bool {
	out := w.o.IO.Out
	if w.o.JSON {
		b, _ := json.Marshal(j)
		if s := string(b); s != w.prev {
			fmt.Fprintln(out, s)
			w.prev = s
		}
		return finished(j.State)
	}
	w.mu.Lock()
	frame := w.frame(j)
	w.mu.Unlock()
	if w.o.Live {
		if w.lines > 0 {
			fmt.Fprintf(out, "\x1b[%dF\x1b[J", w.lines)
		}
		fmt.Fprint(out, frame)
		w.lines = strings.Count(frame, "\n")
		return finished(j.State)
	}
	// Not a terminal: one line per change.
	line := w.summary(j)
	if line != w.prev {
		fmt.Fprintln(out, line)
		w.prev = line
	}
	return finished(j.State)
}

func stateText(j job.Job) string {
	s := string(j.State)
	if j.SlurmID != "" {
		s += " (Slurm " + j.SlurmID
		if j.SlurmState != "" {
			s += " " + j.SlurmState
		}
		s += ")"
	}
	if j.Reason != "" && j.State != job.Running {
		s += ": " + j.Reason
	}
	return s
}

// summary is the one-line view used when the output is not a terminal.
func (w *watcher) summary(j job.Job) string {
	line := stateText(j)
	p := j.Progress
	if p.Phase != "" && (j.State == job.Running || j.State == job.Pausing) {
		line += "  " + p.Phase
	}
	if p.Step > 0 || p.TotalSteps > 0 {
		line += "  " + shared.ProgressLine(p)
	}
	return line
}

// frame is the multi-line live view.
func (w *watcher) frame(j job.Job) string {
	var b strings.Builder
	name := ""
	if j.Spec.Name != "" {
		name = " " + j.Spec.Name
	}
	fmt.Fprintf(&b, "Job %s%s: %s\n", j.ID, name, stateText(j))
	p := j.Progress
	if p.Phase != "" {
		fmt.Fprintf(&b, "phase %s, restarts %d", p.Phase, j.RestartCount)
		if p.LatestCheckpoint != "" {
			fmt.Fprintf(&b, ", checkpoint %s", p.LatestCheckpoint)
		}
		b.WriteString("\n")
	}
	if p.Step > 0 || p.TotalSteps > 0 {
		b.WriteString(shared.ProgressLine(p) + "\n")
	}
	if len(w.losses) > 0 {
		fmt.Fprintf(&b, "loss %s  %s\n", render.FormatLoss(&w.losses[len(w.losses)-1]), render.Sparkline(w.losses, 40))
	}
	for _, g := range w.gpus {
		fmt.Fprintf(&b, "GPU %d: %3d%% util, %s / %s\n", g.Index, g.UtilizationPercent,
			render.FormatBytes(int64(g.MemoryUsedMB)<<20), render.FormatBytes(int64(g.MemoryTotalMB)<<20))
	}
	return b.String()
}

// finish prints the outcome and returns the exit status error.
func (w *watcher) finish(j job.Job) error {
	if w.o.JSON {
		return w.outcome(j)
	}
	out := w.o.IO.Out
	now := w.o.Now()
	switch j.State {
	case job.Succeeded:
		fmt.Fprintf(out, "Job %s succeeded after %s; download the model with `ftctl download %s`\n", j.ID, shared.Elapsed(j, now), j.ID)
	case job.Paused:
		from := ""
		if j.Progress.LatestCheckpoint != "" {
			from = " at checkpoint " + j.Progress.LatestCheckpoint
		}
		fmt.Fprintf(out, "Job %s paused%s; resume it with `ftctl resume %s`\n", j.ID, from, j.ID)
	default:
		reason := j.Reason
		if j.Progress.Error != "" {
			reason = render.OrDefault(reason, j.Progress.Error)
			if reason != j.Progress.Error {
				reason += ": " + j.Progress.Error
			}
		}
		if reason != "" {
			reason = ": " + reason
		}
		fmt.Fprintf(out, "Job %s %s%s; see `ftctl logs %s`\n", j.ID, j.State, reason, j.ID)
	}
	return w.outcome(j)
}

func (w *watcher) outcome(j job.Job) error {
	if !w.o.ExitStatus || j.State == job.Succeeded || j.State == job.Paused {
		return nil
	}
	return &cmdutil.JobFailedError{ID: j.ID, State: string(j.State), Reason: j.Reason}
}
