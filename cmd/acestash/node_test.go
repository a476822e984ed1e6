package main

// Nodes in processes of their own, for tests that kill them: the test
// binary started again with serveEnv set runs `acestash serve`.

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// serveEnv names the config file a re-started test binary serves.
const serveEnv = "ACESTASH_TEST_SERVE"

// serveMain runs `acestash serve --config path` and returns the exit code.
func serveMain(path string) int {
	if err := run([]string{"serve", "--config", path}, os.Stdout, os.Stderr); err != nil {
		os.Stderr.WriteString("acestash: " + err.Error() + "\n")
		return 1
	}
	return 0
}

// node is an acestash server in a process of its own.
type node struct {
	URL  string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startNode writes cfg, with a free port and its own data directory, to a
// file and serves it from a new process, which is killed when the test
// ends. It returns once the node answers.
func startNode(t *testing.T, cfg Config) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg.Listen, cfg.PublicURL, cfg.DataDir = addr, "http://"+addr, dir
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "acestash.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{URL: cfg.PublicURL, log: filepath.Join(dir, "node.log"), done: make(chan struct{})}
	logf, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	n.cmd = exec.Command(exe)
	n.cmd.Env = append(os.Environ(), serveEnv+"="+path)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(n.kill)
	if err := waitReady(n.URL+"/", n.done, 30*time.Second); err != nil {
		out, _ := os.ReadFile(n.log)
		t.Fatalf("node %s: %v\n%s", addr, err, out)
	}
	return n
}

// kill ends the node with SIGKILL and waits for it to exit.
func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// server returns the node as the helpers for in-process servers take it.
func (n *node) server() *testServer { return &testServer{URL: n.URL} }
