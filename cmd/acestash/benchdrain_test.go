package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// Figure 16: a drain against MinIO's own client doing the same copy. A set
// of files of mixed sizes is uploaded through acestash to mirror 1 (the
// first MinIO); `mc mirror` copies the objects they became from that
// MinIO to a bucket on the second; then `acestash mirrors drain 1 --to 2`
// moves the same files to mirror 2 (the second MinIO) and is timed from
// its request until the job reads done. mc goes first, since the drain
// deletes what it moved.
const (
	drainMaxFile = 80 << 20 // the largest file: over a copy's part size, under max_chunk_size
	drainMinFile = 1 << 10  // the smallest but one (the first file is empty)
	drainChecked = 8        // files downloaded and compared after each drain
)

// drainOnly reports whether ACESTASH_BENCH_DRAIN_ONLY asks for figure 16
// alone.
func drainOnly() bool { return os.Getenv("ACESTASH_BENCH_DRAIN_ONLY") != "" }

// drainFile is a file of the drain set: size bytes of the big file from off.
type drainFile struct{ off, size int64 }

// drainSet is the files figure 16 moves, the same in every round: three
// quarters of the big file's size in all, sizes spread evenly on a log
// scale from 1 KiB to drainMaxFile (a quarter of the total at most), so
// most files are small and a few large; the first is empty.
func (e *bench) drainSet() []drainFile {
	total := e.big.size * 3 / 4
	largest := min(drainMaxFile, total/4)
	rng := rand.New(rand.NewPCG(16, 16))
	set := []drainFile{{0, 0}}
	for sum := int64(0); sum < total; {
		lo, hi := math.Log(drainMinFile), math.Log(float64(largest))
		size := min(int64(math.Exp(lo+rng.Float64()*(hi-lo))), total-sum)
		off := rng.Int64N(e.big.size - size + 1)
		set = append(set, drainFile{off, size})
		sum += size
	}
	return set
}

// drain measures figure 16: mc mirror, then the drain of the same files;
// the CPU time of mc and of both acestash nodes (either may run the
// drain), and the nodes' peak RSS. Afterwards the files are deleted and
// mirror 1 is given back to uploads.
func (e *bench) drain(b *testing.B, r *results) {
	b.Helper()
	e.forgetFiles(b)
	set := e.drainSet()
	slugs := e.uploadDrainSet(b, set)
	var bytes int64
	for _, f := range set {
		bytes += f.size
	}
	r.drainBytes = bytes
	if n, sum := e.objects(b, 0, e.aceBucket); n != len(set) || sum != bytes {
		b.Fatalf("MinIO 1 holds %d objects, %d bytes, after the upload of %d files, %d bytes", n, sum, len(set), bytes)
	}

	syscall.Sync()
	r.mc, r.cpuMc = e.mcMirror(b)
	if n, sum := e.objects(b, 1, "baseline"); n != len(set) || sum != bytes {
		b.Fatalf("mc mirror left %d objects, %d bytes, on MinIO 2; want %d, %d", n, sum, len(set), bytes)
	}
	e.emptyObjects(b, 1, "baseline", len(set), bytes)

	nodes := []*daemon{e.ace, e.redirect}
	for _, d := range nodes {
		if err := resetPeakRSS(d.pid()); err != nil {
			b.Fatal(err)
		}
	}
	res, cpu := e.measure(b, clientJob{Op: "drain", File: e.big.path, Base: e.aceURL, Token: testAdminToken, Mirrors: []string{"1", "2"}},
		e.ace.pid(), e.redirect.pid())
	r.drain, r.cpuDrain = res.Seconds, cpu[0]+cpu[1]
	for _, d := range nodes {
		n, err := peakRSS(d.pid())
		if err != nil {
			b.Fatal(err)
		}
		r.rssDrain = max(r.rssDrain, n)
	}

	if n, _ := e.objects(b, 0, e.aceBucket); n != 0 {
		b.Fatalf("mirror 1 holds %d objects after its drain", n)
	}
	if n, sum := e.objects(b, 1, e.aceBucket); n != len(set) || sum != bytes {
		b.Fatalf("mirror 2 holds %d objects, %d bytes, after the drain; want %d, %d", n, sum, len(set), bytes)
	}
	e.checkDrained(b, set, slugs)

	e.deleteFiles(b, slugs, "after the drain")
	e.emptyObjects(b, 1, e.aceBucket, 0, 0)
	e.emptyObjects(b, 0, e.aceBucket, 0, 0)
	e.endDrain(b)
}

