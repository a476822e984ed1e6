package chunks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/memmirror"
	"github.com/acestash/acestash/mirrors/mirrortest"
	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/boltstore"
)

const mib = 1 << 20

// env is a Service on in-memory mirrors "1".."n", each behind a fault
// injector, and an embedded store.
type env struct {
	svc    *Service
	store  store.Store
	mem    []*memmirror.Mirror
	faulty []*mirrortest.Faulty
	acct   store.Account
}

func newEnv(t *testing.T, n int, edit func(*Config)) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "acestash.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, acct: store.Account{APIKey: "key", Name: "tester"}}
	var entries []mirrors.Entry
	for i := range n {
		m := memmirror.New()
		f := &mirrortest.Faulty{Mirror: m}
		e.mem, e.faulty = append(e.mem, m), append(e.faulty, f)
		entries = append(entries, mirrors.Entry{ID: strconv.Itoa(i + 1), Mirror: f})
	}
	set, err := mirrors.NewSet(entries...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Mirrors: set, SpoolDir: t.TempDir(), PieceSize: 5 * mib,
		MaxChunkSize: 12 * mib, LeaseWait: 200 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	if e.svc, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) ids() []string {
	var ids []string
	for i := range e.mem {
		ids = append(ids, strconv.Itoa(i+1))
	}
	return ids
}

func data(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n:n]
}

// upload issues a key and sends data in chunks of size bytes, each with an
// inclusive Content-Range, and returns the last result.
func (e *env) upload(t *testing.T, b []byte, size int) Result {
	t.Helper()
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	for off := 0; off < len(b); off += size {
		end := min(off+size, len(b))
		res, err = e.svc.Chunk(t.Context(), e.req(sess, b, off, end))
		if err != nil {
			t.Fatalf("chunk at %d: %v", off, err)
		}
	}
	return res
}

func (e *env) req(sess store.Session, b []byte, off, end int) ChunkRequest {
	return ChunkRequest{
		Account: e.acct, UploadKey: sess.UploadKey, CTracker: sess.CTracker,
		Range: &Range{Start: int64(off), End: int64(end - 1), Total: int64(len(b))},
		Body:  bytes.NewReader(b[off:end]), Name: "f.bin", Mirrors: e.ids(),
	}
}

// holds checks that every mirror in ids holds want under the file's key
// and has no upload left in progress.
func (e *env) holds(t *testing.T, f store.File, want []byte, ids ...string) {
	t.Helper()
	sum := sha256.Sum256(want)
	if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(want)) {
		t.Fatalf("record: size %d, SHA-256 %s; want %d, %x", f.Size, f.SHA256, len(want), sum)
	}
	for _, id := range ids {
		i, _ := strconv.Atoi(id)
		m := e.mem[i-1]
		rc, err := m.Open(t.Context(), f.ObjectKey, 0, -1)
		if err != nil {
			t.Fatalf("mirror %s: %v", id, err)
		}
		got, _ := io.ReadAll(rc)
		if !bytes.Equal(got, want) {
			t.Fatalf("mirror %s holds %d bytes, not the %d sent", id, len(got), len(want))
		}
		if n := m.Uploads(); n != 0 {
			t.Errorf("mirror %s has %d uploads left in progress", id, n)
		}
	}
}

func TestChunkedRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, nil)
	b := data(30*mib+123, 1)
	res := e.upload(t, b, 12*mib)
	if !res.Done {
		t.Fatalf("last result %+v, want done", res)
	}
	e.holds(t, res.File, b, "1", "2", "3")
	// 12 MiB chunks in 5 MiB pieces: 3 pieces each for the first two
	// chunks, 2 for the last.
	if got := e.mem[0].Calls("PutPart"); got != 8 {
		t.Errorf("PutPart calls on a mirror: %d, want 8", got)
	}
}

func TestOneRequestOnePut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	b := data(100<<10, 2)
	f, err := e.svc.Put(t.Context(), Spec{Account: e.acct, Name: "small", Mirrors: e.ids()}, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	e.holds(t, f, b, "1", "2")
	for i, m := range e.mem {
		if m.Calls("Put") != 1 || m.Calls("Begin") != 0 {
			t.Errorf("mirror %d: %d Put, %d Begin; want one Put and no multipart upload", i+1, m.Calls("Put"), m.Calls("Begin"))
		}
	}
	// A single-chunk MirrorAce upload of the whole file is one Put as well.
	res := e.upload(t, b, len(b))
	e.holds(t, res.File, b, "1", "2")
	if m := e.mem[0]; m.Calls("Put") != 2 || m.Calls("Begin") != 0 {
		t.Errorf("after a one-chunk upload: %d Put, %d Begin", m.Calls("Put"), m.Calls("Begin"))
	}
}

func TestLargePutStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	b := data(12*mib+5, 3)
	f, err := e.svc.Put(t.Context(), Spec{Account: e.acct, Mirrors: e.ids()}, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	e.holds(t, f, b, "1", "2")
	if m := e.mem[0]; m.Calls("Begin") != 1 || m.Calls("PutPart") != 3 || m.Calls("Complete") != 1 {
		t.Errorf("Begin %d, PutPart %d, Complete %d; want 1, 3, 1", m.Calls("Begin"), m.Calls("PutPart"), m.Calls("Complete"))
	}
}

func TestOverLimitLeavesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	for _, size := range []int{1000, 6 * mib, 11 * mib} {
		_, err := e.svc.Put(t.Context(), Spec{Account: e.acct, Mirrors: e.ids(), MaxSize: int64(size - 1)}, bytes.NewReader(data(size, 4)))
		if ce, ok := AsError(err); !ok || ce.Kind != TooLarge {
			t.Fatalf("%d bytes over a %d-byte limit: %v, want TooLarge", size, size-1, err)
		}
		for i, m := range e.mem {
			if len(m.Keys()) != 0 || m.Uploads() != 0 {
				t.Fatalf("%d bytes: mirror %d kept objects %v and %d uploads", size, i+1, m.Keys(), m.Uploads())
			}
		}
	}
	// A chunk past its Content-Range total is refused the same way.
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	b := data(8*mib, 5)
	req := e.req(sess, b, 0, len(b))
	req.Range.Total = 6 * mib
	if _, err := e.svc.Chunk(t.Context(), req); err == nil {
		t.Fatal("a chunk past its total: no error")
	}
	for i, m := range e.mem {
		if m.Uploads() != 0 {
			t.Fatalf("mirror %d kept %d uploads of a refused first chunk", i+1, m.Uploads())
		}
	}
}

func TestQuorumDropsAFailingMirror(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, func(c *Config) { c.WriteQuorum = 2 })
	down := errors.New("mirror 3 is down")
	e.faulty[2].Fail = func(method string, n int) error {
		if method == "PutPart" && n >= 3 {
			return down
		}
		return nil
	}
	b := data(30*mib, 6)
	res := e.upload(t, b, 12*mib)
	e.holds(t, res.File, b, "1", "2")
	if fmt.Sprint(res.File.Mirrors) != "[1 2]" || fmt.Sprint(res.File.Missing) != "[3]" {
		t.Fatalf("record: mirrors %v, missing %v; want [1 2] and [3]", res.File.Mirrors, res.File.Missing)
	}
}

func TestBelowQuorumIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	fail := true
	var mu sync.Mutex
	e.faulty[1].Fail = func(method string, n int) error {
		mu.Lock()
		defer mu.Unlock()
		if method == "PutPart" && n >= 3 && fail {
			return errors.New("mirror 2 hiccups")
		}
		return nil
	}
	b := data(30*mib, 7)
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Chunk(t.Context(), e.req(sess, b, 0, 12*mib)); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Chunk(t.Context(), e.req(sess, b, 12*mib, 24*mib))
	if ce, ok := AsError(err); !ok || ce.Kind != Unavailable {
		t.Fatalf("chunk with a mirror failing below the quorum: %v, want Unavailable", err)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	// The client retries the same chunk, and goes on.
	if _, err := e.svc.Chunk(t.Context(), e.req(sess, b, 12*mib, 24*mib)); err != nil {
		t.Fatalf("retry: %v", err)
	}
	res, err := e.svc.Chunk(t.Context(), e.req(sess, b, 24*mib, len(b)))
	if err != nil || !res.Done {
		t.Fatalf("last chunk: %+v, %v", res, err)
	}
	e.holds(t, res.File, b, "1", "2")
}

// gate is a reader that blocks at its first read until released.
type gate struct {
	r       io.Reader
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gate) Read(p []byte) (int, error) {
	g.once.Do(func() { close(g.started); <-g.release })
	return g.r.Read(p)
}

