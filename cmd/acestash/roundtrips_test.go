package main

import (
	"crypto/sha256"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rttChunk is the max_chunk_size of TestRoundTrips.
const rttChunk = 64 << 10

// reapAfter is how long after a node starts its reaper may first touch
// Redis: reapLoop in app.go ticks every minute, the first time one minute
// after serve starts.
const reapAfter = time.Minute

// rttNode is a node of TestRoundTrips whose Redis traffic goes through a
// counting proxy.
type rttNode struct {
	srv   *testServer
	proxy *rttProxy
	born  time.Time // before the node started
}

// startRTTNode starts a node with cfg whose redis_url is a proxy to the
// Redis at redisAddr.
func startRTTNode(t *testing.T, cfg Config, redisAddr string) *rttNode {
	t.Helper()
	p := startRTTProxy(t, redisAddr)
	cfg.RedisURL = "redis://" + p.Addr + "/0"
	cfg.DataDir = t.TempDir()
	born := time.Now()
	return &rttNode{srv: start(t, cfg, nil), proxy: p, born: born}
}

func (n *rttNode) stop() {
	n.srv.stop()
	n.proxy.close()
}

// measure counts the Redis round trips of one request: the window opens
// once the node's connections are idle and closes once the request has
// been answered and every command sent meanwhile has its reply.
func (n *rttNode) measure(t *testing.T, request func()) *rttWindow {
	t.Helper()
	n.proxy.openWindow(t)
	request()
	return n.proxy.closeWindow(t)
}

// rttMeasure is one measured request and its goal.
type rttMeasure struct {
	name string
	goal int
	w    *rttWindow
}

// TestRoundTrips counts the Redis round trips one node makes for single
// requests on the production layout (real Redis, three real MinIO), through
// a proxy between the node and Redis, and holds them to the goals: a middle
// chunk of a MirrorAce upload at most 3, its last chunk at most 4, a raw
// POST /upload at most 4, file/info for 50 slugs at most 2.
//
// Every measured request follows one of the same shape on the same node, so
// the connection pool is warm and Redis holds the scripts; a connection
// dialled in a window anyway has its set-up (HELLO, CLIENT SETINFO, ...)
// reported apart, not counted. The node's only background work that uses
// Redis is the reaper, which cannot run before reapAfter: a scenario whose
// window closes later is measured again on a fresh node. Mirror health
// checks go to MinIO only. ACESTASH_RTT_VERBOSE=1 logs each round trip's
// commands.
func TestRoundTrips(t *testing.T) {
	cfg := testConfig(t, scaled)
	cfg.Limits.MaxChunkSize = rttChunk
	u, err := url.Parse(cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	node := startRTTNode(t, cfg, u.Host)

	var results []rttMeasure
	for _, scenario := range []func(*testing.T, *rttNode) []rttMeasure{
		chunkRoundTrips, rawRoundTrips, infoRoundTrips,
	} {
		for attempt := 1; ; attempt++ {
			ms := scenario(t, node)
			var age time.Duration // when the last window closed, after the node started
			for _, m := range ms {
				age = max(age, m.w.closed.Sub(node.born))
			}
			if age < reapAfter {
				results = append(results, ms...)
				break
			}
			if attempt == 3 {
				t.Fatalf("%s: three nodes in a row were still measuring after %v, when their reaper may use Redis (the last at %v)", ms[0].name, reapAfter, age)
			}
			t.Logf("%s: the window closed %v after the node started, when its reaper may have used Redis; measuring again on a fresh node", ms[0].name, age)
			node.stop()
			node = startRTTNode(t, cfg, u.Host)
		}
	}

	for _, m := range results {
		apart := ""
		if m.w.dials > 0 {
			apart = fmt.Sprintf(" (and %d new connections with %d set-up round trips, not counted)", m.w.dials, m.w.handshakes())
		}
		if rttVerbose() {
			t.Logf("%s: %d Redis round trips, goal ≤ %d%s:%s", m.name, m.w.count(), m.goal, apart, m.w)
		} else {
			t.Logf("%s: %d Redis round trips, goal ≤ %d%s", m.name, m.w.count(), m.goal, apart)
		}
	}
	for _, m := range results {
		if m.w.count() > m.goal {
			t.Errorf("%s: measured %d Redis round trips, goal ≤ %d (ACESTASH_RTT_VERBOSE=1 lists them)", m.name, m.w.count(), m.goal)
		}
	}
}

// chunkRoundTrips measures a middle chunk and the last chunk of a MirrorAce
// upload in four chunks, after a whole upload of the same shape.
func chunkRoundTrips(t *testing.T, n *rttNode) []rttMeasure {
	data := testData(3*rttChunk+rttChunk/3, 61)
	send := func(up *upload, i int) answer {
		off, end := i*rttChunk, min((i+1)*rttChunk, len(data))
		return up.send(fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data)), data[off:end])
	}
	const last = 3
	warm := newUpload(t, n.srv)
	for i := 0; i <= last; i++ {
		if a := send(warm, i); a.env.Status != "success" {
			t.Fatalf("warm-up upload, chunk %d: %s", i, a)
		}
	}

	up := newUpload(t, n.srv)
	var res uploadResult
	for i := 0; i < last-1; i++ {
		send(up, i).result(t, &res)
	}
	var a answer
	middle := n.measure(t, func() { a = send(up, last-1) })
	if a.result(t, &res); res.Info != "continue" {
		t.Fatalf("middle chunk: %+v, want continue", res)
	}
	final := n.measure(t, func() { a = send(up, last) })
	if a.result(t, &res); res.Info != "complete" {
		t.Fatalf("last chunk: %+v, want complete", res)
	}
	checkSHA256(t, n.srv, res.Slug, data)
	return []rttMeasure{
		{"middle chunk", 3, middle},
		{"last chunk", 4, final},
	}
}

