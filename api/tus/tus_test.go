package tus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/memmirror"
	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/boltstore"
)

const (
	mib   = 1 << 20
	key   = "0123456789abcdef0123456789abcdef"
	token = "fedcba9876543210fedcba9876543210"
)

// env is the tus endpoint of one or more nodes sharing an embedded store
// and in-memory mirrors "1" and "2".
type env struct {
	t     *testing.T
	store store.Store
	mem   []*memmirror.Mirror
	nodes []*httptest.Server
	last  http.Handler // the last node's handler
	svc   *chunks.Service
}

func newEnv(t *testing.T, nodes int, acct store.Account) *env {
	t.Helper()
	return newEnvWith(t, nodes, acct, func(*Config) {})
}

// newEnvWith is newEnv with each node's Config changed by change.
func newEnvWith(t *testing.T, nodes int, acct store.Account, change func(*Config)) *env {
	t.Helper()
	return newEnvLeased(t, nodes, acct, 0, change)
}

// newEnvLeased is newEnvWith with uploads' leases lasting leaseTime (0: the
// default).
func newEnvLeased(t *testing.T, nodes int, acct store.Account, leaseTime time.Duration, change func(*Config)) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "acestash.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acct.APIKey, acct.TokenHash = key, store.HashToken(token)
	if err := st.PutAccount(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st}
	var entries []mirrors.Entry
	for i := range 2 {
		m := memmirror.New()
		e.mem = append(e.mem, m)
		entries = append(entries, mirrors.Entry{ID: strconv.Itoa(i + 1), Mirror: m})
	}
	set, err := mirrors.NewSet(entries...)
	if err != nil {
		t.Fatal(err)
	}
	for range nodes {
		// Each node has its own Service and locker, as separate processes do.
		svc, err := chunks.New(chunks.Config{Store: st, Mirrors: set, SpoolDir: t.TempDir(), PieceSize: 5 * mib, MaxFileSize: 64 * mib,
			LeaseTime: leaseTime})
		if err != nil {
			t.Fatal(err)
		}
		e.svc = svc
		cfg := Config{Store: st, Chunks: svc, PublicURL: "https://files.example", Idle: time.Hour,
			Origins: []string{"https://app.example"}, MaxSize: 64 * mib}
		change(&cfg)
		h, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.last = h
		mux := http.NewServeMux()
		mux.Handle("/files/", h)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		e.nodes = append(e.nodes, srv)
	}
	return e
}

// do sends a tus request to a node and returns the response, body read.
func (e *env) do(node int, method, path string, hdr map[string]string, body io.Reader) (*http.Response, string) {
	e.t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = e.nodes[node].URL + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+key+":"+token)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	if method == http.MethodPatch && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func meta(kv ...string) string {
	var parts []string
	for i := 0; i < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

// create makes an upload and returns its path.
func (e *env) create(node int, hdr map[string]string) string {
	e.t.Helper()
	resp, body := e.do(node, http.MethodPost, "/files/", hdr, nil)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST /files/: %s %s", resp.Status, body)
	}
	loc, err := resp.Location()
	if err != nil {
		e.t.Fatal(err)
	}
	return loc.Path
}

func (e *env) patch(node int, path string, off int64, b []byte) *http.Response {
	e.t.Helper()
	resp, body := e.do(node, http.MethodPatch, path, map[string]string{"Upload-Offset": strconv.FormatInt(off, 10)}, bytes.NewReader(b))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.FormatInt(off+int64(len(b)), 10) {
		e.t.Fatalf("PATCH %s at %d: %s, Upload-Offset %q: %s", path, off, resp.Status, resp.Header.Get("Upload-Offset"), body)
	}
	return resp
}

func (e *env) offset(node int, path string) int64 {
	e.t.Helper()
	resp, _ := e.do(node, http.MethodHead, path, nil, nil)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("HEAD %s: %s", path, resp.Status)
	}
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		e.t.Fatalf("HEAD %s: Upload-Offset %q", path, resp.Header.Get("Upload-Offset"))
	}
	return n
}

