package main

import (
	"bytes"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mirageUpload posts data exactly as Mirage's server does: the raw bytes,
// application/octet-stream, User-Agent Mozilla/5.0, no credentials. With
// chunked set the body has no Content-Length.
func mirageUpload(t *testing.T, u string, data []byte, chunked bool) answer {
	t.Helper()
	var body io.Reader = bytes.NewReader(data)
	if chunked {
		body = io.MultiReader(body) // hides the length: sent chunked
	}
	req, err := http.NewRequest(http.MethodPost, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("User-Agent", "Mozilla/5.0")
	return do(t, req)
}

// mirageURL is the file URL Mirage takes from a successful answer.
func mirageURL(t *testing.T, srv *testServer, a answer) string {
	t.Helper()
	if a.code != 200 || !bytes.HasSuffix(a.body, []byte("\n")) {
		t.Fatalf("want 200 and a URL line, got %s", a)
	}
	u := strings.TrimSpace(string(a.body))
	if !strings.HasPrefix(u, srv.URL+"/uploads/") {
		t.Fatalf("answer %q is not a URL under %s/uploads/", u, srv.URL)
	}
	return u
}

func TestMirage(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			srv := start(t, testConfig(t, b), nil)
			for _, size := range []int{1, 1000, 3<<20 + 5} {
				for _, chunked := range []bool{false, true} {
					data := testData(size, byte(size))
					a := mirageUpload(t, srv.URL+"/upload", data, chunked)
					if ct := a.contentType; !strings.HasPrefix(ct, "text/plain") {
						t.Errorf("answer Content-Type %q, want text/plain", ct)
					}
					u := mirageURL(t, srv, a)
					resp, got := fetch(t, u, nil)
					if resp.StatusCode != 200 || !bytes.Equal(got, data) {
						t.Fatalf("size %d chunked %v: GET %s: %d, %d bytes, equal %v", size, chunked, u, resp.StatusCode, len(got), bytes.Equal(got, data))
					}
					// One core: the same file shows in file/info and at /m/<slug>.
					id := strings.TrimPrefix(u, srv.URL+"/uploads/")
					sl, _, _ := strings.Cut(id, ".")
					info := fileInfo(t, srv, testKey, testToken, sl)
					if info["size"] != strconv.Itoa(size) || info["name"] != id {
						t.Errorf("file/info %v, want size %d and name %s", info, size, id)
					}
					if resp, got := fetch(t, srv.URL+"/m/"+sl+"/download", nil); resp.StatusCode != 200 || !bytes.Equal(got, data) {
						t.Errorf("/m/%s/download: %d", sl, resp.StatusCode)
					}
				}
			}
		})
	}
}

func TestMirageRefuses(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			cfg.Raw.MaxSize = 1000
			srv := start(t, cfg, nil)
			for _, chunked := range []bool{false, true} {
				a := mirageUpload(t, srv.URL+"/upload", testData(1001, 1), chunked)
				if a.code != http.StatusRequestEntityTooLarge || !strings.Contains(string(a.body), "1000 bytes") {
					t.Errorf("1001 bytes over a 1000-byte cap (chunked %v): got %s, want 413 naming the limit", chunked, a)
				}
				a = mirageUpload(t, srv.URL+"/upload", nil, chunked)
				if a.code != http.StatusBadRequest || !strings.Contains(string(a.body), "empty") {
					t.Errorf("empty body (chunked %v): got %s, want 400", chunked, a)
				}
			}
			if n := storedObjects(t, srv); n != 0 {
				t.Errorf("refused uploads left %d objects on the mirrors", n)
			}
			// Exactly at the cap is fine.
			mirageURL(t, srv, mirageUpload(t, srv.URL+"/upload", testData(1000, 2), false))
		})
	}
}

func TestMirageKey(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { mirageKey(t, b) })
	}
}

