package main

// The fleet: three acestash processes behind HAProxy, on a Redis Cluster of
// three masters with a replica each, writing to an erasure-coded MinIO and
// a plain one. Every request goes through the load balancer, so every
// chunk of an upload may land on another node.

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/acestash/acestash/mirrors/s3mirror/miniotest"
	"github.com/acestash/acestash/store/redisstore/redistest"
)

// fleetChunk is the fleet's max_chunk_size: over S3's 5 MiB part minimum,
// so middle chunks are written as parts and the tail is staged.
const fleetChunk = 6 << 20

// fleet is the running fleet.
type fleet struct {
	lb    *testServer // the load balancer's address, as the helpers take a server
	nodes []*proc
	redis *redistest.Cluster
	ec    *miniotest.Server // mirror 1: four drives, erasure-coded
	plain *miniotest.Server // mirror 2
	stats string            // HAProxy's statistics, as CSV
	haLog string
}

// startFleet starts every process of the fleet and returns once HAProxy
// sees all three nodes up.
func startFleet(t *testing.T) *fleet {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatal("haproxy not found; run `make test-deps`")
	}
	f := &fleet{redis: redistest.StartClusterReplicas(t, 3, 1, 2*time.Second)}
	f.ec, f.plain = miniotest.StartErasure(t, 4), miniotest.Start(t)

	lbAddr, statsAddr := freeListen(t), freeListen(t)
	f.lb = &testServer{URL: "http://" + lbAddr}
	f.stats = "http://" + statsAddr + "/stats;csv"
	// deploy/fleet.yml, with only addresses, credentials and a few
	// timings changed.
	t.Setenv("ACESTASH_PUBLIC_URL", f.lb.URL)
	t.Setenv("ACESTASH_ADMIN_TOKEN", testAdminToken)
	t.Setenv("MINIO_ROOT_USER", "unused")
	t.Setenv("MINIO_ROOT_PASSWORD", "unused")
	cfg, err := loadConfig("../../deploy/fleet.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mirrors) != 2 || cfg.PublicURL != f.lb.URL || cfg.AdminToken != testAdminToken {
		t.Fatalf("deploy/fleet.yml: %d mirrors, public_url %q: want 2 and the environment's", len(cfg.Mirrors), cfg.PublicURL)
	}
	cfg.RedisURL = f.redis.URL
	for i, m := range []*miniotest.Server{f.ec, f.plain} {
		cfg.Mirrors[i].Endpoint, cfg.Mirrors[i].AccessKey, cfg.Mirrors[i].SecretKey = m.Endpoint, m.AccessKey, m.SecretKey
	}
	cfg.HealthInterval, cfg.LeaseTime, cfg.LogLevel = 200*time.Millisecond, 4*time.Second, "info"
	cfg.Accounts = testConfig(t, embedded).Accounts
	cfg.Limits.MaxChunkSize = fleetChunk
	var servers []string
	for range 3 {
		c := cfg
		c.Listen, c.DataDir = freeListen(t), t.TempDir()
		f.nodes = append(f.nodes, startProc(t, c))
		servers = append(servers, c.Listen)
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(conf, haproxyConfig(t, lbAddr, statsAddr, servers), 0o600); err != nil {
		t.Fatal(err)
	}
	f.haLog = filepath.Join(dir, "haproxy.log")
	logf, err := os.Create(f.haLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("haproxy", "-db", "-f", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	f.waitUp(t, 3)
	return f
}

// haproxyConfig is deploy/haproxy.cfg for processes on loopback: it binds
// lb, checks every 200 ms, names the servers by address instead of through
// Docker's resolver, and serves its statistics on stats.
func haproxyConfig(t *testing.T, lb, stats string, servers []string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../deploy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#"):
			continue
		case f[0] == "resolvers" || f[0] == "nameserver":
			continue // Docker's DNS
		case f[0] == "bind" && f[1] == ":8080":
			line = "  bind " + lb
		case f[0] == "default-server":
			line = "  default-server inter 200ms fall 2 rise 2"
		case f[0] == "server":
			if n >= len(servers) {
				t.Fatalf("deploy/haproxy.cfg names more than %d servers", len(servers))
			}
			line = fmt.Sprintf("  server %s %s check", f[1], servers[n])
			n++
		}
		out = append(out, line)
	}
	if n != len(servers) {
		t.Fatalf("deploy/haproxy.cfg names %d servers, the test starts %d", n, len(servers))
	}
	out = append(out, "listen stats", "  bind "+stats, "  stats enable", "  stats uri /stats", "")
	return []byte(strings.Join(out, "\n"))
}

