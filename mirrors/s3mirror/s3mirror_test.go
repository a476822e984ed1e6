package s3mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/mirrortest"
	"github.com/acestash/acestash/mirrors/s3mirror/miniotest"
)

func config(srv *miniotest.Server, bucket string) Config {
	return Config{Endpoint: srv.Endpoint, Bucket: bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
}

// newMirror returns a mirror on bucket of srv, and checks when the test
// ends that no staging objects are left in the bucket.
func newMirror(t *testing.T, srv *miniotest.Server, bucket string) *Mirror {
	t.Helper()
	m, err := New(t.Context(), config(srv, bucket))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if left := listStaging(t, ctx, m, ""); len(left) > 0 {
			t.Errorf("staging objects left in bucket %s: %q", bucket, left)
		}
	})
	return m
}

// listStaging returns the staging objects of upload id, or of every upload
// if id is "".
func listStaging(t *testing.T, ctx context.Context, m *Mirror, id string) []string {
	t.Helper()
	prefix := StagingPrefix
	if id != "" {
		prefix = stagingDir(id)
	}
	var keys []string
	for o := range m.core.Client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("listing %s: %v", prefix, o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

func TestConformance(t *testing.T) {
	srv := miniotest.Start(t)
	buckets := 0
	mirrortest.Run(t, func(t *testing.T) mirrors.Mirror {
		buckets++
		return newMirror(t, srv, fmt.Sprintf("conformance-%d", buckets))
	})
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 0))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, m mirrors.Mirror, up mirrors.Upload, prev mirrors.Part, c []byte) mirrors.Part {
	t.Helper()
	p, err := m.PutPart(t.Context(), up, prev, bytes.NewReader(c), int64(len(c)))
	if err != nil {
		t.Fatalf("PutPart(chunk %d, %d bytes): %v", prev.N+1, len(c), err)
	}
	return p
}

func checkObject(t *testing.T, m mirrors.Mirror, key string, want []byte) {
	t.Helper()
	rc, err := m.Open(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d (equal prefix: %v)", key, len(got), len(want), bytes.HasPrefix(want, got))
	}
}

func TestChunksAcrossPartBoundaries(t *testing.T) {
	srv := miniotest.Start(t)
	m := newMirror(t, srv, "boundaries")
	ctx := t.Context()
	up, err := m.Begin(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	var p mirrors.Part
	var want []byte
	for i := range 150 {
		size := 100 << 10
		if i%3 == 0 {
			size = 1
		}
		c := randBytes(uint64(i), size)
		p = put(t, m, up, p, c)
		want = append(want, c...)
	}
	tok, err := decodeToken(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.ETags) != len(want)/minPartSize {
		t.Errorf("%d bytes in chunks went into %d S3 parts; want %d", len(want), len(tok.ETags), len(want)/minPartSize)
	}
	if len(tok.Sizes) == 0 || tok.stagedSize() >= minPartSize {
		t.Errorf("staged after the last chunk: %d chunks, %d bytes; want some, under 5 MiB", len(tok.Sizes), tok.stagedSize())
	}
	if err := m.Complete(ctx, up, p); err != nil {
		t.Fatal(err)
	}
	checkObject(t, m, "big", want)
}

func TestStagingRemoved(t *testing.T) {
	srv := miniotest.Start(t)
	m := newMirror(t, srv, "staging")
	ctx := t.Context()
	for _, abort := range []bool{false, true} {
		for _, sizes := range [][]int{{10, 20}, {10, 6 << 20, 30}} {
			t.Run(fmt.Sprintf("abort=%v/%v", abort, sizes), func(t *testing.T) {
				up, err := m.Begin(ctx, "obj")
				if err != nil {
					t.Fatal(err)
				}
				mark, s3 := ids(up)
				var p mirrors.Part
				for i, s := range sizes {
					p = put(t, m, up, p, randBytes(uint64(i), s))
				}
				if n := len(listStaging(t, ctx, m, mark)); n != 3 {
					t.Fatalf("%d staging objects before Complete; want 3: two staged chunks and the upload's marker", n)
				}
				if abort {
					err = m.Abort(ctx, up)
				} else {
					err = m.Complete(ctx, up, p)
				}
				if err != nil {
					t.Fatal(err)
				}
				if left := listStaging(t, ctx, m, mark); len(left) > 0 {
					t.Fatalf("staging objects left: %q", left)
				}
				ups, err := m.core.ListMultipartUploads(ctx, m.bucket, "obj", "", "", "", 100)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range ups.Uploads {
					if u.UploadID == s3 {
						t.Fatalf("multipart upload %s still open", s3)
					}
				}
			})
		}
	}
}

// TestOtherNode checks that a second Mirror, as another acestash node would
// have, continues an upload from nothing but its Upload and Part.
func TestOtherNode(t *testing.T) {
	srv := miniotest.Start(t)
	a := newMirror(t, srv, "nodes")
	b := newMirror(t, srv, "nodes")
	ctx := t.Context()
	up, err := a.Begin(ctx, "shared/obj")
	if err != nil {
		t.Fatal(err)
	}
	var p mirrors.Part
	var want []byte
	nodes := []*Mirror{a, a, b, a, b, b, a}
	sizes := []int{100, 3 << 20, 2 << 20, 6 << 20, 1, 4 << 20, 7}
	for i, m := range nodes {
		c := randBytes(uint64(i), sizes[i])
		p = put(t, m, up, p, c)
		want = append(want, c...)
	}
	if err := b.Complete(ctx, up, p); err != nil {
		t.Fatal(err)
	}
	checkObject(t, a, "shared/obj", want)
}

func TestNewCreatesBucket(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := t.Context()
	m := newMirror(t, srv, "created")
	ok, err := m.core.BucketExists(ctx, "created")
	if err != nil || !ok {
		t.Fatalf("BucketExists after New = %v, %v; want true", ok, err)
	}
	if _, err := New(ctx, config(srv, "created")); err != nil {
		t.Fatalf("New on an existing bucket: %v", err)
	}

	// Several nodes starting at once race to create the bucket.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = New(ctx, config(srv, "raced")) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent New: %v", err)
	}
}

