package main

// acestash as a process of its own, for the tests that need one: signals,
// probes while backends come and go, the CLI talking to a running server.

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// built is the acestash binary the tests build once; TestMain removes it.
var built buildOnce

type buildOnce struct {
	once      sync.Once
	dir, path string
	err       error
}

// mainEnv, set in a process of the test binary, makes it run as acestash
// (TestMain sets it for the processes the tests start).
const mainEnv = "ACESTASH_TEST_MAIN"

// binary returns the path of an acestash program: under -short the test
// binary itself, which runs as acestash in a process started with mainEnv
// set, so the fast tier does not wait for a build; otherwise a binary built
// from this package, as users run it.
func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		return exe
	}
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "acestash-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "acestash")
		out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = &buildError{err, string(out)}
		}
	})
	if built.err != nil {
		t.Fatalf("go build: %v", built.err)
	}
	return built.path
}

func (b *buildOnce) remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// proc is a running acestash process.
type proc struct {
	t    *testing.T
	URL  string
	cfg  Config
	path string // its config file
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // how it exited, once done is closed

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced when a line arrives
}

// freeListen returns a loopback host:port that was free a moment ago.
func freeListen(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProc writes cfg to a file and runs `acestash serve` with it until
// /healthz answers; the process is killed when the test ends if it still
// runs. cfg.Listen is chosen when empty.
func startProc(t *testing.T, cfg Config) *proc {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = freeListen(t)
		cfg.PublicURL = "http://" + cfg.Listen
	}
	if cfg.LogLevel == "" || cfg.LogLevel == "warn" {
		cfg.LogLevel = "info"
	}
	path := writeConfig(t, cfg)
	p := &proc{t: t, URL: "http://" + cfg.Listen, cfg: cfg, path: path}
	p.run()
	return p
}

// writeConfig writes cfg to a YAML file of the test and returns its path.
func writeConfig(t *testing.T, cfg Config) string {
	t.Helper()
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "acestash.yml")
	if err := os.WriteFile(path, y, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// run starts the process and waits until it is alive.
func (p *proc) run() {
	p.t.Helper()
	p.cmd = exec.Command(binary(p.t), "serve", "--config", p.path)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	p.done, p.changed = make(chan struct{}), make(chan struct{})
	p.lines = nil
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.scan(stderr)
	}()
	go func() {
		<-read
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	p.t.Cleanup(p.kill)
	if err := waitReady(p.URL+"/healthz", p.done, 30*time.Second); err != nil {
		p.t.Fatalf("acestash: %v\n%s", err, p.log())
	}
}

// scan collects the process's log lines.
func (p *proc) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// log returns everything the process logged.
func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits until the process logs a line containing every one of
// parts, and returns it.
func (p *proc) waitLine(parts ...string) string {
	p.t.Helper()
	deadline := time.After(20 * time.Second)
	seen := 0
	for {
		p.mu.Lock()
		lines, changed := p.lines, p.changed
		p.mu.Unlock()
	next:
		for ; seen < len(lines); seen++ {
			for _, s := range parts {
				if !strings.Contains(lines[seen], s) {
					continue next
				}
			}
			return lines[seen]
		}
		select {
		case <-changed:
		case <-p.done:
			p.t.Fatalf("acestash exited (%v) before logging %q:\n%s", p.err, parts, p.log())
		case <-deadline:
			p.t.Fatalf("acestash did not log %q:\n%s", parts, p.log())
		}
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns how.
func (p *proc) wait(ctx context.Context) error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.t.Fatalf("acestash did not exit: %v\n%s", ctx.Err(), p.log())
		return nil
	}
}

// stop ends the process with SIGTERM and waits for it.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.wait(ctx); err != nil {
		p.t.Fatalf("acestash exited with %v:\n%s", err, p.log())
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}
