package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
)

// testPing: a store that is open answers.
func testPing(t *testing.T, e *env) {
	must(t, "Ping", e.s.Ping(e.ctx))
}

// wantUsage fails unless the owner's usage is bytes and files.
func (e *env) wantUsage(t *testing.T, what, owner string, bytes, files int64) {
	t.Helper()
	u, err := e.s.Usage(e.ctx, owner)
	must(t, what+": Usage", err)
	if u != (store.Usage{Bytes: bytes, Files: files}) {
		t.Fatalf("%s: usage of %s is %+v, want %d bytes in %d files", what, owner, u, bytes, files)
	}
}

// testUsage: an owner's usage counts its active files, through creates,
// a create whose slug is taken, removals, owner changes and deletes.
func testUsage(t *testing.T, e *env) {
	e.wantUsage(t, "no files", "alice", 0, 0)
	sized := func(slug, owner string, size int64) store.File {
		f := e.file(slug, "")
		f.Owner, f.Size = owner, size
		return f
	}
	for _, f := range []store.File{sized("a1", "alice", 10), sized("a2", "alice", 20), sized("b1", "bob", 5)} {
		_, err := e.s.CreateFile(e.ctx, f)
		must(t, "CreateFile "+f.Slug, err)
	}
	e.wantUsage(t, "after creates", "alice", 30, 2)
	e.wantUsage(t, "after creates", "bob", 5, 1)

	_, err := e.s.CreateFile(e.ctx, sized("a1", "alice", 99))
	wantErr(t, "CreateFile of a taken slug, same owner", err, store.ErrExists)
	_, err = e.s.CreateFile(e.ctx, sized("a1", "bob", 99))
	wantErr(t, "CreateFile of a taken slug, other owner", err, store.ErrExists)
	e.wantUsage(t, "after taken slugs", "alice", 30, 2)
	e.wantUsage(t, "after taken slugs", "bob", 5, 1)

	a1, err := e.s.File(e.ctx, "a1")
	must(t, "File", err)
	a1.Status = store.StatusAdmin
	must(t, "UpdateFile to removed", e.s.UpdateFile(e.ctx, a1))
	must(t, "UpdateFile again", e.s.UpdateFile(e.ctx, a1))
	e.wantUsage(t, "after a removal", "alice", 20, 1)
	must(t, "DeleteFile of a removed file", e.s.DeleteFile(e.ctx, "a1"))
	e.wantUsage(t, "after deleting a removed file", "alice", 20, 1)

	b1, err := e.s.File(e.ctx, "b1")
	must(t, "File", err)
	b1.Owner = "alice"
	must(t, "UpdateFile to another owner", e.s.UpdateFile(e.ctx, b1))
	e.wantUsage(t, "after an owner change", "alice", 25, 2)
	e.wantUsage(t, "after an owner change", "bob", 0, 0)

	must(t, "DeleteFile", e.s.DeleteFile(e.ctx, "a2"))
	must(t, "DeleteFile again", e.s.DeleteFile(e.ctx, "a2"))
	e.wantUsage(t, "after deletes", "alice", 5, 1)

	// An empty file counts as a file of no bytes, and is taken out again.
	_, err = e.s.CreateFile(e.ctx, sized("a0", "alice", 0))
	must(t, "CreateFile of an empty file", err)
	e.wantUsage(t, "after an empty file", "alice", 5, 2)
	a0, err := e.s.File(e.ctx, "a0")
	must(t, "File", err)
	a0.Status = store.StatusUser
	must(t, "UpdateFile of an empty file to removed", e.s.UpdateFile(e.ctx, a0))
	e.wantUsage(t, "after removing the empty file", "alice", 5, 1)
}

// testUsageConcurrent: files created at once are all counted.
func testUsageConcurrent(t *testing.T, e *env) {
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			f := e.file(fmt.Sprintf("c%02d", i), "")
			f.Owner, f.Size = "carol", int64(i+1)
			_, errs[i] = e.s.CreateFile(e.ctx, f)
		})
	}
	wg.Wait()
	for i, err := range errs {
		must(t, fmt.Sprintf("CreateFile %d", i), err)
	}
	e.wantUsage(t, "after concurrent creates", "carol", n*(n+1)/2, n)
}

// delivery is a queued webhook delivery due at due.
func delivery(id string, due time.Time) store.Delivery {
	return store.Delivery{ID: id, URL: "http://receiver.example/hook", Event: "file.completed",
		Body: []byte(`{"id":"` + id + `"}`), Due: due}
}

