package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
