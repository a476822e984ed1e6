package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/acestash/acestash/store/boltstore"
)

// TestJobRunsOnceAtATime runs a job on two nodes sharing a store, with a
// run on the first node lasting many intervals: the second node does not
// start the job meanwhile.
func TestJobRunsOnceAtATime(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "acestash.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	first := &app{id: "first", log: log, clock: time.Now, store: st}
	second := &app{id: "second", log: log, clock: time.Now, store: st}
	const interval = 100 * time.Millisecond

	ctx, cancel := context.WithCancel(t.Context())
	started, release := make(chan struct{}), make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		first.job(ctx, "scrub", interval, func(ctx context.Context) (int, error) {
			select {
			case started <- struct{}{}:
				<-release // a long run
			default:
			}
			return 0, nil
		})
	}()
	<-started
	ran := make(chan struct{}, 1)
	secondEnded := make(chan struct{})
	go func() {
		defer close(secondEnded)
		second.job(ctx, "scrub", interval, func(context.Context) (int, error) {
			select {
			case ran <- struct{}{}:
			default:
			}
			return 0, nil
		})
	}()
	select {
	case <-ran:
		t.Fatal("the second node ran the job while the first was running it")
	case <-time.After(10 * interval):
	}
	close(release)
	cancel()
	<-ended
	<-secondEnded
}
