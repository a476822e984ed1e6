// Package miniotest runs real MinIO servers for tests.
//
// The minio binary must be in PATH or in $(go env GOPATH)/bin; `make
// test-deps` builds it there. Tests fail, rather than skip, without it.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// readyTimeout bounds how long Start waits for a server to answer.
const readyTimeout = 60 * time.Second

// Server is one MinIO server process serving Dir on 127.0.0.1.
type Server struct {
	Endpoint  string // host:port of the S3 API
	AccessKey string
	SecretKey string
	Dir       string // data directory, kept across Restart
	// Drives are the drive directories of an erasure-coded server (in Dir);
	// empty for a server on Dir alone.
	Drives []string

	bin     string
	console string // host:port of the web console
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	paused bool          // by Pause
}

// Start starts a MinIO server with a fresh data directory and stops it
// when the test ends. It skips the test under -short (the fast tier runs
// without MinIO).
func Start(t testing.TB) *Server {
	t.Helper()
	SkipShort(t)
	s := newServer(t, findMinio(t))
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// StartErasure starts a MinIO server that spreads every object over n
// drive directories with erasure coding (n at least 4), as
// `minio server dir{1...n}` does, and stops it when the test ends. It
// skips the test under -short.
func StartErasure(t testing.TB, n int) *Server {
	t.Helper()
	SkipShort(t)
	if n < 4 {
		t.Fatalf("erasure coding needs at least 4 drives, not %d", n)
	}
	s := newServer(t, findMinio(t))
	for i := 1; i <= n; i++ {
		d := filepath.Join(s.Dir, "d"+strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		s.Drives = append(s.Drives, d)
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// StartN starts n independent servers, in parallel; see Start.
func StartN(t testing.TB, n int) []*Server {
	t.Helper()
	SkipShort(t)
	bin := findMinio(t)
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range servers {
		servers[i] = newServer(t, bin)
		wg.Go(func() { errs[i] = servers[i].start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return servers
}

// SkipShort skips a test that needs a real MinIO under -short, the fast
// tier that runs without Redis, MinIO or Chromium; `make test` runs it.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real MinIO: skipped under -short")
	}
}

// newServer prepares a server that Stop will stop when the test ends.
func newServer(t testing.TB, bin string) *Server {
	t.Helper()
	base := t.TempDir()
	s := &Server{
		Endpoint:  "127.0.0.1:" + strconv.Itoa(freePort(t)),
		AccessKey: "test-" + randHex(t, 6),
		SecretKey: randHex(t, 16),
		Dir:       filepath.Join(base, "data"),
		bin:       bin,
		console:   "127.0.0.1:" + strconv.Itoa(freePort(t)),
		logPath:   filepath.Join(base, "minio.log"),
	}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again on the same port and data directory,
// stopping it first if it is running.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Stop ends the server with SIGTERM and waits for it to exit, killing it
// if it takes longer than 10 seconds. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.signal(syscall.SIGTERM, 10*time.Second)
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL, 0)
}

// Pause stops the process with SIGSTOP: it holds its connections open
// and answers nothing, as a hung disk or a long GC pause would. Resume,
// Stop, Kill and the end of the test let it go on.
func (s *Server) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGSTOP)
		s.paused = true
	}
}

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resume()
}

func (s *Server) resume() {
	if s.cmd != nil && s.paused {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
	s.paused = false
}

// PID is the server's process id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// URL returns the server's S3 API address as an http URL.
func (s *Server) URL() string { return "http://" + s.Endpoint }

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // a paused server handles no SIGTERM
	s.cmd.Process.Signal(sig)
	s.resume() // a stopped process takes SIGTERM only once it runs
	if grace > 0 {
		select {
		case <-s.done:
		case <-time.After(grace):
			s.cmd.Process.Kill()
		}
	}
	<-s.done
	s.cmd = nil
}

// start runs the binary and waits until the server reports itself live.
func (s *Server) start() error {
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("miniotest: %w", err)
	}
	defer log.Close() // the child holds its own descriptor
	fmt.Fprintf(log, "--- miniotest: starting at %s\n", time.Now().Format(time.RFC3339Nano))
	where := s.Dir
	if len(s.Drives) > 0 {
		where = filepath.Join(s.Dir, "d{1..."+strconv.Itoa(len(s.Drives))+"}")
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.Endpoint, "--console-address", s.console, where)
	// Killed with the test process even when it dies without cleaning up
	// (a test timeout panics past every Cleanup).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		// Deleted objects go to a trash that MinIO empties every 5
		// minutes by default: a benchmark deleting GiBs would fill the
		// disk first.
		"MINIO_API_DELETE_CLEANUP_INTERVAL=1s",
	)
	if len(s.Drives) > 0 {
		// The drives share one disk, the root one, which MinIO refuses
		// to erasure-code over outside CI.
		cmd.Env = append(cmd.Env, "MINIO_CI_CD=on")
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("miniotest: starting %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	live := func(ctx context.Context) error { return checkLive(ctx, s.URL()+"/minio/health/live") }
	if err := poll(live, "live", done); err != nil {
		s.Kill()
		return fmt.Errorf("miniotest: server on %s: %w\n%s", s.Endpoint, err, s.logTail())
	}
	// MinIO answers its health check before it has loaded the root
	// credentials, and a client that comes too soon is told its key does
	// not exist.
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
	if err != nil {
		s.Kill()
		return fmt.Errorf("miniotest: %w", err)
	}
	signed := func(ctx context.Context) error { _, err := c.ListBuckets(ctx); return err }
	if err := poll(signed, "taking its credentials", done); err != nil {
		s.Kill()
		return fmt.Errorf("miniotest: server on %s: %w\n%s", s.Endpoint, err, s.logTail())
	}
	return nil
}

// poll calls try every 50 ms until it succeeds, the process exits or
// readyTimeout passes; what names the state waited for, in errors.
func poll(try func(context.Context) error, what string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("minio exited before %s", what)
		case <-ctx.Done():
			return fmt.Errorf("not %s after %v: %w", what, readyTimeout, err)
		case <-tick.C:
		}
	}
}

// checkLive asks url once whether the server is live and initialized.
func checkLive(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if status := resp.Header.Get("X-Minio-Server-Status"); resp.StatusCode != http.StatusOK || status != "" {
		return fmt.Errorf("GET %s: %s (server status %q)", url, resp.Status, status)
	}
	return nil
}

// logTail returns the end of the server's log, for failure messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "minio log (" + s.logPath + "):\n" + string(b)
}

// findMinio returns the path of the minio binary.
func findMinio(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	var dirs []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.SplitList(gp)...)
	} else if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.SplitList(strings.TrimSpace(string(out)))...)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "bin", "minio")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatal("minio not found; run `make test-deps`")
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
