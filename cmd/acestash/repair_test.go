package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acestash/acestash/store/storetest"
)

// TestRepairAfterMirrorDown uploads while one MinIO of three is down
// (quorum 2 of 3), brings it back, and waits: within two repair intervals
// the mirror holds the file, the record says so, and file/info shows three
// copies.
func TestRepairAfterMirrorDown(t *testing.T) {
	c, cfg := clusterConfig(t)
	cfg.Limits.MaxChunkSize = testChunk
	const interval = 2 * time.Second
	cfg.RepairInterval = interval
	srv := start(t, cfg, nil)
	data := testData(3*testChunk+5, 17)

	c.minio[2].Kill()
	up := newUpload(t, srv, "1", "2", "3")
	var res uploadResult
	for off := 0; off < len(data); off += testChunk {
		end := min(off+testChunk, len(data))
		up.send(fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data)), data[off:end]).result(t, &res)
	}
	info := fileInfo(t, srv, testKey, testToken, res.Slug)
	if info["copies"] != "2" || info["mirrors"] != "1,2" || info["missing"] != "3" {
		t.Fatalf("file/info with mirror 3 down: %v", info)
	}

	c.minio[2].Restart(t)
	waitHealthy(t, srv, "3")
	back := time.Now()
	for {
		f, err := srv.app.store.File(t.Context(), res.Slug)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Missing) == 0 {
			break
		}
		if time.Since(back) > 2*interval {
			t.Fatalf("still missing %v two repair intervals after the mirror came back", f.Missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("repaired %v after mirror 3 was seen healthy", time.Since(back).Round(time.Millisecond))
	info = fileInfo(t, srv, testKey, testToken, res.Slug)
	if info["copies"] != "3" || info["mirrors"] != "1,2,3" || info["missing"] != "" {
		t.Fatalf("file/info after repair: %v", info)
	}
	f, _ := srv.app.store.File(t.Context(), res.Slug)
	checkMirrorHolds(t, srv, "3", f.ObjectKey, data)
	// Another account sees only what the public page shows.
	other := fileInfo(t, srv, otherKey, otherToken, res.Slug)
	if other["id"] != "null" || other["missing"] != "" || other["name"] != "f.bin" || other["copies"] != "3" {
		t.Fatalf("file/info to another account: %v", other)
	}
	if _, ok := other["missing"]; ok {
		t.Fatalf("file/info tells another account which copies are missing: %v", other)
	}
}

// TestScrubRewritesAFlippedByte flips a byte in a file's copy on a
// directory mirror: the scrubber finds it and rewrites the copy from a
// good one.
func TestScrubRewritesAFlippedByte(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.ScrubInterval, cfg.ScrubShare = time.Second, 1
	clock := storetest.NewClock(time.Now().UTC()) // moved as time passes: jobs are due by the store's clock
	srv := start(t, cfg, clock)
	data := testData(5000, 23)
	u := newUpload(t, srv, "1", "2")
	var res uploadResult
	u.send("", data).result(t, &res)
	f, err := srv.app.store.File(t.Context(), res.Slug)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.Mirrors[0].Path, filepath.FromSlash(f.ObjectKey))
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("mirror 1's copy at %s: %v", path, err)
	}
	b[2500] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	flipped := time.Now()
	for {
		b, err := os.ReadFile(path)
		if err == nil && bytes.Equal(b, data) {
			break
		}
		if time.Since(flipped) > 10*time.Second {
			t.Fatal("the flipped byte is still there 10 scrub intervals later")
		}
		time.Sleep(100 * time.Millisecond)
		clock.Advance(100 * time.Millisecond)
	}
	t.Logf("rewritten %v after the byte was flipped", time.Since(flipped).Round(time.Millisecond))
	checkComplete(t, srv, res, "f.bin", data)
}

// checkMirrorHolds fails the test unless mirror id holds exactly data
// under key.
func checkMirrorHolds(t *testing.T, srv *testServer, id, key string, data []byte) {
	t.Helper()
	e, _ := srv.app.mirrors.Get(id)
	rc, err := e.Mirror.Open(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("mirror %s holds %d bytes (%v), not the file", id, len(got), err)
	}
}
