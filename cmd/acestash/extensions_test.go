package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// listResult is file/list's result as a client parses it.
type listResult struct {
	Files []struct {
		ID       string   `json:"id"`
		Name     string   `json:"name"`
		Slug     string   `json:"slug"`
		Size     string   `json:"size"`
		URL      string   `json:"url"`
		Status   string   `json:"status"`
		Created  string   `json:"created"`
		SHA256   string   `json:"sha256"`
		Mirrors  []string `json:"mirrors"`
		Password string   `json:"password"`
	} `json:"files"`
	Total string `json:"total"`
}

// statusResult is upload/status's result.
type statusResult struct {
	Name     string `json:"name"`
	Received string `json:"received"`
	Size     string `json:"size"`
	Info     string `json:"info"`
	Slug     string `json:"slug"`
	URL      string `json:"url"`
}

func creds(key, token string, more ...field) []field {
	return append([]field{{"api_key", key}, {"api_token", token}}, more...)
}

// uploadWhole uploads data in one request with the test account.
func uploadWhole(t *testing.T, srv *testServer, name string, data []byte) uploadResult {
	t.Helper()
	u := newUpload(t, srv)
	var res uploadResult
	postMultipart(t, srv.URL+"/api/v1/upload", u.fields, "files[]", name, data, nil).result(t, &res)
	return res
}

// TestFileList: file/list pages through the caller's own files, newest
// first, every number a string, and refuses bad paging.
func TestFileList(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	var slugs []string
	for i := range 3 {
		slugs = append(slugs, uploadWhole(t, srv, fmt.Sprintf("file %d.txt", i), testData(100+i, byte(i))).Slug)
		srv.clock.Advance(time.Second)
	}
	list := func(fields ...field) listResult {
		t.Helper()
		var r listResult
		postForm(t, srv.URL+"/api/v1/file/list", creds(testKey, testToken, fields...)).result(t, &r)
		return r
	}
	p1 := list(field{"per_page", "2"})
	if p1.Total != "3" || len(p1.Files) != 2 || p1.Files[0].Slug != slugs[2] || p1.Files[1].Slug != slugs[1] {
		t.Fatalf("page 1: %+v", p1)
	}
	f := p1.Files[0]
	if f.Name != "file 2.txt" || f.Size != "102" || f.Status != "active" || f.URL != srv.URL+"/m/"+f.Slug ||
		f.ID == "" || len(f.SHA256) != 64 || fmt.Sprint(f.Mirrors) != "[1 2]" || f.Password != "false" ||
		!strings.HasPrefix(f.Created, srv.clock.Now().UTC().Format("2006-01-02")) {
		t.Fatalf("record %+v", f)
	}
	if p2 := list(field{"per_page", "2"}, field{"page", "2"}); p2.Total != "3" || len(p2.Files) != 1 || p2.Files[0].Slug != slugs[0] {
		t.Fatalf("page 2: %+v", p2)
	}
	// A page far past the end is empty, not the first page again.
	if far := list(field{"per_page", "100"}, field{"page", "9223372036854775807"}); far.Total != "3" || len(far.Files) != 0 {
		t.Fatalf("page 2^63-1: %+v", far)
	}
	// The raw JSON: files is an array even when empty, total a string.
	a := postForm(t, srv.URL+"/api/v1/file/list", creds(otherKey, otherToken))
	if string(a.env.Result) != `{"files":[],"total":"0"}` {
		t.Fatalf("another account's list: %s", a.env.Result)
	}
	for _, tc := range []struct {
		fields []field
		want   string
	}{
		{[]field{{"per_page", "101"}}, "per_page is at most 100"},
		{[]field{{"per_page", "0"}}, "per_page must be a whole number from 1 up"},
		{[]field{{"page", "x"}}, "page must be a whole number from 1 up"},
	} {
		if got := postForm(t, srv.URL+"/api/v1/file/list", creds(testKey, testToken, tc.fields...)).errText(t); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.fields, got, tc.want)
		}
	}
	if got := postForm(t, srv.URL+"/api/v1/file/list", nil).errText(t); got != "api_key and api_token are required" {
		t.Errorf("no credentials: %q", got)
	}
	if got := postForm(t, srv.URL+"/api/v1/file/list", creds(testKey, "wrong")).errText(t); got != "invalid api_key or api_token" {
		t.Errorf("wrong token: %q", got)
	}
}

