package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"gopkg.in/yaml.v3"

	"github.com/acestash/acestash/store"
)

// Sizes and counts of the figures; the file sizes can be shrunk with
// ACESTASH_BENCH_SIZE.
const (
	defaultBenchSize = 1 << 30  // the big file
	minSmallSize     = 16 << 20 // the small files are a quarter of it, no less
	concurrentUps    = 8        // figure 4: uploads at once
	rawSize          = 64 << 10 // figure 6: body size
	rawRequests      = 2000
	rawWorkers       = 32
	readPairs        = 3  // figure 12: measurements of each side in a round
	smallFiles       = 32 // figures 12, 13: the files read in turn
	defaultRounds    = 3  // the table shows the median
)

// benchTable is the table BenchmarkVsBaselines printed; TestMain prints it
// after the benchmark lines.
var benchTable string

// BenchmarkVsBaselines measures acestash as its clients see it against
// baselines measured in the same run, and leaves one table of the ratios
// in benchTable. Every server is a real process: Redis, three MinIO, the
// acestash binary and tusd; the client is this test binary in a process of
// its own, sending a file of random bytes from disk. Each figure is
// measured in several rounds and the table shows the medians.
// ACESTASH_BENCH_SIZE (bytes) shrinks the 1 GiB file for a quick run,
// ACESTASH_BENCH_ROUNDS sets the number of rounds, and
// ACESTASH_BENCH_PROFILE names a file for a CPU profile of acestash.
// ACESTASH_BENCH_TAIL_ONLY=1 measures the tail figures alone,
// ACESTASH_BENCH_READS_ONLY=1 the figures of one mirror and the reads (2,
// 3, 5, 8, 9, 11 to 14).
func BenchmarkVsBaselines(b *testing.B) {
	e := newBench(b)
	n := benchRounds(b)
	var rounds []results
	var tails []tailResults
	for b.Loop() {
		rounds, tails = rounds[:0], tails[:0]
		for range n {
			var r results
			var t tailResults
			e.round(b, &r, &t)
			rounds, tails = append(rounds, r), append(tails, t)
		}
	}
	benchTable = e.table(rounds, tails)
}

// round measures each figure once.
func (e *bench) round(b *testing.B, r *results, t *tailResults) {
	switch {
	case readsOnly():
		e.oneMirror(b, r)
		e.smallReads(b, r)
		return
	case drainOnly():
		e.drain(b, r)
		return
	case !tailOnly():
		e.oneMirror(b, r)
		e.threeMirrors(b, r)
		e.concurrent(b, r)
		e.raw(b, r)
		e.smallReads(b, r)
		e.drain(b, r)
	}
	e.tail(b, t)
}

// bench is the running processes and the files the clients send.
type bench struct {
	big, small benchFile
	ace, tus   *daemon
	aceURL     string
	// redirect is a second node on the same store and mirrors, with
	// redirects on for every mirror.
	redirect    *daemon
	redirectURL string
	tusURL      string
	aceBucket   string          // acestash's bucket on every MinIO
	minio       []*minio.Client // one for each MinIO, to empty buckets
	minioPID    []int
	redisPID    int
	minioDir    []string   // each MinIO's data directory
	baseline    []s3Target // bucket "baseline" on each MinIO
	about       string     // versions and sizes, for the table
	cluster     *cluster   // Redis and the MinIO servers
	tailFile    benchFile  // the tail figures' chunk
	mcBin       string     // MinIO's client, figure 16's baseline
	// haproxy passes requests to the first MinIO and does nothing else:
	// what proxying alone costs, beside figures 5 and 12. proxied is
	// bucket "baseline" through it.
	haproxy *daemon
	proxied s3Target
}

// benchSize is the big file's size: 1 GiB, or ACESTASH_BENCH_SIZE bytes.
func benchSize(b *testing.B) int64 {
	return int64(envInt(b, "ACESTASH_BENCH_SIZE", defaultBenchSize))
}

// benchRounds is how many times each figure is measured: 3, or
// ACESTASH_BENCH_ROUNDS.
func benchRounds(b *testing.B) int { return envInt(b, "ACESTASH_BENCH_ROUNDS", defaultRounds) }