// uploadDrainSet uploads the set to mirror 1, each file in one request,
// and returns the slugs.
func (e *bench) uploadDrainSet(b *testing.B, set []drainFile) []string {
	b.Helper()
	f, err := os.Open(e.big.path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	slugs := make([]string, len(set))
	for i, df := range set {
		body := make([]byte, df.size)
		if _, err := f.ReadAt(body, df.off); err != nil {
			b.Fatal(err)
		}
		info := getUploadInfo(b, e.aceURL, false)
		fields := []field{{"api_key", testKey}, {"api_token", testToken}, {"cTracker", info.CTracker},
			{"upload_key", info.UploadKey}, {"mirrors[]", "1"}}
		var up uploadResult
		postMultipart(b, e.aceURL+"/api/v1/upload", fields, "files[]", fmt.Sprintf("drain-%d.bin", i), body, nil).result(b, &up)
		slugs[i] = up.Slug
	}
	return slugs
}

// checkDrained checks that every file of the set names mirror 2 alone and
// that some of them, the largest among them, download identical.
func (e *bench) checkDrained(b *testing.B, set []drainFile, slugs []string) {
	b.Helper()
	for i := 0; i < len(slugs); i += 50 {
		batch := slugs[i:min(i+50, len(slugs))]
		var info map[string]map[string]string
		creds := []field{{"api_key", testKey}, {"api_token", testToken}, {"files", strings.Join(batch, ",")}}
		postForm(b, e.aceURL+"/api/v1/file/info", creds).result(b, &info)
		for _, s := range batch {
			if fi := info[s]; fi["mirrors"] != "2" || fi["missing"] != "" {
				b.Fatalf("file/info of %s after the drain: %v; want mirror 2 alone", s, fi)
			}
		}
	}
	f, err := os.Open(e.big.path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	largest := 0
	for i, df := range set {
		if df.size > set[largest].size {
			largest = i
		}
	}
	for _, i := range []int{0, largest, 1, len(set) / 2, len(set) - 1} {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, set[i].off, set[i].size)); err != nil {
			b.Fatal(err)
		}
		e.checkPage(b, slugs[i], hex.EncodeToString(h.Sum(nil)))
		resp, body := fetch(b, e.aceURL+"/m/"+slugs[i]+"/download", nil)
		if got := sha256.Sum256(body); resp.StatusCode != 200 || hex.EncodeToString(got[:]) != hex.EncodeToString(h.Sum(nil)) {
			b.Fatalf("download of %s after the drain: %s, %d bytes; want the %d bytes uploaded", slugs[i], resp.Status, len(body), set[i].size)
		}
	}
}

// endDrain starts a rebuild of mirror 1, which has nothing to check and
// replaces the finished drain, so that uploads may choose the mirror
// again, and waits until both nodes have seen it.
func (e *bench) endDrain(b *testing.B) {
	b.Helper()
	if err := adminPost(e.aceURL, testAdminToken, "/mirrors/1/rebuild", nil); err != nil {
		b.Fatal(err)
	}
	if _, err := waitJobDone(context.Background(), e.aceURL, testAdminToken, "1", 20*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * jobTick) // every node reads the jobs every jobTick
}

// mcMirror copies the objects under files/ in acestash's bucket on the
// first MinIO to bucket baseline on the second with mc mirror, and
// returns its wall time in seconds and its CPU time.
func (e *bench) mcMirror(b *testing.B) (float64, time.Duration) {
	b.Helper()
	host := func(i int) string {
		m := e.cluster.minio[i]
		return (&url.URL{Scheme: "http", User: url.UserPassword(m.AccessKey, m.SecretKey), Host: m.Endpoint}).String()
	}
	cmd := exec.Command(e.mcBin, "--config-dir", b.TempDir(), "--quiet", "--no-color",
		"mirror", "src/"+e.aceBucket+"/files", "dst/baseline/files")
	cmd.Env = append(os.Environ(), "MC_HOST_src="+host(0), "MC_HOST_dst="+host(1), "MC_UPDATE=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("mc mirror: %v\n%s", err, out.Bytes())
	}
	secs := time.Since(t0).Seconds()
	return secs, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// objects counts the objects in bucket on MinIO server i and their bytes.
func (e *bench) objects(b *testing.B, i int, bucket string) (int, int64) {
	b.Helper()
	n, sum := 0, int64(0)
	for o := range e.minio[i].ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			b.Fatal(o.Err)
		}
		n, sum = n+1, sum+o.Size
	}
	return n, sum
}

