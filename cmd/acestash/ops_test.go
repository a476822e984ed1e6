package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log the server writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged lines that contain every one of parts.
func (b *syncBuffer) lines(parts ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
next:
	for _, l := range strings.Split(b.buf.String(), "\n") {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// TestRequestIDs: every request is logged once with its id, which is the
// client's X-Request-Id when that is sane and a new one otherwise, comes
// back in X-Request-Id, and names the lines the request caused in chunks.
func TestRequestIDs(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.WriteQuorum = 1
	var logs syncBuffer
	srv := startLogged(t, cfg, nil, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "probe-7")
	resp, body := doRaw(t, req)
	if got := resp.Header.Get("X-Request-Id"); got != "probe-7" || resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("GET /healthz with X-Request-Id probe-7: %s %q, X-Request-Id %q", resp.Status, body, got)
	}
	if l := logs.lines("msg=request", "request_id=probe-7"); len(l) != 1 ||
		!strings.Contains(l[0], "route=/healthz") || !strings.Contains(l[0], "status=200") || !strings.Contains(l[0], "method=GET") {
		t.Fatalf("want one request line for probe-7 with route, method and status, got %q", l)
	}

	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "two words and a \"quote\"")
	resp, _ = doRaw(t, req)
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 36 || strings.Contains(id, " ") {
		t.Fatalf("an insane X-Request-Id must be replaced by a UUID, got %q", id)
	}
	if l := logs.lines("msg=request", "request_id="+id); len(l) != 1 {
		t.Fatalf("want one request line for the new id %s, got %q", id, l)
	}

	// Mirror 2 breaks: the upload goes to mirror 1 (quorum 1) and chunks
	// logs that it dropped mirror 2, naming the request.
	if err := os.RemoveAll(cfg.Mirrors[1].Path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Mirrors[1].Path, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cfg.Mirrors[1].Path) })
	u := newUpload(t, srv, "1", "2")
	ct, data := multipartBody(t, u.fields, "files[]", "f.bin", testData(1000, 3))
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/api/v1/upload", bytes.NewReader(data))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Request-Id", "upload-42")
	a := do(t, req)
	var res uploadResult
	a.result(t, &res)
	if l := logs.lines("mirror dropped from upload", "mirror=2", "request_id=upload-42"); len(l) != 1 {
		t.Fatalf("want chunks' line about mirror 2 with request_id=upload-42, got %q\nall:\n%s", l, strings.Join(logs.lines(), "\n"))
	}
	if l := logs.lines("msg=request", "request_id=upload-42", "route=/api/v1/upload", fmt.Sprintf("bytes_in=%d", len(data))); len(l) != 1 {
		t.Fatalf("want one request line for upload-42 with its route and body size, got %q", l)
	}
}

