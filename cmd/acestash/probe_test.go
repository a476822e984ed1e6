package main

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// readyz returns GET /readyz's status and body.
func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReadyz polls /readyz until it answers code with a body containing
// want, and returns the body.
func waitReadyz(t *testing.T, base string, code int, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body := readyz(t, base)
		if got == code && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d %q; last %d %q", code, want, got, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe runs `acestash probe URL` and returns its output and error.
func probe(t *testing.T, u string) (string, error) {
	out, err := exec.Command(binary(t), "probe", u).CombinedOutput()
	return string(out), err
}

// TestProbes runs acestash on Redis and three MinIO (write_quorum 2) as
// processes: /healthz answers all along; /readyz, and `acestash probe` that
// containers run, say 503 with the reason while Redis is stopped and while
// two of the three mirrors are down, and 200 again when they are back.
func TestProbes(t *testing.T) {
	c, cfg := clusterConfig(t)
	if cfg.WriteQuorum != 2 {
		t.Fatalf("deploy/acestash.yml has write_quorum %d; the test expects 2", cfg.WriteQuorum)
	}
	p := startProc(t, cfg)
	waitReadyz(t, p.URL, 200, "ready")
	if out, err := probe(t, p.URL+"/readyz"); err != nil {
		t.Fatalf("probe of a ready node: %v %s", err, out)
	}

	c.redis.Stop()
	body := waitReadyz(t, p.URL, 503, "the store does not answer")
	if out, err := probe(t, p.URL+"/readyz"); err == nil || !strings.Contains(out, "503") {
		t.Fatalf("probe while Redis is down: %v %q", err, out)
	}
	if resp, err := http.Get(p.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz while Redis is down: %v %v (readyz said %q)", resp, err, body)
	}
	c.redis.Restart()
	waitReadyz(t, p.URL, 200, "ready")

	c.minio[0].Stop()
	waitReadyz(t, p.URL, 200, "ready") // two of three still make the quorum
	c.minio[2].Stop()
	waitReadyz(t, p.URL, 503, "1 of 3 mirrors are healthy, uploads need 2 (down: 1, 3)")
	c.minio[0].Restart(t)
	c.minio[2].Restart(t)
	waitReadyz(t, p.URL, 200, "ready")
	p.stop()
}