func ids(ds []store.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// testDeliveries: deliveries are claimed once they are due, oldest first,
// not again until the claim runs out (also when added again), and are gone
// once deleted; a put records an attempt.
func testDeliveries(t *testing.T, e *env) {
	t0 := e.clock.Now()
	must(t, "AddDeliveries", e.s.AddDeliveries(e.ctx, []store.Delivery{
		delivery("d2", t0.Add(time.Minute)), delivery("d1", t0), delivery("d3", t0.Add(2*time.Minute)),
	}))
	got, err := e.s.ClaimDeliveries(e.ctx, t0.Add(time.Minute), t0.Add(10*time.Minute), 10)
	must(t, "ClaimDeliveries", err)
	if !slices.Equal(ids(got), []string{"d1", "d2"}) {
		t.Fatalf("claimed %v, want d1 and d2", ids(got))
	}
	if string(got[0].Body) != `{"id":"d1"}` || got[0].URL != "http://receiver.example/hook" || !got[0].Due.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("claimed delivery %+v", got[0])
	}
	got, err = e.s.ClaimDeliveries(e.ctx, t0.Add(5*time.Minute), t0.Add(20*time.Minute), 10)
	must(t, "ClaimDeliveries", err)
	if !slices.Equal(ids(got), []string{"d3"}) {
		t.Fatalf("claimed %v while d1 and d2 are claimed, want d3", ids(got))
	}
	// Added again, as a node does that held it while the store refused:
	// a claimed delivery keeps its claim.
	must(t, "AddDeliveries again", e.s.AddDeliveries(e.ctx, []store.Delivery{delivery("d1", t0)}))
	got, err = e.s.ClaimDeliveries(e.ctx, t0.Add(5*time.Minute), t0.Add(20*time.Minute), 10)
	must(t, "ClaimDeliveries", err)
	if len(got) != 0 {
		t.Fatalf("claimed %v after d1 was added again while claimed, want none", ids(got))
	}
	d1 := delivery("d1", t0.Add(30*time.Minute))
	d1.Attempts, d1.LastError = 1, "503 Service Unavailable"
	must(t, "PutDelivery", e.s.PutDelivery(e.ctx, d1))
	must(t, "DeleteDelivery", e.s.DeleteDelivery(e.ctx, "d2"))
	must(t, "DeleteDelivery again", e.s.DeleteDelivery(e.ctx, "d2"))
	wantErr(t, "PutDelivery of a deleted one", e.s.PutDelivery(e.ctx, delivery("d2", t0)), store.ErrNotFound)
	got, err = e.s.ClaimDeliveries(e.ctx, t0.Add(25*time.Minute), t0.Add(40*time.Minute), 10)
	must(t, "ClaimDeliveries", err)
	if !slices.Equal(ids(got), []string{"d3"}) {
		t.Fatalf("claimed %v at +25m, want d3 only", ids(got))
	}
	got, err = e.s.ClaimDeliveries(e.ctx, t0.Add(time.Hour), t0.Add(2*time.Hour), 1)
	must(t, "ClaimDeliveries", err)
	if !slices.Equal(ids(got), []string{"d1"}) || got[0].Attempts != 1 || got[0].LastError != "503 Service Unavailable" {
		t.Fatalf("claimed %+v with limit 1, want d1 with its attempt", got)
	}
	// Deliveries lists them all, as they are (Due to the millisecond),
	// without claiming any.
	all, err := e.s.Deliveries(e.ctx)
	must(t, "Deliveries", err)
	near := func(a, b time.Time) bool { return a.Sub(b).Abs() < time.Millisecond }
	if !slices.Equal(ids(all), []string{"d1", "d3"}) || all[0].Attempts != 1 || !near(all[0].Due, t0.Add(2*time.Hour)) ||
		!near(all[1].Due, t0.Add(40*time.Minute)) || string(all[1].Body) != `{"id":"d3"}` {
		t.Fatalf("Deliveries = %+v, want d1 and d3 as claimed last", all)
	}
	again, err := e.s.Deliveries(e.ctx)
	must(t, "Deliveries", err)
	if !all[0].Due.Equal(again[0].Due) {
		t.Fatalf("Deliveries moved d1's Due to %v", again[0].Due)
	}
}

// testDeliveriesClaimedOnce: callers claiming at once never get the same
// delivery.
func testDeliveriesClaimedOnce(t *testing.T, e *env) {
	t0 := e.clock.Now()
	var ds []store.Delivery
	for i := range 30 {
		ds = append(ds, delivery(fmt.Sprintf("q%02d", i), t0))
	}
	must(t, "AddDeliveries", e.s.AddDeliveries(e.ctx, ds))
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for {
				got, err := e.s.ClaimDeliveries(e.ctx, t0, t0.Add(time.Hour), 4)
				if err != nil || len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 30 {
		t.Fatalf("%d of 30 deliveries claimed", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("delivery %s claimed %d times", id, n)
		}
	}
}