// checkFile checks that the slug's file record and every mirror it names
// hold exactly data.
func (e *env) checkFile(slug, name string, data []byte) store.File {
	e.t.Helper()
	f, err := e.store.File(context.Background(), slug)
	if err != nil {
		e.t.Fatalf("file %q: %v", slug, err)
	}
	sum := sha256.Sum256(data)
	if f.Size != int64(len(data)) || f.SHA256 != hex.EncodeToString(sum[:]) || f.Name != name || f.Owner != key {
		e.t.Fatalf("file record %+v; want %d bytes, SHA-256 %x, name %q", f, len(data), sum, name)
	}
	if len(f.Mirrors) == 0 {
		e.t.Fatalf("file %s is on no mirror", slug)
	}
	for _, id := range f.Mirrors {
		i, _ := strconv.Atoi(id)
		rc, err := e.mem[i-1].Open(context.Background(), f.ObjectKey, 0, -1)
		if err != nil {
			e.t.Fatalf("mirror %s: %v", id, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) {
			e.t.Fatalf("mirror %s holds %d bytes that differ from the %d sent", id, len(got), len(data))
		}
	}
	return f
}

func testBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestUploadAcrossNodes sends the PATCHes of one upload to two nodes in
// turn, in pieces under and over S3's 5 MiB part minimum; the last PATCH
// and HEAD name the published file.
func TestUploadAcrossNodes(t *testing.T) {
	e := newEnv(t, 2, store.Account{})
	data := testBytes(13*mib+17, 1)
	path := e.create(0, map[string]string{"Upload-Length": strconv.Itoa(len(data)),
		"Upload-Metadata": meta("filename", "film.bin", "filetype", "video/mp4", "mirrors", "1, 2", "password", "secret")})
	before := time.Now().Truncate(time.Second)
	resp, _ := e.do(1, http.MethodHead, path, nil, nil)
	exp, err := http.ParseTime(resp.Header.Get("Upload-Expires"))
	if err != nil || exp.Before(before.Add(time.Hour-time.Minute)) || exp.After(before.Add(time.Hour+time.Minute)) || resp.Header.Get(SlugHeader) != "" {
		t.Fatalf("HEAD of an unfinished upload: Upload-Expires %q, %s %q", resp.Header.Get("Upload-Expires"), SlugHeader, resp.Header.Get(SlugHeader))
	}
	if m := resp.Header.Get("Upload-Metadata"); strings.Contains(m, "password") || !strings.Contains(m, "filename") {
		t.Fatalf("HEAD tells Upload-Metadata %q: want filename and no password", m)
	}
	cuts := []int{0, 1 * mib, 7 * mib, 8*mib + 3, len(data)}
	var last *http.Response
	for i := 1; i < len(cuts); i++ {
		node := i % 2
		if off := e.offset(node, path); off != int64(cuts[i-1]) {
			t.Fatalf("HEAD on node %d: offset %d, want %d", node, off, cuts[i-1])
		}
		last = e.patch(node, path, int64(cuts[i-1]), data[cuts[i-1]:cuts[i]])
	}
	slug := last.Header.Get(SlugHeader)
	if slug == "" || last.Header.Get(URLHeader) != "https://files.example/m/"+slug {
		t.Fatalf("last PATCH: %s %q, %s %q", SlugHeader, slug, URLHeader, last.Header.Get(URLHeader))
	}
	f := e.checkFile(slug, "film.bin", data)
	if f.Type != "video/mp4" || len(f.Mirrors) != 2 || !chunks.CheckPassword(f, "secret") {
		t.Fatalf("file %+v: want type video/mp4, mirrors 1 and 2, password secret", f)
	}
	resp, _ = e.do(0, http.MethodHead, path, nil, nil)
	if resp.Header.Get(SlugHeader) != slug || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD after the end: %s %q, Upload-Offset %q", SlugHeader, resp.Header.Get(SlugHeader), resp.Header.Get("Upload-Offset"))
	}
	for i, m := range e.mem {
		if m.Uploads() != 0 {
			t.Fatalf("mirror %d has %d uploads left open", i+1, m.Uploads())
		}
	}
}

