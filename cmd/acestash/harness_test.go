package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/storetest"
)

// Test accounts configured on every test server.
const (
	testKey    = "0123456789abcdefabcdefabcdef0001"
	testToken  = "0123456789abcdefabcdefabcdef0002"
	otherKey   = "0123456789abcdefabcdefabcdef0003"
	otherToken = "0123456789abcdefabcdefabcdef0004"
)

// backend fills in the parts of a config that choose the store and mirrors.
type backend struct {
	name  string
	setup func(t *testing.T, cfg *Config)
}

// embedded is the default: the bbolt store and directory mirrors.
var embedded = backend{"embedded", func(t *testing.T, cfg *Config) {
	cfg.Mirrors = []MirrorConfig{
		{ID: "1", Name: "disk one", Type: "fs", Path: t.TempDir()},
		{ID: "2", Name: "disk two", Type: "fs", Path: t.TempDir()},
		{ID: "3", Name: "disk three", Type: "fs", Path: t.TempDir()},
	}
}}

// testConfig is a config for a server on a free port with two accounts:
// testKey may use mirrors 1 and 2 (at most 2), otherKey any mirror.
func testConfig(t *testing.T, b backend) Config {
	cfg := Config{
		DataDir:  t.TempDir(),
		LogLevel: "warn",
		Accounts: []AccountConfig{
			{Settings: store.Settings{Name: "Test User", Mirrors: []string{"1", "2"}, DefaultMirrors: []string{"1", "2"}, MaxMirrors: 2},
				APIKey: testKey, APIToken: testToken},
			{Settings: store.Settings{Name: "other"}, APIKey: otherKey, APIToken: otherToken},
		},
	}
	b.setup(t, &cfg)
	return cfg
}

// skipShort skips a test under -short, the fast tier that runs without
// Redis, MinIO, Chromium or Node (`make test` runs everything); needs says
// what the test needs that the fast tier lacks.
func skipShort(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs " + needs + ": skipped under -short")
	}
}

// testServer is a running acestash node.
type testServer struct {
	URL   string
	cfg   Config
	app   *app
	stop  func()
	clock *storetest.Clock
}

// start runs a node with cfg until the test ends (or Stop).
func start(t *testing.T, cfg Config, clock *storetest.Clock) *testServer {
	t.Helper()
	return startLogged(t, cfg, clock, testLog(t))
}

// testLog sends a node's warnings and errors to the test log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startLogged is start with the node logging to log.
func startLogged(t *testing.T, cfg Config, clock *storetest.Clock, log *slog.Logger) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startOnLogged(t, cfg, clock, ln, nil, log)
}

// startOn runs a node with cfg on ln until the test ends (or Stop); wrap,
// if set, wraps its HTTP handler.
func startOn(t *testing.T, cfg Config, clock *storetest.Clock, ln net.Listener, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	return startOnLogged(t, cfg, clock, ln, wrap, testLog(t))
}

// startOnLogged is startOn with the node logging to log.
func startOnLogged(t *testing.T, cfg Config, clock *storetest.Clock, ln net.Listener, wrap func(http.Handler) http.Handler, log *slog.Logger) *testServer {
	t.Helper()
	cfg.Listen = ln.Addr().String()
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if clock == nil {
		clock = storetest.NewClock(time.Now().UTC())
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, log, clock.Now)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if wrap != nil {
		a.handler = wrap(a.handler)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, ln) }()
	var once sync.Once
	s := &testServer{URL: cfg.PublicURL, cfg: cfg, app: a, clock: clock}
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			a.Close()
		})
	}
	t.Cleanup(s.stop)
	return s
}

// testWriter sends server logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// envelope is the MirrorAce answer as clients parse it.
type envelope struct {
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
}

// uploadInfo is file/upload's result; every number is a string on the wire.
type uploadInfo struct {
	Server          string          `json:"server"`
	ServerFile      string          `json:"server_file"`
	ServerRemote    string          `json:"server_remote"`
	CTracker        string          `json:"cTracker"`
	Mirrors         map[string]bool `json:"mirrors"`
	DefaultMirrors  []string        `json:"default_mirrors"`
	MaxChunkSize    string          `json:"max_chunk_size"`
	MaxFileSize     string          `json:"max_file_size"`
	MaxMirrors      string          `json:"max_mirrors"`
	UploadKey       string          `json:"upload_key"`
	UploadKeyExpiry string          `json:"upload_key_expiry"`
}

// uploadResult is upload's result.
type uploadResult struct {
	Name string `json:"name"`
	Size string `json:"size"`
	Slug string `json:"slug"`
	URL  string `json:"url"`
	Info string `json:"info"`
}

