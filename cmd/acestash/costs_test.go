package main

// What a file costs as the number of files grows: store memory per record,
// Redis round trips of each request kind and each background job's run,
// and file/list's first and last page, with 10 files stored and with many.

import (
	"context"
	"crypto/sha256"
	"encoding"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/boltstore"
	"github.com/acestash/acestash/store/redisstore"
	"github.com/acestash/acestash/store/redisstore/redistest"
)

// costFilesEnv sets how many files the large size of TestCosts stores
// (`make bench-scale`: 1,000,000).
const costFilesEnv = "ACESTASH_COST_FILES"

// costFiles returns the large size of TestCosts.
func costFiles(t *testing.T) int {
	t.Helper()
	v := os.Getenv(costFilesEnv)
	if v == "" {
		return 20000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 {
		t.Fatalf("%s=%q: want a number of files, at least 100", costFilesEnv, v)
	}
	return n
}

// costRecord is the file record the generator stores, shaped as a
// published upload's: its upload key, a 24-character name, its hash, an
// object key of "files/" and a UUID, two mirrors and a content type.
func costRecord(i int, owner string, created time.Time) store.File {
	s := fmt.Sprintf("g%07d", i)
	return store.File{
		UploadKey: fmt.Sprintf("%032x", i), Slug: s, Name: fmt.Sprintf("holiday-photo-%06d.jpeg", i%1000000),
		Size: int64(1<<20 + i), SHA256: fmt.Sprintf("%064x", i), Type: "image/jpeg", Owner: owner,
		ObjectKey: fmt.Sprintf("files/%08x-0000-4000-8000-%012x", i, i), Mirrors: []string{"1", "2"},
		Status: store.StatusActive, Created: created.Add(time.Duration(i) * time.Millisecond),
	}
}

// costSession is the upload session the generator stores, shaped as one
// after its first chunk to two S3 mirrors: the SHA-256 state, a multipart
// upload on each mirror and its first part.
func costSession(i int, owner string, now time.Time) store.Session {
	h := sha256.New()
	h.Write([]byte("first chunk"))
	state, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	key := fmt.Sprintf("files/%08x-0000-4000-8000-%012x", i, i)
	up := func(m string) mirrors.Upload {
		return mirrors.Upload{Key: key, ID: fmt.Sprintf("%s.%08x-1111-4222-8333-%012x", m, i, i)}
	}
	part := mirrors.Part{N: 1, Size: 8 << 20, Token: fmt.Sprintf(`{"parts":[{"n":1,"etag":"%032x"}]}`, i)}
	return store.Session{
		UploadKey: fmt.Sprintf("k%031x", i), CTracker: fmt.Sprintf("%032x", i), APIKey: owner, Issued: now,
		Started: true, Updated: now, Name: "holiday-video.mkv", Type: "video/x-matroska", Mirrors: []string{"1", "2"},
		ObjectKey: key, Total: 1 << 30, Held: 8 << 20, Chunks: 1, LastEnd: 8<<20 - 1, Hash: state,
		Uploads: map[string]mirrors.Upload{"1": up("1"), "2": up("2")},
		Last:    map[string]mirrors.Part{"1": part, "2": part},
	}
}

// generate stores n files of owner through the store API, every other one
// expiring in a year (so the expiry index holds half of them), and n/10
// started upload sessions, none idle yet.
func generate(t *testing.T, st store.Store, owner string, n int) {
	t.Helper()
	now := time.Now().UTC()
	created := now.Add(-24 * time.Hour)
	const workers = 16
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += workers {
				f := costRecord(i, owner, created)
				if i%2 == 0 {
					f.Expires = now.Add(365 * 24 * time.Hour)
				}
				_, errs[w] = st.CreateFile(context.Background(), f)
				if errs[w] == nil && i%10 == 0 {
					errs[w] = st.CreateSession(context.Background(), costSession(i, owner, now))
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("generating %d files: %v", n, err)
		}
	}
}

// costRun is what TestCosts measured at one number of files.
type costRun struct {
	files     int
	trips     []rttMeasure // request kinds, then background jobs
	firstPage time.Duration
	lastPage  time.Duration
}

// TestCosts stores 10 files, then many (ACESTASH_COST_FILES, default
// 20,000), through the store API in a real Redis, and measures with each:
// the Redis round trips of every request kind and of one run of each
// background job, which must be the same at both sizes (the janitor, which
// lists every record, excepted), and how long file/list takes for its first
// and its last page. At the large size it also measures the Redis memory
// of a file record (goal ≤ 512 bytes) and what a file takes in all, with
// its index entries.
func TestCosts(t *testing.T) {
	large := costFiles(t)
	// Durable enough for acestash (it checks), without a disk write per
	// command: the generator writes a million records.
	srv := redistest.StartWith(t, "--appendfsync", "everysec")
	rdb := srv.Client()
	direct, err := redisstore.Open(t.Context(), srv.URL, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	var runs []costRun
	for _, n := range []int{10, large} {
		if err := rdb.FlushAllAsync(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		before := usedMemory(t, rdb)
		t0 := time.Now()
		generate(t, direct, testKey, n)
		took := time.Since(t0)
		if n == large {
			perFile := float64(usedMemory(t, rdb)-before) / float64(n)
			record := keysMemory(t, rdb, n, 1, func(i int) string { return "acestash:{f:" + costRecord(i, "", time.Time{}).Slug + "}:file" })
			session := keysMemory(t, rdb, n, 10, func(i int) string {
				return "acestash:{s:" + costSession(i, "", time.Time{}).UploadKey + "}:session"
			})
			t.Logf("Redis memory per upload session after its first chunk to two S3 mirrors (MEMORY USAGE): %.0f bytes", session)
			t.Logf("%d files generated in %v; Redis memory per file record (MEMORY USAGE of its key): %.0f bytes, goal ≤ 512: %s; per file in all, with its index entries and a tenth of an upload session: %.0f bytes",
				n, took.Round(time.Millisecond), record, verdict(record <= 512), perFile)
			if record > 512 {
				t.Errorf("a file record takes %.0f bytes of Redis memory, goal ≤ 512", record)
			}
		}
		runs = append(runs, measureCosts(t, srv.Addr, n))
		for _, m := range runs[len(runs)-1].trips {
			t.Logf("with %d files: %-24s %4d round trips (%5d commands)", n, m.name, m.w.count(), commands(m.w))
		}
	}
	if err := rdb.FlushAllAsync(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}

	small, big := runs[0], runs[1]
	for i, m := range small.trips {
		b := big.trips[i]
		t.Logf("%-24s %4d round trips (%3d commands) with %d files, %4d (%3d commands) with %d",
			m.name, m.w.count(), commands(m.w), small.files, b.w.count(), commands(b.w), big.files)
		if m.name != "janitor run" && m.w.count() != b.w.count() {
			t.Errorf("%s: %d Redis round trips with %d files, %d with %d: they must not depend on the number of files (ACESTASH_RTT_VERBOSE=1 lists them)",
				m.name, m.w.count(), small.files, b.w.count(), big.files)
			if rttVerbose() {
				t.Logf("with %d files:%s\nwith %d files:%s", small.files, m.w, big.files, b.w)
			}
		}
	}
	ratio := float64(big.lastPage) / float64(big.firstPage)
	t.Logf("file/list of 100 with %d files: first page %v, last full page %v (%.2f×, goal ≤ 2×: %s)",
		big.files, big.firstPage.Round(time.Microsecond), big.lastPage.Round(time.Microsecond), ratio, verdict(ratio <= 2))

	t.Run("bbolt", func(t *testing.T) { boltCost(t, min(large, 1000)) })
}

// measureCosts starts a node on the Redis at addr, through a counting
// proxy, and measures what TestCosts reports.
func measureCosts(t *testing.T, addr string, files int) costRun {
	t.Helper()
	cfg := testConfig(t, embedded)
	cfg.Limits.MaxChunkSize = rttChunk
	cfg.RepairInterval = 24 * time.Hour // its loop first looks after a minute
	node := startRTTNode(t, cfg, addr)
	defer node.stop()
	run := costRun{files: files}
	getUploadInfo(t, node.srv.URL, false)
	run.trips = append(run.trips, rttMeasure{name: "file/upload", w: node.measure(t, func() { getUploadInfo(t, node.srv.URL, false) })})
	for _, scenario := range []func(*testing.T, *rttNode) []rttMeasure{chunkRoundTrips, rawRoundTrips, infoRoundTrips} {
		run.trips = append(run.trips, scenario(t, node)...)
	}
	list, first, last := listCosts(t, node)
	run.trips = append(run.trips, list...)
	run.firstPage, run.lastPage = first, last

	// One run of each background job, with nothing for it to do but to
	// look: the node's own loops wait a minute before their first look.
	a, cfg := node.srv.app, node.srv.cfg // with the defaults filled in
	ctx := t.Context()
	for _, job := range []struct {
		name string
		run  func() error
	}{
		{"idle session reaper run", func() error { _, err := a.chunks.Reap(ctx, cfg.Limits.SessionIdle); return err }},
		{"expiry run", func() error { _, err := a.chunks.Expire(ctx); return err }},
		{"repairer run", func() error { _, err := a.chunks.Repair(ctx); return err }},
		{"webhook deliverer run", func() error {
			now := a.clock()
			_, err := a.store.ClaimDeliveries(ctx, now, now.Add(time.Minute), 100)
			return err
		}},
		{"janitor run", func() error { _, err := a.chunks.Sweep(ctx, cfg.Janitor.Grace); return err }},
	} {
		// Once first, so that Redis holds the job's scripts.
		if err := job.run(); err != nil {
			t.Fatalf("%s: %v", job.name, err)
		}
		var err error
		w := node.measure(t, func() { err = job.run() })
		if err != nil {
			t.Fatalf("%s: %v", job.name, err)
		}
		run.trips = append(run.trips, rttMeasure{name: job.name, w: w})
	}
	if age := time.Since(node.born); age > reapAfter {
		t.Logf("the node ran %v, past its first reaper run: a measure may include it", age.Round(time.Second))
	}
	return run
}

// listCosts measures file/list's first and last full page of 100: their round
// trips and the median time of five calls each.
func listCosts(t *testing.T, n *rttNode) ([]rttMeasure, time.Duration, time.Duration) {
	t.Helper()
	list := func(page int) (files []map[string]any, total int) {
		var res struct {
			Files []map[string]any `json:"files"`
			Total string           `json:"total"`
		}
		postForm(t, n.srv.URL+"/api/v1/file/list", []field{{"api_key", testKey}, {"api_token", testToken},
			{"page", strconv.Itoa(page)}, {"per_page", "100"}}).result(t, &res)
		total, err := strconv.Atoi(res.Total)
		if err != nil {
			t.Fatalf("file/list total %q", res.Total)
		}
		return res.Files, total
	}
	files, total := list(1)
	last := (total + 99) / 100
	if got, _ := list(last); len(files) != min(total, 100) || len(got) != total-(last-1)*100 {
		t.Fatalf("file/list of %d files: %d on the first page, %d on the last (%d)", total, len(files), len(got), last)
	} else if total > 100 && got[len(got)-1]["slug"] != "g0000000" {
		t.Fatalf("the last page ends with %v, want the oldest file g0000000", got[len(got)-1]["slug"])
	}
	// The last full page, so that both read 100 records.
	last = max(1, total/100)
	var ms []rttMeasure
	for i, page := range []int{1, last} {
		ms = append(ms, rttMeasure{name: "file/list, " + []string{"first", "last"}[i] + " page",
			w: n.measure(t, func() { list(page) })})
	}
	// Timed in turns, so that both see the same machine.
	times := [2][]time.Duration{}
	for range 7 {
		for i, page := range []int{1, last} {
			t0 := time.Now()
			list(page)
			times[i] = append(times[i], time.Since(t0))
		}
	}
	for i := range times {
		slices.Sort(times[i])
	}
	return ms, times[0][3], times[1][3]
}

// commands counts the Redis commands of a window's round trips, set-up
// excepted; a script counts as one.
func commands(w *rttWindow) int {
	n := 0
	for _, r := range w.trips {
		if !r.handshake {
			n += len(r.cmds)
		}
	}
	return n
}

// usedMemory returns Redis's used_memory.
func usedMemory(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(t.Context(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no used_memory in %q", info)
	return 0
}

// keysMemory returns the mean MEMORY USAGE of up to 1000 of the keys
// key(i) for i = 0, every, 2*every, ... below n.
func keysMemory(t *testing.T, rdb *redis.Client, n, every int, key func(int) string) float64 {
	t.Helper()
	step := max(every, n/1000/every*every)
	var sum, count int64
	for i := 0; i < n; i += step {
		b, err := rdb.MemoryUsage(t.Context(), key(i), 0).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key(i), err)
		}
		sum, count = sum+b, count+1
	}
	return float64(sum) / float64(count)
}

// boltCost stores n files in the embedded store and reports the file's
// growth per file.
func boltCost(t *testing.T, n int) {
	path := filepath.Join(t.TempDir(), "acestash.db")
	st, err := boltstore.Open(path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	empty := fi.Size()
	generate(t, st, testKey, n)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Stat(path); err != nil {
		t.Fatal(err)
	}
	t.Logf("bbolt: %d files (with their index entries and a tenth of an upload session) grew the store by %d bytes: %.0f bytes a file",
		n, fi.Size()-empty, float64(fi.Size()-empty)/float64(n))
}
