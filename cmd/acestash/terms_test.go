package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/storetest"
)

// nodesOf starts the nodes a backend can run: two sharing Redis and MinIO,
// or one on the embedded store (whose file one process holds). They share
// clock.
func nodesOf(t *testing.T, b backend, cfg Config, clock *storetest.Clock) []*testServer {
	nodes := []*testServer{start(t, cfg, clock)}
	if b.name == scaled.name {
		nodes = append(nodes, start(t, cfg, clock))
	}
	return nodes
}

// tusPost creates and fills a tus upload in one request with the metadata
// given, and returns the answer's status and Acestash-Slug (or body).
func tusPost(t *testing.T, srv *testServer, data []byte, meta map[string]string) (int, string) {
	t.Helper()
	var pairs []string
	for k, v := range meta {
		pairs = append(pairs, k+" "+base64.StdEncoding.EncodeToString([]byte(v)))
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/files/", bytes.NewReader(data))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+testKey+":"+testToken)
	req.Header.Set("Upload-Length", fmt.Sprint(len(data)))
	req.Header.Set("Upload-Metadata", strings.Join(pairs, ","))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, body := doRaw(t, req)
	if s := resp.Header.Get("Acestash-Slug"); s != "" {
		return resp.StatusCode, s
	}
	return resp.StatusCode, string(body)
}

// rawPost sends data to POST /upload?query with the headers and returns
// the file's slug, or fails the test.
func rawPost(t *testing.T, srv *testServer, query string, hdr http.Header, data []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload?"+query, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+testKey+":"+testToken)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, body := doRaw(t, req)
	if resp.StatusCode != 200 {
		return resp.StatusCode, string(body)
	}
	id := strings.TrimPrefix(strings.TrimSpace(string(body)), srv.URL+"/uploads/")
	sl, _, _ := strings.Cut(id, ".")
	return 200, sl
}

// mirrorAceUpload sends data in one MirrorAce upload with the extra fields
// and returns the answer.
func mirrorAceUpload(t *testing.T, srv *testServer, data []byte, extra ...field) answer {
	u := newUpload(t, srv, "1", "2")
	u.fields = append(u.fields, extra...)
	return u.send("", data)
}

// TestExpiry uploads a file that expires through each upload path: every
// node serves it until its expiry and answers 410 from that instant, before
// any sweep; file/info says "user removed"; the sweep of one node removes
// the bytes and tells the webhook why. A file without expiry stays.
func TestExpiry(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			rcv := newReceiver(t, 0)
			cfg := testConfig(t, b)
			cfg.Webhooks = []WebhookConfig{{URL: rcv.URL + "/hook", Secret: "s", Events: []string{"file.removed"}}}
			clock := storetest.NewClock(time.Now().UTC())
			nodes := nodesOf(t, b, cfg, clock)
			srv := nodes[0]
			data := testData(3000, 7)

			slugs := map[string]string{}
			var r uploadResult
			mirrorAceUpload(t, srv, data, field{"expires", "1h"}).result(t, &r)
			slugs["mirrorace"] = r.Slug
			at := clock.Now().Add(time.Hour).Format(time.RFC3339Nano)
			code, sl := tusPost(t, srv, data, map[string]string{"filename": "t.bin", "expires": at})
			if code != http.StatusCreated {
				t.Fatalf("tus: %d %s", code, sl)
			}
			slugs["tus"] = sl
			if code, slugs["raw query"] = rawPost(t, srv, "expires=60m", nil, data); code != 200 {
				t.Fatalf("raw ?expires: %d %s", code, slugs["raw query"])
			}
			if code, slugs["raw header"] = rawPost(t, srv, "", http.Header{"X-Expires": {"1h"}}, data); code != 200 {
				t.Fatalf("raw X-Expires: %d %s", code, slugs["raw header"])
			}
			mirrorAceUpload(t, srv, data).result(t, &r)
			keep := r.Slug

			for path, sl := range slugs {
				info := fileInfo(t, srv, testKey, testToken, sl)
				if want := clock.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05"); info["expires"] != want || info["status"] != "active" {
					t.Fatalf("%s: file/info %v, want active, expires %s", path, info, want)
				}
				for _, n := range nodes {
					if resp, got := fetch(t, n.URL+"/m/"+sl+"/download", nil); resp.StatusCode != 200 || !bytes.Equal(got, data) {
						t.Fatalf("%s before expiry on %s: %d", path, n.URL, resp.StatusCode)
					}
				}
			}
			clock.Advance(time.Hour)
			for path, sl := range slugs {
				for _, n := range nodes {
					for _, u := range []string{"/m/" + sl + "/download", "/m/" + sl, "/uploads/" + sl} {
						resp, body := fetch(t, n.URL+u, nil)
						if resp.StatusCode != http.StatusGone || !strings.Contains(string(body), "expired") {
							t.Fatalf("%s: %s on %s at its expiry: %d %q, want 410 saying expired", path, u, n.URL, resp.StatusCode, body)
						}
					}
				}
				if info := fileInfo(t, srv, testKey, testToken, sl); info["status"] != "user removed" || info["reason"] != "expired" {
					t.Fatalf("%s: file/info at expiry %v", path, info)
				}
			}
			if resp, got := fetch(t, srv.URL+"/m/"+keep+"/download", nil); resp.StatusCode != 200 || !bytes.Equal(got, data) {
				t.Fatalf("a file without expiry: %d", resp.StatusCode)
			}

			last := nodes[len(nodes)-1]
			clock.Advance(time.Second) // the sweep takes what expired before now
			if _, err := last.app.chunks.Expire(t.Context()); err != nil {
				t.Fatal(err)
			}
			for path, sl := range slugs {
				f, err := last.app.store.File(t.Context(), sl)
				if err != nil || f.Status != "user removed" || f.Reason != "expired" || len(f.Mirrors) != 0 {
					t.Fatalf("%s: record after the sweep %+v, %v", path, f, err)
				}
				ev := hookEvent(t, rcv.wait(t, "/hook", func(c hookCall) bool { return strings.Contains(string(c.body), sl) }), "s")
				if ev.File["status"] != "user removed" || ev.File["reason"] != "expired" {
					t.Fatalf("%s: webhook %+v", path, ev)
				}
			}
			if n := storedObjects(t, last); n != 2 {
				t.Fatalf("%d objects left on the mirrors, want only the file without expiry's", n)
			}
		})
	}
}

