package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/acestash/acestash/store"
)

func testJobs(t *testing.T, e *env) {
	if list, err := e.s.Jobs(e.ctx); err != nil || len(list) != 0 {
		t.Fatalf("Jobs of an empty store = %v, %v", list, err)
	}
	_, err := e.s.Job(e.ctx, "2")
	wantErr(t, "Job(missing)", err, store.ErrNotFound)
	j := store.Job{Mirror: "2", Kind: store.JobDrain, To: []string{"4", "5"}, Rate: 1 << 20, Share: 0.25, State: store.JobRunning,
		Files: 300, Cursor: "Xy3kP9aQ", Bytes: 1 << 30, Created: e.clock.Now(), Updated: e.clock.Now()}
	got, err := e.s.PutJob(e.ctx, j)
	must(t, "PutJob(create)", err)
	if got.Version != 1 {
		t.Fatalf("PutJob(create) gave Version %d, want 1", got.Version)
	}
	_, err = e.s.PutJob(e.ctx, j)
	wantErr(t, "PutJob(create over a job)", err, store.ErrExists)
	read, err := e.s.Job(e.ctx, "2")
	must(t, "Job", err)
	if read.Version != 1 || read.Kind != store.JobDrain || read.Rate != 1<<20 || read.Share != 0.25 || read.Cursor != "Xy3kP9aQ" || len(read.To) != 2 || read.To[1] != "5" ||
		read.Files != 300 || read.Bytes != 1<<30 || !read.Created.Equal(j.Created) {
		t.Fatalf("Job = %+v, want %+v with Version 1", read, j)
	}
	read.DoneFiles, read.DoneBytes = 10, 1000
	next, err := e.s.PutJob(e.ctx, read)
	must(t, "PutJob(update)", err)
	if next.Version != 2 {
		t.Fatalf("PutJob(update) gave Version %d, want 2", next.Version)
	}
	_, err = e.s.PutJob(e.ctx, read) // Version 1 again: stale
	wantErr(t, "PutJob(stale version)", err, store.ErrConflict)
	_, err = e.s.PutJob(e.ctx, store.Job{Mirror: "7", Version: 3, State: store.JobRunning})
	wantErr(t, "PutJob(update of a missing job)", err, store.ErrConflict)
	_, err = e.s.PutJob(e.ctx, store.Job{Mirror: "10", Kind: store.JobRebuild, State: store.JobPaused})
	must(t, "PutJob(second mirror)", err)
	list, err := e.s.Jobs(e.ctx)
	must(t, "Jobs", err)
	if len(list) != 2 || list[0].Mirror != "10" || list[1].Mirror != "2" || list[1].DoneFiles != 10 || list[1].Version != 2 {
		t.Fatalf("Jobs = %+v, want mirrors 10 and 2 (text order), 2 with its update", list)
	}
	must(t, "DeleteJob", e.s.DeleteJob(e.ctx, "2"))
	must(t, "DeleteJob(missing)", e.s.DeleteJob(e.ctx, "2"))
	_, err = e.s.Job(e.ctx, "2")
	wantErr(t, "Job(deleted)", err, store.ErrNotFound)
	// Deleted, the mirror can have a new job.
	_, err = e.s.PutJob(e.ctx, store.Job{Mirror: "2", Kind: store.JobRebuild, State: store.JobRunning})
	must(t, "PutJob(after delete)", err)
}

// testJobRace: of writers holding the same version, exactly one wins.
func testJobRace(t *testing.T, e *env) {
	j, err := e.s.PutJob(e.ctx, store.Job{Mirror: "3", Kind: store.JobDrain, State: store.JobRunning})
	must(t, "PutJob", err)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			c := j
			c.DoneFiles = int64(i + 1)
			_, errs[i] = e.s.PutJob(e.ctx, c)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("PutJob: %v, want nil or ErrConflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent PutJob calls from one version succeeded, want 1", won)
	}
	got, err := e.s.Job(e.ctx, "3")
	must(t, "Job", err)
	if got.Version != 2 || got.DoneFiles == 0 {
		t.Fatalf("after the race: %+v", got)
	}
}