// TestInterrupted cuts a PATCH off part way: the bytes that arrived stay,
// HEAD says how many, and the upload resumes from there.
func TestInterrupted(t *testing.T) {
	e := newEnv(t, 1, store.Account{})
	data := testBytes(12*mib, 2)
	path := e.create(0, map[string]string{"Upload-Length": strconv.Itoa(len(data)), "Upload-Metadata": meta("filename", "cut.bin")})

	pr, pw := io.Pipe()
	done := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, e.nodes[0].URL+path, pr)
		req.ContentLength = int64(len(data))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+key+":"+token)
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", "0")
		resp, _ := http.DefaultClient.Do(req)
		done <- resp
	}()
	sent := 7*mib + 12345
	if _, err := pw.Write(data[:sent]); err != nil {
		t.Fatal(err)
	}
	pw.CloseWithError(errors.New("connection lost"))
	if resp := <-done; resp != nil {
		resp.Body.Close()
	}
	// The server keeps what it received: wait until the PATCH has ended
	// on the server (its lock is let go), then ask where to resume. The
	// client's last buffer may not have left it.
	id := strings.TrimPrefix(path, "/files/")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		sess, err := e.store.Session(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if sess.Lease == "" && sess.Held > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cut-off PATCH did not end on the server: %+v", sess)
		}
	}
	off := e.offset(0, path)
	if off > int64(sent) || off < int64(sent)-256<<10 {
		t.Fatalf("after a PATCH cut off at %d bytes, HEAD says offset %d", sent, off)
	}
	last := e.patch(0, path, off, data[off:])
	e.checkFile(last.Header.Get(SlugHeader), "cut.bin", data)
}

// TestStalledOtherNode leaves a PATCH hanging on one node, its client
// silent, and asks the other node where the upload stands: the stalled
// request is told to let go, keeps what it received, and the upload
// resumes from there on the other node, long before the lock would run
// out or the read time out.
func TestStalledOtherNode(t *testing.T) {
	e := newEnv(t, 2, store.Account{})
	data := testBytes(3*mib, 6)
	path := e.create(0, map[string]string{"Upload-Length": strconv.Itoa(len(data)), "Upload-Metadata": meta("filename", "stalled.bin")})
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, e.nodes[0].URL+path, pr)
		req.ContentLength = int64(len(data))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+key+":"+token)
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", "0")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw.Write(data[:mib]); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(path, "/files/")
	for { // the PATCH holds the lock
		if sess, err := e.store.Session(context.Background(), id); err != nil || sess.Lease != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	off := e.offset(1, path)
	if d := time.Since(t0); d > 10*time.Second || off > mib {
		t.Fatalf("HEAD on the other node took %v and says offset %d (of %d sent)", d, off, mib)
	}
	last := e.patch(1, path, off, data[off:])
	e.checkFile(last.Header.Get(SlugHeader), "stalled.bin", data)
}

// TestTerminate aborts an upload: nothing is left on any mirror.
func TestTerminate(t *testing.T) {
	e := newEnv(t, 1, store.Account{})
	data := testBytes(6*mib, 3)
	path := e.create(0, map[string]string{"Upload-Length": strconv.Itoa(2 * len(data))})
	e.patch(0, path, 0, data)
	if e.mem[0].Uploads() != 1 || e.mem[1].Uploads() != 1 {
		t.Fatalf("uploads in progress: %d and %d, want 1 and 1", e.mem[0].Uploads(), e.mem[1].Uploads())
	}
	resp, body := e.do(0, http.MethodDelete, path, nil, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %s %s", resp.Status, body)
	}
	for i, m := range e.mem {
		if m.Uploads() != 0 || len(m.Keys()) != 0 {
			t.Fatalf("mirror %d after DELETE: %d uploads, objects %v", i+1, m.Uploads(), m.Keys())
		}
	}
	if resp, _ := e.do(0, http.MethodHead, path, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD after DELETE: %s, want 404", resp.Status)
	}
}