// states returns HAProxy's view of each node: "UP", "DOWN", ...
func (f *fleet) states() (map[string]string, error) {
	resp, err := http.Get(f.stats)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HAProxy statistics: %d %s (%v)", resp.StatusCode, body, err)
	}
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("# ")))).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("HAProxy statistics: %w\n%s", err, body)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	states := map[string]string{}
	for _, r := range rows[1:] {
		if r[col["pxname"]] == "nodes" && strings.HasPrefix(r[col["svname"]], "n") {
			states[r[col["svname"]]] = r[col["status"]]
		}
	}
	return states, nil
}

// waitUp waits until HAProxy counts n nodes up.
func (f *fleet) waitUp(t *testing.T, n int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		states, err := f.states()
		up := 0
		for _, s := range states {
			if s == "UP" {
				up++
			}
		}
		if up == n {
			return states
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(f.haLog)
			t.Fatalf("HAProxy sees %v (%v), want %d nodes up\n%s", states, err, n, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// served counts, per node, the requests it logged whose path starts with
// path ("/files/"; end it with a space for one path exactly) since the
// marks (lines counted before), and returns the new marks.
func (f *fleet) served(path string, marks []int) (counts, now []int) {
	for i, p := range f.nodes {
		p.mu.Lock()
		lines := p.lines
		p.mu.Unlock()
		from := 0
		if marks != nil {
			from = marks[i]
		}
		n := 0
		for _, l := range lines[from:] {
			if strings.Contains(l, "msg=request") && strings.Contains(l, "path="+path) {
				n++
			}
		}
		counts, now = append(counts, n), append(now, len(lines))
	}
	return counts, now
}

// nodesUsed counts the nodes with a request among counts.
func nodesUsed(counts []int) int {
	n := 0
	for _, c := range counts {
		if c > 0 {
			n++
		}
	}
	return n
}

// TestFleet runs every dialect through the load balancer of a fleet, then
// fails parts of it while uploads stream.
func TestFleet(t *testing.T) {
	f := startFleet(t)

	t.Run("mirrorace", func(t *testing.T) {
		_, mark := f.served("/api/v1/upload ", nil)
		data := testData(3*fleetChunk+1234, 23)
		u := newUpload(t, f.lb, "1", "2")
		var res uploadResult
		for off := 0; off < len(data); off += fleetChunk {
			end := min(off+fleetChunk, len(data))
			u.send(fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data)), data[off:end]).result(t, &res)
		}
		checkComplete(t, f.lb, res, "f.bin", data)
		if counts, _ := f.served("/api/v1/upload ", mark); nodesUsed(counts) < 3 {
			t.Fatalf("the 4 chunks went to nodes %v, want every node to take one", counts)
		}
		fi := fileInfo(t, f.lb, testKey, testToken, res.Slug)
		if fi["mirrors"] != "1,2" {
			t.Fatalf("file/info mirrors %q, want both MinIO", fi["mirrors"])
		}
	})

	t.Run("tus", func(t *testing.T) {
		_, mark := f.served("/files/", nil)
		path, data := tusFile(t, 3<<20+4321, 24)
		res := runTus(t, tusJob{Endpoints: []string{f.lb.URL + "/files/"}, File: path, ChunkSize: 1 << 20,
			Metadata: map[string]string{"filename": "clip.bin", "mirrors": "1,2"}})
		if res.Slug == "" || res.Page != f.lb.URL+"/m/"+res.Slug {
			t.Fatalf("tus-js-client saw slug %q and page %q", res.Slug, res.Page)
		}
		checkDownload(t, res.Page+"/download", data)
		if fi := fileInfo(t, f.lb, testKey, testToken, res.Slug); fi["name"] != "clip.bin" || fi["mirrors"] != "1,2" {
			t.Fatalf("file/info %v", fi)
		}
		if counts, _ := f.served("/files/", mark); nodesUsed(counts) < 2 {
			t.Fatalf("the tus requests went to nodes %v, want more than one", counts)
		}
	})

	t.Run("mirage", func(t *testing.T) {
		data := testData(100<<10, 25)
		u := mirageURL(t, f.lb, mirageUpload(t, f.lb.URL+"/upload", data, true))
		checkDownload(t, u, data)
	})

	t.Run("rocketchat", func(t *testing.T) {
		data := []byte("notes for the room\n")
		a := rocketPost(t, f.lb, "GENERAL", testKey, testToken, []field{{"msg", "here"}}, "notes.txt", data)
		var got struct {
			Success bool `json:"success"`
			Message struct {
				Attachments []struct {
					TitleLink string `json:"title_link"`
				} `json:"attachments"`
			} `json:"message"`
		}
		if err := json.Unmarshal(a.body, &got); err != nil || !got.Success || len(got.Message.Attachments) != 1 {
			t.Fatalf("rooms.upload: %s", a)
		}
		checkDownload(t, f.lb.URL+got.Message.Attachments[0].TitleLink, data)
	})

	t.Run("web page", func(t *testing.T) {
		_, mark := f.served("/api/v1/upload ", nil)
		data := testData(2*fleetChunk+4567, 26)
		path := filepath.Join(t.TempDir(), "web.bin")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b := tab{t: t, ctx: chromium(t), dir: t.ArtifactDir()}
		b.do("sign in through the load balancer",
			chromedp.Navigate(f.lb.URL),
			chromedp.WaitVisible(chromedp.CSS(`input[name="api_key"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="api_key"]`), testKey),
			chromedp.SendKeys(chromedp.CSS(`input[name="api_token"]`), testToken+kb.Enter),
			chromedp.WaitVisible(chromedp.CSS(`input[type="file"][multiple]`)),
		)
		b.do("upload a file in three chunks",
			chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{path}),
			chromedp.WaitVisible(chromedp.CSS(`#queue a.file-link`)),
		)
		link := eval[string](b, `document.querySelector('#queue a.file-link').href`)
		if !strings.HasPrefix(link, f.lb.URL+"/m/") {
			t.Fatalf("the page links the file at %q, want a page under %s", link, f.lb.URL)
		}
		checkDownload(t, link+"/download", data)
		if counts, _ := f.served("/api/v1/upload ", mark); nodesUsed(counts) < 2 {
			t.Fatalf("the page's 3 chunks went to nodes %v, want more than one", counts)
		}
	})

	t.Run("cli", func(t *testing.T) {
		var list struct {
			Files []adminFile `json:"files"`
			Total int         `json:"total"`
		}
		cliJSON(t, f.lb.URL, &list, "files", "ls", "--account", testKey)
		// Mirage's upload belongs to the first account too.
		var names []string
		for _, f := range list.Files {
			names = append(names, f.Name)
		}
		if list.Total != 5 || strings.Join(names, ",") != "web.bin,notes.txt,"+list.Files[2].Slug+",clip.bin,f.bin" {
			t.Fatalf("files ls: %d files %v, want the 5 uploaded above, newest first", list.Total, names)
		}
		var info adminFile
		cliJSON(t, f.lb.URL, &info, "files", "info", list.Files[0].Slug)
		if info.Slug != list.Files[0].Slug || info.Size != list.Files[0].Size {
			t.Fatalf("files info %+v, listed as %+v", info, list.Files[0])
		}
	})
}

