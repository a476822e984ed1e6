package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// tusJob is what testdata/tusclient/client.mjs does: an upload with the
// real tus-js-client, run by Node.
type tusJob struct {
	Endpoints   []string          `json:"endpoints"`
	File        string            `json:"file"`
	Auth        string            `json:"auth"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	ChunkSize   int               `json:"chunkSize,omitempty"`
	Parallel    int               `json:"parallel,omitempty"`
	AbortAt     int64             `json:"abortAt,omitempty"`
	TerminateAt int64             `json:"terminateAt,omitempty"`
}

// tusResult is what the client reports.
type tusResult struct {
	URL        string   `json:"url"`
	Slug       string   `json:"slug"`
	Page       string   `json:"page"`
	HeadOffset int64    `json:"headOffset"`
	Terminated bool     `json:"terminated"`
	Requests   []string `json:"requests"`
}

const tusClientDir = "testdata/tusclient"

// runTus runs the tus-js-client job and returns its report.
func runTus(t *testing.T, job tusJob) tusResult {
	t.Helper()
	skipShort(t, "Node and tus-js-client")
	if _, err := os.Stat(filepath.Join(tusClientDir, "node_modules", "tus-js-client", "package.json")); err != nil {
		t.Fatalf("tus-js-client is not installed; make test-deps installs it: %v", err)
	}
	if job.Auth == "" {
		job.Auth = "Bearer " + testKey + ":" + testToken
	}
	spec, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "node", "client.mjs", string(spec))
	cmd.Dir = tusClientDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tus-js-client: %v\n%s", err, stderr.Bytes())
	}
	var res tusResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("tus-js-client printed %q: %v", out, err)
	}
	return res
}

// tusFile writes n test bytes to a file and returns its path.
func tusFile(t *testing.T, n int, seed byte) (string, []byte) {
	data := testData(n, seed)
	path := filepath.Join(t.TempDir(), "upload.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// checkTus checks that a finished tus upload is a file like any other:
// its page, download (by SHA-256), file/info and the mirrors it is on.
func checkTus(t *testing.T, srv *testServer, res tusResult, name string, data []byte, mirrors ...string) {
	t.Helper()
	if res.Slug == "" || res.Page != srv.URL+"/m/"+res.Slug {
		t.Fatalf("tus-js-client saw slug %q and page %q", res.Slug, res.Page)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	resp, page := fetch(t, res.Page, nil)
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte(want)) {
		t.Fatalf("page %s: %d, without the SHA-256 of the bytes sent", res.Page, resp.StatusCode)
	}
	resp, got := fetch(t, res.Page+"/download", nil)
	if gs := sha256.Sum256(got); resp.StatusCode != 200 || hex.EncodeToString(gs[:]) != want {
		t.Fatalf("download: %d, %d bytes with SHA-256 %x; the file sent has %s", resp.StatusCode, len(got), gs, want)
	}
	fi := fileInfo(t, srv, testKey, testToken, res.Slug)
	if fi["name"] != name || fi["size"] != strconv.Itoa(len(data)) || fi["status"] != "active" {
		t.Fatalf("file/info %v, want %q of %d bytes", fi, name, len(data))
	}
	f, err := srv.app.store.File(t.Context(), res.Slug)
	if err != nil || f.SHA256 != want || !slices.Equal(f.Mirrors, mirrors) {
		t.Fatalf("record %+v (%v): want SHA-256 %s on mirrors %v", f, err, want, mirrors)
	}
	for _, id := range f.Mirrors {
		e, _ := srv.app.mirrors.Get(id)
		info, err := e.Mirror.Stat(t.Context(), f.ObjectKey)
		if err != nil || info.Size != int64(len(data)) {
			t.Fatalf("mirror %s: %+v, %v", id, info, err)
		}
	}
}

// TestTusEmbedded uploads with tus-js-client to the embedded default:
// PATCHes under S3's part minimum, and a parallel upload joined by
// concatenation.
func TestTusEmbedded(t *testing.T) {
	srv := start(t, testConfig(t, embedded), nil)
	path, data := tusFile(t, 3<<20+12345, 1)
	res := runTus(t, tusJob{Endpoints: []string{srv.URL + "/files/"}, File: path, ChunkSize: 1 << 20,
		Metadata: map[string]string{"filename": "clip.bin", "filetype": "application/octet-stream", "mirrors": "1,2"}})
	checkTus(t, srv, res, "clip.bin", data, "1", "2")

	res = runTus(t, tusJob{Endpoints: []string{srv.URL + "/files/"}, File: path, Parallel: 3,
		Metadata: map[string]string{"filename": "parallel.bin", "mirrors": "2"}})
	checkTus(t, srv, res, "parallel.bin", data, "2")
	if n := storedObjects(t, srv); n != 3 {
		t.Fatalf("the mirrors hold %d files, want the 3 copies of the 2 uploads; partial uploads were left", n)
	}
}

// TestTusCluster uploads with tus-js-client to two nodes on Redis and three
// MinIO, every request after the first going to the other node: in small
// PATCHes, cut off and resumed, terminated, and in parallel.
func TestTusCluster(t *testing.T) {
	_, cfg := clusterConfig(t)
	nodes := []*testServer{start(t, cfg, nil), start(t, cfg, nil)}
	ends := []string{nodes[0].URL + "/files/", nodes[1].URL + "/files/"}
	all := map[string]string{"mirrors": "1,2,3"}
	path, data := tusFile(t, 12<<20+777, 2)
	srv := nodes[0]

	t.Run("alternating", func(t *testing.T) {
		res := runTus(t, tusJob{Endpoints: ends, File: path, ChunkSize: 3 << 19,
			Metadata: map[string]string{"filename": "alternating.bin", "mirrors": "1,2,3"}})
		checkTus(t, srv, res, "alternating.bin", data, "1", "2", "3")
		hosts := map[string]bool{}
		for _, r := range res.Requests {
			if strings.HasPrefix(r, "PATCH ") {
				hosts[strings.TrimPrefix(r, "PATCH ")] = true
			}
		}
		if len(hosts) != 2 {
			t.Fatalf("the PATCHes went to %v, want both nodes", res.Requests)
		}
	})

	t.Run("resumed", func(t *testing.T) {
		meta := map[string]string{"filename": "resumed.bin"}
		for k, v := range all {
			meta[k] = v
		}
		res := runTus(t, tusJob{Endpoints: ends, File: path, AbortAt: 7 << 20, Metadata: meta})
		if res.HeadOffset <= 0 || res.HeadOffset > 7<<20 {
			t.Fatalf("the upload cut off after %d bytes resumed at offset %d", 7<<20, res.HeadOffset)
		}
		t.Logf("cut off after %d bytes sent; the server held %d", 7<<20, res.HeadOffset)
		checkTus(t, srv, res, "resumed.bin", data, "1", "2", "3")
	})

	t.Run("terminated", func(t *testing.T) {
		res := runTus(t, tusJob{Endpoints: ends, File: path, ChunkSize: 1 << 20, TerminateAt: 3 << 20, Metadata: all})
		if !res.Terminated || res.URL == "" {
			t.Fatalf("client report %+v", res)
		}
		req, _ := http.NewRequest(http.MethodHead, res.URL, nil)
		req.Header.Set("Authorization", "Bearer "+testKey+":"+testToken)
		if a := do(t, req); a.code != http.StatusNotFound {
			t.Fatalf("HEAD of a terminated upload: %d", a.code)
		}
		for i, m := range cfg.Mirrors {
			if n := incompleteUploads(t, m); n != 0 {
				t.Fatalf("MinIO %d has %d multipart uploads left", i+1, n)
			}
		}
		// Only the two files above remain: no staged chunk is left.
		if n := storedObjects(t, &testServer{cfg: cfg}); n != 2*3 {
			t.Fatalf("the mirrors hold %d objects, want the 2 files on 3 mirrors", n)
		}
	})

	t.Run("parallel", func(t *testing.T) {
		res := runTus(t, tusJob{Endpoints: ends, File: path, Parallel: 2,
			Metadata: map[string]string{"filename": "parallel.bin", "mirrors": "1,3"}})
		checkTus(t, srv, res, "parallel.bin", data, "1", "3")
		for i, m := range cfg.Mirrors {
			if n := incompleteUploads(t, m); n != 0 {
				t.Fatalf("MinIO %d has %d multipart uploads left", i+1, n)
			}
		}
		if n := storedObjects(t, &testServer{cfg: cfg}); n != 2*3+2 {
			t.Fatalf("the mirrors hold %d objects, want 3 files: partial uploads were left", n)
		}
	})
}

// incompleteUploads counts the multipart uploads in progress in an S3
// mirror's bucket.
func incompleteUploads(t *testing.T, m MirrorConfig) int {
	t.Helper()
	cl, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Secure: m.Secure})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for u := range cl.ListIncompleteUploads(context.Background(), m.Bucket, "", true) {
		if u.Err != nil && !errors.Is(u.Err, context.Canceled) {
			t.Fatalf("list uploads in %s/%s: %v", m.Endpoint, m.Bucket, u.Err)
		}
		n++
	}
	return n
}

// TestTusCORSConfig reads tus.cors_origins from a config file: listed
// origins get CORS answers, others a 403; no key allows any origin.
func TestTusCORSConfig(t *testing.T) {
	preflight := func(srv *testServer, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/files/", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		yaml    string
		origin  string
		allowed bool
	}{
		{"tus:\n  cors_origins: [\"https://app.example.org\"]\n", "https://app.example.org", true},
		{"tus:\n  cors_origins: [\"https://app.example.org\"]\n", "https://other.example.org", false},
		{"tus:\n  cors_origins: []\n", "https://app.example.org", false},
		{"{}\n", "https://any.example.org", true},
	} {
		path := filepath.Join(t.TempDir(), "acestash.yml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := loadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, embedded)
		cfg.Tus = file.Tus
		resp := preflight(start(t, cfg, nil), c.origin)
		got := resp.StatusCode == http.StatusOK && resp.Header.Get("Access-Control-Allow-Origin") == c.origin
		if got != c.allowed || !c.allowed && resp.StatusCode != http.StatusForbidden {
			t.Errorf("%q, Origin %s: %s, Access-Control-Allow-Origin %q; want allowed %v",
				c.yaml, c.origin, resp.Status, resp.Header.Get("Access-Control-Allow-Origin"), c.allowed)
		}
	}
}

// TestTusShutdown stops a node while a PATCH is in flight, its client
// still connected: the node ends the request at once, keeping what it
// received, and the upload resumes on a node started again on the same
// data, from the offset that one reports.
func TestTusShutdown(t *testing.T) {
	cfg := testConfig(t, embedded)
	srv := start(t, cfg, nil)
	data := testData(4<<20+9, 23)
	auth := "Bearer " + testKey + ":" + testToken
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/files/", nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", auth)
	req.Header.Set("Upload-Length", strconv.Itoa(len(data)))
	req.Header.Set("Upload-Metadata", "filename c2h1dGRvd24uYmlu") // shutdown.bin
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()

	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, loc.String(), pr)
		req.ContentLength = int64(len(data))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", "0")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw.Write(data[:2<<20]); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(loc.Path, "/files/")
	for { // the PATCH holds the lock
		if sess, err := srv.app.store.Session(t.Context(), id); err != nil || sess.Lease != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	srv.stop()
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("the node took %v to stop with a PATCH in flight", d)
	}

	again := start(t, cfg, nil)
	head, _ := http.NewRequest(http.MethodHead, again.URL+loc.Path, nil)
	head.Header.Set("Tus-Resumable", "1.0.0")
	head.Header.Set("Authorization", auth)
	resp, err = http.DefaultClient.Do(head)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	off, err := strconv.Atoi(resp.Header.Get("Upload-Offset"))
	if err != nil || off > 2<<20 {
		t.Fatalf("HEAD after the restart: %s, Upload-Offset %q", resp.Status, resp.Header.Get("Upload-Offset"))
	}
	t.Logf("%d bytes sent before the node stopped; it kept %d", 2<<20, off)
	patch, _ := http.NewRequest(http.MethodPatch, again.URL+loc.Path, bytes.NewReader(data[off:]))
	patch.Header.Set("Tus-Resumable", "1.0.0")
	patch.Header.Set("Authorization", auth)
	patch.Header.Set("Content-Type", "application/offset+octet-stream")
	patch.Header.Set("Upload-Offset", strconv.Itoa(off))
	resp, err = http.DefaultClient.Do(patch)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH after the restart: %v %v", resp, err)
	}
	resp.Body.Close()
	slug := resp.Header.Get("Acestash-Slug")
	checkTus(t, again, tusResult{Slug: slug, Page: again.URL + "/m/" + slug}, "shutdown.bin", data, "1", "2")
}
