package chunks

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
)

// TestSweep leaves on a mirror what crashes leave: an object written and
// never published, an upload begun and never recorded; beside them, a
// published file, an upload in progress and fresh leftovers. Sweep removes
// exactly the old leftovers.
func TestSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, nil)
	m := e.mem[0]
	ctx := t.Context()
	b := data(6*mib, 50)
	done := e.upload(t, b, len(b))

	sess, err := e.svc.Issue(ctx, e.acct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Chunk(ctx, e.req(sess, b, 0, 5*mib+1)); err != nil {
		t.Fatal(err)
	}
	sess, _ = e.store.Session(ctx, sess.UploadKey)
	live := sess.Uploads["1"]

	put := func(key string) {
		if err := m.Put(ctx, key, bytes.NewReader([]byte("left")), 4); err != nil {
			t.Fatal(err)
		}
	}
	put("files/orphan-old")
	put("files/orphan-new")
	put("not-ours/old")
	oldUp, err := m.Begin(ctx, "files/upload-old")
	if err != nil {
		t.Fatal(err)
	}
	newUp, err := m.Begin(ctx, "files/upload-new")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{done.File.ObjectKey, "files/orphan-old", "not-ours/old", oldUp.ID, live.ID} {
		m.Age(k, 2*time.Hour)
	}

	n, err := e.svc.Sweep(ctx, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("Sweep: %d, %v; want the old orphan object and upload", n, err)
	}
	keys := m.Keys()
	slices.Sort(keys)
	want := []string{done.File.ObjectKey, "files/orphan-new", "not-ours/old"}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("objects left %v, want %v", keys, want)
	}
	if m.Uploads() != 2 {
		t.Fatalf("%d uploads left, want the session's and the fresh one", m.Uploads())
	}
	// The upload in progress goes on and the published file is whole.
	res, err := e.svc.Chunk(ctx, e.req(sess, b, 5*mib+1, len(b)))
	if err != nil || !res.Done {
		t.Fatalf("the upload after Sweep: %+v, %v", res, err)
	}
	m.Abort(ctx, newUp)
	e.holds(t, res.File, b, "1")
	e.holds(t, done.File, b)
}

// TestSweepWithdrawn: a file taken down while one mirror could not delete
// its copy keeps its record, which says the file is gone; the copy that
// mirror kept is swept like any object no live file needs.
func TestSweepWithdrawn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	ctx := t.Context()
	res := e.upload(t, data(1000, 51), 1000)
	e.faulty[1].Fail = func(method string, n int) error {
		if method == "Delete" {
			return errors.New("mirror 2 is down for the delete")
		}
		return nil
	}
	if _, err := e.svc.Withdraw(ctx, res.File.Slug, store.StatusUser); err == nil {
		t.Fatal("Withdraw with a mirror failing to delete: no error")
	}
	e.faulty[1].Fail = nil
	if keys := e.mem[1].Keys(); len(keys) != 1 {
		t.Fatalf("mirror 2 holds %v; want the copy it could not delete", keys)
	}
	e.mem[1].Age(res.File.ObjectKey, 2*time.Hour)
	// Its upload's session is reaped in time, as any finished one is.
	if err := e.store.DeleteSession(ctx, res.File.UploadKey); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.Sweep(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("Sweep: %d, %v; want the withdrawn file's copy removed", n, err)
	}
	if keys := e.mem[1].Keys(); len(keys) != 0 {
		t.Fatalf("mirror 2 still holds %v of a withdrawn file", keys)
	}
}