// TestGracefulStop sends SIGTERM to a real acestash process while a chunk
// is half way through its body: the process stops accepting connections,
// the chunk completes the upload, the process exits 0, and the file comes
// back byte for byte after a restart.
func TestGracefulStop(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Limits.MaxChunkSize = 1 << 20
	p := startProc(t, cfg)
	srv := &testServer{URL: p.URL, cfg: cfg}
	data := testData(2<<20, 11)
	u := newUpload(t, srv, "1", "2")
	var r uploadResult
	u.send(fmt.Sprintf("bytes 0-%d/%d", 1<<20-1, len(data)), data[:1<<20]).result(t, &r)

	ct, body := multipartBody(t, u.fields, "files[]", "f.bin", data[1<<20:])
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // never leave the client waiting
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/api/v1/upload", pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", 1<<20, len(data)-1, len(data)))
	answers := make(chan answer, 1)
	errs := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			errs <- err
			return
		}
		defer resp.Body.Close()
		a := answer{code: resp.StatusCode}
		a.body, _ = io.ReadAll(resp.Body)
		json.Unmarshal(a.body, &a.env)
		answers <- a
	}()
	half := len(body) / 2
	if _, err := pw.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	waitInProgress(t, p) // the server is receiving the chunk
	p.signal(syscall.SIGTERM)
	p.waitLine("shutting down")
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // not a connection kept from before
	if resp, err := fresh.Get(p.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a new connection after SIGTERM was answered: %s", resp.Status)
	}
	if _, err := pw.Write(body[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	select {
	case err := <-errs:
		t.Fatalf("the chunk in flight at SIGTERM failed: %v\n%s", err, p.log())
	case a := <-answers:
		a.result(t, &r)
		if r.Info != "complete" {
			t.Fatalf("the chunk in flight at SIGTERM: %s", a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.wait(ctx); err != nil {
		t.Fatalf("acestash exited with %v after SIGTERM, want 0:\n%s", err, p.log())
	}

	p.run() // the same config and data directory
	resp, got := fetch(t, p.URL+"/m/"+r.Slug+"/download", nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("download after restart: %s, %d bytes, equal %v", resp.Status, len(got), bytes.Equal(got, data))
	}
	p.stop()
}

// TestGraceRunsOut: a request still running when shutdown_grace ends is
// cut off, and the process exits saying so.
func TestGraceRunsOut(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.ShutdownGrace = time.Second
	p := startProc(t, cfg)
	u := newUpload(t, &testServer{URL: p.URL, cfg: cfg}, "1")
	ct, body := multipartBody(t, u.fields, "files[]", "f.bin", testData(1000, 1))
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // never leave the client waiting
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/api/v1/upload", pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", ct)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	waitInProgress(t, p)
	start := time.Now()
	p.signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := p.wait(ctx)
	if took := time.Since(start); err == nil || took < time.Second || took > 10*time.Second {
		t.Fatalf("exit %v after %v, want a failure after the 1s grace", err, took)
	}
	p.waitLine("requests still running after 1s")
	pw.CloseWithError(io.ErrUnexpectedEOF) // the client gives up too
	<-done
}

// serve says it is shutting down, and has ended tus PATCHes, before it says
// it stopped and returns: the line is logged by Shutdown's hook, which runs
// in a goroutine of its own.
func TestGracefulStopLogOrder(t *testing.T) {
	h := &shutdownLog{stopped: make(chan struct{})}
	s := startLogged(t, testConfig(t, embedded), nil, slog.New(h))
	s.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.sawStopped || h.early != "" {
		t.Fatalf("stopped logged: %v; %s", h.sawStopped, h.early)
	}
	select {
	case <-s.app.stopping.Done():
	default:
		t.Fatal("serve returned before tus PATCHes were told to end")
	}
}

// shutdownLog notes whether "stopped" is logged before "shutting down" is
// done being logged. It holds the "shutting down" line for a moment, or
// until "stopped" comes, so that a serve which does not wait for it is
// caught every time.
type shutdownLog struct {
	mu                   sync.Mutex
	shutting, sawStopped bool
	holding              bool
	early                string // why "stopped" came too early
	stopped              chan struct{}
}

func (l *shutdownLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *shutdownLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *shutdownLog) WithGroup(string) slog.Handler            { return l }

func (l *shutdownLog) Handle(_ context.Context, r slog.Record) error {
	switch {
	case strings.HasPrefix(r.Message, "shutting down"):
		l.mu.Lock()
		l.shutting, l.holding = true, true
		l.mu.Unlock()
		select {
		case <-l.stopped:
		case <-time.After(300 * time.Millisecond):
		}
		l.mu.Lock()
		l.holding = false
		l.mu.Unlock()
	case r.Message == "stopped":
		l.mu.Lock()
		defer l.mu.Unlock()
		l.sawStopped = true
		switch {
		case !l.shutting:
			l.early = "before \"shutting down\""
		case l.holding:
			l.early = "while \"shutting down\" was being logged"
		}
		close(l.stopped)
	}
	return nil
}

// waitInProgress waits until the node counts one upload in progress.
func waitInProgress(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for scrapeMetrics(t, p.URL, "").value("acestash_uploads_in_progress") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the upload never showed as in progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