// TestExpiryLimits: an account's default_expiry applies when an upload
// asks for none, and an expiry past its max_expiry is refused in each
// dialect's own words; the admin API and CLI set both.
func TestExpiryLimits(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.AdminToken = testAdminToken
	cfg.Accounts[0].DefaultExpiry = store.DurationOf(24 * time.Hour)
	cfg.Accounts[0].MaxExpiry = store.DurationOf(7 * 24 * time.Hour)
	clock := storetest.NewClock(time.Now().UTC())
	srv := start(t, cfg, clock)
	data := testData(100, 3)
	day := clock.Now().Add(24 * time.Hour).UTC().Format("2006-01-02 15:04:05")

	var r uploadResult
	mirrorAceUpload(t, srv, data).result(t, &r)
	if info := fileInfo(t, srv, testKey, testToken, r.Slug); info["expires"] != day {
		t.Fatalf("no expires asked: file/info %v, want the default a day on", info)
	}
	if msg := mirrorAceUpload(t, srv, data, field{"expires", "8d"}).errText(t); !strings.Contains(msg, "at most 7d") {
		t.Fatalf("MirrorAce, 8d: %q", msg)
	}
	if code, msg := rawPost(t, srv, "expires=never", nil, data); code != 400 || !strings.Contains(msg, "at most 7d") {
		t.Fatalf("raw, never: %d %q", code, msg)
	}
	if code, msg := tusPost(t, srv, data, map[string]string{"filename": "x", "expires": "30d"}); code != 400 || !strings.Contains(msg, "at most 7d") {
		t.Fatalf("tus, 30d: %d %q", code, msg)
	}
	if code, msg := rawPost(t, srv, "", http.Header{"X-Expires": {"soon"}}, data); code != 400 || !strings.Contains(msg, "30m, 12h, 7d or 2w") {
		t.Fatalf("raw, soon: %d %q", code, msg)
	}
	if code, sl := rawPost(t, srv, "expires=7d", nil, data); code != 200 {
		t.Fatalf("raw, 7d: %d %s", code, sl)
	}

	var a struct {
		DefaultExpiry string `json:"default_expiry"`
		MaxExpiry     string `json:"max_expiry"`
	}
	cliJSON(t, srv.URL, &a, "accounts", "set", testKey, "--default-expiry", "2h", "--max-expiry", "3d")
	if a.DefaultExpiry != "2h0m0s" || a.MaxExpiry != "3d" {
		t.Fatalf("accounts set: %+v", a)
	}
	if msg := mirrorAceUpload(t, srv, data, field{"expires", "4d"}).errText(t); !strings.Contains(msg, "at most 3d") {
		t.Fatalf("after accounts set, 4d: %q", msg)
	}
	mirrorAceUpload(t, srv, data).result(t, &r)
	if want := clock.Now().Add(2 * time.Hour).UTC().Format("2006-01-02 15:04:05"); fileInfo(t, srv, testKey, testToken, r.Slug)["expires"] != want {
		t.Fatalf("after accounts set: default not 2h")
	}
	if _, err := cli(t, srv.URL, "accounts", "set", testKey, "--max-expiry", "forever"); err == nil || !strings.Contains(err.Error(), "max_expiry") {
		t.Fatalf("a bad max_expiry: %v", err)
	}
}

// TestExpiryDuringDownload: a download in flight when its file expires
// completes whole; the next one, on any node, is refused.
func TestExpiryDuringDownload(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { expiryDuringDownload(t, b) })
	}
}

