// Package mirrortest is a conformance suite for mirrors.Mirror
// implementations.
//
// An implementation's tests call Run with a constructor for fresh, empty
// mirrors:
//
//	func TestConformance(t *testing.T) {
//		mirrortest.Run(t, func(t *testing.T) mirrors.Mirror {
//			m, err := fsmirror.New(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return m
//		})
//	}
package mirrortest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
)

const mib = 1 << 20

// Run runs every conformance test as a subtest of t. newMirror is called once
// per subtest and must return a mirror that holds no objects; it registers
// its own cleanup with t.
func Run(t *testing.T, newMirror func(t *testing.T) mirrors.Mirror) {
	tests := []struct {
		name string
		fn   func(t *testing.T, m mirrors.Mirror)
	}{
		{"RoundTrip", testRoundTrip},
		{"PartBoundaries", testPartBoundaries},
		{"ManySmallChunks", testManySmallChunks},
		{"EmptyObject", testEmptyObject},
		{"EmptyChunksOnly", testEmptyChunksOnly},
		{"KeyWithSlashes", testKeyWithSlashes},
		{"InvisibleBeforeComplete", testInvisibleBeforeComplete},
		{"RetrySamePrev", testRetrySamePrev},
		{"RetryAfterFailedReader", testRetryAfterFailedReader},
		{"ReadsExactlySize", testReadsExactlySize},
		{"ShortReader", testShortReader},
		{"Abort", testAbort},
		{"AbortKeepsExistingObject", testAbortKeepsExisting},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"Replace", testReplace},
		{"TwoUploadsSameKey", testTwoUploadsSameKey},
		{"ConcurrentUploads", testConcurrentUploads},
		{"Ping", testPing},
		{"Put", testPut},
		{"PutShortReader", testPutShortReader},
		{"ConcurrentChunks", testConcurrentChunks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newMirror(t))
		})
	}
}

// randBytes returns n bytes from a generator seeded by seed, so failures
// reproduce.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n+7)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n:n]
}

// key returns a fresh key ending in suffix.
func key(suffix string) string {
	return fmt.Sprintf("mirrortest/%s-%016x/%s", time.Now().UTC().Format("20060102T150405"), rand.Uint64(), suffix)
}

// upload stores chunks as one upload under key and completes it.
func upload(t *testing.T, m mirrors.Mirror, key string, chunks ...[]byte) {
	t.Helper()
	ctx := t.Context()
	up, err := m.Begin(ctx, key)
	if err != nil {
		t.Fatalf("Begin(%q): %v", key, err)
	}
	last := putAll(t, m, up, mirrors.Part{}, chunks...)
	if err := m.Complete(ctx, up, last); err != nil {
		t.Fatalf("Complete(%q): %v", key, err)
	}
}

// putAll stores chunks after prev and returns the last Part, checking the
// N and Size of every Part returned.
func putAll(t *testing.T, m mirrors.Mirror, up mirrors.Upload, prev mirrors.Part, chunks ...[]byte) mirrors.Part {
	t.Helper()
	for _, c := range chunks {
		prev = put(t, m, up, prev, c)
	}
	return prev
}

func put(t *testing.T, m mirrors.Mirror, up mirrors.Upload, prev mirrors.Part, c []byte) mirrors.Part {
	t.Helper()
	p, err := m.PutPart(t.Context(), up, prev, bytes.NewReader(c), int64(len(c)))
	if err != nil {
		t.Fatalf("PutPart(%q, chunk %d, %d bytes): %v", up.Key, prev.N+1, len(c), err)
	}
	if p.N != prev.N+1 || p.Size != prev.Size+int64(len(c)) {
		t.Fatalf("PutPart(%q) after Part{N: %d, Size: %d} with %d bytes = Part{N: %d, Size: %d}; want Part{N: %d, Size: %d}",
			up.Key, prev.N, prev.Size, len(c), p.N, p.Size, prev.N+1, prev.Size+int64(len(c)))
	}
	return p
}

