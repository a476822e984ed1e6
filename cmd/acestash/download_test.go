package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestDownloadRanges checks Range, HEAD, If-None-Match and the headers a
// download manager relies on.
func TestDownloadRanges(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			srv := smallChunkServer(t, b)
			data := testData(4321, 11)
			res := dotnetUpload(t, srv.URL, data, "ranges.bin")
			dl := res.URL + "/download"
			for _, tc := range []struct {
				rng        string
				code       int
				from, to   int // expected body data[from:to]
				contentRng string
			}{
				{"bytes=0-99", 206, 0, 100, "bytes 0-99/4321"},
				{"bytes=1000-", 206, 1000, 4321, "bytes 1000-4320/4321"},
				{"bytes=-21", 206, 4300, 4321, "bytes 4300-4320/4321"},
				{"bytes=4320-9999", 206, 4320, 4321, "bytes 4320-4320/4321"},
				{"bytes=0-0,5-9", 200, 0, 4321, ""}, // several ranges: the whole file
				{"bytes=4321-", 416, 0, 0, "bytes */4321"},
			} {
				resp, body := fetch(t, dl, http.Header{"Range": {tc.rng}})
				if resp.StatusCode != tc.code || resp.Header.Get("Content-Range") != tc.contentRng {
					t.Fatalf("Range %s: HTTP %d Content-Range %q", tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"))
				}
				if tc.code != 416 && !bytes.Equal(body, data[tc.from:tc.to]) {
					t.Fatalf("Range %s: wrong bytes (%d of them)", tc.rng, len(body))
				}
			}
			req, _ := http.NewRequest(http.MethodHead, dl, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
				t.Fatalf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
			}
			resp, _ = fetch(t, dl, http.Header{"If-None-Match": {resp.Header.Get("ETag")}})
			if resp.StatusCode != 304 {
				t.Fatalf("If-None-Match: %d", resp.StatusCode)
			}
			resp, _ = fetch(t, srv.URL+"/m/nosuchfile/download", nil)
			if resp.StatusCode != 404 {
				t.Fatalf("unknown slug: %d", resp.StatusCode)
			}
		})
	}
}

// TestFileNames checks that a hostile file name can neither break the
// Content-Disposition header nor the page.
func TestFileNames(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	for _, name := range []string{
		`quote".txt`, "semi;colon=x.txt", "ünïcödé 文件.pdf", `back\slash.txt`,
		"<script>alert(1)</script>.html", "../../etc/passwd", "crlf\r\nSet-Cookie: x=1",
	} {
		res := pythonUpload(t, srv.URL, []byte("hi"), name)
		resp, body := fetch(t, res.URL+"/download", nil)
		if resp.StatusCode != 200 || string(body) != "hi" {
			t.Fatalf("%q: HTTP %d", name, resp.StatusCode)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("%q: a header was injected", name)
		}
		kind, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		if err != nil || kind != "attachment" || params["filename"] != res.Name {
			t.Fatalf("%q: Content-Disposition %q parses as %q %v (%v), want filename %q",
				name, resp.Header.Get("Content-Disposition"), kind, params, err, res.Name)
		}
		if strings.ContainsAny(res.Name, "/\\\r\n") {
			t.Fatalf("%q was stored as %q", name, res.Name)
		}
		_, page := fetch(t, res.URL, nil)
		if bytes.Contains(page, []byte("<script>")) {
			t.Fatalf("%q: the page shows markup from the name", name)
		}
	}
}

