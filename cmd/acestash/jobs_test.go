package main

import (
	"context"
	"fmt"
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

// TestJobSurvivesRestarts restarts a node more often than its job's
// interval: the job still runs about every interval, since when it last
// ran is kept in the store; before that, each start waited a whole
// interval and the job never ran.
func TestJobSurvivesRestarts(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "acestash.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const interval = 400 * time.Millisecond
	ran := make(chan struct{}, 16)
	deadline := time.After(12 * interval)
	runs := 0
	for i := 0; runs < 2; i++ {
		a := &app{id: fmt.Sprint("node-", i), log: slog.New(slog.DiscardHandler), clock: time.Now, store: st}
		ctx, cancel := context.WithCancel(t.Context())
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			a.job(ctx, "scrub", interval, func(context.Context) (int, error) {
				ran <- struct{}{}
				return 1, nil
			})
		}()
		life := time.After(interval * 3 / 4) // the node's life before its restart
	live:
		for {
			select {
			case <-ran:
				runs++
			case <-life:
				break live
			case <-deadline:
				cancel()
				<-ended
				t.Fatalf("after %d restarts in %v, the job ran %d times; want 2", i, 12*interval, runs)
			}
		}
		cancel()
		<-ended
	}
}