// TestDeferredAndWithUpload creates one upload with its first bytes and
// no length, declares the length on the last PATCH, and makes an empty
// file with a POST alone.
func TestDeferredAndWithUpload(t *testing.T) {
	e := newEnv(t, 1, store.Account{})
	data := testBytes(3*mib+5, 4)
	resp, body := e.do(0, http.MethodPost, "/files/", map[string]string{"Upload-Defer-Length": "1",
		"Content-Type": "application/offset+octet-stream", "Upload-Metadata": meta("filename", "later.bin")}, bytes.NewReader(data[:mib]))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != strconv.Itoa(mib) {
		t.Fatalf("POST with bytes: %s, Upload-Offset %q: %s", resp.Status, resp.Header.Get("Upload-Offset"), body)
	}
	loc, _ := resp.Location()
	resp, body = e.do(0, http.MethodPatch, loc.Path, map[string]string{"Upload-Offset": strconv.Itoa(mib),
		"Upload-Length": strconv.Itoa(len(data))}, bytes.NewReader(data[mib:]))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get(SlugHeader) == "" {
		t.Fatalf("last PATCH: %s, %s %q: %s", resp.Status, SlugHeader, resp.Header.Get(SlugHeader), body)
	}
	e.checkFile(resp.Header.Get(SlugHeader), "later.bin", data)

	resp, body = e.do(0, http.MethodPost, "/files/", map[string]string{"Upload-Length": "0", "Upload-Metadata": meta("filename", "empty.txt")}, nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(SlugHeader) == "" {
		t.Fatalf("POST of an empty file: %s, %s %q: %s", resp.Status, SlugHeader, resp.Header.Get(SlugHeader), body)
	}
	e.checkFile(resp.Header.Get(SlugHeader), "empty.txt", nil)
}

// TestConcatenation joins two partial uploads into one file and removes
// them.
func TestConcatenation(t *testing.T) {
	e := newEnv(t, 2, store.Account{})
	data := testBytes(9*mib+3, 5)
	halves := [][]byte{data[:6*mib], data[6*mib:]}
	var urls []string
	for i, h := range halves {
		path := e.create(i, map[string]string{"Upload-Length": strconv.Itoa(len(h)), "Upload-Concat": "partial"})
		e.patch(i, path, 0, h)
		urls = append(urls, e.nodes[i].URL+path)
	}
	resp, body := e.do(0, http.MethodPost, "/files/", map[string]string{"Upload-Concat": "final;" + strings.Join(urls, " "),
		"Upload-Metadata": meta("filename", "joined.bin")}, nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(SlugHeader) == "" {
		t.Fatalf("final POST: %s, %s %q: %s", resp.Status, SlugHeader, resp.Header.Get(SlugHeader), body)
	}
	f := e.checkFile(resp.Header.Get(SlugHeader), "joined.bin", data)
	for i, m := range e.mem {
		if keys := m.Keys(); len(keys) != 1 || keys[0] != f.ObjectKey || m.Uploads() != 0 {
			t.Fatalf("mirror %d holds %v and %d uploads; want only the joined file", i+1, keys, m.Uploads())
		}
	}
	for _, u := range urls {
		if resp, _ := e.do(0, http.MethodHead, u, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("HEAD of a joined partial upload: %s, want 404", resp.Status)
		}
	}
}

// TestRefusals checks the errors clients are given, tus-style.
func TestRefusals(t *testing.T) {
	e := newEnv(t, 1, store.Account{Mirrors: []string{"1", "2"}, MaxMirrors: 1, MaxFileSize: 4 * mib})
	cases := []struct {
		name   string
		method string
		hdr    map[string]string
		status int
		body   string
	}{
		{"no credentials", http.MethodPost, map[string]string{"Authorization": "", "Upload-Length": "1"}, 401,
			"ERR_UNAUTHORIZED: send Authorization: Bearer <api_key>:<api_token>\n"},
		{"wrong token", http.MethodPost, map[string]string{"Authorization": "Bearer " + key + ":nope", "Upload-Length": "1"}, 401,
			"ERR_UNAUTHORIZED: api_key or api_token is wrong\n"},
		{"too large", http.MethodPost, map[string]string{"Upload-Length": strconv.Itoa(4*mib + 1)}, 413,
			"ERR_MAX_SIZE_EXCEEDED: file of 4194305 bytes is over the maximum file size of 4194304 bytes\n"},
		{"too many mirrors", http.MethodPost, map[string]string{"Upload-Length": "1", "Upload-Metadata": meta("mirrors", "1,2")}, 400,
			"ERR_UPLOAD_REFUSED: 2 mirrors selected, more than this account's maximum of 1\n"},
		{"unknown mirror", http.MethodPost, map[string]string{"Upload-Length": "1", "Upload-Metadata": meta("mirrors", "9")}, 400,
			"ERR_UPLOAD_REFUSED: mirror \"9\" does not exist\n"},
		{"download", http.MethodGet, nil, 405,
			"ERR_METHOD_NOT_ALLOWED: an upload takes HEAD, PATCH and DELETE; its file is read at /m/<slug>\n"},
	}
	for _, c := range cases {
		path := "/files/"
		if c.method == http.MethodGet {
			path = "/files/abc"
		}
		resp, body := e.do(0, c.method, path, c.hdr, nil)
		if resp.StatusCode != c.status || body != c.body {
			t.Errorf("%s: %s %q; want %d %q", c.name, resp.Status, body, c.status, c.body)
		}
	}
	// Another account's upload is not found.
	path := e.create(0, map[string]string{"Upload-Length": "10"})
	other := store.Account{APIKey: "other", TokenHash: store.HashToken("other-token")}
	if err := e.store.PutAccount(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(0, http.MethodHead, path, map[string]string{"Authorization": "Bearer other:other-token"}, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of another account's upload: %s %s", resp.Status, body)
	}
	// A MirrorAce upload key is no tus upload.
	acct, _ := e.store.Account(context.Background(), key)
	ma, err := e.svc.Issue(context.Background(), acct)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.do(0, http.MethodHead, "/files/"+ma.UploadKey, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of a MirrorAce upload key: %s, want 404", resp.Status)
	}
	// Preflight from an allowed origin is answered; another origin is not.
	resp, _ = e.do(0, http.MethodOptions, "/files/", map[string]string{"Origin": "https://app.example", "Authorization": ""}, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		resp.Header.Get("Tus-Extension") != "creation,creation-with-upload,termination,concatenation,creation-defer-length,expiration" {
		t.Fatalf("preflight: %s %v", resp.Status, resp.Header)
	}
	resp, _ = e.do(0, http.MethodOptions, "/files/", map[string]string{"Origin": "https://evil.example", "Authorization": ""}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("preflight from another origin: %s, want 403", resp.Status)
	}
	resp, _ = e.do(0, http.MethodHead, path, map[string]string{"Origin": "https://app.example"}, nil)
	if exp := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, SlugHeader) || !strings.Contains(exp, "Upload-Expires") {
		t.Fatalf("Access-Control-Expose-Headers %q lacks %s or Upload-Expires", exp, SlugHeader)
	}
}

// TestLockShared locks one upload from two nodes: a lock held on one node
// is renewed while held, so the other waits; the holder is asked to let go,
// by the other node through the store and by a request on its own node
// directly.
func TestLockShared(t *testing.T) {
	e := newEnvLeased(t, 1, store.Account{}, 300*time.Millisecond, func(*Config) {})
	path := e.create(0, map[string]string{"Upload-Length": "10"})
	id := strings.TrimPrefix(path, "/files/")
	nodes := make([]*locker, 2)
	for i := range nodes {
		nodes[i] = &locker{chunks: e.svc, log: testLog(t), held: map[string]*lock{}}
	}
	// Held past several lease times: the holder renews it, and hears the
	// other node ask.
	var asks sync.Once
	asked := make(chan struct{})
	a, _ := nodes[0].NewLock(id)
	if err := a.Lock(context.Background(), func() { asks.Do(func() { close(asked) }) }); err != nil {
		t.Fatal(err)
	}
	b, _ := nodes[1].NewLock(id)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.Lock(ctx, func() {}); !errors.Is(err, handler.ErrLockTimeout) {
		t.Fatalf("second node locked a held upload: %v", err)
	}
	<-asked
	got := make(chan error, 1)
	go func() { got <- b.Lock(context.Background(), func() {}) }()
	a.Unlock()
	if err := <-got; err != nil {
		t.Fatalf("second node after Unlock: %v", err)
	}
	b.Unlock()

	// A holder that lets go when asked: a request on another node, or on
	// the same one, gets the lock without waiting for it to run out.
	for _, asker := range []struct {
		node  int
		where string
	}{{1, "from another node"}, {0, "on the same node"}} {
		c, _ := nodes[0].NewLock(id)
		var once sync.Once
		if err := c.Lock(context.Background(), func() { once.Do(func() { go c.Unlock() }) }); err != nil {
			t.Fatal(err)
		}
		d, _ := nodes[asker.node].NewLock(id)
		if err := d.Lock(context.Background(), func() {}); err != nil {
			t.Fatalf("lock %s after asking the holder: %v", asker.where, err)
		}
		d.Unlock()
	}

	m, _ := nodes[0].NewLock("missing")
	if err := m.Lock(context.Background(), func() {}); !errors.Is(err, handler.ErrNotFound) {
		t.Fatalf("lock of a missing upload: %v", err)
	}
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestLockLost takes a held lock's lease away, as when its node could not
// renew it in time and another node took it: the request holding the lock
// is told to end, so that it writes no more to the upload's mirrors.
func TestLockLost(t *testing.T) {
	e := newEnvLeased(t, 1, store.Account{}, 1500*time.Millisecond, func(*Config) {})
	a, err := e.store.Account(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := e.svc.Create(t.Context(), chunks.StreamSpec{Account: a, Name: "a.bin", Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	l := &locker{chunks: e.svc, log: testLog(t), held: map[string]*lock{}}
	k, _ := l.NewLock(sess.UploadKey)
	ended := make(chan struct{})
	var once sync.Once
	if err := k.Lock(t.Context(), func() { once.Do(func() { close(ended) }) }); err != nil {
		t.Fatal(err)
	}
	defer k.Unlock()
	// Another node holds the lease now.
	cur, err := e.store.Session(t.Context(), sess.UploadKey)
	if err != nil {
		t.Fatal(err)
	}
	cur.Lease, cur.LeaseUntil = "another node", time.Now().Add(time.Hour)
	if _, err := e.store.UpdateSession(t.Context(), cur); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the request holding a lost lock was not told to end")
	}
}

// X-Forwarded-Host and -Proto shape a new upload's Location only when the
// request comes from a proxy's address: loopback or private.
func TestForwardedHeaders(t *testing.T) {
	e := newEnv(t, 1, store.Account{Name: "fwd"})
	for _, c := range []struct{ peer, want string }{
		{"127.0.0.1:5000", "https://proxy.example/files/"},
		{"10.1.2.3:5000", "https://proxy.example/files/"},
		{"[fd00::7]:5000", "https://proxy.example/files/"},
		{"203.0.113.5:5000", "http://node.example/files/"},
		{"[2001:db8::1]:5000", "http://node.example/files/"},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://node.example/files/", nil)
		req.RemoteAddr = c.peer
		for k, v := range map[string]string{"Tus-Resumable": "1.0.0", "Authorization": "Bearer " + key + ":" + token,
			"Upload-Length": "3", "X-Forwarded-Host": "proxy.example", "X-Forwarded-Proto": "https"} {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		e.last.ServeHTTP(rec, req)
		if loc := rec.Header().Get("Location"); rec.Code != http.StatusCreated || !strings.HasPrefix(loc, c.want) {
			t.Errorf("from %s: %d, Location %q; want 201 and a Location under %s", c.peer, rec.Code, loc, c.want)
		}
	}
}

// A PATCH whose body slows to a trickle is ended once a window of waiting
// brings less than the minimum rate, with a 400 as the other dialects
// answer (not tusd's 500 for a read timeout); the bytes that came are
// kept, and the upload resumes from them.
func TestSlowBody(t *testing.T) {
	const window = 400 * time.Millisecond
	e := newEnvWith(t, 1, store.Account{Name: "slow"}, func(c *Config) {
		c.MinBodyRate, c.BodyWindow = 10000, window // 4000 bytes a window
	})
	data := testBytes(100000, 9)
	path := e.create(0, map[string]string{"Upload-Length": "100000", "Upload-Metadata": meta("filename", "slow.bin")})

	pr, pw := io.Pipe()
	trickled := make(chan int)
	go func() {
		pw.Write(data[:60000]) // at full speed
		n := 60000
		for ; n < len(data); n++ {
			if _, err := pw.Write(data[n : n+1]); err != nil {
				break // the server ended the request
			}
			time.Sleep(50 * time.Millisecond) // 20 bytes a second
		}
		trickled <- n
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 4*window+2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, e.nodes[0].URL+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+key+":"+token)
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", "0")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	var answer []byte
	if err == nil {
		answer, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	pw.CloseWithError(errors.New("test over"))
	if err != nil || resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(string(answer), "ERR_BODY_TOO_SLOW: ") {
		t.Fatalf("the trickling PATCH got %v %q, want 400 ERR_BODY_TOO_SLOW", err, answer)
	}
	sent := <-trickled
	if ctx.Err() != nil {
		t.Fatalf("the trickling PATCH still ran after %v; want it ended about a window (%v) after it slowed", took, window)
	}
	held := e.offset(0, path)
	if held < 60000 || held > int64(sent) {
		t.Fatalf("offset %d after the cut PATCH; want the 60000 fast bytes and at most the %d sent", held, sent)
	}
	resp = e.patch(0, path, held, data[held:])
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("resuming at %d: %s", held, resp.Status)
	}
	e.checkFile(resp.Header.Get(SlugHeader), "slow.bin", data)
}

// A request's pace watcher has ended when its handler returns: a cut that
// came later would set a read deadline on a connection that has moved on
// to the client's next request.
func TestSlowBodyWatcherEnds(t *testing.T) {
	e := newEnvWith(t, 1, store.Account{Name: "watch"}, func(c *Config) {
		c.MinBodyRate, c.BodyWindow = 10000, time.Minute
		c.Log = slog.New(slog.DiscardHandler) // a recorder has no read deadlines to set
	})
	data := testBytes(20, 5)
	for i := range 20 {
		path := e.create(0, map[string]string{"Upload-Length": "20", "Upload-Metadata": meta("filename", fmt.Sprint(i, ".bin"))})
		req := httptest.NewRequest(http.MethodPatch, "http://node.example"+path, bytes.NewReader(data))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+key+":"+token)
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", "0")
		rec := httptest.NewRecorder()
		e.last.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("PATCH: %d %s", rec.Code, rec.Body)
		}
		buf := make([]byte, 1<<20)
		if stacks := buf[:runtime.Stack(buf, true)]; bytes.Contains(stacks, []byte("acestash/api/pace.")) {
			t.Fatalf("PATCH %d answered, its pace still watched:\n%s", i, stacks)
		}
	}
}

// TestHeadWhileLeaseHeldElsewhere: the upload's lease is held by a request
// that never lets go (its node died): HEAD answers with the offset the
// store holds within a few seconds, never 5xx, and a PATCH from there is
// taken as soon as the lease runs out.
func TestHeadWhileLeaseHeldElsewhere(t *testing.T) {
	e := newEnv(t, 1, store.Account{})
	data := testBytes(2*mib, 8)
	path := e.create(0, map[string]string{"Upload-Length": strconv.Itoa(len(data)), "Upload-Metadata": meta("filename", "orphan.bin")})
	e.patch(0, path, 0, data[:mib])
	id := strings.TrimPrefix(path, "/files/")
	sess, err := e.store.Session(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	const dead = 4 * time.Second
	sess.Lease, sess.LeaseUntil = "a node that died", time.Now().Add(dead)
	if _, err := e.store.UpdateSession(t.Context(), sess); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, _ := e.do(0, http.MethodHead, path, nil, nil)
	if took := time.Since(start); resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != strconv.Itoa(mib) || took > headWait+2*time.Second {
		t.Fatalf("HEAD while a dead node holds the lease: %s, Upload-Offset %q after %v; want 200 and %d within %v",
			resp.Status, resp.Header.Get("Upload-Offset"), took, mib, headWait)
	}
	last := e.patch(0, path, mib, data[mib:])
	if took := time.Since(start); took > dead+3*time.Second {
		t.Errorf("the PATCH after the dead lease was taken %v after the HEAD; the lease ran out after %v", took, dead)
	}
	e.checkFile(last.Header.Get(SlugHeader), "orphan.bin", data)
}
