// Package redistest starts real redis-server processes for tests: single
// servers with an append-only file, and clusters.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 10 * time.Second

// Server is one redis-server process. Its port and directory stay the same
// across Stop and Restart, and its data survives them.
type Server struct {
	Addr string // host:port
	URL  string // redis:// URL of database 0
	Dir  string // working directory: config, log and append-only files

	t       testing.TB
	args    []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	lastErr error
}

// Start starts a redis-server on a free loopback port with appendonly on,
// and stops it when the test ends. It fails the test if redis-server is not
// installed, and skips it under -short (the fast tier runs without Redis).
func Start(t testing.TB) *Server {
	t.Helper()
	SkipShort(t)
	s := newServer(t, nil)
	s.start()
	return s
}

// StartWith is Start with more redis-server options, which override the
// defaults: StartWith(t, "--appendonly", "no") starts a server that keeps
// nothing across a restart.
func StartWith(t testing.TB, options ...string) *Server {
	t.Helper()
	SkipShort(t)
	s := newServer(t, options)
	s.start()
	return s
}

func newServer(t testing.TB, extra []string) *Server {
	t.Helper()
	s := newProcess(t, nil)
	s.args = append(s.args,
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", "always",
	)
	s.args = append(s.args, extra...)
	return s
}

// SkipShort skips a test that needs a real redis-server under -short, the
// fast tier that runs without Redis, MinIO or Chromium; `make test` runs
// it.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real redis-server: skipped under -short")
	}
}

// newProcess prepares a redis-server on a free port in a new directory;
// first are the arguments before the options.
func newProcess(t testing.TB, first []string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not found; run `make test-deps`")
	}
	dir := t.TempDir()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := append(first,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
		"--daemonize", "no",
	)
	s := &Server{Addr: addr, URL: "redis://" + addr + "/0", Dir: dir, t: t, args: args}
	t.Cleanup(s.Kill)
	return s
}

// freePort returns a loopback TCP port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("redis-server %s is already running", s.Addr)
	}
	cmd := exec.Command("redis-server", s.args...)
	// Killed with the test process even when it dies without cleaning up
	// (a test timeout panics past every Cleanup).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	// Dial before pinging: go-redis logs every failed dial.
	deadline := time.Now().Add(startTimeout)
	for {
		err := ping(s.Addr)
		if err == nil {
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			s.t.Fatalf("redis-server %s exited: %s\n%s", s.Addr, out.String(), tail(log))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server %s did not answer within %v: %v", s.Addr, startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping reports whether a server answers at addr.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// stop signals the server and waits for it to exit.
func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Stop shuts the server down cleanly (SIGTERM).
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Kill ends the server abruptly (SIGKILL); with appendfsync always no
// acknowledged write is lost.
func (s *Server) Kill() { s.stop(syscall.SIGKILL) }

// Restart stops the server and starts it again on the same port and
// directory; it reloads its data from the append-only file.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Client returns a client of the server's database 0, closed when the test
// ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Cluster is a Redis Cluster.
type Cluster struct {
	Nodes []*Server // in the order created; masters first, roles change on failover
	Addrs []string
	URL   string // redis+cluster://host:port,host:port,.../
}

// StartCluster starts n (at least 3) cluster-enabled servers, joins them
// into one cluster of masters with the slots spread evenly, and waits until
// every node reports cluster_state:ok. The servers stop when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterReplicas(t, n, 0, 5*time.Second)
}

// StartClusterReplicas starts a cluster of masters (at least 3) with
// replicas servers following each, whose nodes count one as failing after
// nodeTimeout (cluster-node-timeout): a replica takes over from a master
// killed about that long ago. It returns once every replica is in sync.
func StartClusterReplicas(t testing.TB, masters, replicas int, nodeTimeout time.Duration) *Cluster {
	t.Helper()
	SkipShort(t)
	if masters < 3 {
		t.Fatalf("a cluster needs at least 3 masters, not %d", masters)
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("redis-cli not found; run `make test-deps`")
	}
	c := &Cluster{}
	for range masters * (1 + replicas) {
		s := newServer(t, []string{
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(freePort(t)),
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
		})
		s.args = append(s.args, "--cluster-config-file", filepath.Join(s.Dir, "nodes.conf"))
		s.start()
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	c.URL = "redis+cluster://" + strings.Join(c.Addrs, ",") + "/"

	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(t)
	return c
}

// WaitOK waits until every running node reports cluster_state:ok and knows
// all nodes, and every replica's link to its master is up.
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		if !s.Running() {
			continue
		}
		client := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := client.ClusterInfo(context.Background()).Result()
			var repl string
			if err == nil {
				repl, err = client.Info(context.Background(), "replication").Result()
			}
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes))) &&
				(strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				client.Close()
				t.Fatalf("cluster node %s not ok: %v\n%s\n%s", s.Addr, err, info, repl)
			}
			time.Sleep(20 * time.Millisecond)
		}
		client.Close()
	}
}

