package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// sxcu is what TestShareX reads of a ShareX custom uploader.
type sxcu struct {
	Version, Name, DestinationType string
	RequestMethod, RequestURL      string
	Parameters, Headers            map[string]string
	Body                           string
	URL, DeletionURL, ErrorMessage string
}

// sharexUpload performs the request the uploader describes, as ShareX
// does, with data as the binary body, and returns the URL and deletion URL
// its answer yields.
func sharexUpload(t *testing.T, c sxcu, data []byte) (string, string) {
	t.Helper()
	if c.Body != "Binary" {
		t.Fatalf("Body %q: this test sends Binary bodies", c.Body)
	}
	u, err := url.Parse(c.RequestURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, v := range c.Parameters {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(c.RequestMethod, u.String(), bytes.NewReader(data))
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, body := doRaw(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("upload as the .sxcu says: %s %s", resp.Status, body)
	}
	var answer map[string]any
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	// ShareX's {json:key} reads a key of the JSON answer.
	field := func(expr string) string {
		key, ok := strings.CutPrefix(expr, "{json:")
		key, ok2 := strings.CutSuffix(key, "}")
		v, _ := answer[key].(string)
		if !ok || !ok2 || v == "" {
			t.Fatalf("%q names nothing in the answer %s", expr, body)
		}
		return v
	}
	return field(c.URL), field(c.DeletionURL)
}

// TestShareX reads the .sxcu, uploads two files exactly as it says, and
// deletes one of them through its deletion URL: a GET only shows it, the
// POST of its button deletes that file and not the other.
func TestShareX(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { shareX(t, b) })
	}
}

func shareX(t *testing.T, b backend) {
	nodes := nodesOf(t, b, testConfig(t, b), nil)
	srv := nodes[0]
	if resp, _ := fetch(t, srv.URL+"/api/v1/sharex", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d", resp.StatusCode)
	}
	resp, body := fetch(t, srv.URL+"/api/v1/sharex", http.Header{"Authorization": {"Bearer " + testKey + ":" + testToken}})
	if resp.StatusCode != 200 || !strings.HasSuffix(strings.Trim(resp.Header.Get("Content-Disposition"), `"`), ".sxcu") {
		t.Fatalf("sharex: %d %v", resp.StatusCode, resp.Header)
	}
	var c sxcu
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf(".sxcu %s: %v", body, err)
	}
	if c.Version == "" || !strings.Contains(c.DestinationType, "FileUploader") || c.RequestMethod != "POST" {
		t.Fatalf(".sxcu %s", body)
	}
	one, two := testData(5000, 61), append([]byte("\x89PNG\r\n\x1a\n"), testData(3000, 62)...)
	u1, del1 := sharexUpload(t, c, one)
	u2, del2 := sharexUpload(t, c, two)
	if del1 == del2 {
		t.Fatal("two files got one deletion URL")
	}
	for u, want := range map[string][]byte{u1: one, u2: two} {
		if resp, got := fetch(t, u, nil); resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d, %d bytes; want identical bytes", u, resp.StatusCode, len(got))
		}
	}
	// Its token is for uploads only: it opens no MirrorAce call.
	token := strings.TrimPrefix(c.Headers["Authorization"], "Bearer "+testKey+":")
	if msg := postForm(t, srv.URL+"/api/v1/file/upload", []field{{"api_key", testKey}, {"api_token", token}}).errText(t); !strings.Contains(msg, "invalid") {
		t.Fatalf("the .sxcu's token on file/upload: %q", msg)
	}

	// The deletion URL works on every node.
	if last := nodes[len(nodes)-1]; last != srv {
		del1 = strings.Replace(del1, srv.URL, last.URL, 1)
	}
	resp, page := fetch(t, del1, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<form method="post"`) || !strings.Contains(string(page), "Delete ") {
		t.Fatalf("GET deletion URL: %d %s", resp.StatusCode, page)
	}
	if resp, got := fetch(t, u1, nil); resp.StatusCode != 200 || !bytes.Equal(got, one) {
		t.Fatalf("a GET of the deletion URL deleted the file: %d", resp.StatusCode)
	}
	wrong := del1[:len(del1)-4] + "0000"
	if resp, _ := doRaw(t, mustRequest(t, http.MethodPost, wrong)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST to a wrong secret: %d", resp.StatusCode)
	}
	if resp, page := doRaw(t, mustRequest(t, http.MethodPost, del1)); resp.StatusCode != 200 || !strings.Contains(string(page), "is deleted") {
		t.Fatalf("POST deletion URL: %d %s", resp.StatusCode, page)
	}
	if resp, _ := fetch(t, u1, nil); resp.StatusCode != http.StatusGone {
		t.Fatalf("deleted file: %d, want 410", resp.StatusCode)
	}
	if resp, got := fetch(t, u2, nil); resp.StatusCode != 200 || !bytes.Equal(got, two) {
		t.Fatalf("the other file after the delete: %d", resp.StatusCode)
	}
	if n := storedObjects(t, srv); n != 2 {
		t.Fatalf("%d objects stored, want the other file's two copies", n)
	}
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