// TestPassword checks that a protected file's page asks for the password
// and the download refuses without it.
func TestPassword(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	data := testData(2500, 31)
	// The first of three chunks, with file_password after the file part
	// (and mirrors[] before it): the password must still be read.
	u := newUpload(t, srv)
	var r uploadResult
	for i, off := 0, 0; off < len(data); i, off = i+1, off+testChunk {
		end := min(off+testChunk, len(data))
		hdr := http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data))}}
		var after []field
		if i == 0 {
			after = []field{{"file_password", "s3cret pass"}}
		}
		a := postMultipartAfter(t, srv.URL+"/api/v1/upload", u.fields, "p.bin", "files[]", data[off:end], after, hdr)
		r = uploadResult{}
		a.result(t, &r)
	}
	if r.Info != "complete" {
		t.Fatalf("last answer %+v", r)
	}

	_, page := fetch(t, r.URL, nil)
	if !bytes.Contains(page, []byte(`type="password"`)) || bytes.Contains(page, []byte(`href="/m/`+r.Slug+`/download"`)) {
		t.Fatalf("page of a protected file:\n%s", page)
	}
	for _, h := range []http.Header{nil, {"X-File-Password": {"wrong"}}, {"Range": {"bytes=0-9"}}} {
		if resp, body := fetch(t, r.URL+"/download", h); resp.StatusCode != 403 || bytes.Contains(body, data[:10]) {
			t.Fatalf("download with %v: %d", h, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodHead, r.URL+"/download", nil)
	if a := do(t, req); a.code != 403 {
		t.Fatalf("HEAD without password: %d", a.code)
	}
	// The chat dialects' paths do not serve it at all.
	if resp, _ := fetch(t, srv.URL+"/uploads/"+r.Slug, nil); resp.StatusCode != 404 {
		t.Fatalf("/uploads/%s of a protected file: %d", r.Slug, resp.StatusCode)
	}
	if resp, body := fetch(t, r.URL+"/download", http.Header{"X-File-Password": {"s3cret pass"}}); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("download with the password header: %d", resp.StatusCode)
	}
	resp, err := http.PostForm(r.URL+"/download", url.Values{"password": {"s3cret pass"}})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("download by the page's form: %d (%v)", resp.StatusCode, err)
	}
	// Guessing is slowed: after ten wrong passwords, even the right one
	// waits.
	wrong := 0
	for i := range 12 {
		resp, _ := fetch(t, r.URL+"/download", http.Header{"X-File-Password": {fmt.Sprint("guess ", i)}})
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		wrong++
	}
	// One wrong password came before; bcrypt is slow enough under -race
	// that a token may refill while the loop runs.
	if wrong < 9 || wrong > 11 {
		t.Errorf("%d more wrong passwords answered before 429, want 9", wrong)
	}
	if resp, _ := fetch(t, r.URL+"/download", http.Header{"X-File-Password": {"s3cret pass"}}); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password after the limit: %d, want 429", resp.StatusCode)
	}
	// The owner, at another address, is not locked out by the guesser.
	owner := http.Header{"X-File-Password": {"s3cret pass"}, "X-Forwarded-For": {"203.0.113.7"}}
	if resp, body := fetch(t, r.URL+"/download", owner); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Errorf("right password from another address while the guesser is limited: %d", resp.StatusCode)
	}
	// Nothing else reveals it.
	a := postForm(t, srv.URL+"/api/v1/file/info", []field{{"api_key", testKey}, {"api_token", testToken}, {"files", r.Slug}})
	var info map[string]map[string]string
	a.result(t, &info)
	if bytes.Contains(a.body, []byte("s3cret")) || bytes.Contains(page, []byte("s3cret")) {
		t.Fatal("the password leaked")
	}
}

// TestHome is Mirage's keep-alive ping: 200 on GET and HEAD, even with the
// store closed.
func TestHome(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	srv.app.store.Close() // / must not need it
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(m, srv.URL+"/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s /: %d", m, resp.StatusCode)
		}
	}
	_, body := fetch(t, srv.URL+"/", nil)
	if !bytes.Contains(body, []byte("acestash")) {
		t.Fatalf("home page does not name the service: %s", body)
	}
}

// TestRestart stops a server and starts another on the same data: files,
// accounts and an unfinished upload are all still there.
func TestRestart(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Accounts = nil // the first start creates an account by itself
	cfg.Limits.MaxChunkSize = testChunk
	first := start(t, cfg, nil)
	first.stop()

	// account create works on the stopped server's store.
	var out bytes.Buffer
	t.Setenv("ACESTASH_DATA_DIR", cfg.DataDir)
	if err := run([]string{"account", "create", "--name", "Restart Tester"}, &out, &out); err != nil {
		t.Fatalf("account create: %v\n%s", err, out.String())
	}
	var acct map[string]string
	if err := json.Unmarshal(out.Bytes(), &acct); err != nil || len(acct["api_key"]) != 32 || len(acct["api_token"]) != 32 || len(acct["user_id"]) != 17 {
		t.Fatalf("account create printed %q (%v)", out.String(), err)
	}
	creds := []field{{"api_key", acct["api_key"]}, {"api_token", acct["api_token"]}}

	second := start(t, cfg, nil)
	var info uploadInfo
	postForm(t, second.URL+"/api/v1/file/upload", creds).result(t, &info)
	fields := append(creds, field{"cTracker", info.CTracker}, field{"upload_key", info.UploadKey}, field{"mirrors[]", "1"})
	data := testData(2500, 21)
	var r uploadResult
	postMultipart(t, info.ServerFile, fields, "files[]", "restart.bin", data[:1000],
		http.Header{"Content-Range": {"bytes 0-999/2500"}}).result(t, &r)
	// A second upload finishes before the restart.
	var info2 uploadInfo
	postForm(t, second.URL+"/api/v1/file/upload", creds).result(t, &info2)
	doneData := testData(10, 1)
	var done uploadResult
	postMultipart(t, info2.ServerFile, append(creds, field{"cTracker", info2.CTracker}, field{"upload_key", info2.UploadKey}, field{"mirrors[]", "1"}),
		"files", "done.bin", doneData, nil).result(t, &done)
	second.stop()

	third := start(t, cfg, nil)
	if resp, body := fetch(t, third.URL+"/m/"+done.Slug+"/download", nil); resp.StatusCode != 200 || !bytes.Equal(body, doneData) {
		t.Fatalf("after restart, the finished file: %d %q", resp.StatusCode, body)
	}
	for i, rng := range []string{"bytes 1000-1999/2500", "bytes 2000-2499/2500"} {
		r = uploadResult{}
		postMultipart(t, third.URL+"/api/v1/upload", fields, "files[]", "restart.bin", data[1000*(i+1):min(1000*(i+2), 2500)],
			http.Header{"Content-Range": {rng}}).result(t, &r)
	}
	if r.Info != "complete" {
		t.Fatalf("unfinished upload after restart: %+v", r)
	}
	resp, body := fetch(t, r.URL+"/download", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("upload finished across a restart: HTTP %d, %d bytes", resp.StatusCode, len(body))
	}
	var fi map[string]map[string]string
	postForm(t, third.URL+"/api/v1/file/info", append(creds, field{"files", fmt.Sprintf("%s,%s", done.Slug, r.Slug)})).result(t, &fi)
	if fi[done.Slug]["status"] != "active" || fi[r.Slug]["size"] != "2500" {
		t.Fatalf("file/info after restart: %v", fi)
	}
}