// readRange returns the bytes Open(key, off, length) yields.
func readRange(t *testing.T, m mirrors.Mirror, key string, off, length int64) []byte {
	t.Helper()
	rc, err := m.Open(t.Context(), key, off, length)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, off, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): read: %v", key, off, length, err)
	}
	return b
}

// checkObject checks Stat and a few whole-object reads of key against want.
func checkObject(t *testing.T, m mirrors.Mirror, key string, want []byte) {
	t.Helper()
	info, err := m.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("Stat(%q).Size = %d; want %d", key, info.Size, len(want))
	}
	if info.Modified.IsZero() {
		t.Errorf("Stat(%q).Modified is zero", key)
	}
	checkRange(t, m, key, want, 0, -1)
}

// checkRange checks Open(key, off, length) against want, the whole object.
func checkRange(t *testing.T, m mirrors.Mirror, key string, want []byte, off, length int64) {
	t.Helper()
	got := readRange(t, m, key, off, length)
	end := int64(len(want))
	if length >= 0 {
		end = off + length
	}
	if !bytes.Equal(got, want[off:end]) {
		t.Fatalf("Open(%q, %d, %d): got %d bytes, want %d; %s",
			key, off, length, len(got), end-off, firstDiff(got, want[off:end]))
	}
}

func firstDiff(got, want []byte) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	return "one is a prefix of the other"
}

// checkRanges reads many ranges of key, concentrated around the chunk
// boundaries given by sizes, and compares them with want.
func checkRanges(t *testing.T, m mirrors.Mirror, key string, want []byte, sizes []int) {
	t.Helper()
	n := int64(len(want))
	type rng struct{ off, length int64 }
	ranges := []rng{{0, 0}, {0, -1}, {n, 0}, {n, -1}}
	if n > 0 {
		ranges = append(ranges, rng{0, 1}, rng{n - 1, 1}, rng{n - 1, -1}, rng{0, n}, rng{n / 2, -1})
	}
	var b int64
	for _, s := range sizes {
		b += int64(s)
		for _, r := range []rng{{b - 1, 2}, {b - 1, 1}, {b, 1}, {b - 100, 200}, {b - 3, 0}} {
			if r.off >= 0 && r.off+r.length <= n {
				ranges = append(ranges, r)
			}
		}
	}
	rnd := rand.New(rand.NewPCG(uint64(n), 1))
	for range 20 {
		if n == 0 {
			break
		}
		off := rnd.Int64N(n)
		ranges = append(ranges, rng{off, rnd.Int64N(min(n-off, mib) + 1)})
	}
	for _, r := range ranges {
		checkRange(t, m, key, want, r.off, r.length)
	}
}

func testRoundTrip(t *testing.T, m mirrors.Mirror) {
	sizes := []int{1, 0, 3 * mib, 6 * mib, 1}
	roundTrip(t, m, sizes)
}

func testPartBoundaries(t *testing.T, m mirrors.Mirror) {
	sizes := []int{5*mib - 1, 1, 5 * mib, 0, 5*mib + 1}
	roundTrip(t, m, sizes)
}

func testManySmallChunks(t *testing.T, m mirrors.Mirror) {
	r := rand.New(rand.NewPCG(40, 1000))
	sizes := make([]int, 40)
	for i := range sizes {
		sizes[i] = 1 + r.IntN(1000)
	}
	roundTrip(t, m, sizes)
}

// roundTrip uploads chunks of the given sizes and checks the object, also
// through many ranges.
func roundTrip(t *testing.T, m mirrors.Mirror, sizes []int) {
	k := key("object.bin")
	var chunks [][]byte
	var want []byte
	for i, s := range sizes {
		c := randBytes(uint64(i), s)
		chunks = append(chunks, c)
		want = append(want, c...)
	}
	upload(t, m, k, chunks...)
	checkObject(t, m, k, want)
	checkRanges(t, m, k, want, sizes)
}

