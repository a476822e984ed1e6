package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

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
