package chunks

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// TestSelectSkipsDraining: a client naming a draining mirror gets another
// allowed one in its place, and defaults leave it out.
func TestSelectSkipsDraining(t *testing.T) {
	e := newEnv(t, 4, func(c *Config) { c.Draining = func(id string) bool { return id == "2" } })
	sel, err := e.svc.SelectMirrors(e.acct, []string{"2", "3"})
	if err != nil || !slices.Equal(sel, []string{"3", "1"}) {
		t.Fatalf("SelectMirrors(2, 3) with 2 draining = %v, %v; want 3 and 1 in 2's place", sel, err)
	}
	if d := e.svc.DefaultMirrors(e.acct); slices.Contains(d, "2") || len(d) != 3 {
		t.Fatalf("DefaultMirrors with 2 draining = %v", d)
	}
	only := store.Account{APIKey: "k", Mirrors: []string{"2"}}
	if _, err := e.svc.SelectMirrors(only, []string{"2"}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("being drained")) {
		t.Fatalf("SelectMirrors for an account allowed only the draining mirror: %v", err)
	}
}

// TestMove moves a file's copy off mirror 1: the copy lands on a mirror
// that lacked it, the record names it instead of 1, and 1 holds nothing;
// with nowhere to go, the copy stays.
func TestMove(t *testing.T) {
	e := newEnv(t, 3, nil)
	b := data(7*mib+3, 5)
	res := e.upload(t, b, 3*mib)
	f := res.File
	if !slices.Equal(f.Mirrors, []string{"1", "2", "3"}) {
		t.Fatalf("uploaded to %v", f.Mirrors)
	}
	if _, err := e.svc.Move(t.Context(), f, "1", nil, nil); !errors.Is(err, ErrNoTarget) {
		t.Fatalf("Move with every mirror holding the file: %v, want ErrNoTarget", err)
	}
	f.Mirrors = []string{"1", "2"} // as if 3 lacked it
	if err := e.store.UpdateFile(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	e.mem[2].Delete(t.Context(), f.ObjectKey)
	start := time.Now()
	did, err := e.svc.Move(t.Context(), f, "1", nil, Pace(t.Context(), 4*mib, 0))
	if err != nil || did != Copied {
		t.Fatalf("Move = %v, %v", did, err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("7 MiB moved in %v at 4 MiB/s", took)
	}
	got, err := e.store.File(t.Context(), f.Slug)
	if err != nil || !slices.Equal(got.Mirrors, []string{"2", "3"}) {
		t.Fatalf("record after the move: %v, %v; want mirrors 2, 3", got.Mirrors, err)
	}
	e.holds(t, got, b, "2", "3")
	if _, err := e.mem[0].Stat(t.Context(), f.ObjectKey); !errors.Is(err, mirrors.ErrNotFound) {
		t.Fatalf("mirror 1 still holds the copy: %v", err)
	}
	// A file no longer on the mirror is skipped.
	if did, err := e.svc.Move(t.Context(), got, "1", nil, nil); did != Skipped || err != nil {
		t.Fatalf("Move of a file not on the mirror = %v, %v", did, err)
	}
	// Rebuild of mirror 3 after its copy went bad rewrites it.
	e.mem[2].Put(t.Context(), f.ObjectKey, io.LimitReader(bytes.NewReader(data(len(b), 9)), int64(len(b))), int64(len(b)))
	if did, err := e.svc.Rebuild(t.Context(), got, "3", nil); did != Copied || err != nil {
		t.Fatalf("Rebuild of a bad copy = %v, %v", did, err)
	}
	e.holds(t, got, b, "3")
	if did, err := e.svc.Rebuild(t.Context(), got, "3", nil); did != Checked || err != nil {
		t.Fatalf("Rebuild of a good copy = %v, %v", did, err)
	}
}

// TestPaceShare: with a share of the time, copies pause after their work
// so that it takes at most that share of the time; several copies at
// once add up their work. Work is simulated by a consumer that takes
// 40 ms per read.
func TestPaceShare(t *testing.T) {
	const reads, work, share = 5, 40 * time.Millisecond, 0.25
	pace := Pace(t.Context(), 0, share)
	copyOne := func() {
		r := pace(io.LimitReader(bytes.NewReader(make([]byte, reads)), reads))
		p := make([]byte, 1)
		for {
			if _, err := r.Read(p); err != nil {
				return
			}
			time.Sleep(work)
		}
	}
	start := time.Now()
	done := make(chan struct{})
	for range 2 {
		go func() { copyOne(); done <- struct{}{} }()
	}
	<-done
	<-done
	// 2 copies × 5 reads × 40 ms of work, at most a quarter of the time;
	// the bound leaves out one read's work of each.
	busy := 2 * (reads - 1) * work
	if took := time.Since(start); took < time.Duration(float64(busy)/share)*9/10 {
		t.Fatalf("%v of work at a share of %.2f took %v, want at least %v", busy, share, took, time.Duration(float64(busy)/share))
	}
	if Pace(t.Context(), 0, 0) != nil || Pace(t.Context(), 0, 1) != nil {
		t.Fatal("Pace with no rate and a share of 0 or 1 limits something")
	}
}
