package chunks

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// TestReapKeepsUp leaves 2,000 abandoned uploads (200 under -short: each
// costs the embedded store a sync to disk): one Reap removes them all,
// aborting their mirror uploads.
func TestReapKeepsUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, nil)
	n := 2000
	if testing.Short() {
		n = 200
	}
	now := time.Now().UTC()
	for i := range n {
		key := fmt.Sprintf("k%04d", i)
		up, err := e.mem[0].Begin(t.Context(), "files/"+key)
		if err != nil {
			t.Fatal(err)
		}
		err = e.store.CreateSession(t.Context(), store.Session{UploadKey: key, CTracker: "c", APIKey: e.acct.APIKey,
			Started: true, Issued: now, Updated: now.Add(-2 * time.Hour), Total: 10, ObjectKey: "files/" + key,
			Mirrors: []string{"1"}, Uploads: map[string]mirrors.Upload{"1": up}})
		if err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	got, err := e.svc.Reap(t.Context(), time.Hour)
	if err != nil || got != n {
		t.Fatalf("Reap: %d, %v; want %d", got, err, n)
	}
	t.Logf("reaped %d sessions in %v", n, time.Since(start).Round(time.Millisecond))
	if left, _ := e.store.IdleSessions(t.Context(), now, 10); len(left) != 0 {
		t.Fatalf("%d idle sessions left", len(left))
	}
	if u := e.mem[0].Uploads(); u != 0 {
		t.Fatalf("%d mirror uploads left", u)
	}
}

// TestFailedAbortsInTheBackground drops a mirror from an upload whose
// abort then hangs: the client's answer does not wait for it, and the
// abort is retried in the background until it goes through.
func TestFailedAbortsInTheBackground(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, func(c *Config) { c.WriteQuorum, c.AbortPause = 2, 10*time.Millisecond })
	release := make(chan struct{})
	e.faulty[2].Fail = func(method string, n int) error {
		switch {
		case method == "PutPart" && n >= 1:
			return errors.New("mirror 3 fails")
		case method == "Abort" && n == 0:
			<-release // a mirror that does not answer
			return context.DeadlineExceeded
		}
		return nil
	}
	b := data(20*mib, 40)
	res := e.upload(t, b, 12*mib)
	if fmt.Sprint(res.File.Missing) != "[3]" {
		t.Fatalf("missing %v, want [3]", res.File.Missing)
	}
	if e.mem[2].Uploads() != 1 {
		t.Fatalf("mirror 3 has %d uploads; its abort should still be waiting", e.mem[2].Uploads())
	}
	close(release)
	e.svc.bg.Wait() // the retry
	if u := e.mem[2].Uploads(); u != 0 {
		t.Fatalf("mirror 3 kept %d uploads after the background abort", u)
	}
}