// rawRoundTrips measures a Mirage POST /upload of 64 KiB, after another.
func rawRoundTrips(t *testing.T, n *rttNode) []rttMeasure {
	mirageURL(t, n.srv, mirageUpload(t, n.srv.URL+"/upload", testData(64<<10, 62), false))
	data := testData(64<<10, 63)
	var a answer
	w := n.measure(t, func() { a = mirageUpload(t, n.srv.URL+"/upload", data, false) })
	checkSHA256(t, n.srv, rawSlug(t, n.srv, a), data)
	return []rttMeasure{{"raw upload", 4, w}}
}

// infoRoundTrips measures file/info for 50 slugs, 10 of files the account
// has and 40 unknown, after the same call once.
func infoRoundTrips(t *testing.T, n *rttNode) []rttMeasure {
	var slugs []string
	for i := range 50 {
		if i%5 == 0 {
			a := mirageUpload(t, n.srv.URL+"/upload", testData(100+i, byte(i)), false)
			slugs = append(slugs, rawSlug(t, n.srv, a))
		} else {
			slugs = append(slugs, fmt.Sprintf("nOpe%04d", i))
		}
	}
	fields := []field{{"api_key", testKey}, {"api_token", testToken}, {"files", strings.Join(slugs, ",")}}
	postForm(t, n.srv.URL+"/api/v1/file/info", fields).result(t, &map[string]any{})
	var a answer
	w := n.measure(t, func() { a = postForm(t, n.srv.URL+"/api/v1/file/info", fields) })
	var info map[string]map[string]string
	a.result(t, &info)
	for i, sl := range slugs {
		want := "not found"
		if i%5 == 0 {
			want = "active"
		}
		if len(info) != len(slugs) || info[sl]["status"] != want {
			t.Fatalf("file/info of %d slugs: %d answers, %s is %q, want %q", len(slugs), len(info), sl, info[sl]["status"], want)
		}
	}
	return []rttMeasure{{"file/info of 50 slugs", 2, w}}
}

// rawSlug returns the slug of a POST /upload answer's URL.
func rawSlug(t *testing.T, srv *testServer, a answer) string {
	t.Helper()
	id := strings.TrimPrefix(mirageURL(t, srv, a), srv.URL+"/uploads/")
	sl, _, _ := strings.Cut(id, ".")
	return sl
}

// checkSHA256 downloads /m/<slug>/download and compares the SHA-256 of
// what comes back with that of data.
func checkSHA256(t *testing.T, srv *testServer, slug string, data []byte) {
	t.Helper()
	resp, got := fetch(t, srv.URL+"/m/"+slug+"/download", nil)
	if want, sum := sha256.Sum256(data), sha256.Sum256(got); resp.StatusCode != 200 || sum != want {
		t.Fatalf("/m/%s/download: HTTP %d, %d bytes with SHA-256 %x; sent %d bytes with SHA-256 %x",
			slug, resp.StatusCode, len(got), sum, len(data), want)
	}
}
