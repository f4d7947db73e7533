// Package shared holds what the job commands render alike: progress and run time.
package shared

import (
	"fmt"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/job"
)

// ProgressLine renders step/total with a bar, loss, throughput and ETA.
func ProgressLine(p job.Progress) string {
	var parts []string
	if p.TotalSteps > 0 {
		parts = append(parts, fmt.Sprintf("%s %d/%d %s", render.ProgressBar(p.Step, p.TotalSteps, 20), p.Step, p.TotalSteps, render.Percent(p.Step, p.TotalSteps)))
	} else {
		parts = append(parts, fmt.Sprintf("step %d", p.Step))
	}
	if p.Loss != nil {
		parts = append(parts, "loss "+render.FormatLoss(p.Loss))
	}
	if p.TokensPerSecond > 0 {
		parts = append(parts, fmt.Sprintf("%.0f tokens/s", p.TokensPerSecond))
	}
	if p.ETASeconds != nil && *p.ETASeconds > 0 {
		parts = append(parts, "ETA "+render.FormatDuration(time.Duration(*p.ETASeconds*float64(time.Second))))
	}
	return strings.Join(parts, "  ")
}

// Elapsed is the job's run time: from start to end, or to now while it runs.
func Elapsed(j job.Job, now time.Time) string {
	if j.StartedAt == nil {
		return "-"
	}
	end := now
	if j.EndedAt != nil {
		end = *j.EndedAt
	}
	return render.FormatDuration(end.Sub(*j.StartedAt))
}