// drainJob starts the drain of mirror Mirrors[0] to Mirrors[1] with the
// admin token in Token and waits until it is done, timing both.
func drainJob(ctx context.Context, j clientJob, _ *os.File, _ int64) (clientResult, error) {
	if len(j.Mirrors) != 2 {
		return clientResult{}, fmt.Errorf("drain: mirrors %v, want from and to", j.Mirrors)
	}
	body, _ := json.Marshal(map[string]any{"to": j.Mirrors[1:]})
	t0 := time.Now()
	if err := adminPost(j.Base, j.Token, "/mirrors/"+j.Mirrors[0]+"/drain", body); err != nil {
		return clientResult{}, err
	}
	// The job is read every 20 ms: the time is known to that much.
	if _, err := waitJobDone(ctx, j.Base, j.Token, j.Mirrors[0], 20*time.Millisecond); err != nil {
		return clientResult{}, err
	}
	return clientResult{Seconds: time.Since(t0).Seconds()}, nil
}

// adminPost sends a POST to the admin API under base.
func adminPost(base, token, path string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, base+"/api/admin"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := clientHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s %s", path, resp.Status, msg)
	}
	return nil
}

// waitJobDone reads the mirror's job every poll until it is done, and
// fails if it failed or was cancelled, or after ten minutes.
func waitJobDone(ctx context.Context, base, token, mirror string, poll time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/admin/mirrors/"+mirror+"/job", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := clientHTTP.Do(req)
		if err != nil {
			return nil, fmt.Errorf("job of mirror %s: %w", mirror, err)
		}
		var j map[string]any
		err = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return nil, fmt.Errorf("job of mirror %s: %s, %v", mirror, resp.Status, err)
		}
		switch j["state"] {
		case "done":
			return j, nil
		case "failed", "cancelled":
			return j, fmt.Errorf("the job of mirror %s ended %s: %v", mirror, j["state"], j["error"])
		}
		select {
		case <-ctx.Done():
			return j, fmt.Errorf("the job of mirror %s: %w; last read %v", mirror, ctx.Err(), j)
		case <-time.After(poll):
		}
	}
}

// forgetFiles deletes through file/delete every file the other figures
// left in the store. They empty the buckets behind acestash's back to
// spare the disk, and a drain rightly fails on a record whose bytes no
// mirror holds.
func (e *bench) forgetFiles(b *testing.B) {
	b.Helper()
	creds := []field{{"api_key", testKey}, {"api_token", testToken}}
	var slugs []string
	for page := 1; ; page++ {
		var res struct {
			Files []struct {
				Slug string `json:"slug"`
			} `json:"files"`
		}
		postForm(b, e.aceURL+"/api/v1/file/list",
			append(creds, field{"page", strconv.Itoa(page)}, field{"per_page", "100"})).result(b, &res)
		if len(res.Files) == 0 {
			break
		}
		for _, f := range res.Files {
			slugs = append(slugs, f.Slug)
		}
	}
	e.deleteFiles(b, slugs, "of the other figures' files")
}

// deleteFiles deletes the files through file/delete, 50 to a request; what
// says which, in a failure.
func (e *bench) deleteFiles(b *testing.B, slugs []string, what string) {
	b.Helper()
	for i := 0; i < len(slugs); i += 50 {
		creds := []field{{"api_key", testKey}, {"api_token", testToken}, {"files", strings.Join(slugs[i:min(i+50, len(slugs))], ",")}}
		if a := postForm(b, e.aceURL+"/api/v1/file/delete", creds); a.code != 200 || a.env.Status != "success" {
			b.Fatalf("file/delete %s: %s\n%s\n%s", what, a, e.ace.logTail(), e.redirect.logTail())
		}
	}
}