func testEmptyObject(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	k := key("empty")
	up, err := m.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Complete(ctx, up, mirrors.Part{}); err != nil {
		t.Fatalf("Complete with the zero Part: %v", err)
	}
	checkObject(t, m, k, nil)
	checkRange(t, m, k, nil, 0, 0)
}

func testEmptyChunksOnly(t *testing.T, m mirrors.Mirror) {
	k := key("empty-chunks")
	upload(t, m, k, nil, []byte{}, nil)
	checkObject(t, m, k, nil)
}

func testKeyWithSlashes(t *testing.T, m mirrors.Mirror) {
	k := key("a/b/c/d.txt")
	upload(t, m, k, []byte("hello "), []byte("world"))
	checkObject(t, m, k, []byte("hello world"))
	if _, err := m.Stat(t.Context(), k[:len(k)-len("/c/d.txt")]); !errors.Is(err, mirrors.ErrNotFound) {
		t.Errorf("Stat of a key's parent: err = %v; want ErrNotFound", err)
	}
}

func testInvisibleBeforeComplete(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	k := key("invisible")
	up, err := m.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	checkMissing(t, m, k)
	c1, c2 := randBytes(1, 1000), randBytes(2, 6*mib)
	p := put(t, m, up, mirrors.Part{}, c1)
	checkMissing(t, m, k)
	p = put(t, m, up, p, c2)
	checkMissing(t, m, k)
	if err := m.Complete(ctx, up, p); err != nil {
		t.Fatal(err)
	}
	checkObject(t, m, k, append(c1, c2...))
}

// checkMissing checks that Stat and Open of key report ErrNotFound.
func checkMissing(t *testing.T, m mirrors.Mirror, key string) {
	t.Helper()
	ctx := t.Context()
	if info, err := m.Stat(ctx, key); !errors.Is(err, mirrors.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", key, info, err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 0}, {0, 10}} {
		rc, err := m.Open(ctx, key, r[0], r[1])
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, mirrors.ErrNotFound) {
			t.Fatalf("Open(%q, %d, %d): err = %v; want ErrNotFound", key, r[0], r[1], err)
		}
	}
}

func testRetrySamePrev(t *testing.T, m mirrors.Mirror) {
	// Each case stores first, replaces chunk 2 with each of retries in
	// turn, then continues with rest.
	cases := []struct {
		name    string
		first   []int
		retries []int
		rest    []int
	}{
		{"small", []int{1000}, []int{2000, 10}, []int{500}},
		{"large by small", []int{mib}, []int{6 * mib, 100}, []int{2 * mib}},
		{"small by large", []int{mib}, []int{100, 6 * mib}, []int{2 * mib}},
		{"same size", []int{10}, []int{3 * mib, 3 * mib}, []int{3 * mib}},
	}
	ctx := t.Context()
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := key("retry")
			up, err := m.Begin(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			seed := uint64(100 * ci)
			chunk := func(n int) []byte { seed++; return randBytes(seed, n) }
			var prev mirrors.Part
			for _, s := range tc.first {
				c := chunk(s)
				prev = put(t, m, up, prev, c)
				want = append(want, c...)
			}
			var p mirrors.Part
			var retried []byte
			for _, s := range tc.retries {
				retried = chunk(s)
				p = put(t, m, up, prev, retried)
			}
			want = append(want, retried...)
			for _, s := range tc.rest {
				c := chunk(s)
				p = put(t, m, up, p, c)
				want = append(want, c...)
			}
			if err := m.Complete(ctx, up, p); err != nil {
				t.Fatal(err)
			}
			checkObject(t, m, k, want)
		})
	}
}

// failingReader returns err after yielding n bytes of data.
type failingReader struct {
	data []byte
	n    int
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data, r.n = r.data[k:], r.n-k
	return k, nil
}