// envInt returns the positive integer in environment variable name, or def
// if it is not set.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// newBench writes the files, builds acestash and starts Redis, three MinIO,
// acestash on them (mirrors "1", "2", "3") and tusd on the first MinIO.
func newBench(b *testing.B) *bench {
	dir := b.TempDir()
	e := &bench{}
	var err error
	size := benchSize(b)
	if e.big, err = writeRandomFile(filepath.Join(dir, "big.bin"), size); err != nil {
		b.Fatal(err)
	}
	if e.small, err = writeRandomFile(filepath.Join(dir, "small.bin"), max(size/4, minSmallSize)); err != nil {
		b.Fatal(err)
	}
	aceBin := filepath.Join(dir, "acestash")
	if out, err := exec.Command("go", "build", "-o", aceBin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	tusBin, err := findBin("tusd")
	if err != nil {
		b.Fatal(err)
	}
	minioBin, err := findBin("minio")
	if err != nil {
		b.Fatal(err)
	}
	if e.mcBin, err = findBin("mc"); err != nil {
		b.Fatal(err)
	}
	if modVersion(e.mcBin, "github.com/minio/mc") == "unknown" {
		b.Fatalf("%s is not MinIO's mc (Midnight Commander is also mc): run `make bench`, which puts it first in PATH", e.mcBin)
	}

	c, cfg := startCluster(b)
	e.cluster = c
	for i, m := range cfg.Mirrors {
		if m.ID != strconv.Itoa(i+1) || m.Bucket != cfg.Mirrors[0].Bucket {
			b.Fatalf("deploy/acestash.yml: mirror %d is %q on bucket %q; the benchmark wants ids 1, 2, 3 on one bucket name", i, m.ID, m.Bucket)
		}
	}
	cfg.Listen = freeAddr(b)
	cfg.PublicURL = "http://" + cfg.Listen
	cfg.HealthInterval = 15 * time.Second // the default, not the tests' 200ms
	cfg.AdminToken = testAdminToken       // figure 16 drains a mirror
	// Raw uploads go to the default mirrors: one, as figure 6's baseline.
	cfg.Accounts = []AccountConfig{{Settings: store.Settings{Name: "bench", DefaultMirrors: []string{"1"}}, APIKey: testKey, APIToken: testToken}}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "acestash.yml")
	if err := os.WriteFile(cfgPath, y, 0o600); err != nil {
		b.Fatal(err)
	}
	e.aceURL, e.aceBucket = cfg.PublicURL, cfg.Mirrors[0].Bucket
	args := []string{"serve", "--config", cfgPath}
	if prof := os.Getenv("ACESTASH_BENCH_PROFILE"); prof != "" {
		// A CPU profile of acestash over the whole run, for go tool pprof.
		args = append(args, "--cpuprofile", prof)
	}
	e.ace = startDaemon(b, "acestash", exec.Command(aceBin, args...), e.aceURL+"/")

	rcfg := cfg
	rcfg.Mirrors = slices.Clone(cfg.Mirrors)
	for i := range rcfg.Mirrors {
		rcfg.Mirrors[i].Redirect = true
	}
	rcfg.Listen = freeAddr(b)
	rcfg.PublicURL = "http://" + rcfg.Listen
	if y, err = yaml.Marshal(rcfg); err != nil {
		b.Fatal(err)
	}
	rcfgPath := filepath.Join(dir, "redirect.yml")
	if err := os.WriteFile(rcfgPath, y, 0o600); err != nil {
		b.Fatal(err)
	}
	e.redirectURL = rcfg.PublicURL
	e.redirect = startDaemon(b, "acestash (redirects)", exec.Command(aceBin, "serve", "--config", rcfgPath), e.redirectURL+"/")

	ctx := context.Background()
	for _, m := range c.minio {
		t := s3Target{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey, Bucket: "baseline"}
		mc, err := t.client()
		if err != nil {
			b.Fatal(err)
		}
		if err := mc.MakeBucket(ctx, t.Bucket, minio.MakeBucketOptions{}); err != nil {
			b.Fatalf("make bucket %s on %s: %v", t.Bucket, t.Endpoint, err)
		}
		pid, err := minioPID(m.Endpoint)
		if err != nil {
			b.Fatal(err)
		}
		e.minio, e.minioPID, e.baseline = append(e.minio, mc), append(e.minioPID, pid), append(e.baseline, t)
		e.minioDir = append(e.minioDir, m.Dir)
		b.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) }) // figure 13 stops it
	}

	if e.redisPID, err = redisPID(ctx, c.redis.Client()); err != nil {
		b.Fatal(err)
	}

	// tusd in its fastest setting: no MD5 or SHA-256 of the content.
	m := c.minio[0]
	if err := e.minio[0].MakeBucket(ctx, "tusd", minio.MakeBucketOptions{}); err != nil {
		b.Fatalf("make bucket tusd on %s: %v", m.Endpoint, err)
	}
	tmp := filepath.Join(dir, "tusd-tmp") // where tusd buffers parts
	if err := os.Mkdir(tmp, 0o700); err != nil {
		b.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(freeAddr(b))
	cmd := exec.Command(tusBin, "-host", host, "-port", port,
		"-s3-bucket", "tusd", "-s3-endpoint", "http://"+m.Endpoint, "-s3-disable-ssl", "-s3-disable-content-hashes",
		"-verbose=false", "-show-startup-logs=false", "-expose-metrics=false")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+m.AccessKey, "AWS_SECRET_ACCESS_KEY="+m.SecretKey,
		"AWS_REGION=us-east-1", "TMPDIR="+tmp)
	e.tusURL = "http://" + net.JoinHostPort(host, port)
	e.tus = startDaemon(b, "tusd", cmd, e.tusURL+"/")
	e.startHAProxy(b, dir)

	commit := "unknown"
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	e.about = fmt.Sprintf("acestash %s, MinIO %s, tusd %s, mc %s, %s, %d CPUs; big file %s, small files %s; %s",
		commit, modVersion(minioBin, "github.com/minio/minio"), modVersion(tusBin, "github.com/tus/tusd/v2"), modVersion(e.mcBin, "github.com/minio/mc"),
		runtime.Version(), runtime.NumCPU(), fmtSize(e.big.size), fmtSize(e.small.size), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	return e
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// results are the measurements of one round; times in seconds.
type results struct {
	put1, ace1, tus1 float64 // figures 2 and 3: the big file to one MinIO
	get, down        float64 // figure 5
	proxiedGet       float64 // figure 5's GetObject through HAProxy
	redirect         float64 // figure 11
	put3, ace3       float64 // figure 1
	tusAce1, tusAce3 float64 // figures 9 and 10: tus through acestash
	putN, aceN       float64 // figure 4
	dropped          int     // figures 1, 4, 10: copies left to the repairer
	rawPut, raw      float64 // figure 6: all requests
	rss3, rssN       int64   // figure 7: during figures 1 and 4
	// Figures 12 and 13: many small reads, all requests, and their p99;
	// the first three summed over readPairs, the p99s their medians.
	smallGet, smallDown, smallProxied, smallGetP99, smallP99, stoppedP99 float64
	// CPU time during figure 12: of acestash, Redis and the three MinIO
	// under acestash's reads; of the MinIO under GetObject; of HAProxy and
	// the MinIO through it.
	cpuSmallAce, cpuSmallRedis, cpuSmallMinio, cpuSmallGetMinio, cpuSmallHAProxy, cpuSmallProxiedMinio time.Duration
	// Figure 12's reads by mirror (opens of mirrors 1, 2, 3) and the
	// hedges they lost, from acestash's metrics.
	smallOpens  [3]float64
	smallHedged float64

	// Figure 8: CPU time of acestash, tusd and the MinIO written to, in
	// figures 2, 3 and 9.
	cpuAce1, cpuMinioAce1, cpuMinioPut1, cpuTus1, cpuMinioTus1 time.Duration
	cpuAceTus1, cpuMinioAceTus1                                time.Duration
	// Figure 14: CPU time of acestash and the MinIO read from during
	// figure 5 (its timed download and the one that checks the bytes), and
	// of that MinIO under GetObject.
	cpuAceDown, cpuMinioDown, cpuMinioGet time.Duration
	cpuHAProxy                            time.Duration // figure 5's GetObject through it

	// Figure 16: mc mirror and the drain of drainBytes, their CPU time
	// (the drain's: both acestash nodes) and the nodes' peak RSS.
	mc, drain       float64
	cpuMc, cpuDrain time.Duration
	rssDrain        int64
	drainBytes      int64
}

// Every upload below starts from the same state: the buckets it and its
// baseline write to are emptied after each measurement, with MinIO's trash,
// so no upload is slowed by the gigabytes earlier ones left on the disks
// and in the page cache. (Measured in a fixed order without this, whatever
// ran third was slower by 15–20% however fast it was.)

// oneMirror measures figures 2, 3, 5, 8 and 9: the big file written to
// the first MinIO directly, through acestash (MirrorAce chunks and tus) and
// through tusd, with the CPU time each server spent; each of the first two
// is read back right after it is written, directly and through acestash.
func (e *bench) oneMirror(b *testing.B, r *results) {
	minio1 := e.minioPID[0]
	res, cpu := e.measure(b, clientJob{Op: "put", File: e.big.path, S3: e.baseline[:1], Copies: 1, Object: "one"}, minio1)
	r.put1, r.cpuMinioPut1 = res.Seconds, cpu[0]
	res, cpu = e.measure(b, clientJob{Op: "get", File: e.big.path, S3: e.baseline[:1], Object: "one-0"}, minio1)
	r.get, r.cpuMinioGet = res.Seconds, cpu[0]
	res, cpu = e.measure(b, clientJob{Op: "get", File: e.big.path, S3: []s3Target{e.proxied}, Object: "one-0"}, e.haproxy.pid())
	r.proxiedGet, r.cpuHAProxy = res.Seconds, cpu[0]
	e.empty(b, 0, "baseline", 1, e.big.size)

	res, cpu = e.measure(b, e.chunked(e.big, 1, "1"), e.ace.pid(), minio1)
	r.ace1, r.cpuAce1, r.cpuMinioAce1 = res.Seconds, cpu[0], cpu[1]
	slug := res.Slugs[0]
	e.checkPage(b, slug, e.big.sha256)
	res, cpu = e.measure(b, clientJob{Op: "download", File: e.big.path, Base: e.aceURL, Slug: slug, Verify: true}, e.ace.pid(), minio1)
	r.down, r.cpuAceDown, r.cpuMinioDown = res.Seconds, cpu[0], cpu[1]
	if res.SHA256 != e.big.sha256 {
		b.Fatalf("download of %s: SHA-256 %s, the file's is %s", slug, res.SHA256, e.big.sha256)
	}
	// The same download from the node that redirects, the client
	// following the redirect to MinIO.
	res, _ = e.measure(b, clientJob{Op: "download", File: e.big.path, Base: e.redirectURL, Slug: slug, Verify: true})
	r.redirect = res.Seconds
	if res.SHA256 != e.big.sha256 {
		b.Fatalf("redirected download of %s: SHA-256 %s, the file's is %s", slug, res.SHA256, e.big.sha256)
	}
	e.empty(b, 0, e.aceBucket, 1, e.big.size)

	res, cpu = e.measure(b, clientJob{Op: "tus", File: e.big.path, Base: e.tusURL}, e.tus.pid(), minio1)
	r.tus1, r.cpuTus1, r.cpuMinioTus1 = res.Seconds, cpu[0], cpu[1]
	e.empty(b, 0, "tusd", 1, e.big.size)

	res, cpu = e.measure(b, e.tusJob(e.big, "1"), e.ace.pid(), minio1)
	r.tusAce1, r.cpuAceTus1, r.cpuMinioAceTus1 = res.Seconds, cpu[0], cpu[1]
	e.checkPage(b, res.Slugs[0], e.big.sha256)
	e.empty(b, 0, e.aceBucket, 1, e.big.size)
	e.empty(b, 1, e.aceBucket, 0, e.big.size) // nothing went to mirrors 2 and 3
	e.empty(b, 2, e.aceBucket, 0, e.big.size)
}

// threeMirrors measures figures 1 and 10 and acestash's peak RSS during
// figure 1: the big file to all three MinIO directly, at once, and through
// acestash (MirrorAce chunks and tus).
func (e *bench) threeMirrors(b *testing.B, r *results) {
	res, _ := e.measure(b, clientJob{Op: "put", File: e.big.path, S3: e.baseline, Copies: 1, Object: "three"})
	r.put3 = res.Seconds
	e.emptyAll(b, "baseline", 1, e.big.size)
	e.resetPeakRSS(b)
	res, _ = e.measure(b, e.chunked(e.big, 1, "1", "2", "3"))
	r.ace3, r.rss3 = res.Seconds, e.peakRSS(b)
	e.checkPage(b, res.Slugs[0], e.big.sha256)
	r.dropped += e.waitRepaired(b, res.Slugs[0], "1", "2", "3")
	e.emptyAll(b, e.aceBucket, 1, e.big.size)
	res, _ = e.measure(b, e.tusJob(e.big, "1", "2", "3"))
	r.tusAce3 = res.Seconds
	e.checkPage(b, res.Slugs[0], e.big.sha256)
	r.dropped += e.waitRepaired(b, res.Slugs[0], "1", "2", "3")
	e.emptyAll(b, e.aceBucket, 1, e.big.size)
}

// concurrent measures figure 4 and acestash's peak RSS during it: the
// small file uploaded concurrentUps times at once to all three MinIO,
// directly and through acestash.
func (e *bench) concurrent(b *testing.B, r *results) {
	// One part at a time: with minio-go's default of four, the 24
	// PutObjects at once oversubscribe the CPUs and take longer.
	res, _ := e.measure(b, clientJob{Op: "put", File: e.small.path, S3: e.baseline, Copies: concurrentUps, Threads: 1, Object: "many"})
	r.putN = res.Seconds
	e.emptyAll(b, "baseline", concurrentUps, e.small.size)
	e.resetPeakRSS(b)
	res, _ = e.measure(b, e.chunked(e.small, concurrentUps, "1", "2", "3"))
	r.aceN, r.rssN = res.Seconds, e.peakRSS(b)
	for _, slug := range res.Slugs {
		e.checkPage(b, slug, e.small.sha256)
		r.dropped += e.waitRepaired(b, slug, "1", "2", "3")
	}
	e.emptyAll(b, e.aceBucket, concurrentUps, e.small.size)
}

// waitRepaired checks that the record of the file of slug lists every one
// of mirrors, as holding a copy or missing one, and waits until the
// repairer has made the missing copies. It returns how many were missing.
// An upload drops a mirror that falls behind the others (lag_limit) and
// leaves its copy to the repairer: on a machine this loaded, a starved
// but healthy MinIO may be one, which costs a repair, not a copy.
func (e *bench) waitRepaired(b *testing.B, slug string, mirrors ...string) int {
	b.Helper()
	creds := []field{{"api_key", testKey}, {"api_token", testToken}, {"files", slug}}
	missing := -1
	deadline := time.Now().Add(3 * time.Minute) // the repairer runs every minute
	for {
		var info map[string]map[string]string
		postForm(b, e.aceURL+"/api/v1/file/info", creds).result(b, &info)
		fi := info[slug]
		have, lack := strings.Split(fi["mirrors"], ","), strings.FieldsFunc(fi["missing"], func(r rune) bool { return r == ',' })
		all := append(slices.Clone(have), lack...)
		slices.Sort(all)
		if !slices.Equal(all, mirrors) {
			b.Fatalf("file/info of %s: mirrors %q, missing %q; want %v between them", slug, fi["mirrors"], fi["missing"], mirrors)
		}
		if missing < 0 {
			missing = len(lack)
		}
		if len(lack) == 0 {
			return missing
		}
		if time.Now().After(deadline) {
			b.Fatalf("file %s still misses a copy on %q 3 minutes after its upload", slug, fi["missing"])
		}
		time.Sleep(time.Second)
	}
}

// raw measures figure 6: small bodies, many at a time, through Mirage's
// POST /upload and with PutObject straight to the first MinIO.
func (e *bench) raw(b *testing.B, r *results) {
	job := clientJob{Op: "rawput", File: e.small.path, S3: e.baseline[:1], Object: "raw",
		Requests: rawRequests, Workers: rawWorkers, RawSize: rawSize}
	res, _ := e.measure(b, job)
	r.rawPut = res.Seconds
	e.empty(b, 0, "baseline", rawRequests, rawSize)
	job.Op, job.S3, job.Object, job.Base = "raw", nil, "", e.aceURL
	res, _ = e.measure(b, job)
	r.raw = res.Seconds
	e.empty(b, 0, e.aceBucket, rawRequests, rawSize)
}

// smallReads measures figures 12 and 13: small files on mirrors 1, 2, 3
// read many at a time through /uploads/<slug>, against GetObject of as many
// objects on the first MinIO; then the same reads with the first MinIO
// SIGSTOPped.
func (e *bench) smallReads(b *testing.B, r *results) {
	ctx := context.Background()
	body := make([]byte, rawSize)
	f, err := os.Open(e.small.path)
	if err != nil {
		b.Fatal(err)
	}
	_, err = f.ReadAt(body, 0)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	var slugs, keys []string
	for i := range smallFiles {
		info := getUploadInfo(b, e.aceURL, false)
		fields := []field{{"api_key", testKey}, {"api_token", testToken}, {"cTracker", info.CTracker},
			{"upload_key", info.UploadKey}, {"mirrors[]", "1"}, {"mirrors[]", "2"}, {"mirrors[]", "3"}}
		var up uploadResult
		postMultipart(b, e.aceURL+"/api/v1/upload", fields, "files[]", "small.bin", body, nil).result(b, &up)
		slugs = append(slugs, up.Slug)
		key := fmt.Sprintf("small-%d", i)
		if _, err := e.minio[0].PutObject(ctx, "baseline", key, bytes.NewReader(body), rawSize, minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key)
	}
	get := clientJob{Op: "smallget", File: e.small.path, S3: e.baseline[:1], Keys: keys,
		Requests: rawRequests, Workers: rawWorkers, RawSize: rawSize}
	proxied := get
	proxied.S3 = []s3Target{e.proxied}
	job := get
	job.Op, job.S3, job.Keys, job.Base = "smalldown", nil, slugs, e.aceURL
	// Each measure lasts about a second, which leaves one of them at the
	// mercy of whatever else the machine did in it: the three are taken
	// in turn readPairs times, and summed.
	var getP99, p99 []float64
	pids := append([]int{e.ace.pid(), e.redisPID}, e.minioPID...)
	for range readPairs {
		res, cpu := e.measure(b, get, e.minioPID...)
		r.smallGet += res.Seconds
		r.cpuSmallGetMinio += sum(cpu)
		getP99 = append(getP99, res.P99)
		res, cpu = e.measure(b, proxied, append([]int{e.haproxy.pid()}, e.minioPID...)...)
		r.smallProxied += res.Seconds
		r.cpuSmallHAProxy += cpu[0]
		r.cpuSmallProxiedMinio += sum(cpu[1:])
		before := e.readCounts(b)
		res, cpu = e.measure(b, job, pids...)
		after := e.readCounts(b)
		opened := 0.0
		for i := range r.smallOpens {
			r.smallOpens[i] += after[i] - before[i]
			opened += after[i] - before[i]
		}
		if opened < rawRequests { // every download opens a mirror at least once
			b.Fatalf("acestash's metrics count %.0f mirror reads for %d downloads: have the metric names changed?", opened, rawRequests)
		}
		r.smallHedged += after[3] - before[3]
		r.smallDown += res.Seconds
		r.cpuSmallAce, r.cpuSmallRedis = r.cpuSmallAce+cpu[0], r.cpuSmallRedis+cpu[1]
		r.cpuSmallMinio += sum(cpu[2:])
		p99 = append(p99, res.P99)
	}
	r.smallGetP99, r.smallP99 = median(getP99), median(p99)

	syscall.Kill(e.minioPID[0], syscall.SIGSTOP)
	res, _ := e.measure(b, job)
	syscall.Kill(e.minioPID[0], syscall.SIGCONT)
	r.stoppedP99 = res.P99
	e.waitMirrorsUp(b)
	e.emptyAll(b, e.aceBucket, smallFiles, rawSize)
	e.empty(b, 0, "baseline", smallFiles, rawSize)
}

// readCounts returns, from acestash's metrics, how many reads it opened on
// mirrors 1, 2 and 3, and how many hedges those mirrors lost in all.
func (e *bench) readCounts(b *testing.B) [4]float64 {
	b.Helper()
	m := scrapeMetrics(b, e.aceURL, "")
	var c [4]float64
	for i := range 3 {
		c[i] = m.value("acestash_mirror_operation_duration_seconds", "mirror="+strconv.Itoa(i+1), "op=open")
	}
	c[3] = m.value("acestash_mirror_reads_given_up_total", "reason=hedge")
	return c
}

// waitMirrorsUp waits until both nodes count every mirror healthy again,
// after figure 13 stopped one.
func (e *bench) waitMirrorsUp(b *testing.B) {
	deadline := time.Now().Add(time.Minute)
	for _, base := range []string{e.aceURL, e.redirectURL} {
		for {
			_, m := fetch(b, base+"/metrics", nil)
			if !bytes.Contains(m, []byte(`acestash_mirror_up{mirror="1"} 0`)) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: mirror 1 still down a minute after SIGCONT", base)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// chunked is the job of uploading f copies times at once through acestash
// to mirrors.
func (e *bench) chunked(f benchFile, copies int, mirrors ...string) clientJob {
	return clientJob{Op: "chunked", File: f.path, Base: e.aceURL, Key: testKey, Token: testToken, Mirrors: mirrors, Copies: copies}
}

// tusJob is the job of uploading f through acestash's tus endpoint to
// mirrors, with the same client as tusd gets: a POST, then one PATCH.
func (e *bench) tusJob(f benchFile, mirrors ...string) clientJob {
	return clientJob{Op: "tus", File: f.path, Base: e.aceURL, Key: testKey, Token: testToken, Mirrors: mirrors}
}

// measure flushes dirty pages to disk, so that one measurement's writes do
// not land in the next, then runs job in a client process and returns its
// result and the CPU time each of pids used while it ran.
func (e *bench) measure(b *testing.B, job clientJob, pids ...int) (clientResult, []time.Duration) {
	b.Helper()
	syscall.Sync()
	cpu := make([]time.Duration, len(pids))
	for i, pid := range pids {
		t, err := cpuTime(pid)
		if err != nil {
			b.Fatal(err)
		}
		cpu[i] = -t
	}
	res := e.runClient(b, job)
	for i, pid := range pids {
		t, err := cpuTime(pid)
		if err != nil {
			b.Fatal(err)
		}
		cpu[i] += t
	}
	return res, cpu
}

// runClient runs job in a new process of this test binary.
func (e *bench) runClient(b *testing.B, job clientJob) clientResult {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	spec, err := json.Marshal(job)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), benchClientEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("client %s: %v\n%s\n%s\n%s", job.Op, err, stderr.Bytes(), e.ace.logTail(), e.tus.logTail())
	}
	var res clientResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		b.Fatalf("client %s: result %q: %v", job.Op, stdout.Bytes(), err)
	}
	return res
}

// checkPage checks that the file page of slug shows the SHA-256 sum.
func (e *bench) checkPage(b *testing.B, slug, sum string) {
	b.Helper()
	resp, page := fetch(b, e.aceURL+"/m/"+slug, nil)
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte(sum)) {
		b.Fatalf("/m/%s: %s, and the page does not show the SHA-256 of the bytes sent, %s", slug, resp.Status, sum)
	}
}

