package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the first code block of the language in the
// README's tus section.
func readmeBlock(t *testing.T, lang string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## tus:")
	if i < 0 {
		t.Fatal("README.md has no tus section")
	}
	s = s[i+1:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	_, block, ok := strings.Cut(s, "```"+lang+"\n")
	if !ok {
		t.Fatalf("the README's tus section has no %s block", lang)
	}
	block, _, _ = strings.Cut(block, "```")
	return block
}

// replaceAll replaces each old with its new in s, failing if one is not
// there: the README changed and the test must follow.
func replaceAll(t *testing.T, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("the README snippet no longer contains %q", pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// TestReadmeTusJS runs the README's tus-js-client snippet with Node as
// written, but for the server's address and credentials.
func TestReadmeTusJS(t *testing.T) {
	skipShort(t, "Node and tus-js-client")
	srv := start(t, testConfig(t, embedded), nil)
	dir := t.TempDir()
	modules, err := filepath.Abs(filepath.Join(tusClientDir, "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(modules, "tus-js-client")); err != nil {
		t.Fatalf("tus-js-client is not installed; make test-deps installs it: %v", err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	data := testData(2<<20+5, 21)
	if err := os.WriteFile(filepath.Join(dir, "film.mkv"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	code := replaceAll(t, readmeBlock(t, "js"),
		"http://127.0.0.1:8080/files/", srv.URL+"/files/",
		"<api_key>:<api_token>", testKey+":"+testToken)
	if err := os.WriteFile(filepath.Join(dir, "upload.mjs"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "node", "upload.mjs")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node upload.mjs: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`file page: (\S+)/m/(\S+)`).FindSubmatch(out)
	if m == nil || !bytes.Contains(out, []byte("done: "+srv.URL+"/files/")) {
		t.Fatalf("the snippet printed %q", out)
	}
	checkTus(t, srv, tusResult{Page: string(m[1]) + "/m/" + string(m[2]), Slug: string(m[2])}, "film.mkv", data, "1")
}

// TestReadmeUppy loads the README's Uppy snippet in headless Chromium from
// another origin, as written but for the bundle's address (the same file,
// from npm), the server's address and credentials, and has it upload a
// file.
func TestReadmeUppy(t *testing.T) {
	skipShort(t, "Chromium and Uppy")
	srv := start(t, testConfig(t, embedded), nil)
	dist := filepath.Join(tusClientDir, "node_modules", "uppy", "dist")
	if _, err := os.Stat(filepath.Join(dist, "uppy.min.mjs")); err != nil {
		t.Fatalf("Uppy is not installed; make test-deps installs it: %v", err)
	}
	data := testData(1<<20+3, 22)
	// The snippet as written, then a file added and uploaded as a user
	// would with the Dashboard.
	page := replaceAll(t, readmeBlock(t, "html"),
		"https://releases.transloadit.com/uppy/v4.18.3/", "/",
		"https://files.example.org/files/", srv.URL+"/files/",
		"<api_key>:<api_token>", testKey+":"+testToken,
		"</script>", `
  uppy.on('upload-success', (file, response) => {
    document.getElementById('result').textContent = 'OK ' + response.body.xhr.getResponseHeader('Acestash-Url')
  })
  uppy.on('upload-error', (file, err) => { document.getElementById('result').textContent = 'ERR ' + err })
  const data = await (await fetch('/data.bin')).blob()
  uppy.addFile({ name: 'uppy.bin', type: 'application/octet-stream', data })
  uppy.upload()
</script>
<pre id="result">waiting</pre>`)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(page))
		case "/data.bin":
			w.Write(data)
		default:
			http.ServeFile(w, r, filepath.Join(dist, filepath.Base(r.URL.Path)))
		}
	}))
	defer site.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chromium", "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=30000", "--dump-dom", site.URL+"/")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.Bytes())
	}
	m := regexp.MustCompile(`<pre id="result">OK (\S+)/m/([^<\s]+)</pre>`).FindSubmatch(out)
	if m == nil {
		res := regexp.MustCompile(`<pre id="result">[^<]*</pre>`).Find(out)
		t.Fatalf("the page says %s\n%s", res, stderr.Bytes())
	}
	checkTus(t, srv, tusResult{Page: string(m[1]) + "/m/" + string(m[2]), Slug: string(m[2])}, "uppy.bin", data, "1")
}
