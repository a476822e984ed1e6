package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/redisstore"
	"github.com/acestash/acestash/store/redisstore/redistest"
)

// TestRebuild empties mirror 2, as a replaced disk is, after files were
// written to it, and puts a wrong copy of one file there: `mirrors rebuild
// 2 --wait` writes every copy mirror 2 should hold again from mirror 1,
// now, not at the next scrub.
func TestRebuild(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.AdminToken = testAdminToken
	srv := start(t, cfg, nil)
	var slugs []string
	var data [][]byte
	for i := range 6 {
		d := testData([]int{0, 1, 4000, 70000, 1 << 20, 3<<20 + 1}[i], byte(i))
		pw := ""
		if i == 2 {
			pw = "pw"
		}
		slugs = append(slugs, putFile(t, srv, d, pw, 0, "1", "2"))
		data = append(data, d)
	}
	disk := cfg.Mirrors[1].Path
	if err := os.RemoveAll(filepath.Join(disk, "files")); err != nil { // every copy gone
		t.Fatal(err)
	}
	// A wrong copy on the mirror being rebuilt is rewritten too.
	f, _ := srv.app.store.File(t.Context(), slugs[4])
	bad := filepath.Join(disk, filepath.FromSlash(f.ObjectKey))
	os.MkdirAll(filepath.Dir(bad), 0o755)
	if err := os.WriteFile(bad, testData(len(data[4]), 99), 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := cli(t, srv.URL, "mirrors", "rebuild", "2", "--wait"); err != nil {
		t.Fatalf("mirrors rebuild --wait: %v", err)
	}
	for i, sl := range slugs {
		f, err := srv.app.store.File(t.Context(), sl)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(disk, filepath.FromSlash(f.ObjectKey)))
		if err != nil || !bytes.Equal(got, data[i]) {
			t.Fatalf("file %s on the new disk: %d bytes, %v; want its %d bytes", sl, len(got), err, len(data[i]))
		}
	}
	job, err := srv.app.store.Job(t.Context(), "2")
	if err != nil || job.State != "done" || job.DoneFiles != 6 || job.Copied != 6 {
		t.Fatalf("the rebuild's job: %+v, %v; want done, 6 files gone through, 6 copied", job, err)
	}
	ls, err := cli(t, srv.URL, "mirrors", "ls")
	if err != nil || !strings.Contains(ls, "rebuild done: 6/6 files") {
		t.Fatalf("mirrors ls: %v\n%s", err, ls)
	}
	t.Logf("mirrors ls:\n%s", ls)
}

// TestRebuildKilled SIGKILLs the node running a rebuild halfway: another
// node takes it over and goes on after the last file the first one got
// through, not from the start. To see that, a copy the first node had
// already rewritten is deleted again before the takeover: the resumed
// rebuild leaves it, and the next rebuild, which starts from the
// beginning, writes it.
func TestRebuildKilled(t *testing.T) {
	skipShort(t, "Redis")
	cfg := testConfig(t, embedded)
	cfg.AdminToken = testAdminToken
	cfg.RedisURL = redistest.Start(t).URL
	a := startNode(t, cfg)
	st, err := redisstore.Open(t.Context(), cfg.RedisURL, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	const n = 40
	var files []*stored
	for i := range n {
		f := &stored{data: testData(200<<10+i*1000, byte(i))}
		if i%7 == 0 {
			f.password = "pw"
		}
		f.slug = putFile(t, a.server(), f.data, f.password, 0, "1", "2")
		files = append(files, f)
	}
	disk := cfg.Mirrors[1].Path
	onDisk := func(f *stored) ([]byte, error) {
		rec, err := st.File(t.Context(), f.slug)
		if err != nil {
			return nil, err
		}
		return os.ReadFile(filepath.Join(disk, filepath.FromSlash(rec.ObjectKey)))
	}
	if err := os.RemoveAll(filepath.Join(disk, "files")); err != nil { // a new, empty disk
		t.Fatal(err)
	}

	// 8.4 MB at 1 MB/s: about 8 s of copying.
	if _, err := cli(t, a.URL, "mirrors", "rebuild", "2", "--rate", "1000000"); err != nil {
		t.Fatalf("mirrors rebuild: %v", err)
	}
	waitJob(t, st, func(j store.Job) bool { return j.DoneFiles >= 1 })
	b := startNode(t, cfg)
	job := waitJob(t, st, func(j store.Job) bool { return j.Cursor != "" && j.DoneFiles >= n/3 })
	a.kill()
	ranOn, cursor := job.Node, job.Cursor
	t.Logf("killed the node running the rebuild at %d/%d files, cursor %s", job.DoneFiles, job.Files, cursor)

	// The first file, by slug, was rebuilt before the kill; lose it again.
	first := files[0]
	for _, f := range files {
		if f.slug < first.slug {
			first = f
		}
	}
	if got, err := onDisk(first); err != nil || !bytes.Equal(got, first.data) {
		t.Fatalf("file %s, before the cursor %s, was not rebuilt before the kill: %d bytes, %v", first.slug, cursor, len(got), err)
	}
	rec, _ := st.File(t.Context(), first.slug)
	if err := os.Remove(filepath.Join(disk, filepath.FromSlash(rec.ObjectKey))); err != nil {
		t.Fatal(err)
	}

	job = waitJob(t, st, func(j store.Job) bool { return j.State != store.JobRunning })
	if job.State != store.JobDone || job.Node == ranOn || job.DoneFiles != n || job.Files != n {
		t.Fatalf("after the kill: %+v; want done, %d files gone through, by another node than %s", job, n, ranOn)
	}
	for _, f := range files {
		got, err := onDisk(f)
		if f == first {
			if err == nil {
				t.Fatalf("file %s, before the cursor, was read again by the resumed rebuild", f.slug)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("file %s after the rebuild: %d bytes, %v; want its %d bytes", f.slug, len(got), err, len(f.data))
		}
	}

	// A new rebuild starts from the beginning and finds the lost copy.
	if out, err := cli(t, b.URL, "mirrors", "rebuild", "2", "--share", "0.5", "--wait"); err != nil {
		t.Fatalf("mirrors rebuild --share 0.5 --wait: %v, %s", err, out)
	}
	job, err = st.Job(t.Context(), "2")
	if err != nil || job.State != store.JobDone || job.DoneFiles != n || job.Copied != 1 || job.Share != 0.5 {
		t.Fatalf("the second rebuild: %+v, %v; want done, %d files gone through, 1 copied, share 0.5", job, err, n)
	}
	for _, f := range files {
		if got, err := onDisk(f); err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("file %s after the second rebuild: %d bytes, %v", f.slug, len(got), err)
		}
		hdr := http.Header{}
		if f.password != "" {
			hdr.Set("X-File-Password", f.password)
		}
		if resp, body := fetch(t, b.URL+"/m/"+f.slug+"/download", hdr); resp.StatusCode != 200 || !bytes.Equal(body, f.data) {
			t.Errorf("download of %s: %s, %d bytes", f.slug, resp.Status, len(body))
		}
	}
	if out, err := cli(t, b.URL, "mirrors", "rebuild", "2", "--share", "1.5"); err == nil || !strings.Contains(out+err.Error(), "share must be within 0..1") {
		t.Fatalf("mirrors rebuild --share 1.5: %v, %s; want refused", err, out)
	}
}
