package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/store"
)

// The admin API's mirrors: what each holds and the jobs that drain or
// rebuild one. Starting, pausing, resuming and cancelling a job only
// changes its record; the nodes read the records and one of them runs it.

func (s *Server) adminMirrorRoutes(g *echo.Group) {
	g.GET("/mirrors", s.adminMirrors)
	g.GET("/mirrors/:id/job", s.adminMirrorJob)
	g.POST("/mirrors/:id/drain", s.adminStartJob(store.JobDrain))
	g.POST("/mirrors/:id/rebuild", s.adminStartJob(store.JobRebuild))
	g.POST("/mirrors/:id/pause", s.adminSetJob(store.JobPaused))
	g.POST("/mirrors/:id/resume", s.adminSetJob(store.JobRunning))
	g.POST("/mirrors/:id/cancel", s.adminSetJob(store.JobCancelled))
}

// AdminMirror is a mirror as the admin API shows it.
type AdminMirror struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Configured bool      `json:"configured"` // false: only records name it
	Healthy    bool      `json:"healthy"`
	Error      string    `json:"error,omitempty"` // why it is not healthy
	Files      int64     `json:"files"`           // active files with a copy there
	Bytes      int64     `json:"bytes"`
	Missing    int64     `json:"missing"` // active files that should have a copy there and lack it
	Job        *AdminJob `json:"job,omitempty"`
}

// AdminJob is a mirror's job with its progress.
type AdminJob struct {
	store.Job
	Rate     float64 `json:"bytes_per_second"` // since the job began
	Left     float64 `json:"seconds_left,omitempty"`
	Draining bool    `json:"draining"` // new uploads leave the mirror alone
}

func jobView(j store.Job) *AdminJob {
	v := &AdminJob{Job: j, Draining: j.Kind == store.JobDrain && j.State != store.JobCancelled}
	if took := j.Updated.Sub(j.Created).Seconds(); took > 0 {
		v.Rate = float64(j.DoneBytes) / took
	}
	if v.Rate > 0 && j.State == store.JobRunning {
		v.Left = float64(max(j.Bytes-j.DoneBytes, 0)) / v.Rate
	}
	return v
}

// adminMirrors lists the configured mirrors, and those only file records
// still name, with what they hold (one pass over every record) and their
// jobs.
func (s *Server) adminMirrors(c echo.Context) error {
	ctx := c.Request().Context()
	list, err := s.mirrorViews(ctx)
	if err != nil {
		return unavailable("cannot read the file records", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"mirrors": list})
}

