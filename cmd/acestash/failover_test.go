package main

// Failures under a stream of uploads through the fleet's load balancer:
// whatever fails, no file the fleet acknowledged is lost or changed, and
// every upload in flight either finishes or is told to retry and then
// succeeds.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/acestash/acestash/mirrors/s3mirror/miniotest"
	"github.com/acestash/acestash/store/redisstore"
)

// streamChunk is the chunk size of the stream's uploads: each upload is a
// few chunks, so failures land between chunks and in the middle of them.
const streamChunk = 256 << 10

// stream uploads files through a fleet's load balancer from a few workers
// until stopped, retrying what fails retryably, as clients do.
type stream struct {
	base string
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	acked    map[string][sha256.Size]byte // slug -> SHA-256 of what was sent
	fails    []time.Time                  // when a request failed retryably
	oks      []time.Time                  // when a request succeeded
	err      error                        // the first failure that is not worth retrying
	progress chan struct{}                // closed and replaced at every file acknowledged
}

// startStream starts workers uploading through base.
func startStream(base string, workers int) *stream {
	s := &stream{base: base, stop: make(chan struct{}), acked: map[string][sha256.Size]byte{}, progress: make(chan struct{})}
	for w := range workers {
		s.wg.Go(func() { s.work(w) })
	}
	return s
}

// work uploads files of a few chunks each until the stream stops.
func (s *stream) work(w int) {
	for i := 0; ; i++ {
		select {
		case <-s.stop:
			return
		default:
		}
		data := testData(streamChunk*2+(w*7919+i*104729)%streamChunk+1, byte(w*31+i))
		slug, err := s.upload(data)
		s.mu.Lock()
		if err != nil {
			if s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
			return
		}
		s.acked[slug] = sha256.Sum256(data)
		close(s.progress)
		s.progress = make(chan struct{})
		s.mu.Unlock()
	}
}

// upload sends data as a MirrorAce chunked upload, each request sent again
// while it fails retryably, and returns the slug.
func (s *stream) upload(data []byte) (string, error) {
	var info uploadInfo
	form := url.Values{"api_key": {testKey}, "api_token": {testToken}}.Encode()
	err := s.retry("file/upload", func(ctx context.Context) error {
		return postEnvelope(ctx, s.base+"/api/v1/file/upload", "application/x-www-form-urlencoded",
			strings.NewReader(form), int64(len(form)), nil, &info)
	})
	if err != nil {
		return "", err
	}
	fields := []field{{"api_key", testKey}, {"api_token", testToken}, {"cTracker", info.CTracker},
		{"upload_key", info.UploadKey}, {"mirrors[]", "1"}, {"mirrors[]", "2"}}
	head, tail, ctype, err := formAround(fields, "files[]", "stream.bin")
	if err != nil {
		return "", err
	}
	var res uploadResult
	for off := 0; off < len(data); off += streamChunk {
		end := min(off+streamChunk, len(data))
		hdr := http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(data))}}
		err := s.retry(fmt.Sprintf("chunk at %d of upload %s", off, info.UploadKey), func(ctx context.Context) error {
			body := io.MultiReader(bytes.NewReader(head), bytes.NewReader(data[off:end]), strings.NewReader(tail))
			return postEnvelope(ctx, s.base+"/api/v1/upload", ctype, body, int64(len(head)+end-off+len(tail)), hdr, &res)
		})
		if err != nil {
			return "", err
		}
	}
	if res.Info != "complete" || res.Slug == "" {
		return "", fmt.Errorf("upload %s: the last chunk's answer is %+v", info.UploadKey, res)
	}
	return res.Slug, nil
}

// retryLimit bounds how long one request is tried again.
const retryLimit = 90 * time.Second

