package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// testChunk is the max_chunk_size of the end-to-end servers: small, so
// every size below crosses chunk boundaries.
const testChunk = 1000

// backends lists the store/mirror combinations the end-to-end suite runs
// on: the embedded default, and Redis with three MinIO mirrors.
var backends = []backend{embedded, scaled}

func smallChunkServer(t *testing.T, b backend) *testServer {
	cfg := testConfig(t, b)
	cfg.Limits.MaxChunkSize = testChunk
	return start(t, cfg, nil)
}

// TestClients uploads files of every interesting size with each public
// client's exact request shapes and checks the bytes that come back.
func TestClients(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			srv := smallChunkServer(t, b)
			c := testChunk
			for _, cl := range clients {
				for _, size := range []int{0, 1, c - 1, c, c + 1, c + 2, 5*c + 3, 5*c + 17} {
					if size == 0 && cl.name == "php" {
						continue // the PHP example loops ceil(0/C) = 0 times: it cannot send an empty file
					}
					t.Run(fmt.Sprintf("%s/%d", cl.name, size), func(t *testing.T) {
						t.Parallel()
						data := testData(size, byte(size))
						name := fmt.Sprintf("%s file %d.bin", cl.name, size)
						res := cl.upload(t, srv.URL, data, name)
						checkComplete(t, srv, res, name, data)
					})
				}
			}
		})
	}
}

// checkComplete checks a complete result, the file's page, its download
// and file/info against the bytes that were sent.
func checkComplete(t *testing.T, srv *testServer, res uploadResult, name string, data []byte) {
	t.Helper()
	if res.Info != "complete" || res.Name != name || res.Size != strconv.Itoa(len(data)) {
		t.Fatalf("result %+v, want complete %q of %d bytes", res, name, len(data))
	}
	if res.URL != srv.URL+"/m/"+res.Slug || !regexp.MustCompile(`^[0-9A-Za-z]{8}$`).MatchString(res.Slug) {
		t.Fatalf("url %q / slug %q", res.URL, res.Slug)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	resp, page := fetch(t, res.URL, nil)
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte(want)) ||
		!bytes.Contains(page, []byte("/m/"+res.Slug+"/download")) {
		t.Fatalf("page %d lacks the hash or the link:\n%s", resp.StatusCode, page)
	}
	resp, got := fetch(t, res.URL+"/download", nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("download: HTTP %d, %d bytes, want the %d bytes sent", resp.StatusCode, len(got), len(data))
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(data)) || resp.Header.Get("ETag") != `"`+want+`"` ||
		resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("download headers %v", resp.Header)
	}
	var info map[string]map[string]string
	postForm(t, srv.URL+"/api/v1/file/info", []field{{"api_key", testKey}, {"api_token", testToken}, {"files", res.Slug}}).result(t, &info)
	fi := info[res.Slug]
	if fi["name"] != name || fi["size"] != strconv.Itoa(len(data)) || fi["slug"] != res.Slug ||
		fi["url"] != res.URL || fi["status"] != "active" {
		t.Fatalf("file/info %v", fi)
	}
	if id, err := strconv.ParseInt(fi["id"], 10, 64); err != nil || id <= 0 {
		t.Fatalf("file/info id %q is not a positive number", fi["id"])
	}
}

// upload is a MirrorAce upload driven request by request.
type upload struct {
	t      *testing.T
	srv    *testServer
	info   uploadInfo
	fields []field
}

func newUpload(t *testing.T, srv *testServer, mirrors ...string) *upload {
	info := getUploadInfo(t, srv.URL, false)
	u := &upload{t: t, srv: srv, info: info, fields: []field{
		{"api_key", testKey}, {"api_token", testToken},
		{"cTracker", info.CTracker}, {"upload_key", info.UploadKey},
	}}
	if len(mirrors) == 0 {
		mirrors = []string{"1", "2"}
	}
	for _, m := range mirrors {
		u.fields = append(u.fields, field{"mirrors[]", m})
	}
	return u
}

// send posts one chunk with the Content-Range header h ("" for none).
func (u *upload) send(h string, chunk []byte) answer {
	var hdr http.Header
	if h != "" {
		hdr = http.Header{"Content-Range": {h}}
	}
	return postMultipart(u.t, u.srv.URL+"/api/v1/upload", u.fields, "files[]", "f.bin", chunk, hdr)
}

// TestRetriedChunk cuts a chunk off mid-body, sends it again, then repeats
// and replaces a whole chunk: the file must come out exact.
func TestRetriedChunk(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			srv := smallChunkServer(t, b)
			data := testData(3*testChunk, 7)
			u := newUpload(t, srv)
			rng := func(i int) string {
				return fmt.Sprintf("bytes %d-%d/%d", i*testChunk, (i+1)*testChunk-1, len(data))
			}
			part := func(i int) []byte { return data[i*testChunk : (i+1)*testChunk] }

			var r uploadResult
			u.send(rng(0), part(0)).result(t, &r)
			cutOff(t, srv, u, rng(1), part(1))
			u.send(rng(1), part(1)).result(t, &r)
			if r.Info != "continue" {
				t.Fatalf("after chunk 1: %+v", r)
			}
			// The same chunk again, first with wrong bytes, then right:
			// each replaces the one before.
			u.send(rng(1), testData(testChunk, 99)).result(t, &r)
			u.send(rng(1), part(1)).result(t, &r)
			u.send(rng(2), part(2)).result(t, &r)
			if r.Info != "complete" {
				t.Fatalf("after the last chunk: %+v", r)
			}
			// The last chunk again, exactly: the same answer.
			var again uploadResult
			u.send(rng(2), part(2)).result(t, &again)
			if again != r {
				t.Fatalf("repeat of the last chunk: %+v, first %+v", again, r)
			}
			checkComplete(t, srv, r, "f.bin", data)
			// A different last chunk after completion is refused.
			msg := u.send(rng(2), testData(testChunk, 5)).errText(t)
			if !strings.Contains(msg, "already complete") {
				t.Fatalf("changed chunk after completion: %q", msg)
			}
		})
	}
}

// cutOff sends a chunk whose body stops half way, then closes the
// connection, as a client that loses its network does.
func cutOff(t *testing.T, srv *testServer, u *upload, h string, chunk []byte) {
	t.Helper()
	ct, body := multipartBody(t, u.fields, "files[]", "f.bin", chunk)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Range: %s\r\nContent-Length: %d\r\n\r\n", ct, h, len(body))
	conn.Write(body[:len(body)-len(chunk)/2])
	conn.Close()
}
