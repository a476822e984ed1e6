package miniotest

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func live(s *Server) bool {
	resp, err := http.Get(s.URL() + "/minio/health/live")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestLifecycle(t *testing.T) {
	servers := StartN(t, 2)
	a, b := servers[0], servers[1]
	if a.Endpoint == b.Endpoint || a.Dir == b.Dir || a.SecretKey == b.SecretKey {
		t.Fatalf("servers share an endpoint, directory or key: %+v %+v", a, b)
	}
	if !live(a) || !live(b) {
		t.Fatal("servers not live after StartN")
	}
	marker := filepath.Join(a.Dir, "marker")
	if err := os.Mkdir(marker, 0o755); err != nil { // a bucket to MinIO
		t.Fatal(err)
	}

	a.Kill()
	if live(a) {
		t.Fatal("server live after Kill")
	}
	a.Restart(t)
	if !live(a) {
		t.Fatal("server not live after Restart")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("data directory lost across Restart: %v", err)
	}

	b.Stop()
	b.Stop() // stopping twice does nothing
	if live(b) {
		t.Fatal("server live after Stop")
	}
}