func mirageKey(t *testing.T, b backend) {
	cfg := testConfig(t, b)
	cfg.Raw.RequireKey = true
	srv := start(t, cfg, nil)
	data := testData(100, 3)
	if a := mirageUpload(t, srv.URL+"/upload", data, false); a.code != http.StatusUnauthorized || !strings.Contains(string(a.body), "key") {
		t.Errorf("no key: got %s, want 401 saying a key is required", a)
	}
	if a := mirageUpload(t, srv.URL+"/upload?key="+otherKey+":"+testToken, data, false); a.code != http.StatusUnauthorized {
		t.Errorf("wrong token: got %s, want 401", a)
	}
	// In the URL, as it can live in Mirage's UPLOAD_URL.
	u := mirageURL(t, srv, mirageUpload(t, srv.URL+"/upload?key="+otherKey+":"+otherToken, data, false))
	sl, _, _ := strings.Cut(strings.TrimPrefix(u, srv.URL+"/uploads/"), ".")
	f, err := srv.app.store.File(t.Context(), sl)
	if err != nil || f.Owner != otherKey {
		t.Errorf("file %s: owner %q, err %v; want the key's account", sl, f.Owner, err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+testKey+":"+testToken)
	mirageURL(t, srv, do(t, req))
}

func TestMirageTTL(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			cfg.Raw.TTL = time.Hour
			srv := start(t, cfg, nil)
			u := mirageURL(t, srv, mirageUpload(t, srv.URL+"/upload", testData(500, 4), false))
			sl, _, _ := strings.Cut(strings.TrimPrefix(u, srv.URL+"/uploads/"), ".")
			f, err := srv.app.store.File(t.Context(), sl)
			if err != nil {
				t.Fatal(err)
			}
			if resp, _ := fetch(t, u, nil); resp.StatusCode != 200 {
				t.Fatalf("fresh file: %d", resp.StatusCode)
			}
			srv.clock.Advance(time.Hour + time.Second)
			if resp, _ := fetch(t, u, nil); resp.StatusCode != http.StatusGone {
				t.Errorf("expired file: %d, want 410", resp.StatusCode)
			}
			n, err := srv.app.chunks.Expire(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("Expire: %d, %v; want 1 file removed", n, err)
			}
			for _, id := range f.Mirrors {
				e, _ := srv.app.mirrors.Get(id)
				if _, err := e.Mirror.Stat(t.Context(), f.ObjectKey); err == nil {
					t.Errorf("mirror %s still holds the expired file", id)
				}
			}
		})
	}
}

// TestServedTypes checks that what a browser could run is never shown
// inline from the storage domain, and that images are.
func TestServedTypes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { servedTypes(t, b) })
	}
}

func servedTypes(t *testing.T, b backend) {
	png := append([]byte("\x89PNG\r\n\x1a\n"), testData(200, 5)...)
	cases := []struct {
		name   string
		data   []byte
		ext    string
		inline bool
	}{
		{"html", []byte("<!DOCTYPE html><html><script>alert(document.domain)</script></html>"), ".html", false},
		{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), ".svg", false},
		{"bare svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>`), ".svg", false},
		{"xml", []byte(`<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>`), ".xml", false},
		{"png", png, ".png", true},
		{"text", []byte("just some words\n"), ".txt", true},
		{"binary", []byte{0, 1, 2, 3, 0xff, 0xfe, 0}, "", false},
	}
	srv := start(t, testConfig(t, b), nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := mirageURL(t, srv, mirageUpload(t, srv.URL+"/upload", c.data, false))
			if id := strings.TrimPrefix(u, srv.URL+"/uploads/"); path.Ext(id) != c.ext {
				t.Errorf("id %s has extension %q, want %q", id, path.Ext(id), c.ext)
			}
			resp, got := fetch(t, u, nil)
			if !bytes.Equal(got, c.data) {
				t.Fatalf("bytes differ")
			}
			cd := resp.Header.Get("Content-Disposition")
			if inline := !strings.HasPrefix(cd, "attachment"); inline != c.inline {
				t.Errorf("Content-Disposition %q (type %s): inline %v, want %v", cd, resp.Header.Get("Content-Type"), inline, c.inline)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Security-Policy") != "sandbox" {
				t.Errorf("headers %v lack nosniff or the sandbox CSP", resp.Header)
			}
			if ct := resp.Header.Get("Content-Type"); c.inline && (strings.Contains(ct, "html") || strings.Contains(ct, "xml") || strings.Contains(ct, "svg")) {
				t.Errorf("shown inline as %q", ct)
			}
			if c.name == "png" && resp.Header.Get("Content-Type") != "image/png" {
				t.Errorf("png served as %q", resp.Header.Get("Content-Type"))
			}
			resp, got = fetch(t, u, http.Header{"Range": {"bytes=2-5"}})
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, c.data[2:6]) {
				t.Errorf("Range bytes=2-5: %d %q", resp.StatusCode, got)
			}
		})
	}
}
