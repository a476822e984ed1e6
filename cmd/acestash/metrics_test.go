package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestMetrics uploads and downloads files through a node and checks, in
// /metrics parsed from the exposition format, that every counter moved by
// exactly what was done: requests by dialect, route, method and status,
// body bytes, transfer durations, mirror and store operations, a refused
// remote fetch and a reaped upload. /metrics wants its bearer token.
func TestMetrics(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Limits.MaxChunkSize = testChunk
	cfg.MetricsToken = "scrape-me"
	srv := start(t, cfg, nil)

	before := scrapeMetrics(t, srv.URL, cfg.MetricsToken)
	resp, _ := fetch(t, srv.URL+"/metrics", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without its token: %s, want 401", resp.Status)
	}
	resp, _ = fetch(t, srv.URL+"/metrics", http.Header{"Authorization": {"Bearer wrong"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics with a wrong token: %s, want 401", resp.Status)
	}

	raw := testData(3000, 1) // Mirage: one request, one Put on each default mirror
	mirageURL(t, srv, mirageUpload(t, srv.URL+"/upload", raw, false))

	data := testData(2*testChunk, 2) // MirrorAce: file/upload, then two chunks
	u := newUpload(t, srv, "1", "2")
	var r uploadResult
	u.send(fmt.Sprintf("bytes 0-%d/%d", testChunk-1, len(data)), data[:testChunk]).result(t, &r)
	u.send(fmt.Sprintf("bytes %d-%d/%d", testChunk, len(data)-1, len(data)), data[testChunk:]).result(t, &r)
	if r.Info != "complete" {
		t.Fatalf("upload: %+v", r)
	}
	resp, body := fetch(t, srv.URL+"/m/"+r.Slug+"/download", nil)
	if resp.StatusCode != 200 || len(body) != len(data) {
		t.Fatalf("download: %s, %d bytes", resp.Status, len(body))
	}

	// A remote upload of a loopback address is refused.
	rem := newUpload(t, srv, "1")
	msg := postForm(t, srv.URL+"/api/v1/upload/remote", append(rem.fields, field{"url", "http://127.0.0.1:1/x"})).errText(t)
	if msg == "" {
		t.Fatal("remote upload of a loopback address was not refused")
	}

	// An upload left after its first chunk is reaped once it is idle, and
	// so is the finished upload's session.
	idle := newUpload(t, srv, "1")
	idle.send(fmt.Sprintf("bytes 0-%d/%d", testChunk-1, 2*testChunk), data[:testChunk]).result(t, new(uploadResult))
	srv.clock.Advance(srv.cfg.Limits.SessionIdle + time.Minute)
	srv.app.reap(t.Context())

	after := scrapeMetrics(t, srv.URL, cfg.MetricsToken)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"acestash_http_requests_total", []string{"dialect=mirage", "route=/upload", "method=POST", "code=200"}, 1},
		{"acestash_http_requests_total", []string{"dialect=mirrorace", "route=/api/v1/file/upload", "method=POST", "code=200"}, 3},
		{"acestash_http_requests_total", []string{"dialect=mirrorace", "route=/api/v1/upload", "method=POST", "code=200"}, 3},
		{"acestash_http_requests_total", []string{"dialect=mirrorace", "route=/api/v1/upload/remote", "method=POST", "code=200"}, 1},
		{"acestash_http_requests_total", []string{"dialect=pages", "route=/m/:slug/download", "method=GET", "code=200"}, 1},
		{"acestash_http_requests_total", []string{"dialect=ops", "route=/metrics", "code=401"}, 2},
		{"acestash_http_request_body_bytes_total", []string{"dialect=mirage"}, float64(len(raw))},
		{"acestash_http_response_body_bytes_total", []string{"dialect=pages"}, float64(len(data))},
		{"acestash_upload_duration_seconds", []string{"dialect=mirage"}, 1},
		{"acestash_upload_duration_seconds", []string{"dialect=mirrorace"}, 4}, // 3 chunks and the remote upload
		{"acestash_download_duration_seconds", []string{"dialect=pages"}, 1},
		{"acestash_uploads_in_progress", nil, 0},
		{"acestash_mirror_operation_duration_seconds", []string{"mirror=1", "op=put"}, 1},
		{"acestash_mirror_operation_duration_seconds", []string{"mirror=2", "op=put"}, 1},
		{"acestash_mirror_operation_duration_seconds", []string{"mirror=1", "op=begin"}, 2}, // the file, the reaped upload
		{"acestash_mirror_operation_duration_seconds", []string{"mirror=2", "op=begin"}, 1},
		{"acestash_mirror_operation_duration_seconds", []string{"mirror=1", "op=complete"}, 1},
		{"acestash_mirror_operation_duration_seconds", []string{"mirror=1", "op=abort"}, 1}, // the reaped upload
		{"acestash_mirror_operation_duration_seconds", []string{"op=open"}, 1},
		{"acestash_mirror_errors_total", nil, 0},
		{"acestash_store_operation_duration_seconds", []string{"op=create_file"}, 2},
		{"acestash_store_errors_total", nil, 0},
		{"acestash_remote_fetches_total", []string{"result=refused"}, 1},
		{"acestash_reaped_sessions_total", nil, 2}, // the idle upload and the finished upload's session
	} {
		if got := after.value(c.name, c.labels...) - before.value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, id := range []string{"1", "2", "3"} {
		if got := after.value("acestash_mirror_up", "mirror="+id); got != 1 {
			t.Errorf("acestash_mirror_up{mirror=%q} = %v, want 1", id, got)
		}
	}
}