// TestFileDelete: only the owner deletes; a deleted file says "user
// removed", is gone from the mirrors and no longer downloads.
func TestFileDelete(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	res := uploadWhole(t, srv, "doomed.bin", testData(900, 9))
	keep := uploadWhole(t, srv, "kept.bin", testData(10, 1))
	objects := storedObjects(t, srv)

	del := func(key, token, files string) answer {
		return postForm(t, srv.URL+"/api/v1/file/delete", creds(key, token, field{"files", files}))
	}
	if got := del(otherKey, otherToken, res.Slug).errText(t); got != "file "+res.Slug+" belongs to another account; nothing was deleted" {
		t.Fatalf("another account's delete: %q", got)
	}
	if st := fileInfo(t, srv, testKey, testToken, res.Slug)["status"]; st != "active" {
		t.Fatalf("status %q after a refused delete", st)
	}
	var out map[string]map[string]string
	del(testKey, testToken, res.Slug+",nosuchfile").result(t, &out)
	if r := out[res.Slug]; r["status"] != "user removed" || r["slug"] != res.Slug || r["name"] != "doomed.bin" || r["size"] != "900" {
		t.Fatalf("deleted record %v", r)
	}
	if r := out["nosuchfile"]; r["status"] != "not found" || r["slug"] != "null" {
		t.Fatalf("unknown slug %v", r)
	}
	if st := fileInfo(t, srv, testKey, testToken, res.Slug)["status"]; st != "user removed" {
		t.Fatalf("file/info status %q, want user removed", st)
	}
	if n := storedObjects(t, srv); n != objects-2 {
		t.Fatalf("mirrors hold %d objects, want %d: both copies deleted", n, objects-2)
	}
	if resp, _ := fetch(t, res.URL+"/download", nil); resp.StatusCode != http.StatusGone {
		t.Fatalf("download of a deleted file: %d", resp.StatusCode)
	}
	if resp, _ := fetch(t, keep.URL+"/download", nil); resp.StatusCode != 200 {
		t.Fatalf("the other file: %d", resp.StatusCode)
	}
	// Deleting again answers the same record.
	del(testKey, testToken, res.Slug).result(t, &out)
	if out[res.Slug]["status"] != "user removed" {
		t.Fatalf("second delete %v", out)
	}
	if got := del(testKey, testToken, " , ").errText(t); got != "files is required: one slug or several, comma-separated" {
		t.Fatalf("empty files: %q", got)
	}
}

