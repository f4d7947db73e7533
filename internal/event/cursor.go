package event

import (
	"context"

	"github.com/ftgate/ftgate/internal/job"
)

// backfillPage is how many events one log read returns.
const backfillPage = 500

// Cursor turns a subscription into an exactly-once, ordered stream: it remembers the
// last event id delivered per job, drops duplicates and reads gaps from the log.
type Cursor struct {
	log  Log
	last map[string]int64
}

// NewCursor returns a cursor reading gaps through log.
func NewCursor(log Log) *Cursor { return &Cursor{log: log, last: map[string]int64{}} }

// Start sets the last id delivered for jobID (0: none), e.g. from Last-Event-ID.
func (c *Cursor) Start(jobID string, after int64) { c.last[jobID] = after }

// Last returns the last id delivered for jobID.
func (c *Cursor) Last(jobID string) int64 { return c.last[jobID] }

// Backfill returns every event of jobID after the last one delivered, reading the log
// page by page, and advances the cursor. emit is called for each event in order; an
// error from emit stops the backfill.
func (c *Cursor) Backfill(ctx context.Context, jobID string, emit func(job.Event) error) error {
	for {
		evs, err := c.log.Events(ctx, jobID, c.last[jobID], backfillPage)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.ID <= c.last[jobID] {
				continue
			}
			if err := emit(e); err != nil {
				return err
			}
			c.last[jobID] = e.ID
		}
		if len(evs) < backfillPage {
			return nil
		}
	}
}

// BackfillAll backfills every job the cursor has seen (after a Gap).
func (c *Cursor) BackfillAll(ctx context.Context, emit func(job.Event) error) error {
	for id := range c.last {
		if err := c.Backfill(ctx, id, emit); err != nil {
			return err
		}
	}
	return nil
}

// Accept delivers a live event: a duplicate (id not beyond the last delivered) is
// skipped; a gap is read from the log first. A job the cursor has not seen starts at
// this event (the live stream of all jobs begins now).
func (c *Cursor) Accept(ctx context.Context, e job.Event, emit func(job.Event) error) error {
	last, seen := c.last[e.JobID]
	switch {
	case !seen:
	case e.ID <= last:
		return nil
	case e.ID > last+1:
		return c.Backfill(ctx, e.JobID, emit)
	}
	if err := emit(e); err != nil {
		return err
	}
	c.last[e.JobID] = e.ID
	return nil
}
