package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// Mirror jobs (drains and rebuilds) are records in the store that the
// admin API creates and changes. Every node reads them every jobTick: a
// mirror with a drain is left alone by new uploads on every node, and a
// running job is run by the node that takes its lock, which it renews
// while it runs. A node that dies leaves the lock to run out; another
// node then takes it and goes on from what the records say, since a drain
// only ever goes through the files that still name the mirror.

const (
	// jobTick is how often a node reads the jobs.
	jobTick = time.Second
	// jobLease is how long a job's lock lasts without renewal: a killed
	// node's job is resumed by another node this long after.
	jobLease = 15 * time.Second
	// drainSettle is how long a drain waits after it began before it may
	// end: every node has seen it by then, so no new upload chooses the
	// mirror afterwards.
	drainSettle = 3 * jobTick
	// jobCopies is how many files a job copies at once.
	jobCopies = 4
	// jobSave is how often a running job writes its progress, and so how
	// soon it sees that it was paused or cancelled.
	jobSave = time.Second
)

// drains holds the mirrors with a drain, as last read.
type drains struct{ ids atomic.Pointer[[]string] }

func (d *drains) has(id string) bool {
	p := d.ids.Load()
	return p != nil && slices.Contains(*p, id)
}

// draining reports whether j keeps uploads away from its mirror.
func draining(j store.Job) bool {
	return j.Kind == store.JobDrain && j.State != store.JobCancelled
}

// mirrorJobs reads the jobs every jobTick, keeps the drains known, and
// runs the jobs this node can lock, until ctx ends.
func (a *app) mirrorJobs(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	running := map[string]bool{}
	t := time.NewTicker(jobTick)
	defer t.Stop()
	for {
		jobs, err := a.store.Jobs(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("read mirror jobs", "err", err)
		}
		if err == nil {
			var ids []string
			for _, j := range jobs {
				if draining(j) {
					ids = append(ids, j.Mirror)
				}
			}
			a.drains.ids.Store(&ids)
			for _, j := range jobs {
				mu.Lock()
				busy := running[j.Mirror]
				mu.Unlock()
				if j.State != store.JobRunning || busy {
					continue
				}
				if _, ok := a.mirrors.Get(j.Mirror); !ok {
					continue
				}
				if err := a.store.Lock(ctx, jobLock(j.Mirror), a.id, a.clock().Add(jobLease)); err != nil {
					if !errors.Is(err, store.ErrLeased) && ctx.Err() == nil {
						a.log.Warn("take a mirror job's lock", "mirror", j.Mirror, "err", err)
					}
					continue
				}
				mu.Lock()
				running[j.Mirror] = true
				mu.Unlock()
				wg.Go(func() {
					defer func() {
						mu.Lock()
						delete(running, j.Mirror)
						mu.Unlock()
					}()
					a.runMirrorJob(ctx, j.Mirror)
				})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.jobsChanged:
		}
	}
}

func jobLock(mirror string) string { return "mirror-job:" + mirror }

// runMirrorJob runs the mirror's job, which this node has just locked,
// renewing the lock until the job stops, is paused or cancelled, or the
// lock passes to another node; then it lets the lock go.
func (a *app) runMirrorJob(ctx context.Context, mirror string) {
	err := a.locked(ctx, jobLock(mirror), jobLease, jobLease/3, true, func(ctx context.Context) error {
		r := &jobRun{a: a, mirror: mirror}
		return r.run(ctx)
	})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("mirror job stopped", "mirror", mirror, "err", err)
	}
}

// jobRun is one node's run of a mirror job.
type jobRun struct {
	a      *app
	mirror string
	job    store.Job // as last read or written
}

// errStopped ends a run whose job is no longer running.
var errStopped = errors.New("the job is no longer running")

// save applies change to the job as stored and writes it, reading it
// again when another writer came first. It returns errStopped once the
// job is not running any more (paused, cancelled, or gone).
func (r *jobRun) save(ctx context.Context, change func(*store.Job)) error {
	for {
		j, err := r.a.store.Job(ctx, r.mirror)
		if errors.Is(err, store.ErrNotFound) {
			return errStopped
		}
		if err != nil {
			return err
		}
		if j.State != store.JobRunning {
			r.job = j
			return errStopped
		}
		change(&j)
		j.Node, j.Updated = r.a.id, r.a.clock()
		j, err = r.a.store.PutJob(ctx, j)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		r.job = j
		return nil
	}
}