// TestUploadStatus: upload/status says how many bytes an upload holds, so a
// client can go on from there, and where the file is once complete.
func TestUploadStatus(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	u := newUpload(t, srv)
	status := func(key, token, tracker string) answer {
		return postForm(t, srv.URL+"/api/v1/upload/status", creds(key, token,
			field{"upload_key", u.info.UploadKey}, field{"cTracker", tracker}))
	}
	var st statusResult
	status(testKey, testToken, u.info.CTracker).result(t, &st)
	if st != (statusResult{Received: "0", Size: "0", Info: "continue"}) {
		t.Fatalf("before the first chunk: %+v", st)
	}
	data := testData(2*testChunk+10, 4)
	u.send(fmt.Sprintf("bytes 0-%d/%d", testChunk-1, len(data)), data[:testChunk]).result(t, &uploadResult{})
	a := status(testKey, testToken, u.info.CTracker)
	if want := `{"info":"continue","name":"f.bin","received":"1000","size":"2010"}`; string(a.env.Result) != want {
		t.Fatalf("after one chunk: %s, want %s", a.env.Result, want)
	}
	u.send(fmt.Sprintf("bytes %d-%d/%d", testChunk, 2*testChunk-1, len(data)), data[testChunk:2*testChunk]).result(t, &uploadResult{})
	var done uploadResult
	u.send(fmt.Sprintf("bytes %d-%d/%d", 2*testChunk, len(data)-1, len(data)), data[2*testChunk:]).result(t, &done)
	status(testKey, testToken, u.info.CTracker).result(t, &st)
	if st.Info != "complete" || st.Received != "2010" || st.Size != "2010" || st.Slug != done.Slug || st.URL != done.URL {
		t.Fatalf("complete: %+v, upload said %+v", st, done)
	}
	for _, tc := range []struct {
		got, want string
	}{
		{status(testKey, testToken, "wrong").errText(t), "cTracker does not match the upload_key"},
		{status(otherKey, otherToken, u.info.CTracker).errText(t), "upload_key belongs to another api_key"},
		{postForm(t, srv.URL+"/api/v1/upload/status", creds(testKey, testToken, field{"upload_key", "0123456789abcdef0123456789abcdef"}, field{"cTracker", "x"})).errText(t),
			"upload_key not found or expired; ask file/upload for a new one"},
		{postForm(t, srv.URL+"/api/v1/upload/status", creds(testKey, testToken)).errText(t), "upload_key and cTracker are required"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestWebSession: the sign-in cookie is HttpOnly and SameSite=Strict; with
// its CSRF token it stands in for api_key and api_token, without it it
// counts for nothing; another site cannot sign in; signing out clears it.
func TestWebSession(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	signIn := func(origin, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/web/signin",
			strings.NewReader(url.Values{"api_key": {testKey}, "api_token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := signIn(srv.URL, "wrong")
	var e map[string]string
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 401 || e["error"] != "invalid api_key or api_token" || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong sign-in: %d %v %v", resp.StatusCode, e, resp.Cookies())
	}
	if resp = signIn("http://evil.example", testToken); resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-site sign-in: %d %v", resp.StatusCode, resp.Cookies())
	}
	resp.Body.Close()
	resp = signIn(srv.URL, testToken)
	var sess struct{ Name, CSRF string }
	json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != 200 || len(cookies) != 1 || sess.CSRF == "" || sess.Name != "Test User" {
		t.Fatalf("sign-in: %d %v %+v", resp.StatusCode, cookies, sess)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge <= 0 {
		t.Fatalf("session cookie %+v", c)
	}

	list := func(csrf string, c *http.Cookie) answer {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/file/list", strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		req.AddCookie(c)
		return do(t, req)
	}
	var r listResult
	list(sess.CSRF, c).result(t, &r)
	if r.Total != "0" {
		t.Fatalf("list with the session: %+v", r)
	}
	if got := list("", c).errText(t); got != "api_key and api_token are required" {
		t.Fatalf("cookie without the CSRF token: %q", got)
	}
	if got := list("forged", c).errText(t); got != "the session's CSRF token does not match; reload the page" {
		t.Fatalf("wrong CSRF token: %q", got)
	}
	forged := *c
	forged.Value = otherKey + c.Value[len(testKey):]
	if got := list(sess.CSRF, &forged).errText(t); got != "the session has ended; sign in again" {
		t.Fatalf("a cookie changed to another account: %q", got)
	}

	// Sign-out ends the session on the server: a copy of the cookie kept
	// from before is refused as well.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/web/signout", nil)
	req.Header.Set("Origin", srv.URL)
	req.AddCookie(c)
	out, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if oc := out.Cookies(); out.StatusCode != 204 || len(oc) != 1 || oc[0].MaxAge >= 0 || oc[0].Value != "" {
		t.Fatalf("sign-out: %d %v", out.StatusCode, oc)
	}
	if got := list(sess.CSRF, c).errText(t); got != "the session has ended; sign in again" {
		t.Fatalf("the cookie after sign-out: %q", got)
	}

	// A cookie signed before its expiry is refused after it.
	resp = signIn(srv.URL, testToken)
	json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	c = resp.Cookies()[0]
	var r2 listResult
	list(sess.CSRF, c).result(t, &r2)
	srv.clock.Advance(13 * time.Hour)
	if got := list(sess.CSRF, c).errText(t); got != "the session has ended; sign in again" {
		t.Fatalf("expired session: %q", got)
	}
}

// TestPageHeaders: the page and the download page forbid inline script
// and style, and / answers without the store.
func TestPageHeaders(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	res := uploadWhole(t, srv, "page.txt", []byte("hello"))
	for _, u := range []string{srv.URL + "/", res.URL} {
		resp, body := fetch(t, u, nil)
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") ||
			strings.Contains(csp, "unsafe-inline") || strings.Contains(string(body), "<script>") || strings.Contains(string(body), "<style") {
			t.Fatalf("%s: %d CSP %q", u, resp.StatusCode, csp)
		}
	}
	for _, a := range []string{"app.js", "file.js", "style.css"} {
		if resp, _ := fetch(t, srv.URL+"/assets/"+a, nil); resp.StatusCode != 200 || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("/assets/%s: %d", a, resp.StatusCode)
		}
	}
	if resp, _ := fetch(t, srv.URL+"/assets/index.html", nil); resp.StatusCode != 404 {
		t.Fatalf("/assets/index.html: %d", resp.StatusCode)
	}
	_, page := fetch(t, res.URL, nil)
	if !strings.Contains(string(page), `src="/uploads/`+res.Slug+`"`) {
		t.Fatalf("a text file's page has no preview:\n%s", page)
	}
}