// TestConditional checks the validators and conditional requests RFC 9110
// defines (sections 8.8, 13) and Cache-Control on downloads.
func TestConditional(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	data := testData(3000, 12)
	dl := pythonUpload(t, srv.URL, data, "c.bin").URL + "/download"
	resp, _ := fetch(t, dl, nil)
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	modified, err := http.ParseTime(lm)
	if err != nil || len(etag) != 66 || etag[0] != '"' {
		t.Fatalf("ETag %q, Last-Modified %q (%v)", etag, lm, err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=86400, immutable" {
		t.Fatalf("Cache-Control %q", cc)
	}
	date := func(d time.Duration) string { return modified.Add(d).Format(http.TimeFormat) }
	other := `"` + strings.Repeat("0", 64) + `"`
	for _, tc := range []struct {
		hdr  http.Header
		code int
		from int // the body is data[from:to]
		to   int
	}{
		{http.Header{"If-None-Match": {etag}}, 304, 0, 0},
		{http.Header{"If-None-Match": {"W/" + etag}}, 304, 0, 0}, // weak comparison
		{http.Header{"If-None-Match": {other + ", " + etag}}, 304, 0, 0},
		{http.Header{"If-None-Match": {"*"}}, 304, 0, 0},
		{http.Header{"If-None-Match": {other}}, 200, 0, 3000},
		// If-None-Match wins over If-Modified-Since.
		{http.Header{"If-None-Match": {other}, "If-Modified-Since": {date(time.Hour)}}, 200, 0, 3000},
		{http.Header{"If-Modified-Since": {lm}}, 304, 0, 0},
		{http.Header{"If-Modified-Since": {date(-time.Second)}}, 200, 0, 3000},
		{http.Header{"If-Modified-Since": {"not a date"}}, 200, 0, 3000},
		{http.Header{"If-Match": {other}}, 412, 0, 0},
		{http.Header{"If-Match": {"W/" + etag}}, 412, 0, 0}, // strong comparison
		{http.Header{"If-Match": {etag}}, 200, 0, 3000},
		{http.Header{"If-Unmodified-Since": {date(-time.Second)}}, 412, 0, 0},
		{http.Header{"Range": {"bytes=10-19"}, "If-Range": {etag}}, 206, 10, 20},
		{http.Header{"Range": {"bytes=10-19"}, "If-Range": {other}}, 200, 0, 3000},
		{http.Header{"Range": {"bytes=10-19"}, "If-Range": {"W/" + etag}}, 200, 0, 3000},
		{http.Header{"Range": {"bytes=10-19"}, "If-Range": {lm}}, 206, 10, 20},
		// A date must be Last-Modified exactly.
		{http.Header{"Range": {"bytes=10-19"}, "If-Range": {date(time.Hour)}}, 200, 0, 3000},
	} {
		resp, body := fetch(t, dl, tc.hdr)
		if resp.StatusCode != tc.code || !bytes.Equal(body, data[tc.from:tc.to]) {
			t.Errorf("%v: HTTP %d with %d bytes, want %d with %d", tc.hdr, resp.StatusCode, len(body), tc.code, tc.to-tc.from)
		}
		if tc.code == 304 && (resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") == "") {
			t.Errorf("%v: 304 without ETag or Cache-Control: %v", tc.hdr, resp.Header)
		}
	}
	// A file with a password is nobody's to cache.
	u := newUpload(t, srv)
	u.fields = append(u.fields, field{"file_password", "pw"})
	var r uploadResult
	u.send("", data[:500]).result(t, &r)
	resp, _ = fetch(t, r.URL+"/download", http.Header{"X-File-Password": {"pw"}})
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("password file: HTTP %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}
