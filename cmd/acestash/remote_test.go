package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// origin is a loopback web server that upload/remote fetches from.
type origin struct {
	*httptest.Server
	hits atomic.Int64
}

// newOrigin serves /file/<n> (n bytes of testData, with Content-Length),
// /stream/<n> (the same, chunked), /named (with Content-Disposition),
// /hop/<k> (k redirects, then /file/1000), /missing (404) and /slow.
func newOrigin(t *testing.T) *origin {
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		n := 0
		if len(p) > 1 {
			n, _ = strconv.Atoi(p[1])
		}
		switch p[0] {
		case "file":
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(testData(n, byte(n)))
		case "stream":
			data := testData(n, byte(n))
			for len(data) > 0 {
				k := min(len(data), 4096)
				w.Write(data[:k])
				w.(http.Flusher).Flush()
				data = data[k:]
			}
		case "named":
			w.Header().Set("Content-Disposition", `attachment; filename="../report 2026.pdf"`)
			w.Write(testData(700, 7))
		case "hop":
			if n == 0 {
				http.Redirect(w, r, "/file/1000", http.StatusFound)
				return
			}
			http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusFound)
		case "slow":
			time.Sleep(3 * time.Second)
		case "trickle": // headers at once, then the body too slowly
			w.Header().Set("Content-Length", "1000")
			w.Write(make([]byte, 10))
			w.(http.Flusher).Flush()
			time.Sleep(3 * time.Second)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(o.Close)
	return o
}

// remoteServer is a node that may fetch from 127.0.0.1 only.
func remoteServer(t *testing.T, b backend, edit func(*Config)) *testServer {
	cfg := testConfig(t, b)
	cfg.Remote.AllowCIDRs = []string{"127.0.0.1/32"}
	if edit != nil {
		edit(&cfg)
	}
	return start(t, cfg, nil)
}

// remoteUpload asks the server to fetch u with a fresh upload key.
func remoteUpload(t *testing.T, srv *testServer, u string, extra ...field) answer {
	t.Helper()
	up := newUpload(t, srv)
	return postForm(t, srv.URL+"/api/v1/upload/remote", append(append(up.fields, field{"url", u}), extra...))
}

func TestRemoteUpload(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			o := newOrigin(t)
			srv := remoteServer(t, b, nil)
			for _, c := range []struct {
				path, name string
				size       int
			}{
				{"/file/0", "0", 0}, {"/file/1", "1", 1}, {"/file/5000", "5000", 5000},
				{"/stream/1", "1", 1}, {"/stream/3000017", "3000017", 3000017},
				{"/named", ".._report 2026.pdf", 700}, {"/hop/4", "1000", 1000},
			} {
				var res uploadResult
				remoteUpload(t, srv, o.URL+c.path).result(t, &res)
				data := testData(c.size, byte(c.size))
				if c.path == "/named" {
					data = testData(700, 7)
				}
				checkComplete(t, srv, res, c.name, data)
			}
			// PHP's remote-upload script: mirrors[N] fields, and a password.
			up := newUpload(t, srv)
			fields := append(up.fields[:4:4], field{"mirrors[1]", "2"}, field{"url", o.URL + "/file/1500"},
				field{"file_password", "pw for remote"})
			var res uploadResult
			postForm(t, srv.URL+"/api/v1/upload/remote", fields).result(t, &res)
			f, err := srv.app.store.File(t.Context(), res.Slug)
			if err != nil || fmt.Sprint(f.Mirrors) != "[2]" {
				t.Fatalf("record %+v (%v): want it on mirror 2 only", f, err)
			}
			if resp, _ := fetch(t, res.URL+"/download", nil); resp.StatusCode != http.StatusForbidden {
				t.Errorf("password-protected remote upload served without it: %d", resp.StatusCode)
			}
			resp, got := fetch(t, res.URL+"/download", http.Header{"X-File-Password": {"pw for remote"}})
			if resp.StatusCode != 200 || !bytes.Equal(got, testData(1500, byte(1500%256))) {
				t.Errorf("with the password: %d, %d bytes", resp.StatusCode, len(got))
			}
		})
	}
}

func TestRemoteRefuses(t *testing.T) {
	o := newOrigin(t)
	port := o.Listener.Addr().(*net.TCPAddr).Port
	srv := remoteServer(t, embedded, func(c *Config) { c.Limits.MaxFileSize = 2000 })
	expect := func(u, want string) {
		t.Helper()
		if msg := remoteUpload(t, srv, u).errText(t); !strings.Contains(msg, want) {
			t.Errorf("%s: error %q does not say %q", u, msg, want)
		}
	}
	expect(o.URL+"/file/2001", "larger than the limit of 2000 bytes")
	expect(o.URL+"/stream/5000", "larger than the limit of 2000 bytes")
	expect(o.URL+"/missing", "404")
	expect(o.URL+"/hop/5", "redirects too many times")
	expect("ftp://127.0.0.1/x", `scheme "ftp" is not http or https`)
	expect("file:///etc/passwd", `scheme "file" is not http or https`)
	expect("http:///nohost", "has no host")
	expect("", "url is required")
	if n := storedObjects(t, srv); n != 0 {
		t.Errorf("refused fetches left %d objects", n)
	}

	// With no allow list, loopback is refused before any connection.
	strict := start(t, testConfig(t, embedded), nil)
	before := o.hits.Load()
	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/file/10", port),
		fmt.Sprintf("http://localhost:%d/file/10", port),
		fmt.Sprintf("http://[::1]:%d/file/10", port),
		fmt.Sprintf("http://0x7f.1:%d/file/10", port),
		fmt.Sprintf("http://2130706433:%d/file/10", port),
	} {
		if msg := remoteUpload(t, strict, u).errText(t); !strings.Contains(msg, "refused") {
			t.Errorf("%s: error %q, want it refused", u, msg)
		}
	}
	if n := o.hits.Load() - before; n != 0 {
		t.Errorf("the origin saw %d requests from refused fetches", n)
	}
	// An invalid upload key is refused before any fetch.
	up := newUpload(t, srv)
	up.fields[3].value = "0123456789abcdef0123456789abcdef"
	before = o.hits.Load()
	postForm(t, srv.URL+"/api/v1/upload/remote", append(up.fields, field{"url", o.URL + "/file/10"})).errText(t)
	if o.hits.Load() != before {
		t.Errorf("a request with a bad upload key reached the origin")
	}
}

func TestRemoteTimeoutAndSlots(t *testing.T) {
	o := newOrigin(t)
	srv := remoteServer(t, embedded, func(c *Config) {
		c.Remote.Timeout = 500 * time.Millisecond
		c.Remote.MaxConcurrent = 1
	})
	for _, p := range []string{"/slow", "/trickle"} {
		if msg := remoteUpload(t, srv, o.URL+p).errTextCode(t, http.StatusServiceUnavailable); !strings.Contains(msg, "took too long") {
			t.Errorf("%s: %q", p, msg)
		}
	}
	if n := storedObjects(t, srv); n != 0 {
		t.Errorf("timed-out fetches left %d objects", n)
	}
	// Two fetches at once on a node allowing one: one waits for nobody and
	// is told to retry.
	var wg sync.WaitGroup
	answers := make([]answer, 2)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = remoteUpload(t, srv, o.URL+"/slow")
		}()
	}
	wg.Wait()
	busy := 0
	for _, a := range answers {
		if a.code == http.StatusServiceUnavailable && bytes.Contains(a.body, []byte("try again shortly")) {
			busy++
		}
	}
	if busy != 1 {
		t.Errorf("answers %v: want exactly one told the node is busy", answers)
	}
}
