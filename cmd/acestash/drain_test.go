package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/api/metrics"
	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/redisstore"
	"github.com/acestash/acestash/store/redisstore/redistest"
)

// stored is a file a test uploaded and what it expects of it.
type stored struct {
	slug, password string
	data           []byte
	copies         int  // copies before the drain
	deleted        bool // deleted by the client
}

// putFile uploads data to srv's mirrors, in chunks of chunk bytes (all at
// once if 0), with a password if pw is set.
func putFile(t *testing.T, srv *testServer, data []byte, pw string, chunk int, ids ...string) string {
	t.Helper()
	u := newUpload(t, srv, ids...)
	if pw != "" {
		u.fields = append(u.fields, field{"file_password", pw})
	}
	if chunk == 0 || len(data) <= chunk {
		var res uploadResult
		u.send("", data).result(t, &res)
		return res.Slug
	}
	var res uploadResult
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		u.send(fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data)), data[off:end]).result(t, &res)
	}
	if res.Info != "complete" {
		t.Fatalf("chunked upload ended with %+v", res)
	}
	return res.Slug
}

// loopClient uploads, downloads and deletes files on a node in a loop,
// as users do while a drain runs; it reports failures as errors, so it
// can run in a goroutine.
type loopClient struct {
	base string
	mu   sync.Mutex
	done []*stored
}

func (c *loopClient) post(path string, ct string, body io.Reader, v any) error {
	resp, err := http.Post(c.base+path, ct, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: %s, not an envelope: %w", path, resp.Status, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s %s", path, resp.Status, env.Result)
	}
	return json.Unmarshal(env.Result, v)
}

// one uploads a file to mirrors 2 and 3, reads it back, and deletes it
// when del is set.
func (c *loopClient) one(data []byte, del bool) error {
	creds := url.Values{"api_key": {testKey}, "api_token": {testToken}}
	var info uploadInfo
	if err := c.post("/api/v1/file/upload", "application/x-www-form-urlencoded", strings.NewReader(creds.Encode()), &info); err != nil {
		return err
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range map[string]string{"api_key": testKey, "api_token": testToken, "cTracker": info.CTracker, "upload_key": info.UploadKey} {
		w.WriteField(k, v)
	}
	w.WriteField("mirrors[]", "2")
	w.WriteField("mirrors[]", "3")
	fw, _ := w.CreateFormFile("files[]", "loop.bin")
	fw.Write(data)
	w.Close()
	var res uploadResult
	if err := c.post("/api/v1/upload", w.FormDataContentType(), &body, &res); err != nil {
		return err
	}
	resp, err := http.Get(c.base + "/m/" + res.Slug + "/download")
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, data) {
		return fmt.Errorf("download %s: %s, %d bytes (%v), want %d", res.Slug, resp.Status, len(got), err, len(data))
	}
	f := &stored{slug: res.Slug, data: data}
	if del {
		q := url.Values{"api_key": {testKey}, "api_token": {testToken}, "files": {res.Slug}}
		var out map[string]any
		if err := c.post("/api/v1/file/delete", "application/x-www-form-urlencoded", strings.NewReader(q.Encode()), &out); err != nil {
			return err
		}
		f.deleted = true
	}
	c.mu.Lock()
	c.done = append(c.done, f)
	c.mu.Unlock()
	return nil
}

// run loops until stop is closed.
func (c *loopClient) run(t *testing.T, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if err := c.one(testData(i*7919%(256<<10), byte(i)), i%2 == 1); err != nil {
			t.Errorf("client loop, file %d: %v", i, err)
			return
		}
	}
}

// drainSizes are the sizes of the files TestDrainKilled drains, skewed
// as real ones are: an empty file, mostly small ones, some of a few MiB
// and a few large ones up to 40 MiB.
func drainSizes(n int) []int {
	large := []int{40 << 20, 24<<20 + 3, 12 << 20, 8<<20 + 1}
	sizes := make([]int, n)
	for i := range sizes {
		switch {
		case i == 0:
			sizes[i] = 0
		case i == 1:
			sizes[i] = 1
		case i%30 == 2:
			sizes[i] = large[i/30%len(large)]
		case i%10 == 5:
			sizes[i] = 1<<20 + i*7919%(5<<20)
		default:
			sizes[i] = i * 7001 % (400 << 10)
		}
	}
	return sizes
}

// TestDrainKilled drains mirror 2 of three MinIO and a directory mirror
// (Redis single and Redis Cluster) while a client uploads, downloads and
// deletes in a loop, and SIGKILLs the node running the drain a third of
// the way: the other node resumes it. Afterwards mirror 2 holds nothing,
// no record names it, every file has at least as many copies as before
// and downloads byte-identical, deleted files stay deleted, and no mirror
// holds an object no record names. The files: 300 of 0 bytes to 40 MiB
// (drainSizes), those over 5 MiB uploaded in chunks (multipart on S3),
// every fifth with a password.
func TestDrainKilled(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		_, cfg := clusterConfig(t)
		drainKilled(t, cfg, "--rate", "24000000")
	})
	t.Run("cluster", func(t *testing.T) {
		_, cfg := clusterConfig(t)
		cfg.RedisURL = redistest.StartCluster(t, 3).URL
		drainKilled(t, cfg, "--rate", "24000000", "--share", "0.8")
	})
}

