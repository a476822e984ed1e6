package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/acestash/acestash/store"
)

// leftovers counts what the mirrors hold (objects, staged parts) plus the
// multipart uploads in progress on S3 mirrors.
func leftovers(t *testing.T, srv *testServer) int {
	t.Helper()
	n := storedObjects(t, srv)
	for _, m := range srv.cfg.Mirrors {
		if m.Type != "s3" {
			continue
		}
		n += incompleteUploads(t, m)
	}
	return n
}

// TestQuota gives the test account 5000 bytes and 4 files: uploads that
// would pass either are refused, in the MirrorAce envelope and Mirage's
// 413, at file/upload, at a first chunk whose total does not fit, and at
// the chunk that crosses the quota, and nothing of a refused upload stays
// on any mirror or in the store. A removed file frees its room.
func TestQuota(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			cfg.Limits.MaxChunkSize = testChunk
			cfg.Accounts[0].QuotaBytes, cfg.Accounts[0].QuotaFiles = 5000, 4
			srv := start(t, cfg, nil)
			ctx := t.Context()
			usage := func() store.Usage {
				u, err := srv.app.store.Usage(ctx, testKey)
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			rng := func(off, n, total int) string { return fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, total) }

			// 2000 bytes fit.
			data := testData(2000, 1)
			u := newUpload(t, srv)
			var r uploadResult
			u.send(rng(0, 1000, 2000), data[:1000]).result(t, &r)
			u.send(rng(1000, 1000, 2000), data[1000:]).result(t, &r)
			if r.Info != "complete" || usage() != (store.Usage{Bytes: 2000, Files: 1}) {
				t.Fatalf("first file: %+v, usage %+v", r, usage())
			}
			first := r.Slug
			before := leftovers(t, srv)

			// 4000 more do not: refused at the first chunk, by its total.
			u = newUpload(t, srv)
			msg := u.send(rng(0, 1000, 4000), testData(1000, 2)).errText(t)
			if msg != "the file of 4000 bytes does not fit in this account's quota of 5000 bytes: 3000 bytes are left" {
				t.Fatalf("first chunk over the quota: %q", msg)
			}
			if msg := u.send(rng(0, 1000, 2000), testData(1000, 2)).errText(t); !strings.Contains(msg, "upload_key") {
				t.Fatalf("the refused upload's key still works: %q", msg)
			}

			// 2500 fit when they start; a Mirage upload of 1000 lands
			// meanwhile, so the next chunk learns that they no longer do.
			u = newUpload(t, srv)
			big := testData(2500, 3)
			u.send(rng(0, 1000, 2500), big[:1000]).result(t, &r)
			mirageURL(t, srv, mirageUpload(t, srv.URL+"/upload", testData(1000, 4), false))
			msg = u.send(rng(1000, 1000, 2500), big[1000:2000]).errText(t)
			if msg != "the file of 2500 bytes does not fit in this account's quota of 5000 bytes: 2000 bytes are left" {
				t.Fatalf("chunk of an upload that no longer fits: %q", msg)
			}
			if got, want := leftovers(t, srv), before+2; got != want { // + the Mirage file on mirrors 1 and 2
				t.Fatalf("after the refused upload the mirrors hold %d objects and uploads, want %d", got, want)
			}
			if _, err := srv.app.store.Session(ctx, u.info.UploadKey); err == nil {
				t.Fatal("the refused upload's session is still stored")
			}
			if got := usage(); got != (store.Usage{Bytes: 3000, Files: 2}) {
				t.Fatalf("usage %+v, want 3000 bytes in 2 files", got)
			}

			// With 500 bytes left, a whole file in one request, without
			// Content-Range, is cut where it crosses the quota.
			mirageURL(t, srv, mirageUpload(t, srv.URL+"/upload", testData(1500, 8), false))
			u = newUpload(t, srv)
			msg = u.send("", testData(600, 7)).errText(t)
			if msg != "the upload goes past this account's quota of 5000 bytes (500 bytes were left); nothing of it was kept" {
				t.Fatalf("one-request upload crossing the quota: %q", msg)
			}
			if got, want := leftovers(t, srv), before+4; got != want { // + two Mirage files on mirrors 1 and 2
				t.Fatalf("after the refused upload the mirrors hold %d objects and uploads, want %d", got, want)
			}

			// tus: a declared length that does not fit is refused at
			// creation; a deferred one where its bytes cross the quota,
			// and the upload is gone.
			tus := func(method, u string, hdr map[string]string, body []byte) (*http.Response, string) {
				req, _ := http.NewRequest(method, u, bytes.NewReader(body))
				req.Header.Set("Tus-Resumable", "1.0.0")
				req.Header.Set("Authorization", "Bearer "+testKey+":"+testToken)
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, b := doRaw(t, req)
				return resp, string(b)
			}
			resp, body := tus(http.MethodPost, srv.URL+"/files/", map[string]string{"Upload-Length": "501"}, nil)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "ERR_QUOTA_EXCEEDED") || !strings.Contains(body, "500 bytes are left") {
				t.Fatalf("tus creation over the quota: %s %q", resp.Status, body)
			}
			resp, body = tus(http.MethodPost, srv.URL+"/files/", map[string]string{"Upload-Defer-Length": "1"}, nil)
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusCreated || loc == "" {
				t.Fatalf("tus creation with a deferred length: %s %q", resp.Status, body)
			}
			if !strings.HasPrefix(loc, "http") {
				loc = srv.URL + loc
			}
			resp, body = tus(http.MethodPatch, loc, map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}, testData(600, 9))
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "goes past this account's quota") {
				t.Fatalf("tus PATCH crossing the quota: %s %q", resp.Status, body)
			}
			if resp, _ = tus(http.MethodHead, loc, nil, nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("HEAD of the refused tus upload: %s, want 404", resp.Status)
			}

			// Mirage: a known length that does not fit, and a streamed
			// body that crosses, are 413 and store nothing.
			for _, chunked := range []bool{false, true} {
				a := mirageUpload(t, srv.URL+"/upload", testData(501, 5), chunked)
				if a.code != http.StatusRequestEntityTooLarge || !strings.Contains(string(a.body), "quota of 5000 bytes") {
					t.Fatalf("Mirage upload over the quota (chunked %v): %s", chunked, a)
				}
			}
			if got, want := leftovers(t, srv), before+4; got != want {
				t.Fatalf("after refused Mirage uploads the mirrors hold %d, want %d", got, want)
			}

			// The fourth file reaches the file quota; then file/upload says so.
			mirageURL(t, srv, mirageUpload(t, srv.URL+"/upload", testData(10, 6), false))
			a := postForm(t, srv.URL+"/api/v1/file/upload", []field{{"api_key", testKey}, {"api_token", testToken}})
			if msg := a.errText(t); msg != "this account has reached its quota of 4 files; remove files before uploading more" {
				t.Fatalf("file/upload at the file quota: %q", msg)
			}

			// Taking a file down frees its room.
			if _, err := srv.app.chunks.Withdraw(ctx, first, store.StatusAdmin); err != nil {
				t.Fatal(err)
			}
			if got := usage(); got != (store.Usage{Bytes: 2510, Files: 3}) {
				t.Fatalf("usage after a removal %+v, want 2510 bytes in 3 files", got)
			}
			getUploadInfo(t, srv.URL, false)
		})
	}
}