func (s *Server) mirrorViews(ctx context.Context) ([]AdminMirror, error) {
	byID := map[string]*AdminMirror{}
	var out []*AdminMirror
	view := func(id string) *AdminMirror {
		if v := byID[id]; v != nil {
			return v
		}
		v := &AdminMirror{ID: id, Name: id}
		byID[id] = v
		out = append(out, v)
		return v
	}
	for _, e := range s.cfg.Mirrors.All() {
		v := view(e.ID)
		v.Name, v.Configured, v.Healthy = e.Name, true, true
		if s.cfg.Health != nil {
			if err := s.cfg.Health(e.ID); err != nil {
				v.Healthy, v.Error = false, err.Error()
			}
		}
	}
	err := s.cfg.Store.EachFile(ctx, func(f store.File) error {
		if f.Status != store.StatusActive {
			return nil
		}
		for _, id := range f.Mirrors {
			v := view(id)
			v.Files++
			v.Bytes += f.Size
		}
		for _, id := range f.Missing {
			view(id).Missing++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	jobs, err := s.cfg.Store.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		view(j.Mirror).Job = jobView(j)
	}
	list := make([]AdminMirror, len(out))
	for i, v := range out {
		list[i] = *v
	}
	return list, nil
}

func (s *Server) adminMirrorJob(c echo.Context) error {
	j, err := s.cfg.Store.Job(c.Request().Context(), c.Param("id"))
	if err != nil {
		return storeProblem(err, "job of mirror "+c.Param("id"))
	}
	return c.JSON(http.StatusOK, jobView(j))
}

// JobFields are what starting a job takes.
type JobFields struct {
	To   []string `json:"to"`   // drain: target mirror ids; empty: each owner's allowed mirrors
	Rate int64    `json:"rate"` // bytes a second; 0: no limit
	// Share is the most of the time the job spends copying (0–1), as
	// scrub_share; 0: no limit.
	Share float64 `json:"share"`
}

// adminStartJob starts a drain or rebuild of the mirror; a mirror whose
// last job ended (done, failed or cancelled) may start another.
func (s *Server) adminStartJob(kind string) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		id := c.Param("id")
		if _, ok := s.cfg.Mirrors.Get(id); !ok {
			return fail(http.StatusNotFound, "mirror "+id+" is not configured")
		}
		var in JobFields
		if c.Request().ContentLength != 0 {
			if err := decodeJSON(c, &in, "job fields (to, rate, share)"); err != nil {
				return err
			}
		}
		if in.Rate < 0 {
			return badRequest("rate must be 0 (no limit) or a number of bytes a second")
		}
		if in.Share < 0 || in.Share > 1 {
			return badRequest("share must be within 0..1: the most of the time the job spends copying (0: no limit)")
		}
		if kind == store.JobRebuild && len(in.To) > 0 {
			return badRequest("a rebuild writes to its own mirror: to is for drains")
		}
		for _, t := range in.To {
			if _, ok := s.cfg.Mirrors.Get(t); !ok || t == id {
				return badRequest("to: mirror " + t + " is not another configured mirror")
			}
		}
		if kind == store.JobDrain && len(s.cfg.Mirrors.All()) < 2 {
			return badRequest("mirror " + id + " is the only mirror: there is nowhere to drain it to")
		}
		now := s.cfg.Clock()
		j := store.Job{Mirror: id, Kind: kind, To: in.To, Rate: in.Rate, Share: in.Share, State: store.JobRunning, Created: now, Updated: now}
		old, err := s.cfg.Store.Job(ctx, id)
		switch {
		case err == nil && (old.State == store.JobRunning || old.State == store.JobPaused):
			return fail(http.StatusConflict, "mirror "+id+" has a "+old.Kind+" "+old.State+": cancel it first")
		case err == nil:
			if err := s.cfg.Store.DeleteJob(ctx, id); err != nil {
				return unavailable("cannot replace the old job", err)
			}
		case !errors.Is(err, store.ErrNotFound):
			return unavailable("cannot read the mirror's job", err)
		}
		j, err = s.cfg.Store.PutJob(ctx, j)
		if errors.Is(err, store.ErrExists) {
			return fail(http.StatusConflict, "mirror "+id+" got another job meanwhile")
		}
		if err != nil {
			return unavailable("cannot store the job", err)
		}
		s.cfg.Log.InfoContext(ctx, "mirror job started", "mirror", id, "kind", kind, "to", in.To, "rate", in.Rate, "share", in.Share)
		s.jobsChanged()
		return c.JSON(http.StatusAccepted, jobView(j))
	}
}

// adminSetJob pauses, resumes or cancels the mirror's job.
func (s *Server) adminSetJob(state string) echo.HandlerFunc {
	from := map[string][]string{
		store.JobPaused:    {store.JobRunning},
		store.JobRunning:   {store.JobPaused},
		store.JobCancelled: {store.JobRunning, store.JobPaused},
	}[state]
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		id := c.Param("id")
		for {
			j, err := s.cfg.Store.Job(ctx, id)
			if err != nil {
				return storeProblem(err, "job of mirror "+id)
			}
			if !slices.Contains(from, j.State) {
				return fail(http.StatusConflict, "the "+j.Kind+" of mirror "+id+" is "+j.State)
			}
			j.State, j.Updated = state, s.cfg.Clock()
			j, err = s.cfg.Store.PutJob(ctx, j)
			if errors.Is(err, store.ErrConflict) {
				time.Sleep(10 * time.Millisecond) // the runner wrote its progress; read again
				continue
			}
			if err != nil {
				return unavailable("cannot store the job", err)
			}
			s.cfg.Log.InfoContext(ctx, "mirror job changed", "mirror", id, "kind", j.Kind, "state", state)
			s.jobsChanged()
			return c.JSON(http.StatusOK, jobView(j))
		}
	}
}

// jobsChanged tells this node that a job record changed, so that it reads
// the jobs now rather than at its next tick.
func (s *Server) jobsChanged() {
	if s.cfg.JobsChanged != nil {
		s.cfg.JobsChanged()
	}
}