// emptyAll empties bucket on every MinIO, as empty does.
func (e *bench) emptyAll(b *testing.B, bucket string, want int, size int64) {
	b.Helper()
	for i := range e.minio {
		e.empty(b, i, bucket, want, size)
	}
}

// empty removes everything from a bucket on MinIO server i, checking that
// it held want objects of size bytes.
func (e *bench) empty(b *testing.B, i int, bucket string, want int, size int64) {
	b.Helper()
	objs := e.purge(b, i, bucket)
	n := 0
	for _, o := range objs {
		if o.Size == size {
			n++
		}
	}
	if n != want {
		b.Fatalf("bucket %s on MinIO %d held %d objects of %d bytes, want %d (all: %d objects)\n%s", bucket, i+1, n, size, want, len(objs), e.ace.logTail())
	}
}

// emptyObjects removes everything from a bucket on MinIO server i,
// checking that it held n objects of size bytes in all.
func (e *bench) emptyObjects(b *testing.B, i int, bucket string, n int, size int64) {
	b.Helper()
	objs := e.purge(b, i, bucket)
	var sum int64
	for _, o := range objs {
		sum += o.Size
	}
	if len(objs) != n || sum != size {
		b.Fatalf("bucket %s on MinIO %d held %d objects, %d bytes; want %d, %d\n%s", bucket, i+1, len(objs), sum, n, size, e.ace.logTail())
	}
}