func testRetryAfterFailedReader(t *testing.T, m mirrors.Mirror) {
	cases := []struct {
		name       string
		before     int // bytes stored before the failing chunk
		size, fail int // the failing chunk's size, and where it fails
	}{
		{"small", 100, 2000, 1000},
		{"at start", 100, 2000, 0},
		{"large", 100, 6 * mib, mib},
		{"large after large", 6 * mib, 6 * mib, 5 * mib},
	}
	ctx := t.Context()
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := key("failing")
			up, err := m.Begin(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			c1 := randBytes(uint64(ci), tc.before)
			prev := put(t, m, up, mirrors.Part{}, c1)

			c2 := randBytes(uint64(ci)+1000, tc.size)
			errBroken := errors.New("mirrortest: reader broke")
			fr := &failingReader{data: c2, n: tc.fail, err: errBroken}
			if _, err := m.PutPart(ctx, up, prev, fr, int64(len(c2))); err == nil {
				t.Fatalf("PutPart with a reader failing after %d of %d bytes: no error", tc.fail, len(c2))
			}
			p := put(t, m, up, prev, c2)
			c3 := randBytes(uint64(ci)+2000, 1234)
			p = put(t, m, up, p, c3)
			if err := m.Complete(ctx, up, p); err != nil {
				t.Fatal(err)
			}
			checkObject(t, m, k, append(append(c1, c2...), c3...))
		})
	}
}

func testReadsExactlySize(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	k := key("exact")
	up, err := m.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(7, 3000)
	var prev mirrors.Part
	var want []byte
	for _, size := range []int{1000, 0, 1500} {
		r := bytes.NewReader(data)
		p, err := m.PutPart(ctx, up, prev, r, int64(size))
		if err != nil {
			t.Fatalf("PutPart(%d bytes of a %d-byte reader): %v", size, len(data), err)
		}
		if got := len(data) - r.Len(); got != size {
			t.Fatalf("PutPart(size %d) consumed %d bytes of the reader", size, got)
		}
		prev = p
		want = append(want, data[:size]...)
	}
	if err := m.Complete(ctx, up, prev); err != nil {
		t.Fatal(err)
	}
	checkObject(t, m, k, want)
}

func testShortReader(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	k := key("short")
	up, err := m.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	c1 := randBytes(1, 100)
	prev := put(t, m, up, mirrors.Part{}, c1)
	for _, size := range []int{10, 6 * mib} {
		c := randBytes(2, size)
		if _, err := m.PutPart(ctx, up, prev, bytes.NewReader(c[:size-1]), int64(size)); err == nil {
			t.Fatalf("PutPart(size %d) with %d bytes in the reader: no error", size, size-1)
		}
	}
	c2 := randBytes(3, 10)
	p := put(t, m, up, prev, c2)
	if err := m.Complete(ctx, up, p); err != nil {
		t.Fatal(err)
	}
	checkObject(t, m, k, append(c1, c2...))
}

func testAbort(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	for _, sizes := range [][]int{{}, {100}, {100, 6 * mib, 100}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			k := key("aborted")
			up, err := m.Begin(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			var p mirrors.Part
			for i, s := range sizes {
				p = put(t, m, up, p, randBytes(uint64(i), s))
			}
			if err := m.Abort(ctx, up); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			checkMissing(t, m, k)
			if _, err := m.PutPart(ctx, up, p, bytes.NewReader([]byte("x")), 1); err == nil {
				t.Errorf("PutPart after Abort: no error")
			}
			if err := m.Complete(ctx, up, p); err == nil {
				t.Errorf("Complete after Abort: no error")
			}
			checkMissing(t, m, k)
		})
	}
}

func testAbortKeepsExisting(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	k := key("kept")
	old := randBytes(1, 5000)
	upload(t, m, k, old)
	up, err := m.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	put(t, m, up, mirrors.Part{}, randBytes(2, 300))
	if err := m.Abort(ctx, up); err != nil {
		t.Fatal(err)
	}
	checkObject(t, m, k, old)
}

func testMissing(t *testing.T, m mirrors.Mirror) {
	checkMissing(t, m, key("never-written"))
	checkMissing(t, m, "no/such/key")
}

