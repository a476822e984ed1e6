package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors/s3mirror/miniotest"
	"github.com/acestash/acestash/store/redisstore/redistest"
)

// cluster is the production layout of deploy/acestash.yml on native
// processes: a Redis and three MinIO servers.
type cluster struct {
	redis *redistest.Server
	minio []*miniotest.Server
}

// startCluster starts the processes and returns a config for them: the
// repository's deploy/acestash.yml with only the addresses, credentials and
// local paths changed.
func startCluster(t testing.TB) (*cluster, Config) {
	t.Helper()
	c := &cluster{redis: redistest.Start(t), minio: miniotest.StartN(t, 3)}
	t.Setenv("MINIO_ROOT_USER", "unused")
	t.Setenv("MINIO_ROOT_PASSWORD", "unused")
	cfg, err := loadConfig("../../deploy/acestash.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mirrors) != len(c.minio) {
		t.Fatalf("deploy/acestash.yml has %d mirrors, the test starts %d MinIO servers", len(cfg.Mirrors), len(c.minio))
	}
	cfg.RedisURL = c.redis.URL
	for i, m := range c.minio {
		cfg.Mirrors[i].Endpoint, cfg.Mirrors[i].AccessKey, cfg.Mirrors[i].SecretKey = m.Endpoint, m.AccessKey, m.SecretKey
	}
	cfg.Listen, cfg.PublicURL = "", ""
	cfg.DataDir = t.TempDir()
	cfg.LogLevel = "warn"
	cfg.HealthInterval = 200 * time.Millisecond
	return c, cfg
}

// scaled runs the end-to-end suite on the production layout.
var scaled = backend{"redis+minio", func(t *testing.T, cfg *Config) {
	_, prod := startCluster(t)
	cfg.RedisURL, cfg.Mirrors, cfg.WriteQuorum = prod.RedisURL, prod.Mirrors, prod.WriteQuorum
	cfg.HealthInterval = prod.HealthInterval
}}

// clusterConfig is startCluster's config with testConfig's accounts, the
// test account allowed every mirror.
func clusterConfig(t *testing.T) (*cluster, Config) {
	c, cfg := startCluster(t)
	base := testConfig(t, embedded)
	cfg.Accounts = base.Accounts
	cfg.Accounts[0].Mirrors, cfg.Accounts[0].DefaultMirrors, cfg.Accounts[0].MaxMirrors = nil, nil, 0
	return c, cfg
}

// TestTwoNodes sends the chunks of one upload to two nodes in turn, with
// chunks under and over S3's 5 MiB part minimum, and races two different
// payloads for the same chunk on both nodes at once: the file must come out
// as one of them, whole, and match its recorded SHA-256.
func TestTwoNodes(t *testing.T) {
	for _, chunk := range []int{testChunk, 6 << 20} {
		t.Run(strconv.Itoa(chunk), func(t *testing.T) {
			_, cfg := clusterConfig(t)
			cfg.Limits.MaxChunkSize = int64(chunk)
			nodes := []*testServer{start(t, cfg, nil), start(t, cfg, nil)}
			data := testData(3*chunk+1234, 42)
			other := bytes.Clone(data)
			copy(other[chunk:2*chunk], testData(chunk, 43))

			up := newUpload(t, nodes[0], "1", "2", "3")
			var res uploadResult
			for i, off := 0, 0; off < len(data); i, off = i+1, off+chunk {
				end := min(off+chunk, len(data))
				h := fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data))
				if i == 1 {
					// One takes the chunk; the other is told to retry or,
					// arriving after it, replaces it. Never both at once.
					var wg sync.WaitGroup
					answers := make([]answer, 2)
					for k, payload := range [][]byte{data, other} {
						wg.Go(func() {
							u := *up
							u.srv = nodes[k]
							answers[k] = u.send(h, payload[off:end])
						})
					}
					wg.Wait()
					for _, a := range answers {
						if a.env.Status != "success" && a.code != http.StatusServiceUnavailable {
							t.Fatalf("racing chunk: %s", a)
						}
					}
					if answers[0].env.Status != "success" && answers[1].env.Status != "success" {
						t.Fatalf("racing chunk: neither node took it: %v", answers)
					}
					continue
				}
				up.srv = nodes[i%2]
				a := up.send(h, data[off:end])
				if end == len(data) {
					a.result(t, &res)
				} else if a.env.Status != "success" {
					t.Fatalf("chunk %d on node %d: %s", i, i%2, a)
				}
			}
			f, err := nodes[0].app.store.File(t.Context(), res.Slug)
			if err != nil || len(f.Mirrors) != 3 || len(f.Missing) != 0 {
				t.Fatalf("file record %+v, %v: want it on all three mirrors", f, err)
			}
			_, got := fetch(t, nodes[1].URL+"/m/"+res.Slug+"/download", nil)
			sum := sha256.Sum256(got)
			if hex.EncodeToString(sum[:]) != f.SHA256 || !(bytes.Equal(got, data) || bytes.Equal(got, other)) {
				t.Fatalf("download of %d bytes: SHA-256 %x, record %s; equal to a payload sent: %v",
					len(got), sum, f.SHA256, bytes.Equal(got, data) || bytes.Equal(got, other))
			}
			// Every mirror holds those same bytes.
			for _, id := range f.Mirrors {
				e, _ := nodes[0].app.mirrors.Get(id)
				rc, err := e.Mirror.Open(t.Context(), f.ObjectKey, 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(b, got) {
					t.Fatalf("mirror %s holds other bytes (%v)", id, err)
				}
			}
		})
	}
}

