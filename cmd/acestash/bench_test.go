package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"gopkg.in/yaml.v3"
)

// benchSize is the file size of BenchmarkUpload: 1 GiB, or
// ACESTASH_BENCH_SIZE bytes.
func benchSize(b *testing.B) int64 {
	if v := os.Getenv("ACESTASH_BENCH_SIZE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1 << 30
}

// pattern yields n reproducible bytes without holding them.
type pattern struct {
	block []byte
	off   int64
	n     int64
}

func newPattern(n int64) *pattern { return &pattern{block: testData(1<<20+7, 99), n: n} }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	k := 0
	for k < len(b) {
		k += copy(b[k:], p.block[(p.off+int64(k))%int64(len(p.block)):])
	}
	p.off += int64(k)
	return k, nil
}

// BenchmarkUpload uploads one file in default-size chunks through an
// acestash process to three MinIO mirrors and, as baselines taken in the
// same run, writes the same bytes straight to one MinIO and to all three at
// once. It reports the times, acestash's against writing to three directly,
// and the peak RSS of the acestash process.
func BenchmarkUpload(b *testing.B) {
	size := benchSize(b)
	bin := filepath.Join(b.TempDir(), "acestash")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for range b.N {
		b.StopTimer()
		c, cfg := startCluster(b)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		cfg.Listen = ln.Addr().String()
		ln.Close()
		cfg.PublicURL = "http://" + cfg.Listen
		cfg.Accounts = []AccountConfig{{Name: "bench", APIKey: testKey, APIToken: testToken}}
		cfgPath := filepath.Join(b.TempDir(), "acestash.yml")
		y, err := yaml.Marshal(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, y, 0o600); err != nil {
			b.Fatal(err)
		}
		proc := exec.Command(bin, "serve", "--config", cfgPath)
		proc.Stderr = os.Stderr
		if err := proc.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { proc.Process.Kill(); proc.Wait() })
		waitUp(b, cfg.PublicURL)

		// Baselines: the bytes straight to one MinIO, and to all three at
		// once, one stream each.
		ctx := context.Background()
		clients := make([]*minio.Client, len(c.minio))
		for i, m := range c.minio {
			clients[i], err = minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
			if err != nil {
				b.Fatal(err)
			}
			if err := clients[i].MakeBucket(ctx, "baseline", minio.MakeBucketOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		put := func(mc *minio.Client, key string) error {
			_, err := mc.PutObject(ctx, "baseline", key, newPattern(size), size, minio.PutObjectOptions{PartSize: 64 << 20})
			return err
		}
		b.StartTimer()
		t0 := time.Now()
		if err := put(clients[0], "one"); err != nil {
			b.Fatal(err)
		}
		direct := time.Since(t0)
		t0 = time.Now()
		errs := make([]error, len(clients))
		var wg sync.WaitGroup
		for i, mc := range clients {
			wg.Go(func() { errs[i] = put(mc, "three") })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		direct3 := time.Since(t0)

		t0 = time.Now()
		sum := uploadChunked(b, cfg.PublicURL, size)
		through := time.Since(t0)
		b.StopTimer()

		if _, page := fetch(b, cfg.PublicURL+"/m/"+sum.slug, nil); !strings.Contains(string(page), sum.hash) {
			b.Fatalf("the file page does not show the SHA-256 of the bytes sent")
		}
		for i, s := range c.minio {
			mc, _ := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
			n := 0
			for obj := range mc.ListObjects(ctx, "acestash", minio.ListObjectsOptions{Recursive: true}) {
				if obj.Err != nil || obj.Size != size {
					b.Fatalf("mirror %d: object %s of %d bytes (%v), want %d", i+1, obj.Key, obj.Size, obj.Err, size)
				}
				n++
			}
			if n != 1 {
				b.Fatalf("mirror %d holds %d objects, want 1", i+1, n)
			}
		}
		rss := peakRSS(b, proc.Process.Pid)
		b.ReportMetric(direct.Seconds(), "s/direct-1-mirror")
		b.ReportMetric(direct3.Seconds(), "s/direct-3-mirrors")
		b.ReportMetric(through.Seconds(), "s/acestash-3-mirrors")
		b.ReportMetric(through.Seconds()/direct3.Seconds(), "x-direct-3")
		b.ReportMetric(float64(size)/through.Seconds()/(1<<20), "MiB/s")
		b.ReportMetric(float64(rss)/(1<<20), "MiB-peak-rss")
		b.Logf("%d bytes: direct to one MinIO %v, to three at once %v; through acestash to three %v (%.2fx direct to three); acestash peak RSS %d MiB",
			size, direct.Round(time.Millisecond), direct3.Round(time.Millisecond), through.Round(time.Millisecond),
			through.Seconds()/direct3.Seconds(), rss>>20)
	}
}

type uploaded struct{ slug, hash string }

// uploadChunked sends size bytes as the .NET client does, in chunks of the
// advertised size, streaming each request body.
func uploadChunked(b *testing.B, base string, size int64) uploaded {
	info := getUploadInfo(b, base, false)
	chunk, _ := strconv.ParseInt(info.MaxChunkSize, 10, 64)
	src := newPattern(size)
	h := sha256.New()
	var res uploadResult
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			for _, f := range []field{{"api_key", testKey}, {"api_token", testToken}, {"cTracker", info.CTracker},
				{"upload_key", info.UploadKey}, {"mirrors[]", "1"}, {"mirrors[]", "2"}, {"mirrors[]", "3"}} {
				mw.WriteField(f.name, f.value)
			}
			p, _ := mw.CreateFormFile("files[]", "big.bin")
			if _, err := io.Copy(io.MultiWriter(p, h), io.LimitReader(src, n)); err != nil {
				pw.CloseWithError(err)
				return
			}
			pw.CloseWithError(mw.Close())
		}()
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/upload", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
		a := do(b, req)
		if off+n == size {
			a.result(b, &res)
		} else if a.env.Status != "success" {
			b.Fatalf("chunk at %d: %s", off, a)
		}
	}
	if res.Info != "complete" {
		b.Fatalf("last answer %+v, want complete", res)
	}
	return uploaded{res.Slug, hex.EncodeToString(h.Sum(nil))}
}

// peakRSS reads a process's high-water resident set size, in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

// waitUp waits until a server answers GET /.
func waitUp(b *testing.B, base string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not come up: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
