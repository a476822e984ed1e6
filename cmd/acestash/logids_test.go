package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cutRequest sends head and the first n bytes of body on a connection of
// its own, then closes it: a client that went away mid-body.
func cutRequest(t *testing.T, base, head string, body []byte, n int) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(append([]byte(head), body[:n]...)); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for { // until the server answers and closes, so its lines are written
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}

var requestID = regexp.MustCompile(`request_id=(\S+)`)

// TestEveryLineHasRequestID runs a chunked MirrorAce upload and a tus
// upload, each with a request cut off mid-body, a refused request and a
// resume, on a node logging at debug level: every line the node writes
// meanwhile carries a request_id, and each of those ids is that of a
// request the node logged.
func TestEveryLineHasRequestID(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Limits.MaxChunkSize = testChunk
	var logs syncBuffer
	srv := startLogged(t, cfg, nil, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	before := len(logs.lines())

	// Chunked: the first chunk cut off, sent again, a chunk at a wrong
	// offset refused, then the rest.
	data := testData(3*testChunk+99, 5)
	u := newUpload(t, srv, "1", "2")
	rng := func(i int) (string, []byte) {
		off, end := i*testChunk, min((i+1)*testChunk, len(data))
		return fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data)), data[off:end]
	}
	h, chunk := rng(0)
	ct, body := multipartBody(t, u.fields, "files[]", "f.bin", chunk)
	cutRequest(t, srv.URL, fmt.Sprintf("POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Range: %s\r\nContent-Length: %d\r\n\r\n",
		ct, h, len(body)), body, len(body)/2)
	if a := u.send(h, chunk); a.env.Status != "success" {
		t.Fatalf("chunk 0 again: %s", a)
	}
	if a := u.send(fmt.Sprintf("bytes 5-10/%d", len(data)), data[5:11]); a.env.Status != "error" {
		t.Fatalf("a chunk at a wrong offset: %s", a)
	}
	var res uploadResult
	for i := 1; i <= 3; i++ {
		h, chunk = rng(i)
		u.send(h, chunk).result(t, &res)
	}
	checkComplete(t, srv, res, "f.bin", data)

	// tus: a PATCH cut off, HEAD, a PATCH at a wrong offset, the rest.
	bearer := "Bearer " + testKey + ":" + testToken
	tusDo := func(method, path string, hdr map[string]string, body []byte) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", bearer)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return doRaw(t, req)
	}
	file := testData(6<<20+7, 6)
	resp, _ := tusDo(http.MethodPost, "/files/", map[string]string{"Upload-Length": strconv.Itoa(len(file)),
		"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte("t.bin"))}, nil)
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("POST /files/: %s %v", resp.Status, err)
	}
	cutRequest(t, srv.URL, fmt.Sprintf("PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: %s\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: %d\r\n\r\n", loc.Path, bearer, len(file)), file, 3<<20)
	resp, _ = tusDo(http.MethodHead, loc.Path, nil, nil)
	off, err := strconv.Atoi(resp.Header.Get("Upload-Offset"))
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("HEAD: %s %q", resp.Status, resp.Header.Get("Upload-Offset"))
	}
	patch := map[string]string{"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.Itoa(off + 1)}
	if resp, _ = tusDo(http.MethodPatch, loc.Path, patch, file[off+1:]); resp.StatusCode != http.StatusConflict {
		t.Fatalf("PATCH at a wrong offset: %s", resp.Status)
	}
	patch["Upload-Offset"] = strconv.Itoa(off)
	if resp, body := tusDo(http.MethodPatch, loc.Path, patch, file[off:]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH the rest from %d: %s %s", off, resp.Status, body)
	}

	lines := logs.lines()[before:]
	requests := map[string]bool{}
	for _, l := range lines {
		if m := requestID.FindStringSubmatch(l); m != nil && strings.Contains(l, "msg=request ") {
			requests[m[1]] = true
		}
	}
	caused := 0
	for _, l := range lines {
		if l == "" {
			continue
		}
		m := requestID.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("a line without request_id: %s", l)
			continue
		}
		if !requests[m[1]] {
			t.Errorf("a line whose request_id names no request the node logged: %s", l)
		}
		if !strings.Contains(l, "msg=request ") {
			caused++
		}
	}
	if len(requests) < 10 || caused == 0 {
		t.Fatalf("%d requests logged and %d other lines; want every request and the lines they caused:\n%s",
			len(requests), caused, strings.Join(lines, "\n"))
	}
	t.Logf("%d requests, %d lines they caused, each with its request id", len(requests), caused)
}
