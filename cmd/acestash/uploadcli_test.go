package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"
)

// chunkGate counts the bytes of upload requests a node is sent and can
// hold every request after the first n until it is opened.
type chunkGate struct {
	bytes   atomic.Int64
	mu      sync.Mutex
	pass    int           // requests let through before holding
	open    chan struct{} // closed to let the held ones go
	reached chan struct{} // closed when a request is held
	once    sync.Once
}

func newChunkGate(pass int) *chunkGate {
	return &chunkGate{pass: pass, open: make(chan struct{}), reached: make(chan struct{})}
}

func (g *chunkGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/upload" {
			g.bytes.Add(max(r.ContentLength, 0))
			g.mu.Lock()
			g.pass--
			hold := g.pass < 0
			g.mu.Unlock()
			if hold {
				g.once.Do(func() { close(g.reached) })
				<-g.open
			}
		}
		next.ServeHTTP(w, r)
	})
}

// TestUploadCLI runs acestash upload in a pseudo-terminal, where it draws
// a progress bar, kills it in the middle of a file, and runs it again
// (not on a terminal, so with plain lines) on that file and another: the
// first goes on from what the server held, both end with their URLs, and
// their bytes come back identical.
func TestUploadCLI(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { uploadCLI(t, b) })
	}
}

func uploadCLI(t *testing.T, b backend) {
	cfg := testConfig(t, b)
	cfg.Limits.MaxChunkSize = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := newChunkGate(3)
	srv := startOn(t, cfg, nil, ln, gate.wrap)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	small := filepath.Join(dir, "small.bin")
	bigData, smallData := testData(6<<20+123, 21), testData(300<<10, 22)
	for p, d := range map[string][]byte{big: bigData, small: smallData} {
		if err := os.WriteFile(p, d, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "HOME="+dir,
		"ACESTASH_SERVER="+srv.URL, "ACESTASH_KEY="+testKey+":"+testToken)

	// First run, on a terminal: three chunks go through, the fourth is
	// held, and the command is killed while it waits.
	cmd := exec.Command(binary(t), "upload", big)
	cmd.Env = env
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&screen, tty); close(copied) }()
	select {
	case <-gate.reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the upload never reached its fourth chunk")
	}
	time.Sleep(500 * time.Millisecond) // a few refreshes of the bar
	cmd.Process.Kill()
	cmd.Wait()
	tty.Close()
	<-copied
	close(gate.open)
	shown := screen.String()
	if !strings.Contains(shown, "big.bin") || !strings.Contains(shown, "MiB / 6.0 MiB") || !strings.Contains(shown, "[") || !strings.Contains(shown, "%") {
		t.Fatalf("no progress bar on the terminal; it showed %q", shown)
	}
	firstRun := gate.bytes.Load()

	// Second run: resumes big.bin, uploads small.bin beside it.
	cmd = exec.Command(binary(t), "upload", big, small)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("second run: %v; %s", err, stderr.String())
	}
	resent := gate.bytes.Load() - firstRun - int64(len(smallData))
	if resent >= int64(len(bigData)) || resent <= 0 {
		t.Fatalf("the resumed upload sent %d bytes of a %d-byte file", resent, len(bigData))
	}
	if !strings.Contains(stderr.String(), "big.bin: ") || !strings.Contains(stderr.String(), "(100%)") {
		t.Fatalf("no progress lines off a terminal: %q", stderr.String())
	}
	urls := strings.Fields(stdout.String())
	if len(urls) != 2 {
		t.Fatalf("printed %q, want two URLs", stdout.String())
	}
	for i, want := range [][]byte{bigData, smallData} {
		resp, got := fetch(t, urls[i]+"/download", nil)
		if resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Fatalf("file %d at %s: %d, %d bytes; want identical bytes", i, urls[i], resp.StatusCode, len(got))
		}
	}

	// Expiry and download limit are sent when asked; a failure exits 1.
	cmd = exec.Command(binary(t), "upload", "--expires", "2h", "--max-downloads", "2", small)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("with --expires: %v", err)
	}
	sl := strings.TrimPrefix(strings.TrimSpace(string(out)), srv.URL+"/m/")
	if info := fileInfo(t, srv, testKey, testToken, sl); info["max_downloads"] != "2" || info["expires"] == "" {
		t.Fatalf("file/info %v, want the expiry and limit asked for", info)
	}
	cmd = exec.Command(binary(t), "upload", "--key", testKey+":wrong", small)
	cmd.Env = env
	var bad bytes.Buffer
	cmd.Stderr = &bad
	if err := cmd.Run(); err == nil || !strings.Contains(bad.String(), "invalid api_key or api_token") {
		t.Fatalf("wrong token: %v, %q; want exit 1 naming the problem", err, bad.String())
	}
}