func expiryDuringDownload(t *testing.T, b backend) {
	clock := storetest.NewClock(time.Now().UTC())
	nodes := nodesOf(t, b, testConfig(t, b), clock)
	srv := nodes[len(nodes)-1]
	data := testData(16<<20, 9)
	var r uploadResult
	mirrorAceUpload(t, nodes[0], data, field{"expires", "1h"}).result(t, &r)
	resp, err := http.Get(nodes[0].URL + "/m/" + r.Slug + "/download")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	if again, _ := fetch(t, srv.URL+"/m/"+r.Slug+"/download", nil); again.StatusCode != http.StatusGone {
		t.Fatalf("a new download after expiry: %d", again.StatusCode)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(head, rest...), data) {
		t.Fatalf("the download in flight: %d bytes, %v; want the whole file", len(head)+len(rest), err)
	}
}

// TestDownloadLimit: the page, HEAD, a short Range and a download cut off
// take nothing; then five clients at once on every node get a file with a
// limit of 1 or 3, and exactly that many get it whole, the others 410.
// The file is then removed as at expiry.
func TestDownloadLimit(t *testing.T) {
	for _, b := range backends {
		for _, limit := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/%d", b.name, limit), func(t *testing.T) { downloadLimit(t, b, limit) })
		}
	}
}

func downloadLimit(t *testing.T, b backend, limit int) {
	rcv := newReceiver(t, 0)
	cfg := testConfig(t, b)
	cfg.Webhooks = []WebhookConfig{{URL: rcv.URL + "/hook", Secret: "s", Events: []string{"file.removed"}}}
	clock := storetest.NewClock(time.Now().UTC())
	nodes := nodesOf(t, b, cfg, clock)
	data := testData(32<<20, 5)
	var r uploadResult
	mirrorAceUpload(t, nodes[0], data, field{"max_downloads", fmt.Sprint(limit)}).result(t, &r)
	dl := "/m/" + r.Slug + "/download"
	left := func(n *testServer) string {
		t.Helper()
		resp, body := fetch(t, n.URL+"/m/"+r.Slug, nil)
		_, after, ok := strings.Cut(string(body), `<dd id="downloads-left">`)
		v, _, _ := strings.Cut(after, "<")
		if resp.StatusCode != 200 || !ok {
			t.Fatalf("page: %d, no downloads left shown", resp.StatusCode)
		}
		return v
	}

	for _, n := range nodes {
		req, _ := http.NewRequest(http.MethodHead, n.URL+dl, nil)
		if resp, _ := doRaw(t, req); resp.StatusCode != 200 {
			t.Fatalf("HEAD: %d", resp.StatusCode)
		}
		if resp, got := fetch(t, n.URL+dl, http.Header{"Range": {"bytes=0-99"}}); resp.StatusCode != 206 || !bytes.Equal(got, data[:100]) {
			t.Fatalf("short Range: %d", resp.StatusCode)
		}
		cutDownload(t, n.URL+dl)
	}
	// The cut-off downloads give their reservations back once their
	// handlers see the broken connection.
	waitCount(t, nodes[0], "downloads-taken:"+r.Slug, 0)
	if got := left(nodes[len(nodes)-1]); got != fmt.Sprint(limit) {
		t.Fatalf("downloads left after page, HEAD, short Range and cut-off downloads: %s, want %d", got, limit)
	}

	const clients = 5
	type outcome struct {
		code  int
		whole bool
		err   error
	}
	outs := make([]outcome, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			resp, err := http.Get(nodes[i%len(nodes)].URL + dl)
			if err != nil {
				outs[i].err = err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			outs[i] = outcome{code: resp.StatusCode, whole: err == nil && bytes.Equal(got, data), err: err}
			if err != nil {
				outs[i].err = fmt.Errorf("%v after %d bytes, %v", err, len(got), resp.Header)
			}
		})
	}
	wg.Wait()
	whole := 0
	for i, o := range outs {
		switch {
		case o.err != nil:
			t.Fatalf("client %d: %d %v", i, o.code, o.err)
		case o.code == 200 && o.whole:
			whole++
		case o.code != http.StatusGone:
			t.Fatalf("client %d: %d, whole %v; want 200 with the file or 410", i, o.code, o.whole)
		}
	}
	if whole != limit {
		t.Fatalf("%d of %d clients got the file, want the limit %d", whole, clients, limit)
	}
	for _, n := range nodes {
		if resp, body := fetch(t, n.URL+dl, nil); resp.StatusCode != http.StatusGone || !strings.Contains(string(body), "download limit") {
			t.Fatalf("after the last download on %s: %d %q", n.URL, resp.StatusCode, body)
		}
	}
	ev := hookEvent(t, rcv.wait(t, "/hook", func(c hookCall) bool { return strings.Contains(string(c.body), r.Slug) }), "s")
	if ev.File["reason"] != "download limit reached" || ev.File["status"] != "user removed" {
		t.Fatalf("webhook %+v", ev)
	}
	if n := storedObjects(t, nodes[0]); n != 0 {
		t.Fatalf("%d objects left after the last download", n)
	}
}

// cutDownload starts a download and drops the connection after its first
// bytes.
func cutDownload(t *testing.T, u string) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // before the end: the connection is closed
}

// waitCount waits until the store's counter under key reads want.
func waitCount(t *testing.T, srv *testServer, key string, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := srv.app.store.Count(t.Context(), key, 0, srv.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter %s reads %d, want %d", key, n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
