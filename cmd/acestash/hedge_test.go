package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors/s3mirror/miniotest"
)

// minioNode is a node on the embedded store with mirrors 1, 2 and 3 on
// three MinIO servers; the test account may use all three. Health checks
// run only at start, so what the tests see is the read path's own doing.
func minioNode(t *testing.T, edit func(*Config)) (*testServer, []*miniotest.Server) {
	t.Helper()
	ms := miniotest.StartN(t, 3)
	cfg := testConfig(t, embedded)
	cfg.Accounts[0].Mirrors, cfg.Accounts[0].DefaultMirrors, cfg.Accounts[0].MaxMirrors = nil, nil, 0
	cfg.Mirrors = nil
	for i, m := range ms {
		cfg.Mirrors = append(cfg.Mirrors, MirrorConfig{ID: strconv.Itoa(i + 1), Type: "s3", Endpoint: m.Endpoint,
			Bucket: "acestash", AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	}
	cfg.HealthInterval = time.Hour
	if edit != nil {
		edit(&cfg)
	}
	srv := start(t, cfg, nil)
	// A paused server is continued before the node stops, whatever fails.
	t.Cleanup(func() {
		for _, m := range ms {
			m.Resume()
		}
	})
	return srv, ms
}

// uploadTo uploads data in one request to the mirrors and returns its
// slug; fields are added to the form (a file_password, say).
func uploadTo(t *testing.T, srv *testServer, data []byte, mirrors []string, fields ...field) string {
	t.Helper()
	u := newUpload(t, srv, mirrors...)
	u.fields = append(u.fields, fields...)
	var r uploadResult
	u.send("", data).result(t, &r)
	if r.Info != "complete" || r.Slug == "" {
		t.Fatalf("upload: %+v", r)
	}
	return r.Slug
}

// hungRequests looks at the sockets of a SIGSTOPped server at endpoint
// (host:port) as the kernel lists them: waiting counts connections still
// open that hold a request the server never read, ended those the client
// closed with a request unread.
func hungRequests(t *testing.T, endpoint string) (waiting, ended int) {
	t.Helper()
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	local := fmt.Sprintf(":%04X", p)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue ...
			fs := strings.Fields(sc.Text())
			if len(fs) < 5 || !strings.HasSuffix(fs[1], local) {
				continue
			}
			_, rx, _ := strings.Cut(fs[4], ":")
			if strings.Trim(rx, "0") == "" {
				continue // nothing unread
			}
			switch fs[3] {
			case "01": // ESTABLISHED
				waiting++
			case "08": // CLOSE_WAIT: the client closed it
				ended++
			}
		}
		f.Close()
	}
	return waiting, ended
}

// timedGet downloads u and reports the bytes and how long it took.
func timedGet(u string) ([]byte, time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, time.Since(start), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return b, time.Since(start), err
}

