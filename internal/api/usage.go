package api

import (
	"net/http"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/quota"
)

// usage is GET /api/usage: what the caller holds against its limits; an admin may
// ask for any Unix account with ?user=NAME (limits resolved with the groups recorded
// with that user's latest job).
func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	user, groups := id.Username, id.Groups
	if name := r.URL.Query().Get("user"); name != "" && name != id.Username {
		if !id.Admin {
			s.Error(w, r, job.Errorf(job.EForbidden, "user: only admins may see another user's usage"))
			return
		}
		if !job.ValidUser(name) {
			s.Error(w, r, job.Errorf(job.EInvalid, "user: %q is not a Unix account name (must match %s)", truncate(name, 40), job.UserRE))
			return
		}
		var err error
		if groups, err = s.Store.UserGroups(r.Context(), name); err != nil {
			s.Error(w, r, err)
			return
		}
		user = name
	}
	if user == "" {
		s.Error(w, r, job.Errorf(job.EForbidden, "your identity maps to no Unix account"))
		return
	}
	lim := s.Limits.For(user, groups)
	u, err := s.Store.Usage(r.Context(), user, lim)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if groups == nil {
		groups = []string{}
	}
	out := client.Usage{User: user, Groups: groups, Time: u.At.UTC(), ActiveJobs: u.Active, QueuedJobs: u.Queued,
		GPUsInUse: u.GPUsInUse, GPUsHeld: u.GPUsHeld, GPUHours: u.GPUHours(lim.Window),
		Limits: client.UsageLimits{MaxActiveJobs: lim.MaxActive, MaxQueuedJobs: lim.MaxQueued, MaxGPUs: lim.MaxGPUs,
			GPUHoursPerWindow: lim.GPUHours, WindowSeconds: int64(lim.Window / time.Second)}}
	if lim.GPUHours > 0 && out.GPUHours >= lim.GPUHours {
		if t, ok := quota.FreesAt(u.Runs, u.At, lim.Window, lim.GPUHours); ok {
			t = t.UTC()
			out.GPUHoursFreesAt = &t
		}
	}
	out.GroupBudgets = []client.GroupBudgetUsage{}
	for _, p := range lim.Pools {
		runs := u.PoolRuns[p.Group]
		g := client.GroupBudgetUsage{Group: p.Group, GPUHours: quota.GPUHours(runs, u.At, lim.Window), GPUHoursPerWindow: p.GPUHours}
		if g.GPUHours >= p.GPUHours {
			if t, ok := quota.FreesAt(runs, u.At, lim.Window, p.GPUHours); ok {
				t = t.UTC()
				g.FreesAt = &t
			}
		}
		out.GroupBudgets = append(out.GroupBudgets, g)
	}
	writeJSON(w, http.StatusOK, out)
}