// retry runs send until it succeeds, sending it again after a failure
// worth retrying: the connection failed or was cut, or the answer was a
// 502, 503 or 504 (the node behind the load balancer died, or its store
// or mirrors are away for a while). Any other failure is returned.
func (s *stream) retry(what string, send func(context.Context) error) error {
	deadline := time.Now().Add(retryLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := send(ctx)
		cancel()
		now := time.Now()
		s.mu.Lock()
		if err == nil {
			s.oks = append(s.oks, now)
		} else {
			s.fails = append(s.fails, now)
		}
		s.mu.Unlock()
		if err == nil {
			return nil
		}
		var ae *answerError
		if errors.As(err, &ae) && ae.code != http.StatusBadGateway && ae.code != http.StatusServiceUnavailable &&
			ae.code != http.StatusGatewayTimeout {
			return fmt.Errorf("%s: %w", what, err)
		}
		if now.After(deadline) {
			return fmt.Errorf("%s: still failing after %v: %w", what, retryLimit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFiles waits until n more files than now are acknowledged.
func (s *stream) waitFiles(t *testing.T, n int) {
	t.Helper()
	s.mu.Lock()
	want := len(s.acked) + n
	s.mu.Unlock()
	deadline := time.After(2 * retryLimit)
	for {
		s.mu.Lock()
		got, progress, err := len(s.acked), s.progress, s.err
		s.mu.Unlock()
		if err != nil {
			t.Fatalf("an upload failed: %v", err)
		}
		if got >= want {
			return
		}
		select {
		case <-progress:
		case <-deadline:
			t.Fatalf("%d of %d files acknowledged after %v", got, want, 2*retryLimit)
		}
	}
}

// end stops the workers, waits for them and fails the test on an upload
// that failed for good. It returns how long after since writes succeeded
// again: from since to the first success after the last retryable
// failure, or 0 if none failed.
func (s *stream) end(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	close(s.stop)
	s.wg.Wait()
	if s.err != nil {
		t.Fatalf("an upload failed: %v", s.err)
	}
	var last time.Time
	for _, f := range s.fails {
		if f.After(since) && f.After(last) {
			last = f
		}
	}
	if last.IsZero() {
		return 0
	}
	for _, ok := range s.oks {
		if ok.After(last) {
			return ok.Sub(since)
		}
	}
	t.Fatalf("no request succeeded after the last failure at %v", last)
	return 0
}

// lost downloads every acknowledged file through the load balancer and
// returns the slugs of those missing or changed.
func (s *stream) lost(t *testing.T) []string {
	t.Helper()
	var lost []string
	for slug, want := range s.acked {
		resp, got := fetch(t, s.base+"/m/"+slug+"/download", nil)
		if resp.StatusCode != http.StatusOK || sha256.Sum256(got) != want {
			t.Errorf("file %s: %d, %d bytes, SHA-256 equal to what was sent: %v", slug, resp.StatusCode, len(got), sha256.Sum256(got) == want)
			lost = append(lost, slug)
		}
	}
	return lost
}

// failover streams uploads through the fleet, runs fail once a few files
// went through, and keeps streaming until files go through again. It
// checks every acknowledged file and logs the figures.
func (f *fleet) failover(t *testing.T, what string, fail func()) {
	t.Helper()
	s := startStream(f.lb.URL, 3)
	s.waitFiles(t, 3)
	t0 := time.Now()
	fail()
	s.waitFiles(t, 6)
	back := s.end(t, t0)
	lost := s.lost(t)
	t.Logf("%s: writes succeeded again %.1f s after it; %d files acknowledged, %d requests told to retry; files lost: %d",
		what, back.Seconds(), len(s.acked), len(s.fails), len(lost))
	if len(lost) > 0 {
		t.Fatalf("%s: lost %v", what, lost)
	}
	f.checkCopies(t, s.acked)
}

// checkCopies reads every file's copy on each MinIO directly and compares
// it with the SHA-256 of what was sent.
func (f *fleet) checkCopies(t *testing.T, files map[string][sha256.Size]byte) {
	t.Helper()
	st, err := redisstore.Open(t.Context(), f.redis.URL, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, m := range []*miniotest.Server{f.ec, f.plain} {
		c, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
		if err != nil {
			t.Fatal(err)
		}
		for slug, want := range files {
			rec, err := st.File(t.Context(), slug)
			if err != nil {
				t.Fatalf("file %s: %v", slug, err)
			}
			obj, err := c.GetObject(t.Context(), "acestash", rec.ObjectKey, minio.GetObjectOptions{})
			if err != nil {
				t.Fatalf("mirror %d, file %s: %v", i+1, slug, err)
			}
			h := sha256.New()
			_, err = io.Copy(h, obj)
			obj.Close()
			if err != nil || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("mirror %d holds other bytes for file %s (%v)", i+1, slug, err)
			}
		}
	}
}