func TestNewFails(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := t.Context()
	cfg := config(srv, "bucket")
	cfg.SecretKey = "wrong-secret"
	if _, err := New(ctx, cfg); err == nil {
		t.Error("New with a wrong secret key: no error")
	}
	if _, err := New(ctx, config(srv, "Not_A_Bucket")); err == nil {
		t.Error("New with an invalid bucket name: no error")
	}
}

// TestServerKilled checks that a dead server makes PutPart and Ping fail
// rather than hang, and that the upload continues once it is back.
func TestServerKilled(t *testing.T) {
	srv := miniotest.Start(t)
	m := newMirror(t, srv, "killed")
	ctx := t.Context()
	up, err := m.Begin(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := randBytes(1, 1000), randBytes(2, 6<<20)
	p1 := put(t, m, up, mirrors.Part{}, c1)

	srv.Kill()
	for _, c := range [][]byte{c1, c2} {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		start := time.Now()
		_, err := m.PutPart(tctx, up, p1, bytes.NewReader(c), int64(len(c)))
		cancel()
		if err == nil {
			t.Fatalf("PutPart(%d bytes) with the server killed: no error", len(c))
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("PutPart took %v to fail", d)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = m.Ping(tctx)
	cancel()
	if err == nil {
		t.Fatal("Ping with the server killed: no error")
	}

	srv.Restart(t)
	if err := m.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	p2 := put(t, m, up, p1, c2)
	if err := m.Complete(ctx, up, p2); err != nil {
		t.Fatal(err)
	}
	checkObject(t, m, "obj", append(c1, c2...))
}

// genReader yields n pseudo-random bytes without holding them.
type genReader struct {
	r *rand.PCG
	n int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n)]
	for i := range p {
		p[i] = byte(g.r.Uint64())
	}
	g.n -= int64(len(p))
	return len(p), nil
}

// TestStreams checks that a large chunk streams through: the memory
// allocated while storing it is a fraction of its size.
func TestStreams(t *testing.T) {
	srv := miniotest.Start(t)
	m := newMirror(t, srv, "streams")
	ctx := t.Context()
	up, err := m.Begin(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	p := put(t, m, up, mirrors.Part{}, randBytes(1, 4<<20)) // staged
	const size = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err = m.PutPart(ctx, up, p, &genReader{rand.NewPCG(1, 2), size}, size)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Errorf("storing a %d MiB chunk allocated %d MiB", size>>20, alloc>>20)
	} else {
		t.Logf("storing a %d MiB chunk allocated %.1f MiB", size>>20, float64(alloc)/(1<<20))
	}
	if err := m.Complete(ctx, up, p); err != nil {
		t.Fatal(err)
	}
	info, err := m.Stat(ctx, "big")
	if err != nil || info.Size != 4<<20+size {
		t.Fatalf("Stat = %+v, %v; want %d bytes", info, err, 4<<20+size)
	}
}

func TestReservedKeys(t *testing.T) {
	srv := miniotest.Start(t)
	m := newMirror(t, srv, "reserved")
	ctx := t.Context()
	for _, key := range []string{"", StagingPrefix + "x/1"} {
		if _, err := m.Begin(ctx, key); err == nil {
			t.Errorf("Begin(%q): no error", key)
		}
		if _, err := m.Open(ctx, key, 0, -1); err == nil {
			t.Errorf("Open(%q): no error", key)
		}
		if _, err := m.Stat(ctx, key); err == nil {
			t.Errorf("Stat(%q): no error", key)
		}
	}
}

func TestBadToken(t *testing.T) {
	srv := miniotest.Start(t)
	m := newMirror(t, srv, "tokens")
	ctx := t.Context()
	up, err := m.Begin(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Abort(ctx, up)
	for _, p := range []mirrors.Part{
		{N: 1},
		{N: 1, Token: "garbage"},
		{N: 1, Token: `{"v":2}`},
		{N: 3, Token: `{"v":1,"f":1,"s":[1]}`},
		{N: -1},
	} {
		if _, err := m.PutPart(ctx, up, p, bytes.NewReader([]byte("x")), 1); err == nil {
			t.Errorf("PutPart after %+v: no error", p)
		}
		if err := m.Complete(ctx, up, p); err == nil {
			t.Errorf("Complete(%+v): no error", p)
		}
	}
}

func TestListerConformance(t *testing.T) {
	srv := miniotest.Start(t)
	mirrortest.RunLister(t, func(t *testing.T) mirrors.Mirror { return newMirror(t, srv, "lister") })
}
