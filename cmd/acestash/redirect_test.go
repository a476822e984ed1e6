package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// noFollow is a client that shows redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// redirectNode is minioNode with redirects on for mirrors 1 and 2 (clients
// reach them at their own addresses) and URLs valid for expiry.
func redirectNode(t *testing.T, expiry time.Duration) (*testServer, []string) {
	t.Helper()
	srv, ms := minioNode(t, func(c *Config) {
		c.RedirectExpiry = expiry
		for i := range 2 {
			c.Mirrors[i].Redirect = true
		}
	})
	return srv, []string{ms[0].Endpoint, ms[1].Endpoint}
}

// TestRedirect: downloads of a file without a password answer 302 to a
// presigned GET on a mirror holding it, which gives the same bytes, names
// and types as acestash; Range works through it; HEAD, password-protected
// files and files on mirrors without redirects are served by acestash;
// the URL stops working once it expires.
func TestRedirect(t *testing.T) {
	const expiry = 3 * time.Second
	srv, public := redirectNode(t, expiry)
	data := testData(1<<20+7, 51)
	sl := uploadTo(t, srv, data, []string{"1", "2"})
	pngData := append([]byte("\x89PNG\r\n\x1a\n"), testData(5000, 52)...)
	pngSlug := uploadTo(t, srv, pngData, []string{"2"})
	a := rocketPost(t, srv, "GENERAL", testKey, testToken, nil, "chat.png", pngData)
	var msg struct {
		Message struct {
			Attachments []struct {
				TitleLink string `json:"title_link"`
			} `json:"attachments"`
		} `json:"message"`
	}
	if err := json.Unmarshal(a.body, &msg); err != nil || a.code != 200 || len(msg.Message.Attachments) != 1 {
		t.Fatalf("rooms.upload: %s", a)
	}

	for _, tc := range []struct {
		path, disposition, ctype string
		body                     []byte
	}{
		{"/m/" + sl + "/download", "attachment", "application/octet-stream", data},
		{"/uploads/" + pngSlug, "inline", "image/png", pngData},
		{msg.Message.Attachments[0].TitleLink, "inline", "image/png", pngData},
	} {
		r, err := noFollow.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.StatusCode != http.StatusFound || loc == nil || (loc.Host != public[0] && loc.Host != public[1]) {
			t.Fatalf("GET %s: HTTP %d to %q, want 302 to a mirror", tc.path, r.StatusCode, r.Header.Get("Location"))
		}
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Fatalf("GET %s: the redirect may be cached (%q) though its URL expires", tc.path, cc)
		}
		// A client following it (as curl -L does) gets what acestash serves.
		resp, body := fetch(t, srv.URL+tc.path, nil)
		kind, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		if resp.StatusCode != 200 || !bytes.Equal(body, tc.body) || kind != tc.disposition ||
			resp.Header.Get("Content-Type") != tc.ctype || params["filename"] == "" {
			t.Fatalf("GET %s followed: HTTP %d, %d bytes (equal %v), %q, %q", tc.path, resp.StatusCode, len(body),
				bytes.Equal(body, tc.body), resp.Header.Get("Content-Disposition"), resp.Header.Get("Content-Type"))
		}
		if resp.Request.URL.Host == strings.TrimPrefix(srv.URL, "http://") {
			t.Fatalf("GET %s: the bytes came from acestash", tc.path)
		}
		resp, body = fetch(t, srv.URL+tc.path, http.Header{"Range": {"bytes=100-199"}})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, tc.body[100:200]) {
			t.Fatalf("GET %s with Range, followed: HTTP %d, %d bytes", tc.path, resp.StatusCode, len(body))
		}
	}
	// HEAD is answered by acestash.
	head, _ := http.NewRequest(http.MethodHead, srv.URL+"/m/"+sl+"/download", nil)
	resp, _ := doRaw(t, head)
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
		t.Fatalf("HEAD: HTTP %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	// A file with a password is never redirected.
	locked := uploadTo(t, srv, data, []string{"1", "2"}, field{"file_password", "open sesame"})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/m/"+locked+"/download", nil)
	req.Header.Set("X-File-Password", "open sesame")
	r, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil || r.StatusCode != 200 || !bytes.Equal(got, data) || r.Header.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("password file: HTTP %d, %d bytes, Cache-Control %q; want 200 from acestash, private", r.StatusCode, len(got), r.Header.Get("Cache-Control"))
	}
	// A file with a download limit is never redirected: acestash must see
	// its last byte go out to count the download.
	limited := uploadTo(t, srv, data, []string{"1", "2"}, field{"max_downloads", "2"})
	if r, err = noFollow.Get(srv.URL + "/m/" + limited + "/download"); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil || r.StatusCode != 200 || !bytes.Equal(got, data) || r.Header.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("limited file: HTTP %d, %d bytes, Cache-Control %q; want 200 from acestash, private", r.StatusCode, len(got), r.Header.Get("Cache-Control"))
	}
	// A file only on a mirror without redirects is served by acestash.
	onThree := uploadTo(t, srv, data, []string{"3"})
	if r, err := noFollow.Get(srv.URL + "/m/" + onThree + "/download"); err != nil || r.StatusCode != 200 {
		t.Fatalf("file on mirror 3: %v %v", err, r.Status)
	} else {
		r.Body.Close()
	}

	// The URL expires.
	r, err = noFollow.Get(srv.URL + "/m/" + sl + "/download")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	loc := r.Header.Get("Location")
	if resp, body := fetch(t, loc, nil); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("fresh URL: HTTP %d", resp.StatusCode)
	}
	time.Sleep(expiry + 1500*time.Millisecond) // S3 counts in whole seconds
	if resp, _ := fetch(t, loc, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired URL: HTTP %d, want 403", resp.StatusCode)
	}
}

// TestBrowserRedirect: in Chromium, the download page's button of a file on
// a redirect mirror saves the file's bytes from the mirror, and its image
// preview, also redirected, is shown despite the page's
// Content-Security-Policy.
func TestBrowserRedirect(t *testing.T) {
	srv, _ := redirectNode(t, time.Minute)
	var img bytes.Buffer
	pic := image.NewRGBA(image.Rect(0, 0, 3, 2))
	pic.Set(1, 1, color.RGBA{200, 10, 10, 255})
	if err := png.Encode(&img, pic); err != nil {
		t.Fatal(err)
	}
	data := testData(2<<20+3, 53)
	for _, f := range []struct {
		body []byte
		name string
	}{{data, "big.bin"}, {img.Bytes(), "pic.png"}} {
		sl := uploadTo(t, srv, f.body, []string{"1", "2"})
		if r, err := noFollow.Get(srv.URL + "/m/" + sl + "/download"); err != nil || r.StatusCode != http.StatusFound {
			t.Fatalf("%s is not redirected: %v", f.name, err)
		} else {
			r.Body.Close()
		}
		b := tab{t: t, ctx: chromium(t), dir: t.TempDir()}
		b.do("open the download page", chromedp.Navigate(srv.URL+"/m/"+sl), chromedp.WaitVisible(chromedp.CSS(`#download`)))
		if f.name == "pic.png" {
			b.poll("the preview shows", `(document.querySelector('.preview img') || {}).naturalWidth === 3`)
		}
		if got := b.download("#download"); !bytes.Equal(got, f.body) {
			t.Fatalf("%s: the browser saved %d bytes, not the %d uploaded", f.name, len(got), len(f.body))
		}
	}
}