// purge removes everything from a bucket on MinIO server i, and MinIO's
// trash, and returns the objects the bucket held.
func (e *bench) purge(b *testing.B, i int, bucket string) []minio.ObjectInfo {
	b.Helper()
	objs, err := emptyBucket(context.Background(), e.minio[i], bucket)
	if err != nil {
		b.Fatal(err)
	}
	// MinIO moves what it deletes to a trash it empties slowly, a little
	// at a time; a run writes more GiBs than the disk may have free.
	trash := filepath.Join(e.minioDir[i], ".minio.sys", "tmp", ".trash")
	entries, err := os.ReadDir(trash)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		b.Fatal(err)
	}
	for _, d := range entries {
		if err := os.RemoveAll(filepath.Join(trash, d.Name())); err != nil {
			b.Fatal(err)
		}
	}
	return objs
}

func (e *bench) resetPeakRSS(b *testing.B) {
	b.Helper()
	if err := resetPeakRSS(e.ace.pid()); err != nil {
		b.Fatal(err)
	}
}

func (e *bench) peakRSS(b *testing.B) int64 {
	b.Helper()
	n, err := peakRSS(e.ace.pid())
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// table renders the rounds' results as a Markdown table of medians.
func (e *bench) table(rounds []results, tails []tailResults) string {
	big, small := e.big.size, e.small.size
	many := concurrentUps * small
	// cmp returns a comparison's cells: acestash, the baseline named base,
	// the median ratio with its range, the goal and whether it is met.
	cmp := func(show func(secs float64) string, base string, baseSecs, aceSecs func(*results) float64, goal float64) []string {
		ratios := make([]float64, len(rounds))
		for i := range rounds {
			ratios[i] = baseSecs(&rounds[i]) / aceSecs(&rounds[i])
		}
		m := math.Round(median(ratios)*100) / 100 // as shown, and judged
		ratio := fmt.Sprintf("%.2f×", m)
		if len(rounds) > 1 {
			ratio += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(ratios), slices.Max(ratios))
		}
		return []string{show(medianOf(rounds, aceSecs)), base + ": " + show(medianOf(rounds, baseSecs)),
			ratio, fmt.Sprintf("≥ %.2f×", goal), verdict(m >= goal)}
	}
	// ref returns the cells of a reference measurement that has no goal:
	// HAProxy in acestash's place.
	ref := func(show func(secs float64) string, base string, baseSecs, refSecs func(*results) float64) []string {
		c := cmp(show, base, baseSecs, refSecs, 0)
		c[0] = "HAProxy: " + c[0]
		return append(c[:3], "", "")
	}
	rate := func(n int64) func(float64) string { return func(secs float64) string { return speed(n, secs) } }
	reqs := func(secs float64) string { return fmt.Sprintf("%.0f req/s", rawRequests/secs) }
	pairReqs := func(secs float64) string { return fmt.Sprintf("%.0f req/s", readPairs*rawRequests/secs) }
	perGiB := func(d time.Duration) float64 { return d.Seconds() / (float64(big) / (1 << 30)) }
	cpu := func(f func(*results) time.Duration) float64 {
		return medianOf(rounds, func(r *results) float64 { return perGiB(f(r)) })
	}
	perThousand := func(f func(*results) float64) float64 {
		return medianOf(rounds, func(r *results) float64 { return f(r) / (readPairs * rawRequests / 1000) })
	}
	perReads := func(f func(*results) time.Duration) float64 {
		return perThousand(func(r *results) float64 { return f(r).Seconds() })
	}
	var rss3, rssN int64
	for _, r := range rounds {
		rss3, rssN = max(rss3, r.rss3), max(rssN, r.rssN)
	}
	aceCPU := cpu(func(r *results) time.Duration { return r.cpuAce1 })
	// Figure 13 is a ratio of p99s, stopped over healthy: lower is better.
	slow := make([]float64, len(rounds))
	for i, r := range rounds {
		slow[i] = r.stoppedP99 / r.smallP99
	}
	ms := func(f func(*results) float64) string { return fmt.Sprintf("%.0f ms", 1000*medianOf(rounds, f)) }
	slowMed := math.Round(median(slices.Clone(slow))*100) / 100
	slowRow := []string{"13", "figure 12 with MinIO 1 of 3 SIGSTOPped: p99",
		"p99 " + ms(func(r *results) float64 { return r.stoppedP99 }),
		"healthy p99 " + ms(func(r *results) float64 { return r.smallP99 }) + "; GetObject p99 " + ms(func(r *results) float64 { return r.smallGetP99 }),
		fmt.Sprintf("%.2f× (%.2f–%.2f)", slowMed, slices.Min(slow), slices.Max(slow)), "≤ 2.00×", verdict(slowMed <= 2)}

	rows := [][]string{
		{"#", "figure", "acestash", "baseline", "ratio", "goal", "met"},
		append([]string{"1", fmtSize(big) + " chunked upload → 3 mirrors"},
			cmp(rate(big), "3 PutObject at once", func(r *results) float64 { return r.put3 }, func(r *results) float64 { return r.ace3 }, 0.85)...),
		append([]string{"2", fmtSize(big) + " chunked upload → 1 mirror"},
			cmp(rate(big), "PutObject", func(r *results) float64 { return r.put1 }, func(r *results) float64 { return r.ace1 }, 0.92)...),
		append([]string{"3", fmtSize(big) + " upload → 1 mirror, against tusd"},
			cmp(rate(big), "tusd, 1 PATCH", func(r *results) float64 { return r.tus1 }, func(r *results) float64 { return r.ace1 }, 1.0)...),
		append([]string{"4", fmt.Sprintf("%d × %s chunked uploads at once → 3 mirrors", concurrentUps, fmtSize(small))},
			cmp(rate(many), fmt.Sprintf("%d PutObject at once", 3*concurrentUps), func(r *results) float64 { return r.putN }, func(r *results) float64 { return r.aceN }, 0.9)...),
		{"4", "copies left to the repairer in figures 1, 4, 10 (laggards dropped), by round", dropped(rounds), "", "", "", ""},
		append([]string{"5", fmtSize(big) + " download, /m/<slug>/download, proxied"},
			cmp(rate(big), "GetObject", func(r *results) float64 { return r.get }, func(r *results) float64 { return r.down }, 0.92)...),
		append([]string{"5", "the same GetObject through HAProxy: what proxying alone costs"},
			ref(rate(big), "GetObject", func(r *results) float64 { return r.get }, func(r *results) float64 { return r.proxiedGet })...),
		append([]string{"6", fmt.Sprintf("%d × %s POST /upload, %d at a time → 1 mirror", rawRequests, fmtSize(rawSize), rawWorkers)},
			cmp(reqs, "PutObject", func(r *results) float64 { return r.rawPut }, func(r *results) float64 { return r.raw }, 0.7)...),
		{"7", "acestash peak RSS during figure 1", fmtSize(rss3), "", "", "≤ 64 MiB", verdict(rss3 <= 64<<20)},
		{"7", "acestash peak RSS during figure 4", fmtSize(rssN), "", "", "≤ 256 MiB", verdict(rssN <= 256<<20)},
		{"8", "CPU per GiB uploaded (figures 2, 3): acestash", fmt.Sprintf("%.2f s", aceCPU),
			fmt.Sprintf("tusd: %.2f s", cpu(func(r *results) time.Duration { return r.cpuTus1 })),
			"", "≤ 2.0 s", verdict(aceCPU <= 2.0)},
		{"8", "CPU per GiB uploaded (figures 2, 3): the MinIO written to",
			fmt.Sprintf("%.2f s", cpu(func(r *results) time.Duration { return r.cpuMinioAce1 })),
			fmt.Sprintf("PutObject: %.2f s; tusd: %.2f s",
				cpu(func(r *results) time.Duration { return r.cpuMinioPut1 }), cpu(func(r *results) time.Duration { return r.cpuMinioTus1 })),
			"", "", ""},
		{"8", "CPU per GiB uploaded (figure 9, tus): acestash; the MinIO written to",
			fmt.Sprintf("%.2f s; %.2f s", cpu(func(r *results) time.Duration { return r.cpuAceTus1 }), cpu(func(r *results) time.Duration { return r.cpuMinioAceTus1 })),
			fmt.Sprintf("tusd: %.2f s; %.2f s", cpu(func(r *results) time.Duration { return r.cpuTus1 }), cpu(func(r *results) time.Duration { return r.cpuMinioTus1 })),
			"", "", ""},
		append([]string{"9", fmtSize(big) + " tus upload → 1 mirror, against tusd"},
			cmp(rate(big), "tusd, same client", func(r *results) float64 { return r.tus1 }, func(r *results) float64 { return r.tusAce1 }, 1.0)...),
		append([]string{"9", fmtSize(big) + " tus upload → 1 mirror"},
			cmp(rate(big), "PutObject", func(r *results) float64 { return r.put1 }, func(r *results) float64 { return r.tusAce1 }, 0.92)...),
		append([]string{"10", fmtSize(big) + " tus upload → 3 mirrors"},
			cmp(rate(big), "3 PutObject at once", func(r *results) float64 { return r.put3 }, func(r *results) float64 { return r.tusAce3 }, 0.85)...),
		append([]string{"11", fmtSize(big) + " download, redirect on, client following"},
			cmp(rate(big), "GetObject", func(r *results) float64 { return r.get }, func(r *results) float64 { return r.redirect }, 0.97)...),
		append([]string{"12", fmt.Sprintf("%d × %s GET /uploads/<slug>, %d at a time, proxied", rawRequests, fmtSize(rawSize), rawWorkers)},
			cmp(pairReqs, "GetObject", func(r *results) float64 { return r.smallGet }, func(r *results) float64 { return r.smallDown }, 0.8)...),
		append([]string{"12", "the same GetObjects through HAProxy: what proxying alone costs"},
			ref(pairReqs, "GetObject", func(r *results) float64 { return r.smallGet }, func(r *results) float64 { return r.smallProxied })...),
		{"12", "CPU per 1,000 reads (figure 12): acestash; Redis; the three MinIO",
			fmt.Sprintf("%.2f s; %.2f s; %.2f s", perReads(func(r *results) time.Duration { return r.cpuSmallAce }),
				perReads(func(r *results) time.Duration { return r.cpuSmallRedis }), perReads(func(r *results) time.Duration { return r.cpuSmallMinio })),
			fmt.Sprintf("GetObject: MinIO %.2f s; through HAProxy: %.2f s, MinIO %.2f s", perReads(func(r *results) time.Duration { return r.cpuSmallGetMinio }),
				perReads(func(r *results) time.Duration { return r.cpuSmallHAProxy }), perReads(func(r *results) time.Duration { return r.cpuSmallProxiedMinio })),
			"", "", ""},
		{"12", "figure 12's reads, per 1,000: opened on mirror 1; 2; 3; hedges lost",
			fmt.Sprintf("%.0f; %.0f; %.0f; %.0f", perThousand(func(r *results) float64 { return r.smallOpens[0] }),
				perThousand(func(r *results) float64 { return r.smallOpens[1] }), perThousand(func(r *results) float64 { return r.smallOpens[2] }),
				perThousand(func(r *results) float64 { return r.smallHedged })),
			"", "", "", ""},
		slowRow,
		{"14", "CPU per GiB downloaded (figure 5): acestash; the MinIO read from",
			// The client downloads twice, the second time to check the bytes.
			fmt.Sprintf("%.2f s; %.2f s", cpu(func(r *results) time.Duration { return r.cpuAceDown / 2 }), cpu(func(r *results) time.Duration { return r.cpuMinioDown / 2 })),
			fmt.Sprintf("GetObject: MinIO %.2f s; HAProxy in between: %.2f s", cpu(func(r *results) time.Duration { return r.cpuMinioGet }),
				cpu(func(r *results) time.Duration { return r.cpuHAProxy })),
			"", "", ""},
	}
	switch {
	case tailOnly():
		rows = append(rows[:1], tailRows(tails)...)
	case drainOnly():
		rows = rows[:1]
	case readsOnly():
		// The figures oneMirror and smallReads measure.
		rows = slices.DeleteFunc(rows, func(r []string) bool {
			switch r[0] {
			case "#", "2", "3", "5", "8", "9", "11", "12", "13", "14":
				return false
			}
			return true
		})
	default:
		rows = append(rows, tailRows(tails)...)
	}
	if !tailOnly() && !readsOnly() {
		moved := rounds[0].drainBytes
		var rssDrain int64
		for _, r := range rounds {
			rssDrain = max(rssDrain, r.rssDrain)
		}
		perMoved := func(f func(*results) time.Duration) float64 {
			return medianOf(rounds, func(r *results) float64 { return f(r).Seconds() / (float64(moved) / (1 << 30)) })
		}
		rows = append(rows,
			append([]string{"16", fmt.Sprintf("drain of %d files, %s in all: mirror 1 → 2", len(e.drainSet()), fmtSize(moved))},
				cmp(rate(moved), "mc mirror", func(r *results) float64 { return r.mc }, func(r *results) float64 { return r.drain }, 0.8)...),
			[]string{"16", "acestash peak RSS during figure 16", fmtSize(rssDrain), "", "", "≤ 64 MiB", verdict(rssDrain <= 64<<20)},
			[]string{"16", "CPU per GiB moved (figure 16): acestash",
				fmt.Sprintf("%.2f s", perMoved(func(r *results) time.Duration { return r.cpuDrain })),
				fmt.Sprintf("mc: %.2f s", perMoved(func(r *results) time.Duration { return r.cpuMc })), "", "", ""})
	}
	return fmt.Sprintf("acestash against baselines measured in the same run, median of %d rounds (peak RSS: the highest);\n"+
		"ratio = baseline time / acestash time, higher is better, its range over the rounds in parentheses\n%s\n\n%s",
		len(rounds), e.about, markdown(rows))
}