// heldChunk sends the first MiB of b as a chunk of sess in the background,
// its body held at the first read until the gate is released, and returns
// once the request is reading; its error arrives on errc.
func (e *env) heldChunk(sess store.Session, b []byte) (*gate, chan error) {
	first := e.req(sess, b, 0, mib)
	return held(first.Body, func(body io.Reader) error {
		first.Body = body
		_, err := e.svc.Chunk(context.Background(), first)
		return err
	})
}

// held runs send in the background on r, held at its first read until the
// gate is released, and returns once send is reading; send's error arrives
// on errc.
func held(r io.Reader, send func(body io.Reader) error) (*gate, chan error) {
	g := &gate{r: r, started: make(chan struct{}), release: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- send(g) }()
	<-g.started
	return g, errc
}

func TestLeaseKeepsWritersApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	b := data(3*mib, 8)
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	g, errc := e.heldChunk(sess, b) // the first request holds the lease and is reading
	_, err = e.svc.Chunk(t.Context(), e.req(sess, b, 0, mib))
	if ce, ok := AsError(err); !ok || ce.Kind != Unavailable {
		t.Fatalf("a second writer while the first holds the lease: %v, want Unavailable", err)
	}
	close(g.release)
	if err := <-errc; err != nil {
		t.Fatalf("the lease holder: %v", err)
	}
	// Once it is done, the next chunk goes through at once.
	if _, err := e.svc.Chunk(t.Context(), e.req(sess, b, mib, 2*mib)); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Chunk(t.Context(), e.req(sess, b, 2*mib, len(b)))
	if err != nil {
		t.Fatal(err)
	}
	e.holds(t, res.File, b, "1", "2")
}

func TestLateFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	b := data(mib, 9)
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	req := e.req(sess, b, 0, len(b))
	req.Late = func() (LateFields, error) { return LateFields{Password: "s3cret"}, nil }
	res, err := e.svc.Chunk(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(res.File, "s3cret") || CheckPassword(res.File, "") {
		t.Fatal("a file_password sent after the file does not protect it")
	}

	// Mirrors named only after the file cannot be honoured: refused, and
	// nothing is left behind.
	sess, err = e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	req = e.req(sess, b, 0, len(b))
	req.Mirrors = []string{"1"}
	req.Late = func() (LateFields, error) { return LateFields{Mirrors: []string{"2"}}, nil }
	if _, err := e.svc.Chunk(t.Context(), req); err == nil {
		t.Fatal("mirrors after the file: no error")
	}
	if keys := e.mem[0].Keys(); len(keys) != 1 {
		t.Fatalf("mirror 1 holds %v after a refused upload; want only the first file", keys)
	}
}

func TestRepeatOfFinishedUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, nil)
	b := data(20*mib, 10)
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	for _, r := range [][2]int{{0, 12 * mib}, {12 * mib, len(b)}} {
		if res, err = e.svc.Chunk(t.Context(), e.req(sess, b, r[0], r[1])); err != nil {
			t.Fatal(err)
		}
	}
	again, err := e.svc.Chunk(t.Context(), e.req(sess, b, 12*mib, len(b)))
	if err != nil || again.File.Slug != res.File.Slug || again.File.ID != res.File.ID {
		t.Fatalf("the last chunk again: %+v, %v; want the same file %s", again.File, err, res.File.Slug)
	}
	other := e.req(sess, data(len(b), 11), 12*mib, len(b))
	if _, err := e.svc.Chunk(t.Context(), other); err == nil {
		t.Fatal("other bytes as the last chunk of a finished upload: no error")
	}
	e.holds(t, res.File, b, "1")
}

func TestOneFailedWriteIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	e.faulty[1].Fail = func(method string, n int) error {
		if method == "PutPart" && n == 2 {
			return errors.New("mirror 2 drops one connection")
		}
		return nil
	}
	b := data(20*mib, 12)
	res := e.upload(t, b, 12*mib)
	e.holds(t, res.File, b, "1", "2")
	if len(res.File.Missing) != 0 {
		t.Fatalf("a mirror that failed once is missing from the record: %v", res.File.Missing)
	}
}

