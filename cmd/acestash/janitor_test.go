package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// TestSpoolCleanedAtStart leaves what a killed node parked in its spool:
// the next start removes it.
func TestSpoolCleanedAtStart(t *testing.T) {
	cfg := testConfig(t, embedded)
	spool := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"body-123", "body-456"} {
		if err := os.WriteFile(filepath.Join(spool, name), make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start(t, cfg, nil)
	left, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("the spool still holds %d entries after the start", len(left))
	}
}

// TestJanitorAfterCrashes leaves on every MinIO what crashes leave behind:
// an object written and never published, and multipart uploads begun and
// never recorded, one of them with a staged chunk. Beside them run a
// published file and an upload in progress. After the grace period the
// leftovers are gone, and the rest is as it was.
func TestJanitorAfterCrashes(t *testing.T) {
	_, cfg := clusterConfig(t)
	cfg.Limits.MaxChunkSize = testChunk
	cfg.Janitor.Interval, cfg.Janitor.Grace = time.Second, 2*time.Second
	srv := start(t, cfg, nil)
	data := testData(3*testChunk, 21)
	done := newUpload(t, srv, "1", "2", "3")
	var res uploadResult
	for i := range 3 {
		done.send(fmt.Sprintf("bytes %d-%d/%d", i*testChunk, (i+1)*testChunk-1, len(data)), data[i*testChunk:(i+1)*testChunk]).result(t, &res)
	}
	open := newUpload(t, srv, "1", "2", "3")
	if a := open.send(fmt.Sprintf("bytes 0-%d/%d", testChunk-1, len(data)), data[:testChunk]); a.env.Status != "success" {
		t.Fatal(a)
	}
	before := storedObjects(t, srv)
	for _, e := range srv.app.mirrors.All() {
		if err := e.Mirror.Put(t.Context(), "files/crashed-before-publishing", bytes.NewReader(data[:10]), 10); err != nil {
			t.Fatal(err)
		}
		up, err := e.Mirror.Begin(t.Context(), "files/crashed-mid-upload")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Mirror.PutPart(t.Context(), up, mirrors.Part{}, bytes.NewReader(data[:100]), 100); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Mirror.Begin(t.Context(), "files/crashed-after-begin"); err != nil {
			t.Fatal(err)
		}
	}
	if n := storedObjects(t, srv); n <= before {
		t.Fatalf("the leftovers added no objects: %d, %d before", n, before)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !leftoversGone(t, srv) {
		if time.Now().After(deadline) {
			t.Fatal("leftovers still on the mirrors 20s after they were left, with a grace of 2s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := storedObjects(t, srv); n != before {
		t.Fatalf("after the janitor the mirrors hold %d objects, %d before the leftovers", n, before)
	}
	checkComplete(t, srv, res, "f.bin", data)
	for i := 1; i < 3; i++ {
		open.send(fmt.Sprintf("bytes %d-%d/%d", i*testChunk, (i+1)*testChunk-1, len(data)), data[i*testChunk:(i+1)*testChunk]).result(t, &res)
	}
	checkComplete(t, srv, res, "f.bin", data)
}

// leftoversGone reports whether no mirror lists anything crashed-… any more.
func leftoversGone(t *testing.T, srv *testServer) bool {
	for _, e := range srv.app.mirrors.All() {
		l, _ := mirrors.As[mirrors.Lister](e.Mirror)
		found := false
		err := l.ListObjects(t.Context(), "files/crashed", func(string, mirrors.Info) error { found = true; return nil })
		if err != nil {
			t.Fatalf("mirror %s: list objects: %v", e.ID, err)
		}
		err = l.ListUploads(t.Context(), "files/crashed", func(mirrors.Upload, time.Time) error { found = true; return nil })
		if err != nil {
			t.Fatalf("mirror %s: list uploads: %v", e.ID, err)
		}
		if found {
			return false
		}
	}
	return true
}