// field is one form field, in order.
type field struct{ name, value string }

// answer is an HTTP response as the tests look at it.
type answer struct {
	code        int
	body        []byte
	contentType string
	env         envelope
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.code, a.body) }

// result decodes the envelope's result into v, failing on any error status.
func (a answer) result(t testing.TB, v any) {
	t.Helper()
	if a.code != 200 || a.env.Status != "success" {
		t.Fatalf("want success, got %s", a)
	}
	if err := json.Unmarshal(a.env.Result, v); err != nil {
		t.Fatalf("result %s does not decode into %T: %v", a.env.Result, v, err)
	}
}

// errText returns the envelope's error message, failing unless the answer
// is a 200 with status "error" (how clients see request errors).
func (a answer) errText(t testing.TB) string {
	t.Helper()
	var msg string
	if a.code != 200 || a.env.Status != "error" || json.Unmarshal(a.env.Result, &msg) != nil {
		t.Fatalf("want a 200 envelope error, got %s", a)
	}
	return msg
}

// errTextCode returns the envelope's error message of an answer with the
// HTTP status code.
func (a answer) errTextCode(t testing.TB, code int) string {
	t.Helper()
	var msg string
	if a.code != code || a.env.Status != "error" || json.Unmarshal(a.env.Result, &msg) != nil {
		t.Fatalf("want a %d envelope error, got %s", code, a)
	}
	return msg
}

func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{code: resp.StatusCode, body: body, contentType: resp.Header.Get("Content-Type")}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &a.env); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", req.Method, req.URL, body)
		}
	}
	return a
}

// postForm sends fields url-encoded.
func postForm(t testing.TB, u string, fields []field) answer {
	t.Helper()
	v := url.Values{}
	for _, f := range fields {
		v.Add(f.name, f.value)
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

// multipartBody encodes fields and, if fileField is set, a file part.
func multipartBody(t testing.TB, fields []field, fileField, fileName string, data []byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := w.WriteField(f.name, f.value); err != nil {
			t.Fatal(err)
		}
	}
	if fileField != "" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, fileField, fileName))
		h.Set("Content-Type", "application/octet-stream")
		p, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		p.Write(data)
	}
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

// postMultipart sends fields and an optional file as multipart/form-data.
func postMultipart(t testing.TB, u string, fields []field, fileField, fileName string, data []byte, hdr http.Header) answer {
	t.Helper()
	return postMultipartAfter(t, u, fields, fileName, fileField, data, nil, hdr)
}

// postMultipartAfter sends the fields before, then the file, then the
// fields after, as multipart/form-data.
func postMultipartAfter(t testing.TB, u string, before []field, fileName, fileField string, data []byte, after []field, hdr http.Header) answer {
	t.Helper()
	ct, body := multipartBody(t, before, fileField, fileName, data)
	boundary := strings.TrimPrefix(ct, "multipart/form-data; boundary=")
	var tail bytes.Buffer
	for _, f := range after {
		fmt.Fprintf(&tail, "--%s\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", boundary, f.name, f.value)
	}
	fmt.Fprintf(&tail, "--%s--\r\n", boundary)
	body = append(bytes.TrimSuffix(body, []byte("--"+boundary+"--\r\n")), tail.Bytes()...)
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", ct)
	return do(t, req)
}

// fetch GETs u and returns the status and body.
func fetch(t testing.TB, u string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return doRaw(t, req)
}

// doRaw sends req and returns the response and its body.
func doRaw(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// testData returns n deterministic, non-repeating-looking bytes.
func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func init() {
	// The tests talk to loopback only; never through a proxy.
	os.Unsetenv("HTTP_PROXY")
	os.Unsetenv("http_proxy")
}

// fileInfo returns file/info's record of one slug, as the account sees it.
func fileInfo(t *testing.T, srv *testServer, key, token, slug string) map[string]string {
	t.Helper()
	var info map[string]map[string]string
	postForm(t, srv.URL+"/api/v1/file/info", []field{{"api_key", key}, {"api_token", token}, {"files", slug}}).result(t, &info)
	return info[slug]
}

// storedObjects counts what the server's mirrors hold: finished objects
// and anything staged for uploads in progress.
func storedObjects(t *testing.T, srv *testServer) int {
	t.Helper()
	n := 0
	for _, m := range srv.cfg.Mirrors {
		switch m.Type {
		case "fs":
			err := filepath.WalkDir(m.Path, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				// A health check's probe file (.uploads/.ping-*) is not an
				// object, and may be there for a moment at any time.
				if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".ping-") {
					n++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		case "s3":
			n += s3Objects(t, m)
		}
	}
	return n
}