// TestFleetFailover streams uploads through a fleet while a Redis master
// fails over (by CLUSTER FAILOVER, then by SIGKILL), a drive of the
// erasure-coded MinIO is removed, and a node is SIGKILLed: nothing
// acknowledged is lost, and writes succeed again within seconds.
func TestFleetFailover(t *testing.T) {
	f := startFleet(t)
	// Every publish of the test account writes its owner index: fail the
	// master that holds it.
	owner := "acestash:{o:" + testKey + "}:files"

	t.Run("redis CLUSTER FAILOVER", func(t *testing.T) {
		_, replica := f.redis.Master(t, owner)
		if replica == nil {
			t.Fatal("the owner index's master has no replica")
		}
		f.failover(t, "CLUSTER FAILOVER", func() {
			if err := replica.Client().Do(t.Context(), "CLUSTER", "FAILOVER").Err(); err != nil {
				t.Fatal(err)
			}
		})
		if m, _ := f.redis.Master(t, owner); m != replica {
			t.Fatalf("the master is %s, want the replica %s that took over", m.Addr, replica.Addr)
		}
	})

	killed, replica := f.redis.Master(t, owner)
	t.Run("redis master SIGKILL", func(t *testing.T) {
		f.failover(t, "redis master SIGKILL", killed.Kill)
		if m, _ := f.redis.Master(t, owner); m != replica {
			t.Fatalf("the master is %s, want the replica %s that took over", m.Addr, replica.Addr)
		}
	})
	// The killed master comes back as a replica of the new one.
	if !killed.Running() {
		killed.Start()
		f.redis.WaitOK(t)
	}

	t.Run("minio drive removed", func(t *testing.T) {
		drive := f.ec.Drives[1]
		f.failover(t, "a drive of the erasure set removed", func() {
			// Renamed away at once, then deleted: MinIO writes to it
			// meanwhile.
			if err := os.Rename(drive, drive+".removed"); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(drive + ".removed"); err != nil {
				t.Fatal(err)
			}
		})
		// A new, empty drive in its place (MinIO may have made the
		// directory again already) is healed.
		if err := os.MkdirAll(drive, 0o755); err != nil {
			t.Fatal(err)
		}
		healed := time.Now()
		deadline := healed.Add(2 * time.Minute)
		for {
			have, want := objectParts(t, drive), objectParts(t, f.ec.Drives[0])
			if have == want && want > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the new drive holds %d object parts, the first %d, after %v", have, want, time.Since(healed))
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("a new drive in its place held every object's part %.1f s after it was put in", time.Since(healed).Seconds())
	})

	t.Run("node SIGKILL", func(t *testing.T) {
		f.failover(t, "acestash node SIGKILL", f.nodes[1].kill)
		if states := f.waitUp(t, 2); states["n2"] == "UP" {
			t.Fatalf("HAProxy still sends to the killed node: %v", states)
		}
	})
}

// objectParts counts the objects a MinIO drive holds a part of in the
// acestash bucket.
func objectParts(t *testing.T, drive string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(drive, "acestash"), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && d.Name() == "xl.meta" {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkDownload fetches u and compares the body with data.
func checkDownload(t *testing.T, u string, data []byte) {
	t.Helper()
	resp, got := fetch(t, u, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		gs, ws := sha256.Sum256(got), sha256.Sum256(data)
		t.Fatalf("GET %s: %d, %d bytes with SHA-256 %s; sent %d bytes with %s", u, resp.StatusCode,
			len(got), hex.EncodeToString(gs[:8]), len(data), hex.EncodeToString(ws[:8]))
	}
}