func TestWithdraw(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, nil)
	b := data(100<<10, 9)
	f, err := e.svc.Put(t.Context(), Spec{Account: e.acct, Name: "gone", Mirrors: e.ids()}, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Withdraw(t.Context(), f.Slug, "because"); err == nil {
		t.Fatal("Withdraw with a made-up reason succeeded")
	}
	got, err := e.svc.Withdraw(t.Context(), f.Slug, store.StatusCopyright)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.store.File(t.Context(), f.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusCopyright || stored.Status != store.StatusCopyright || len(stored.Mirrors) != 0 {
		t.Fatalf("after Withdraw: returned %+v, stored %+v", got, stored)
	}
	for i, m := range e.mem {
		if keys := m.Keys(); len(keys) != 0 {
			t.Errorf("mirror %d still holds %v", i+1, keys)
		}
	}
	// A second removal keeps the first reason.
	again, err := e.svc.Withdraw(t.Context(), f.Slug, store.StatusUser)
	if err != nil || again.Status != store.StatusCopyright {
		t.Fatalf("second Withdraw = %q, %v; want the first reason kept", again.Status, err)
	}
	if _, err := e.svc.Withdraw(t.Context(), "nosuch", store.StatusUser); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Withdraw of a missing slug: %v, want not found", err)
	}
}

func TestExpireNotifies(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []string
	now := time.Now()
	e := newEnv(t, 1, func(c *Config) {
		c.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		c.Notify = func(_ context.Context, event string, f store.File) {
			mu.Lock()
			events = append(events, event+" "+f.Slug)
			mu.Unlock()
		}
	})
	f, err := e.svc.Put(t.Context(), Spec{Account: e.acct, Name: "brief", Mirrors: e.ids(), Terms: Terms{Expires: now.Add(time.Minute)}}, bytes.NewReader(data(1000, 5)))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if n, err := e.svc.Expire(t.Context()); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"file.completed " + f.Slug, "file.removed " + f.Slug}; fmt.Sprint(events) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	got, err := e.store.File(t.Context(), f.Slug)
	if err != nil || got.Status != store.StatusUser || got.Reason != ReasonExpired {
		t.Fatalf("record after expiry: %+v, %v; want status %q, reason %q", got, err, store.StatusUser, ReasonExpired)
	}
	if keys := e.mem[0].Keys(); len(keys) != 0 {
		t.Fatalf("mirror still holds %v after expiry", keys)
	}
}

// TestConfirm: an unconfirmed file confirmed in time stays, one left
// alone goes with the next Expire, and a late confirmation is refused.
func TestConfirm(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	e := newEnv(t, 1, func(c *Config) {
		c.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	put := func(name string) store.File {
		f, err := e.svc.Put(t.Context(), Spec{Account: e.acct, Name: name, Mirrors: e.ids(), Alias: "alias" + name,
			Terms: Terms{Expires: now.Add(time.Hour)}, Unconfirmed: true}, bytes.NewReader(data(1000, 5)))
		if err != nil || !f.Unconfirmed {
			t.Fatalf("Put = %+v, %v", f, err)
		}
		return f
	}
	kept, dropped := put("kept"), put("dropped")
	got, err := e.svc.Confirm(t.Context(), kept)
	if err != nil || got.Unconfirmed || !got.Expires.IsZero() {
		t.Fatalf("Confirm = %+v, %v; want a file kept for good", got, err)
	}
	if again, err := e.svc.Confirm(t.Context(), got); err != nil || again.Unconfirmed {
		t.Fatalf("second Confirm = %+v, %v; want the same file again", again, err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if n, err := e.svc.Expire(t.Context()); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1 (the unconfirmed file)", n, err)
	}
	if f, err := e.store.File(t.Context(), kept.Slug); err != nil || f.Unconfirmed || !f.Expires.IsZero() {
		t.Fatalf("confirmed file after Expire: %+v, %v", f, err)
	}
	if _, err := e.store.File(t.Context(), dropped.Slug); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unconfirmed file after Expire: %v, want not found", err)
	}
	if len(e.mem[0].Keys()) != 1 {
		t.Fatalf("mirror holds %v, want the confirmed file's object only", e.mem[0].Keys())
	}
	if _, err := e.svc.Confirm(t.Context(), dropped); err == nil {
		t.Fatal("a confirmation after the file lapsed was taken")
	} else if ce, ok := AsError(err); !ok || ce.Kind != Invalid || !strings.Contains(ce.Msg, "not confirmed in time") {
		t.Fatalf("late Confirm: %v, want an Invalid error saying the file is gone", err)
	}
}