// run works through the job until it is done or stops.
func (r *jobRun) run(ctx context.Context) error {
	if err := r.save(ctx, func(*store.Job) {}); err != nil {
		return ignoreStopped(err)
	}
	pace := chunks.Pace(ctx, r.job.Rate, r.job.Share)
	r.a.log.Info("mirror job running", "mirror", r.mirror, "kind", r.job.Kind, "to", r.job.To,
		"rate", r.job.Rate, "share", r.job.Share, "cursor", r.job.Cursor)
	if r.job.Kind == store.JobRebuild {
		return r.rebuild(ctx, pace)
	}
	return r.drain(ctx, pace)
}

// rebuild goes once through the files that name the mirror, in slug
// order, starting after the job's cursor: a rebuild that was stopped (a
// node killed, the job paused) goes on where it was.
func (r *jobRun) rebuild(ctx context.Context, pace func(io.Reader) io.Reader) error {
	list, size, err := r.files(ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(list, func(a, b store.File) int { return strings.Compare(a.Slug, b.Slug) })
	cursor := r.job.Cursor
	i := 0
	var doneBytes int64
	if cursor != "" {
		for i < len(list) && list[i].Slug <= cursor {
			doneBytes += list[i].Size
			i++
		}
	}
	err = r.save(ctx, func(j *store.Job) {
		j.Files, j.Bytes, j.DoneFiles, j.DoneBytes = int64(len(list)), size, int64(i), doneBytes
	})
	if err != nil {
		return ignoreStopped(err)
	}
	if _, _, err := r.pass(ctx, list[i:], pace); err != nil {
		return ignoreStopped(err)
	}
	return r.finish(ctx, r.job.Skipped, r.job.Error)
}

// drain moves every copy off the mirror, pass after pass, until a pass
// finds none left and no upload writing there, and the mirror is empty.
func (r *jobRun) drain(ctx context.Context, pace func(io.Reader) io.Reader) error {
	emptied := false
	for {
		list, size, err := r.files(ctx)
		if err != nil {
			return err
		}
		err = r.save(ctx, func(j *store.Job) { j.Files, j.Bytes = j.DoneFiles+int64(len(list)), j.DoneBytes+size })
		if err != nil {
			return ignoreStopped(err)
		}
		if len(list) == 0 {
			busy, err := r.writing(ctx)
			if err != nil {
				return err
			}
			settled := r.job.Created.Add(drainSettle).Sub(r.a.clock())
			if busy > 0 || settled > 0 {
				wait := min(jobTick, settled) // no longer than the settling asks
				if busy > 0 {
					wait = jobTick
					r.save(ctx, func(j *store.Job) {
						j.Error = fmt.Sprintf("waiting for %d uploads in progress on the mirror", busy)
					})
				}
				if err := sleep(ctx, wait); err != nil {
					return err
				}
				continue
			}
			if emptied {
				return r.finish(ctx, 0, "")
			}
			n, err := r.a.chunks.Empty(ctx, r.mirror)
			if err != nil {
				return err
			}
			r.a.log.Info("drain: emptied the mirror", "mirror", r.mirror, "removed", n)
			emptied = true // one more pass proves nothing came back
			continue
		}
		emptied = false
		skipped, last, err := r.pass(ctx, list, pace)
		if err != nil {
			return ignoreStopped(err)
		}
		if skipped == len(list) {
			return r.finish(ctx, int64(skipped), last) // no file could move: trying again changes nothing
		}
		// Files that could not move count again on the next pass.
		if err := r.save(ctx, func(j *store.Job) {
			j.DoneFiles -= int64(skipped)
		}); err != nil {
			return ignoreStopped(err)
		}
	}
}

// jobProgress is what a pass did since it last wrote the job.
type jobProgress struct {
	files, bytes, copied, skipped int64
	last                          string // the last error
}

// pass moves (drain) or checks (rebuild) the files of list, jobCopies at
// once, and writes its progress to the job every jobSave and at its end;
// a rebuild's progress carries the cursor. It returns how many files it
// could not handle, with the last error, or the error that stopped it
// (errStopped once the job is no longer running).
func (r *jobRun) pass(ctx context.Context, list []store.File, pace func(io.Reader) io.Reader) (int, string, error) {
	kind, to := r.job.Kind, r.job.To
	var (
		mu       sync.Mutex
		p        jobProgress // not yet written
		skipped  int
		last     string
		finished = make([]bool, len(list))
		low      int // list[:low] are all finished
	)
	save := func(ctx context.Context) error {
		mu.Lock()
		d, cursor := p, ""
		p = jobProgress{}
		if low > 0 {
			cursor = list[low-1].Slug
		}
		mu.Unlock()
		return r.save(ctx, func(j *store.Job) {
			j.DoneFiles += d.files
			j.DoneBytes += d.bytes
			j.Copied += d.copied
			if kind == store.JobRebuild {
				j.Skipped += d.skipped
				if d.last != "" {
					j.Error = d.last
				}
				if cursor != "" {
					j.Cursor = cursor
				}
			}
		})
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(jobCopies, len(list)) {
		wg.Go(func() {
			for i := range work {
				f := list[i]
				var did chunks.Moved
				var err error
				if kind == store.JobRebuild {
					did, err = r.a.chunks.Rebuild(ctx, f, r.mirror, pace)
				} else {
					did, err = r.a.chunks.Move(ctx, f, r.mirror, to, pace)
				}
				if ctx.Err() != nil {
					continue // the node stops: not counted, done again by the next run
				}
				if err != nil {
					r.a.log.Warn("mirror job: file left for later", "mirror", r.mirror, "kind", kind, "slug", f.Slug, "err", err)
				}
				mu.Lock()
				p.files++
				p.bytes += f.Size
				if did == chunks.Copied {
					p.copied++
				}
				if err != nil {
					skipped, last = skipped+1, err.Error()
					p.skipped, p.last = p.skipped+1, last
				}
				finished[i] = true
				for low < len(list) && finished[low] {
					low++
				}
				mu.Unlock()
			}
		})
	}
	tick := time.NewTicker(jobSave)
	defer tick.Stop()
	var stop error
	for i := 0; i < len(list) && stop == nil; {
		select {
		case work <- i:
			i++
		case <-tick.C:
			stop = save(ctx)
		case <-ctx.Done():
			stop = ctx.Err()
		}
	}
	// The files begun are finished even when the job was paused or
	// cancelled meanwhile: a copy cut short would be left behind.
	close(work)
	idle := make(chan struct{})
	go func() {
		wg.Wait()
		close(idle)
	}()
	for waiting := true; waiting; {
		select {
		case <-idle:
			waiting = false
		case <-tick.C:
			if stop == nil {
				stop = save(ctx)
			}
		}
	}
	if stop == nil {
		stop = ctx.Err()
	}
	if stop == nil {
		stop = save(ctx)
	}
	return skipped, last, stop
}

// finish ends the job: done, or failed with the last error when files
// were skipped.
func (r *jobRun) finish(ctx context.Context, skipped int64, last string) error {
	err := r.save(ctx, func(j *store.Job) {
		j.State, j.Skipped, j.Error = store.JobDone, skipped, ""
		if skipped > 0 {
			j.State = store.JobFailed
			j.Error = fmt.Sprintf("%d files could not be handled; the last: %s", skipped, last)
		}
	})
	r.a.log.Info("mirror job ended", "mirror", r.mirror, "kind", r.job.Kind, "state", r.job.State,
		"files", r.job.DoneFiles, "copied", r.job.Copied, "skipped", skipped)
	return ignoreStopped(err)
}

// files lists the active files the job has to go through: those whose
// record names the mirror as holding a copy or missing one.
func (r *jobRun) files(ctx context.Context) ([]store.File, int64, error) {
	var list []store.File
	var size int64
	err := r.a.store.EachFile(ctx, func(f store.File) error {
		if f.Status == store.StatusActive && (slices.Contains(f.Mirrors, r.mirror) || slices.Contains(f.Missing, r.mirror)) {
			list = append(list, f)
			size += f.Size
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list the files of mirror %s: %w", r.mirror, err)
	}
	return list, size, nil
}

// writing counts the uploads in progress that write to the mirror: not
// yet published, or publishing with no record yet.
func (r *jobRun) writing(ctx context.Context) (int, error) {
	sessions, err := r.a.store.IdleSessions(ctx, time.Unix(1<<40, 0), math.MaxInt32)
	if err != nil {
		return 0, fmt.Errorf("list uploads in progress: %w", err)
	}
	n := 0
	for _, s := range sessions {
		if _, failed := s.Failed[r.mirror]; s.Done || failed || !slices.Contains(s.Mirrors, r.mirror) {
			continue
		}
		if s.Slug != "" {
			_, err := r.a.store.File(ctx, s.Slug)
			if err == nil {
				continue // published: the record is what counts
			}
			if !errors.Is(err, store.ErrNotFound) {
				return 0, fmt.Errorf("read a file being published: %w", err)
			}
		}
		n++
	}
	return n, nil
}

func ignoreStopped(err error) error {
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
