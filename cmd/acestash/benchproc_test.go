package main

// What the benchmark needs around its measurements: server processes it
// starts and stops, their CPU time and peak memory from /proc, the random
// files it sends, and emptying buckets between figures.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"
)

// clkTck is the kernel's USER_HZ, the unit of CPU times in /proc.
const clkTck = 100

// daemon is a server process the benchmark started.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string        // path of its stdout and stderr
	done chan struct{} // closed when it has exited
}

// startDaemon starts cmd with its output in a log file and waits until
// GET ready answers 200. The process is stopped when the benchmark ends.
func startDaemon(b *testing.B, name string, cmd *exec.Cmd, ready string) *daemon {
	b.Helper()
	d := &daemon{name: name, cmd: cmd, log: filepath.Join(b.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(d.log)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(d.done)
	}()
	b.Cleanup(d.stop)
	if err := waitReady(ready, d.done, 30*time.Second); err != nil {
		b.Fatalf("%s: %v\n%s", name, err, d.logTail())
	}
	return d
}

// pid returns the process id.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM and waits for the process to exit, killing it after
// ten seconds.
func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// logTail returns the end of the process's log, for failure messages.
func (d *daemon) logTail() string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return fmt.Sprintf("(no %s log: %v)", d.name, err)
	}
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return fmt.Sprintf("%s log (%s):\n%s", d.name, d.log, b)
}

// waitReady polls GET url until it answers 200, the process exits or the
// timeout passes.
func waitReady(url string, exited <-chan struct{}, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-deadline.C:
			return fmt.Errorf("not ready after %v: %w", timeout, last)
		case <-tick.C:
		}
	}
}

// cpuTime returns the user and system CPU time process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clkTck, nil
}

// peakRSS returns the high-water resident set size of process pid, in
// bytes, since it started or resetPeakRSS.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmHWM: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// resetPeakRSS makes process pid's high-water RSS its current RSS.
func resetPeakRSS(pid int) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/clear_refs", pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("5"); err != nil {
		f.Close()
		return fmt.Errorf("reset peak RSS of %d: %w", pid, err)
	}
	return f.Close()
}

// minioPID returns the process id of the MinIO server whose S3 API is on
// endpoint (host:port), found by its command line.
func minioPID(endpoint string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // it exited meanwhile
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--address" && args[i+1] == endpoint && strings.Contains(args[0], "minio") {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no minio process serves %s", endpoint)
}

// benchFile is a file of random bytes the clients send.
type benchFile struct {
	path   string
	size   int64
	sha256 string // hex
}

// writeRandomFile writes size bytes from crypto/rand to path.
func writeRandomFile(path string, size int64) (benchFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return benchFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		p := buf[:min(int64(len(buf)), left)]
		rand.Read(p)
		h.Write(p)
		if _, err := f.Write(p); err != nil {
			return benchFile{}, fmt.Errorf("write %s: %w", path, err)
		}
		left -= int64(len(p))
	}
	if err := f.Close(); err != nil {
		return benchFile{}, fmt.Errorf("write %s: %w", path, err)
	}
	return benchFile{path: path, size: size, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

// emptyBucket removes every object and unfinished multipart upload from a
// bucket and returns the objects it removed.
func emptyBucket(ctx context.Context, c *minio.Client, bucket string) ([]minio.ObjectInfo, error) {
	var objs []minio.ObjectInfo
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return objs, fmt.Errorf("list %s on %s: %w", bucket, c.EndpointURL().Host, o.Err)
		}
		objs = append(objs, o)
	}
	ch := make(chan minio.ObjectInfo, len(objs))
	for _, o := range objs {
		ch <- o
	}
	close(ch)
	for e := range c.RemoveObjects(ctx, bucket, ch, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return objs, fmt.Errorf("remove %s/%s on %s: %w", bucket, e.ObjectName, c.EndpointURL().Host, e.Err)
		}
	}
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			return objs, fmt.Errorf("list unfinished uploads in %s on %s: %w", bucket, c.EndpointURL().Host, u.Err)
		}
		if err := c.RemoveIncompleteUpload(ctx, bucket, u.Key); err != nil {
			return objs, fmt.Errorf("abort upload of %s/%s on %s: %w", bucket, u.Key, c.EndpointURL().Host, err)
		}
	}
	return objs, nil
}

// findBin returns the path of a program in PATH or in $(go env GOPATH)/bin.
func findBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("%s is not in PATH, and go env GOPATH: %w", name, err)
	}
	for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
		p := filepath.Join(d, "bin", name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is in neither PATH nor GOPATH/bin; run `make bench`", name)
}

// modVersion returns the version of module mod that the Go binary at bin
// was built from, or "unknown".
func modVersion(bin, mod string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" && f[1] == mod {
			return f[2]
		}
	}
	return "unknown"
}

// startHAProxy starts HAProxy in front of the first MinIO, set up as an
// operator would for speed: connections kept alive on both sides and
// shared, bodies spliced from socket to socket. Its figures beside 5 and
// 12 say what a proxy that does nothing else costs on this machine.
func (e *bench) startHAProxy(b *testing.B, dir string) {
	b.Helper()
	bin, err := findBin("haproxy")
	if err != nil {
		b.Fatal(err) // make bench installs it
	}
	listen := freeAddr(b)
	conf := filepath.Join(dir, "haproxy.cfg")
	err = os.WriteFile(conf, []byte(`global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 1m
    timeout server 1m
    option http-keep-alive
    option splice-auto
frontend s3
    bind `+listen+`
    default_backend minio
backend minio
    http-reuse always
    server minio1 `+e.baseline[0].Endpoint+`
`), 0o600)
	if err != nil {
		b.Fatal(err)
	}
	e.haproxy = startDaemon(b, "haproxy", exec.Command(bin, "-db", "-f", conf), "http://"+listen+"/minio/health/live")
	e.proxied = e.baseline[0]
	e.proxied.Endpoint = listen
}

// redisPID returns the process id of the Redis server c talks to.
func redisPID(ctx context.Context, c *redis.Client) (int, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO server: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("redis INFO server: no process_id")
}