func testDelete(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	if err := m.Delete(ctx, key("never-written")); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	k := key("deleted")
	upload(t, m, k, []byte("bye"))
	if err := m.Delete(ctx, k); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkMissing(t, m, k)
	if err := m.Delete(ctx, k); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func testReplace(t *testing.T, m mirrors.Mirror) {
	k := key("replaced")
	upload(t, m, k, randBytes(1, 10000), randBytes(2, 10000))
	v2 := randBytes(3, 777)
	upload(t, m, k, v2)
	checkObject(t, m, k, v2)
	upload(t, m, k)
	checkObject(t, m, k, nil)
}

func testTwoUploadsSameKey(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	k := key("twice")
	a, err := m.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID {
		t.Fatalf("two Begins on %q returned the same upload id %q", k, a.ID)
	}
	ca, cb := randBytes(1, 3000), randBytes(2, 4000)
	pa := put(t, m, a, mirrors.Part{}, ca)
	pb := put(t, m, b, mirrors.Part{}, cb)
	if err := m.Complete(ctx, a, pa); err != nil {
		t.Fatal(err)
	}
	checkObject(t, m, k, ca)
	if err := m.Complete(ctx, b, pb); err != nil {
		t.Fatal(err)
	}
	checkObject(t, m, k, cb)
}

func testConcurrentUploads(t *testing.T, m mirrors.Mirror) {
	const uploads = 8
	keys := make([]string, uploads)
	wants := make([][]byte, uploads)
	errs := make([]error, uploads)
	var wg sync.WaitGroup
	for i := range uploads {
		keys[i] = key(fmt.Sprintf("concurrent-%d", i))
		r := rand.New(rand.NewPCG(uint64(i), 8))
		var chunks [][]byte
		for j := range 3 + r.IntN(4) {
			c := randBytes(uint64(100*i+j), r.IntN(300<<10))
			chunks = append(chunks, c)
			wants[i] = append(wants[i], c...)
		}
		wg.Go(func() { errs[i] = uploadErr(t.Context(), m, keys[i], chunks) })
	}
	wg.Wait()
	for i := range uploads {
		if errs[i] != nil {
			t.Fatalf("upload %d: %v", i, errs[i])
		}
		checkObject(t, m, keys[i], wants[i])
	}
}

// uploadErr is upload for goroutines other than the test's.
func uploadErr(ctx context.Context, m mirrors.Mirror, key string, chunks [][]byte) error {
	up, err := m.Begin(ctx, key)
	if err != nil {
		return err
	}
	var p mirrors.Part
	for _, c := range chunks {
		if p, err = m.PutPart(ctx, up, p, bytes.NewReader(c), int64(len(c))); err != nil {
			return err
		}
	}
	return m.Complete(ctx, up, p)
}

func testPing(t *testing.T, m mirrors.Mirror) {
	p, ok := mirrors.As[mirrors.Pinger](m)
	if !ok {
		t.Skipf("%T does not implement mirrors.Pinger", m)
	}
	if err := p.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testPut(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	for i, size := range []int{0, 1, 3 * mib, 6*mib + 1} {
		k := key(fmt.Sprintf("put-%d", size))
		want := randBytes(uint64(500+i), size)
		r := bytes.NewReader(append(want, "and more"...))
		if err := m.Put(ctx, k, r, int64(size)); err != nil {
			t.Fatalf("Put(%q, %d bytes): %v", k, size, err)
		}
		if r.Len() != len("and more") {
			t.Fatalf("Put(size %d) consumed %d bytes of the reader", size, size+len("and more")-r.Len())
		}
		checkObject(t, m, k, want)
		checkRanges(t, m, k, want, []int{size})
		// A second Put replaces the object.
		again := randBytes(uint64(600+i), 1000)
		if err := m.Put(ctx, k, bytes.NewReader(again), int64(len(again))); err != nil {
			t.Fatalf("Put(%q) again: %v", k, err)
		}
		checkObject(t, m, k, again)
	}
}

func testPutShortReader(t *testing.T, m mirrors.Mirror) {
	ctx := t.Context()
	k := key("put-short")
	old := randBytes(700, 100)
	if err := m.Put(ctx, k, bytes.NewReader(old), int64(len(old))); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{10, 6 * mib} {
		c := randBytes(701, size)
		if err := m.Put(ctx, k, bytes.NewReader(c[:size-1]), int64(size)); err == nil {
			t.Fatalf("Put(size %d) with %d bytes in the reader: no error", size, size-1)
		}
		fr := &failingReader{data: c, n: size / 2, err: errors.New("mirrortest: reader broke")}
		if err := m.Put(ctx, k, fr, int64(size)); err == nil {
			t.Fatalf("Put(size %d) with a reader failing after %d bytes: no error", size, size/2)
		}
		checkObject(t, m, k, old)
	}
}

// PutConcurrently stores chunks after prev as a writer would that uses
// mirrors.Concurrent: each chunk that Next allows starts before the one
// before it is stored. It returns the settled Part after the last chunk.
func PutConcurrently(ctx context.Context, m mirrors.Mirror, up mirrors.Upload, prev mirrors.Part, chunks ...[]byte) (mirrors.Part, error) {
	c, ok := mirrors.As[mirrors.Concurrent](m)
	var (
		wg      sync.WaitGroup
		results = make([]mirrors.Part, len(chunks))
		errs    = make([]error, len(chunks))
		from    = 0 // first chunk since everything before was stored
	)
	for i, b := range chunks {
		if ok {
			if next, fits := c.Next(prev, int64(len(b))); fits {
				after := prev
				wg.Go(func() {
					results[i], errs[i] = m.PutPart(ctx, up, after, bytes.NewReader(b), int64(len(b)))
				})
				prev = next
				continue
			}
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return mirrors.Part{}, err
		}
		if ok && i > from {
			prev = c.Settle(results[from:i])
		}
		p, err := m.PutPart(ctx, up, prev, bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return mirrors.Part{}, err
		}
		results[i], prev, from = p, p, i
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return mirrors.Part{}, err
	}
	if ok && len(chunks) > from {
		return c.Settle(results[from:]), nil
	}
	return prev, nil
}

func testConcurrentChunks(t *testing.T, m mirrors.Mirror) {
	if _, ok := mirrors.As[mirrors.Concurrent](m); !ok {
		t.Skip("the mirror stores chunks one at a time")
	}
	ctx := t.Context()
	for ci, sizes := range [][]int{
		{6 * mib, 6 * mib, 5 * mib, 6 * mib},
		{1000, 6 * mib, 6 * mib, 10, 6 * mib, 5 * mib, 0},
		{6 * mib, 5*mib - 1, 6 * mib, 6 * mib},
	} {
		k := key(fmt.Sprintf("concurrent-%d", ci))
		up, err := m.Begin(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var chunks [][]byte
		var want []byte
		for i, s := range sizes {
			b := randBytes(uint64(900+10*ci+i), s)
			chunks, want = append(chunks, b), append(want, b...)
		}
		// The first two chunks in one go, then the rest after them, as
		// two requests of one upload would.
		mid, err := PutConcurrently(ctx, m, up, mirrors.Part{}, chunks[:2]...)
		if err != nil {
			t.Fatalf("sizes %v: %v", sizes, err)
		}
		last, err := PutConcurrently(ctx, m, up, mid, chunks[2:]...)
		if err != nil {
			t.Fatalf("sizes %v: %v", sizes, err)
		}
		if last.N != len(sizes) || last.Size != int64(len(want)) {
			t.Fatalf("sizes %v: last Part %+v", sizes, last)
		}
		if err := m.Complete(ctx, up, last); err != nil {
			t.Fatalf("sizes %v: Complete: %v", sizes, err)
		}
		checkObject(t, m, k, want)
	}
}