// TestHungMirrorDownload: with the first mirror in read order SIGSTOPped,
// downloads started at once all begin quickly and end with the file's
// bytes, and every request the hung mirror lost is closed at once, while
// the downloads still run.
func TestHungMirrorDownload(t *testing.T) {
	// A stall limit longer than the test: only hedging can help, and only
	// the hedge can close the hung requests in time.
	srv, ms := minioNode(t, func(c *Config) { c.MirrorStall = 5 * time.Minute })
	data := testData(12<<20+11, 41)
	sl := uploadTo(t, srv, data, []string{"1", "2", "3"})
	ms[0].Pause()
	const n = 6
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type started struct {
		body io.ReadCloser
		took time.Duration // until the headers came
	}
	bodies := make(chan started, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/m/"+sl+"/download", nil)
			resp, err := http.DefaultClient.Do(req)
			switch {
			case err != nil:
				errs <- err
			case resp.StatusCode != 200:
				resp.Body.Close()
				errs <- fmt.Errorf("HTTP %d", resp.StatusCode)
			case time.Since(start) > 20*time.Second:
				// Without hedging a download waits as long as the mirror
				// hangs; the bound is far above what a loaded machine needs.
				resp.Body.Close()
				errs <- fmt.Errorf("a download took %v to start with one of three mirrors hung", time.Since(start))
			default:
				bodies <- started{resp.Body, time.Since(start)}
			}
		}()
	}
	var open []io.ReadCloser
	var slowest time.Duration
	for range n {
		select {
		case b := <-bodies:
			open = append(open, b.body)
			slowest = max(slowest, b.took)
			defer b.body.Close()
		case err := <-errs:
			t.Fatal(err)
		}
	}
	t.Logf("the slowest of %d downloads began after %v", n, slowest)
	// The downloads are under way, held by their clients. The hung MinIO
	// reads nothing, so each request it got is still in its sockets:
	// acestash must have closed every one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		waiting, ended := hungRequests(t, ms[0].Endpoint)
		if waiting == 0 && ended > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests to the hung mirror still open, %d closed (want 0 and at least 1)", waiting, ended)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, b := range open {
		got, err := io.ReadAll(b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%v: got %d bytes, want the %d uploaded", err, len(got), len(data))
		}
	}
	givenUp(t, srv, "1", "hedge")
	// Once back, the mirror serves again.
	ms[0].Resume()
	if b, _, err := timedGet(srv.URL + "/m/" + sl + "/download"); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("after SIGCONT: %v, %d bytes", err, len(b))
	}
}

// TestStallMidDownload: the mirror serving a download is SIGSTOPped in
// the middle of the body; the client still gets one response with every
// byte, continued from another mirror after mirror_stall.
func TestStallMidDownload(t *testing.T) {
	srv, ms := minioNode(t, func(c *Config) {
		c.MirrorStall = time.Second
		c.HedgeAfter = time.Minute // mirror 1 serves, however slow the machine
	})
	data := testData(48<<20, 43)
	sl := uploadTo(t, srv, data, []string{"1", "2"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/m/"+sl+"/download", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
		t.Fatalf("HTTP %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	got := make([]byte, 4<<20)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}
	ms[0].Pause()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got)+len(rest), err)
	}
	if got = append(got, rest...); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, not the %d uploaded", len(got), len(data))
	}
	givenUp(t, srv, "1", "stall")
}

// givenUp checks that /metrics counts reads that gave the mirror up for
// the reason.
func givenUp(t *testing.T, srv *testServer, mirror, reason string) {
	t.Helper()
	_, m := fetch(t, srv.URL+"/metrics", nil)
	line := fmt.Sprintf(`acestash_mirror_reads_given_up_total{mirror=%q,reason=%q} `, mirror, reason)
	i := bytes.Index(m, []byte(line))
	if i < 0 || bytes.HasPrefix(m[i+len(line):], []byte("0\n")) {
		t.Fatalf("/metrics counts no read that gave mirror %s up (%s)", mirror, reason)
	}
}

// A client that leaves in the middle of a large download, whose bytes
// the kernel splices from MinIO's socket to the client's, is a client gone:
// no mirror is given up for it, and nothing counts as a storage error.
func TestClientLeavesSplicedDownload(t *testing.T) {
	srv, _ := minioNode(t, nil)
	data := testData(40<<20, 47)
	sl := uploadTo(t, srv, data, []string{"1", "2"})
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, rawRequest("GET", host, "/m/"+sl+"/download", "", nil))
	if _, err := io.ReadFull(c, make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for scrapeMetrics(t, srv.URL, "").value("acestash_client_gone_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("acestash_client_gone_total still 0 30 s after the client left mid-download")
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := scrapeMetrics(t, srv.URL, "")
	if n := m.value("acestash_mirror_reads_given_up_total"); n != 0 {
		t.Errorf("%v reads gave a mirror up for a client that left", n)
	}
	if n := m.value("acestash_store_errors_total"); n != 0 {
		t.Errorf("acestash_store_errors_total is %v", n)
	}
}
