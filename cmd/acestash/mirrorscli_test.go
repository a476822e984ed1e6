package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/acestash/acestash/api"
	"github.com/acestash/acestash/store"
)

// jobServer answers GET /api/admin/mirrors/2/job with jobs, one a call,
// the last one again once they run out.
func jobServer(t *testing.T, jobs ...store.Job) *adminClient {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/admin/mirrors/2/job" || r.Header.Get("Authorization") != "Bearer "+testAdminToken {
			http.Error(w, `{"error": "not this"}`, http.StatusNotFound)
			return
		}
		mu.Lock()
		j := jobs[0]
		if len(jobs) > 1 {
			jobs = jobs[1:]
		}
		mu.Unlock()
		json.NewEncoder(w).Encode(api.AdminJob{Job: j})
	}))
	t.Cleanup(srv.Close)
	return &adminClient{server: srv.URL, token: testAdminToken}
}

// TestFollowJob: `mirrors wait` (and `drain --wait`) follows a job to its
// end as a bar on a terminal and as lines elsewhere, exiting 0 only when
// it is done.
func TestFollowJob(t *testing.T) {
	running := store.Job{Mirror: "2", Kind: store.JobDrain, State: store.JobRunning, Files: 4, Bytes: 4096, DoneFiles: 1, DoneBytes: 1024}
	done := running
	done.State, done.DoneFiles, done.DoneBytes = store.JobDone, 4, 4096
	failed := running
	failed.State, failed.Error = store.JobFailed, "mirror 5 is full"

	var lines strings.Builder
	if err := jobServer(t, running, running, done).follow("2", &lines, false); err != nil {
		t.Fatalf("follow, lines: %v", err)
	}
	want := "mirror 2: drain running: 1/4 files, 1.0 KiB/4.0 KiB\nmirror 2: drain done: 4/4 files, 4.0 KiB/4.0 KiB\n"
	if lines.String() != want {
		t.Errorf("follow, lines:\n%s\nwant a line each time the job moved:\n%s", lines.String(), want)
	}

	var bar strings.Builder
	if err := jobServer(t, running, done).follow("2", &bar, true); err != nil {
		t.Fatalf("follow, bar: %v", err)
	}
	if out := bar.String(); !strings.Contains(out, "drain of mirror 2 (done): 4/4 files") || !strings.Contains(out, "4.0 KiB / 4.0 KiB") ||
		!strings.Contains(out, "100 %") || strings.Contains(out, "mirror 2: drain") {
		t.Errorf("follow, bar: %q", out)
	}

	for _, asBar := range []bool{false, true} {
		var out strings.Builder
		err := jobServer(t, running, failed).follow("2", &out, asBar)
		if err == nil || err.Error() != "the drain of mirror 2 failed: mirror 5 is full" {
			t.Errorf("follow a failing job (bar %v): %v", asBar, err)
		}
	}
}
