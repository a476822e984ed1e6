package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store/redisstore"
)

// crashChunk is the chunk size of the crash tests: over one 8 MiB piece,
// so a chunk is written to the mirrors while its body still arrives.
const crashChunk = 12 << 20

// halfSent starts a chunk's request on srv and sends the headers and part
// of the body, then waits until the node holds the upload's lease. The
// connection is left open, so the request goes on waiting for the rest.
func halfSent(t *testing.T, u *upload, st *redisstore.Store, h string, chunk []byte) net.Conn {
	t.Helper()
	ct, body := multipartBody(t, u.fields, "files[]", "f.bin", chunk)
	conn, err := net.Dial("tcp", strings.TrimPrefix(u.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Range: %s\r\nContent-Length: %d\r\n\r\n", ct, h, len(body))
	if _, err := conn.Write(body[:len(body)-len(chunk)/4]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sess, err := st.Session(t.Context(), u.info.UploadKey)
		if err == nil && sess.Lease != "" && sess.LeaseUntil.After(time.Now()) {
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never took the upload's lease: %+v, %v", sess, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// retryUntil sends a chunk until it succeeds, as a client does after a 503,
// and returns the answer and how long it took from since.
func retryUntil(t *testing.T, u *upload, h string, chunk []byte, since time.Time, limit time.Duration) (answer, time.Duration) {
	t.Helper()
	for {
		a := u.send(h, chunk)
		if a.env.Status == "success" {
			return a, time.Since(since)
		}
		if a.code != http.StatusServiceUnavailable {
			t.Fatalf("retry: %s, want success or 503", a)
		}
		if time.Since(since) > limit {
			t.Fatalf("the chunk is still refused %v after the crash: %s", time.Since(since), a)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestCrashMidChunk kills what a chunk's request depends on while the
// request holds the upload's lease and writes to the mirrors: the node
// itself (SIGKILL; the client moves to another node), or Redis (killed and
// brought back). Either way a retry of the chunk is taken within 30
// seconds and the file comes out whole.
func TestCrashMidChunk(t *testing.T) {
	for _, what := range []string{"node", "redis"} {
		t.Run(what, func(t *testing.T) {
			c, cfg := clusterConfig(t)
			cfg.Limits.MaxChunkSize = crashChunk
			st, err := redisstore.Open(t.Context(), c.redis.URL, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			nodes := []*node{startNode(t, cfg)}
			if what == "node" {
				nodes = append(nodes, startNode(t, cfg))
			}
			data := testData(2*crashChunk+4321, 9)
			rng := func(i int) (string, []byte) {
				off, end := i*crashChunk, min((i+1)*crashChunk, len(data))
				return fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data)), data[off:end]
			}
			u := newUpload(t, nodes[0].server(), "1", "2", "3")
			h, chunk := rng(0)
			if a := u.send(h, chunk); a.env.Status != "success" {
				t.Fatalf("chunk 0: %s", a)
			}
			h, chunk = rng(1)
			conn := halfSent(t, u, st, h, chunk)
			var since time.Time
			switch what {
			case "node":
				nodes[0].kill()
				since = time.Now()
				u.srv = nodes[1].server()
			case "redis":
				c.redis.Kill()
				conn.Write(bytes.Repeat([]byte{0}, len(chunk))) // the rest, and more: the node fails to record it
				conn.Close()
				c.redis.Restart()
				since = time.Now()
			}
			_, took := retryUntil(t, u, h, chunk, since, 30*time.Second)
			t.Logf("%s killed: the chunk was taken again after %v", what, took.Round(time.Millisecond))
			h, chunk = rng(2)
			var res uploadResult
			u.send(h, chunk).result(t, &res)
			if res.Info != "complete" {
				t.Fatalf("last chunk: %+v", res)
			}
			checkComplete(t, u.srv, res, "f.bin", data)
		})
	}
}

// TestTusNodeCrash SIGKILLs a node in the middle of a tus PATCH, as
// TestCrashMidChunk does a chunk's: HEAD on another node answers 200 with
// the offset the store holds within a few seconds (never a 5xx), and the
// upload resumes there from that offset within lease_time and a few
// seconds, the file whole.
func TestTusNodeCrash(t *testing.T) {
	c, cfg := clusterConfig(t)
	if cfg.LeaseTime == 0 {
		cfg.LeaseTime = chunks.DefaultLeaseTime
	}
	st, err := redisstore.Open(t.Context(), c.redis.URL, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nodes := []*node{startNode(t, cfg), startNode(t, cfg)}
	data := testData(20<<20+321, 11)
	bearer := "Bearer " + testKey + ":" + testToken
	tusReq := func(method, u string, hdr map[string]string, body []byte) *http.Request {
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", bearer)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return req
	}
	resp, _ := doRaw(t, tusReq(http.MethodPost, nodes[0].URL+"/files/", map[string]string{
		"Upload-Length":   strconv.Itoa(len(data)),
		"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte("crash.bin")) + ",mirrors " + base64.StdEncoding.EncodeToString([]byte("1,2,3")),
	}, nil))
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("POST /files/: %s, %v", resp.Status, err)
	}
	id := strings.TrimPrefix(loc.Path, "/files/")

	// A PATCH of the whole file, of which 12 MiB arrive before its node dies.
	conn, err := net.Dial("tcp", strings.TrimPrefix(nodes[0].URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: %s\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: %d\r\n\r\n", loc.Path, bearer, len(data))
	if _, err := conn.Write(data[:12<<20]); err != nil {
		t.Fatal(err)
	}
	var dead string // the lease holder on the node that dies
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		sess, err := st.Session(t.Context(), id)
		if err == nil && sess.Lease != "" && sess.LeaseUntil.After(time.Now()) {
			dead = sess.Lease
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never took the upload's lease: %+v, %v", sess, err)
		}
	}
	nodes[0].kill()
	since := time.Now()
	// taken tells when a request on the other node holds the upload: the
	// resume is accepted then (the PATCH's bytes take longer to arrive).
	taken := make(chan time.Duration, 1)
	ctx := t.Context() // ends with the test, and so does the look-out
	go func() {
		for ctx.Err() == nil {
			if sess, err := st.Session(ctx, id); err == nil && sess.Lease != "" && sess.Lease != dead {
				taken <- time.Since(since)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	resp, _ = doRaw(t, tusReq(http.MethodHead, nodes[1].URL+loc.Path, nil, nil))
	headTook := time.Since(since)
	off, err := strconv.Atoi(resp.Header.Get("Upload-Offset"))
	if resp.StatusCode != http.StatusOK || err != nil || off < 0 || off > 12<<20 || headTook > 6*time.Second {
		t.Fatalf("HEAD on the other node %v after the crash: %s, Upload-Offset %q; want 200 and at most the %d bytes sent, within seconds",
			headTook, resp.Status, resp.Header.Get("Upload-Offset"), 12<<20)
	}
	// As tus clients do, the PATCH is tried again on a 423 or a 5xx.
	var slug string
	for {
		resp, body := doRaw(t, tusReq(http.MethodPatch, nodes[1].URL+loc.Path,
			map[string]string{"Upload-Offset": strconv.Itoa(off), "Content-Type": "application/offset+octet-stream"}, data[off:]))
		if resp.StatusCode == http.StatusNoContent {
			slug = resp.Header.Get("Acestash-Slug")
			break
		}
		if resp.StatusCode != http.StatusLocked && resp.StatusCode < 500 {
			t.Fatalf("PATCH resuming at %d: %s %s", off, resp.Status, body)
		}
		if time.Since(since) > cfg.LeaseTime+10*time.Second {
			t.Fatalf("the upload is still refused %v after the crash: %s %s", time.Since(since), resp.Status, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	var took time.Duration
	select {
	case took = <-taken:
	default:
		t.Fatal("the upload was finished on the other node, but its lease was never seen taken there")
	}
	t.Logf("node killed: HEAD answered offset %d after %v; the resumed PATCH took the upload after %v and ended after %v (lease_time %v)",
		off, headTook.Round(time.Millisecond), took.Round(time.Millisecond), time.Since(since).Round(time.Millisecond), cfg.LeaseTime)
	if took > cfg.LeaseTime+5*time.Second {
		t.Errorf("the resumed PATCH took the upload %v after the crash, want within lease_time (%v) and a few seconds", took, cfg.LeaseTime)
	}
	resp, got := fetch(t, nodes[1].URL+"/m/"+slug+"/download", nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("download of %q: %d, %d bytes, want the %d sent", slug, resp.StatusCode, len(got), len(data))
	}
}