// dropped lists each round's copies left to the repairer in figures 1, 4
// and 10.
func dropped(rounds []results) string {
	var n []string
	for _, r := range rounds {
		n = append(n, strconv.Itoa(r.dropped))
	}
	return strings.Join(n, ", ")
}

// medianOf returns the median of f over the rounds.
func medianOf(rounds []results, f func(*results) float64) float64 {
	v := make([]float64, len(rounds))
	for i := range rounds {
		v[i] = f(&rounds[i])
	}
	return median(v)
}

// sum returns the sum of d.
func sum(d []time.Duration) time.Duration {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return t
}

// median returns the median of v, which it sorts.
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// speed formats the time n bytes took and the rate.
func speed(n int64, secs float64) string {
	prec := 1
	if secs < 10 {
		prec = 2
	}
	return fmt.Sprintf("%.*f s, %.0f MiB/s", prec, secs, float64(n)/secs/(1<<20))
}

// fmtSize formats a byte count in the largest binary unit that divides it,
// or in MiB with a fraction.
func fmtSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0 && n < 1<<20:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// markdown renders rows, the first being the header, as a Markdown table
// with aligned columns.
func markdown(rows [][]string) string {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c), 3)
		}
	}
	var sb strings.Builder
	line := func(cells []string) {
		for i, c := range cells {
			fmt.Fprintf(&sb, "| %s%s ", c, strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
		}
		sb.WriteString("|\n")
	}
	line(rows[0])
	sep := make([]string, len(width))
	for i, w := range width {
		sep[i] = strings.Repeat("-", w)
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
	return sb.String()
}
