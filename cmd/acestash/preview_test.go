package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// metaContent returns the content of the page's <meta> whose property or
// name is key, and whether there is one.
func metaContent(page, key string) (string, bool) {
	for _, attr := range []string{`property="` + key + `"`, `name="` + key + `"`} {
		if _, after, ok := strings.Cut(page, "<meta "+attr+` content="`); ok {
			v, _, _ := strings.Cut(after, `"`)
			return v, true
		}
	}
	return "", false
}

// TestLinkPreview: a file's page carries Open Graph and Twitter-card tags,
// with the image's direct URL where it may be shown; preview fetchers never
// use up a download of a limited file and never get a protected one.
func TestLinkPreview(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { linkPreview(t, b) })
	}
}

func linkPreview(t *testing.T, b backend) {
	srv := start(t, testConfig(t, b), nil)
	png := append([]byte("\x89PNG\r\n\x1a\n"), testData(2000, 71)...)
	var open, limited, locked uploadResult
	mirrorAceUpload(t, srv, png).result(t, &open)
	mirrorAceUpload(t, srv, png, field{"max_downloads", "1"}).result(t, &limited)
	mirrorAceUpload(t, srv, png, field{"file_password", "pw"}).result(t, &locked)
	bots := []string{
		"Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
		"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
		"TelegramBot (like TwitterBot)", "Twitterbot/1.0",
		"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
		"WhatsApp/2.23.20.0", "Synapse (bot; +https://github.com/matrix-org/synapse)",
	}

	_, page := fetch(t, open.URL, http.Header{"User-Agent": {bots[0]}})
	img, ok := metaContent(string(page), "og:image")
	if title, _ := metaContent(string(page), "og:title"); title != open.Name || !ok || !strings.HasPrefix(img, srv.URL+"/uploads/") {
		t.Fatalf("page tags: og:title %q, og:image %q", title, img)
	}
	if card, _ := metaContent(string(page), "twitter:card"); card != "summary_large_image" {
		t.Fatalf("twitter:card %q", card)
	}
	if resp, got := fetch(t, img, http.Header{"User-Agent": {bots[0]}}); resp.StatusCode != 200 || !bytes.Equal(got, png) {
		t.Fatalf("og:image: %d", resp.StatusCode)
	}

	for _, r := range []uploadResult{limited, locked} {
		_, page := fetch(t, r.URL, nil)
		if title, _ := metaContent(string(page), "og:title"); title != r.Name {
			t.Fatalf("%s: og:title %q", r.Slug, title)
		}
		if _, ok := metaContent(string(page), "og:image"); ok {
			t.Fatalf("%s: the page of a limited or protected file offers og:image", r.Slug)
		}
	}
	for _, ua := range bots {
		hdr := http.Header{"User-Agent": {ua}}
		for _, u := range []string{limited.URL + "/download", srv.URL + "/uploads/" + limited.Slug} {
			if resp, _ := fetch(t, u, hdr); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s: %s of a limited file: %d, want 403", ua, u, resp.StatusCode)
			}
		}
		if resp, _ := fetch(t, srv.URL+"/uploads/"+locked.Slug, hdr); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: a protected file: %d", ua, resp.StatusCode)
		}
		if resp, _ := fetch(t, locked.URL+"/download", hdr); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: a protected file's download: %d", ua, resp.StatusCode)
		}
	}
	if info := fileInfo(t, srv, testKey, testToken, limited.Slug); info["status"] != "active" {
		t.Fatalf("after the preview fetchers: %v", info)
	}
	if resp, got := fetch(t, limited.URL+"/download", nil); resp.StatusCode != 200 || !bytes.Equal(got, png) {
		t.Fatalf("the one download a person gets: %d", resp.StatusCode)
	}
	if resp, _ := fetch(t, limited.URL+"/download", nil); resp.StatusCode != http.StatusGone {
		t.Fatalf("a second download: %d", resp.StatusCode)
	}
}