func drainKilled(t *testing.T, cfg Config, throttle ...string) {
	cfg.AdminToken = testAdminToken
	cfg.Mirrors = append(cfg.Mirrors, MirrorConfig{ID: "4", Name: "disk", Type: "fs", Path: t.TempDir()})
	a := startNode(t, cfg)
	st, err := redisstore.Open(t.Context(), cfg.RedisURL, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	targets := [][]string{{"2", "1"}, {"2", "3"}, {"2", "4"}, {"1", "2", "4"}}
	var files []*stored
	var total int
	for i, size := range drainSizes(300) {
		f := &stored{data: testData(size, byte(i))}
		if i%5 == 0 {
			f.password = fmt.Sprintf("pw %d", i)
		}
		f.slug = putFile(t, a.server(), f.data, f.password, 5<<20, targets[i%len(targets)]...)
		rec, err := st.File(t.Context(), f.slug)
		if err != nil {
			t.Fatal(err)
		}
		f.copies = len(rec.Mirrors)
		files = append(files, f)
		total += size
	}
	t.Logf("uploaded %d files, %d MiB", len(files), total>>20)

	out, err := cli(t, a.URL, append([]string{"mirrors", "drain", "2"}, throttle...)...)
	if err != nil {
		t.Fatalf("mirrors drain: %v", err)
	}
	var started struct{ State, Kind string }
	if json.Unmarshal([]byte(out), &started); started.State != "running" || started.Kind != "drain" {
		t.Fatalf("mirrors drain printed %s", out)
	}
	job := waitJob(t, st, func(j store.Job) bool { return j.DoneFiles >= 1 })

	b := startNode(t, cfg)
	loop := &loopClient{base: b.URL}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { loop.run(t, stop) })
	defer func() { close(stop); wg.Wait() }()

	job = waitJob(t, st, func(j store.Job) bool { return j.DoneFiles >= j.Files/3 })
	ranOn := job.Node
	a.kill()
	t.Logf("killed the node running the drain at %d/%d files", job.DoneFiles, job.Files)
	job = waitJob(t, st, func(j store.Job) bool { return j.State != store.JobRunning })
	if job.State != store.JobDone || job.Node == ranOn {
		t.Fatalf("after the kill: %+v; want done by another node than %s", job, ranOn)
	}
	if out, err := cli(t, b.URL, "mirrors", "wait", "2"); err != nil {
		t.Fatalf("mirrors wait on a finished drain: %v, %s", err, out)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close
	loop.mu.Lock()
	files = append(files, loop.done...)
	t.Logf("the client made %d files during the drain", len(loop.done))
	loop.mu.Unlock()

	ls, err := cli(t, b.URL, "mirrors", "ls")
	if err != nil || !strings.Contains(ls, "drain done") {
		t.Fatalf("mirrors ls: %v\n%s", err, ls)
	}
	checkDrained(t, cfg, st, b.server(), files, "2")
}

// waitJob waits up to three minutes for mirror 2's job to meet ok.
func waitJob(t *testing.T, st store.Store, ok func(store.Job) bool) store.Job {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		j, err := st.Job(t.Context(), "2")
		if err == nil && ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror 2's job after 3 minutes: %+v, %v", j, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkDrained checks what a drain of mirror gone promises.
func checkDrained(t *testing.T, cfg Config, st store.Store, srv *testServer, files []*stored, gone string) {
	t.Helper()
	ctx := t.Context()
	for _, f := range files {
		rec, err := st.File(ctx, f.slug)
		if err != nil {
			t.Fatalf("file %s: %v", f.slug, err)
		}
		if f.deleted {
			if rec.Status != store.StatusUser {
				t.Errorf("deleted file %s is %q again", f.slug, rec.Status)
			}
			resp, _ := fetch(t, srv.URL+"/m/"+f.slug+"/download", nil)
			if resp.StatusCode == 200 {
				t.Errorf("deleted file %s downloads", f.slug)
			}
			continue
		}
		if slices.Contains(rec.Mirrors, gone) || slices.Contains(rec.Missing, gone) || len(rec.Mirrors) < f.copies {
			t.Errorf("file %s: mirrors %v, missing %v; had %d copies, one on %s", f.slug, rec.Mirrors, rec.Missing, f.copies, gone)
		}
		hdr := http.Header{}
		if f.password != "" {
			hdr.Set("X-File-Password", f.password)
		}
		resp, body := fetch(t, srv.URL+"/m/"+f.slug+"/download", hdr)
		if resp.StatusCode != 200 || !bytes.Equal(body, f.data) {
			t.Errorf("file %s: %s, %d bytes, want %d identical", f.slug, resp.Status, len(body), len(f.data))
		}
	}
	// Every object on every mirror is named by an active record naming
	// that mirror, and the drained one holds nothing at all.
	named := map[string]map[string]bool{}
	err := st.EachFile(ctx, func(f store.File) error {
		if f.Status != store.StatusActive {
			return nil
		}
		if slices.Contains(f.Mirrors, gone) || slices.Contains(f.Missing, gone) {
			t.Errorf("file %s still names mirror %s: %v, missing %v", f.Slug, gone, f.Mirrors, f.Missing)
		}
		for _, id := range f.Mirrors {
			if named[id] == nil {
				named[id] = map[string]bool{}
			}
			named[id][f.ObjectKey] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	set, err := openMirrors(ctx, cfg, metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range set.All() {
		l := e.Mirror.(mirrors.Lister)
		err := l.ListObjects(ctx, "files/", func(key string, _ mirrors.Info) error {
			if !named[e.ID][key] {
				t.Errorf("mirror %s holds %s, which no active record names there", e.ID, key)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range cfg.Mirrors {
		if m.ID == gone && m.Type == "s3" {
			if n := s3Objects(t, m); n != 0 {
				t.Errorf("the drained mirror's bucket holds %d objects", n)
			}
		}
	}
	var ups int
	e, _ := set.Get(gone)
	e.Mirror.(mirrors.Lister).ListUploads(context.Background(), "", func(mirrors.Upload, time.Time) error { ups++; return nil })
	if ups != 0 {
		t.Errorf("the drained mirror has %d unfinished uploads", ups)
	}
}