// Master returns the running node that serves key's slot as its master,
// and a running replica of it (nil if it has none).
func (c *Cluster) Master(t testing.TB, key string) (master, replica *Server) {
	t.Helper()
	for _, s := range c.Nodes {
		if !s.Running() || s.masterAddr(t) != "" {
			continue
		}
		client := redis.NewClient(&redis.Options{Addr: s.Addr})
		slot, err := client.ClusterKeySlot(context.Background(), key).Result()
		var slots []redis.ClusterSlot
		if err == nil {
			slots, err = client.ClusterSlots(context.Background()).Result()
		}
		client.Close()
		if err != nil {
			t.Fatalf("cluster node %s: %v", s.Addr, err)
		}
		for _, r := range slots {
			if int64(r.Start) <= slot && slot <= int64(r.End) && r.Nodes[0].Addr == s.Addr {
				master = s
			}
		}
		if master == nil {
			continue
		}
		for _, o := range c.Nodes {
			if o != s && o.Running() && o.masterAddr(t) == s.Addr {
				return s, o
			}
		}
		return s, nil
	}
	t.Fatalf("no running master serves %q", key)
	return nil, nil
}

// masterAddr is the address of the master the server follows; empty for a
// master.
func (s *Server) masterAddr(t testing.TB) string {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer client.Close()
	role, err := client.Do(context.Background(), "ROLE").Slice()
	if err != nil {
		t.Fatalf("ROLE on %s: %v", s.Addr, err)
	}
	if role[0] != "slave" || len(role) < 3 {
		return ""
	}
	return net.JoinHostPort(fmt.Sprint(role[1]), fmt.Sprint(role[2]))
}

// Running reports whether the server's process runs.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Start starts a server stopped with Stop or Kill again, on the same port
// and directory, with the data it kept.
func (s *Server) Start() {
	s.t.Helper()
	s.start()
}

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { client.Close() })
	return client
}

// FlushAll empties every master (replicas follow).
func (c *Cluster) FlushAll(t testing.TB) {
	t.Helper()
	for _, s := range c.Nodes {
		if s.masterAddr(t) != "" {
			continue
		}
		client := redis.NewClient(&redis.Options{Addr: s.Addr})
		err := client.FlushAll(context.Background()).Err()
		client.Close()
		if err != nil {
			t.Fatalf("FLUSHALL %s: %v", s.Addr, err)
		}
	}
}

// Sentinel is one Redis Sentinel watching a master.
type Sentinel struct {
	*Server        // the Sentinel process
	Master  string // master name
	URL     string // redis+sentinel://host:port/master
}

// StartSentinel starts a Sentinel that monitors master under the name
// "mymaster", and waits until it knows the master.
func StartSentinel(t testing.TB, master *Server) *Sentinel {
	t.Helper()
	SkipShort(t)
	const name = "mymaster"
	host, port, _ := net.SplitHostPort(master.Addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	// Sentinel rewrites its config file, so it must be its own and writable.
	text := fmt.Sprintf("sentinel monitor %s %s %s 1\n", name, host, port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newProcess(t, []string{conf, "--sentinel"})
	s.start()
	client := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	defer client.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		addr, err := client.GetMasterAddrByName(context.Background(), name).Result()
		if err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == master.Addr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel %s does not know master %s: %v %v", s.Addr, master.Addr, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Sentinel{Server: s, Master: name, URL: "redis+sentinel://" + s.Addr + "/" + name}
}