// TestMirrorDown kills MinIO servers before and during uploads: with the
// write quorum (2 of 3) held, uploads complete and the record names the
// missing mirror; below it, the client is told to retry and nothing is
// published; downloads fall over to a mirror that works.
func TestMirrorDown(t *testing.T) {
	c, cfg := clusterConfig(t)
	cfg.Limits.MaxChunkSize = testChunk
	srv := start(t, cfg, nil)
	data := testData(5*testChunk+9, 11)
	chunk := func(up *upload, i int) answer {
		off, end := i*testChunk, min((i+1)*testChunk, len(data))
		return up.send(fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data)), data[off:end])
	}
	last := (len(data) - 1) / testChunk
	// send sends chunks from..to, each of which must succeed, and returns
	// the last answer's result.
	send := func(up *upload, from, to int) uploadResult {
		t.Helper()
		var res uploadResult
		for i := from; i <= to; i++ {
			a := chunk(up, i)
			if a.env.Status != "success" {
				t.Fatalf("chunk %d: %s", i, a)
			}
			a.result(t, &res)
		}
		return res
	}
	record := func(res uploadResult, mirrors, missing string) {
		t.Helper()
		checkComplete(t, srv, res, "f.bin", data)
		f, err := srv.app.store.File(t.Context(), res.Slug)
		if err != nil || fmt.Sprint(f.Mirrors) != mirrors || fmt.Sprint(f.Missing) != missing {
			t.Fatalf("record mirrors %v missing %v (%v), want %s and %s", f.Mirrors, f.Missing, err, mirrors, missing)
		}
	}

	// Mirror 3 dies in the middle of an upload.
	up := newUpload(t, srv, "1", "2", "3")
	send(up, 0, 2)
	c.minio[2].Kill()
	record(send(up, 3, last), "[1 2]", "[3]")

	// Mirror 3 is still down when the next upload starts.
	res := send(newUpload(t, srv, "1", "2", "3"), 0, last)
	record(res, "[1 2]", "[3]")

	// Mirror 1 dies too: files on 1 and 2 are read from 2, without the
	// client noticing, with ranges too.
	c.minio[0].Kill()
	for _, h := range []string{"", "bytes=100-2099"} {
		var hdr http.Header
		want := data
		if h != "" {
			hdr, want = http.Header{"Range": {h}}, data[100:2100]
		}
		resp, got := fetch(t, res.URL+"/download", hdr)
		if resp.StatusCode/100 != 2 || !bytes.Equal(got, want) {
			t.Fatalf("download %q with mirror 1 down: %d, %d bytes", h, resp.StatusCode, len(got))
		}
	}

	// Below quorum: one mirror of three left.
	up = newUpload(t, srv, "1", "2", "3")
	a := chunk(up, 0)
	msg := a.errTextCode(t, http.StatusServiceUnavailable)
	if !strings.Contains(msg, "retry") {
		t.Errorf("below quorum: %q does not tell the client to retry", msg)
	}
	if n := storedObjects(t, &testServer{cfg: Config{Mirrors: cfg.Mirrors[1:2]}}); n != 2 {
		t.Errorf("mirror 2 holds %d objects, want the 2 published files only", n)
	}

	// Mirrors 1 and 3 come back: uploads use all three again.
	c.minio[0].Restart(t)
	c.minio[2].Restart(t)
	waitHealthy(t, srv, "1", "3")
	record(send(newUpload(t, srv, "1", "2", "3"), 0, last), "[1 2 3]", "[]")
}

// waitHealthy waits until the node's health checks see the mirrors up.
func waitHealthy(t *testing.T, srv *testServer, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range ids {
		for srv.app.health.Err(id) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("mirror %s not healthy after 20s: %v", id, srv.app.health.Err(id))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
