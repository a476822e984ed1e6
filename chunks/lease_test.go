package chunks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
)

// faultyStore wraps a store and makes chosen calls of UpdateSession,
// UpdateFile, File and Renew fail, as a store that stops answering would, and of
// CreateFile lose their reply: the file is created, the caller told it
// failed.
type faultyStore struct {
	store.Store
	mu    sync.Mutex
	fail  func(method string, n int) error
	calls map[string]int
	// renewed, when set, receives every Renew's error.
	renewed chan error
}

func (f *faultyStore) fault(method string) error {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	n := f.calls[method]
	f.calls[method]++
	fail := f.fail
	f.mu.Unlock()
	if fail == nil {
		return nil
	}
	return fail(method, n) // unlocked: fail may call the store itself

}

func (f *faultyStore) setFail(fn func(method string, n int) error) {
	f.mu.Lock()
	f.fail, f.calls = fn, nil
	f.mu.Unlock()
}

func (f *faultyStore) UpdateSession(ctx context.Context, s store.Session) (store.Session, error) {
	if err := f.fault("UpdateSession"); err != nil {
		return store.Session{}, err
	}
	return f.Store.UpdateSession(ctx, s)
}

func (f *faultyStore) UpdateFile(ctx context.Context, file store.File) error {
	if err := f.fault("UpdateFile"); err != nil {
		return err
	}
	return f.Store.UpdateFile(ctx, file)
}

func (f *faultyStore) CreateFile(ctx context.Context, file store.File) (store.File, error) {
	created, err := f.Store.CreateFile(ctx, file)
	if ferr := f.fault("CreateFile"); ferr != nil && err == nil {
		return store.File{}, ferr
	}
	return created, err
}

func (f *faultyStore) File(ctx context.Context, slug string) (store.File, error) {
	if err := f.fault("File"); err != nil {
		return store.File{}, err
	}
	return f.Store.File(ctx, slug)
}

func (f *faultyStore) Renew(ctx context.Context, key, holder string, until time.Time) error {
	err := f.fault("Renew")
	if err == nil {
		err = f.Store.Renew(ctx, key, holder, until)
	}
	if f.renewed != nil {
		f.renewed <- err
	}
	return err
}

// newFaultyEnv is newEnv with the store behind a faultyStore.
func newFaultyEnv(t *testing.T, n int, edit func(*Config)) (*env, *faultyStore) {
	fs := &faultyStore{}
	e := newEnv(t, n, func(c *Config) {
		fs.Store = c.Store
		c.Store = fs
		if edit != nil {
			edit(c)
		}
	})
	return e, fs
}

// TestLeaseRenewedWhileWriting holds a chunk's request for several lease
// times: its lease is renewed, so another request for the upload is kept
// out all along, and the first one's chunk is then recorded.
func TestLeaseRenewedWhileWriting(t *testing.T) {
	t.Parallel()
	e, fs := newFaultyEnv(t, 2, func(c *Config) { c.LeaseTime, c.LeaseWait = 2*time.Second, 50*time.Millisecond })
	fs.renewed = make(chan error, 100)
	b := data(3*mib, 20)
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	g, errc := e.heldChunk(sess, b)
	for i := range 6 { // a lease time and a half of renewals
		if err := <-fs.renewed; err != nil {
			t.Fatalf("renewal %d: %v", i, err)
		}
		_, err := e.svc.Chunk(t.Context(), e.req(sess, b, 0, mib))
		if ce, ok := AsError(err); !ok || ce.Kind != Unavailable || !strings.Contains(ce.Msg, "in progress") {
			t.Fatalf("a second writer after renewal %d: %v, want told another request is in progress", i, err)
		}
	}
	close(g.release)
	if err := <-errc; err != nil {
		t.Fatalf("the lease holder: %v", err)
	}
	fs.renewed = nil
	res := e.upload2(t, sess, b, mib, mib)
	e.holds(t, res.File, b, "1", "2")
}

// upload2 sends b from off in chunks of size on an upload already begun.
func (e *env) upload2(t *testing.T, sess store.Session, b []byte, off, size int) Result {
	t.Helper()
	var res Result
	for ; off < len(b); off += size {
		var err error
		res, err = e.svc.Chunk(t.Context(), e.req(sess, b, off, min(off+size, len(b))))
		if err != nil {
			t.Fatalf("chunk at %d: %v", off, err)
		}
	}
	return res
}

// TestLeaseReleasedWhenRecordingFails fails the write that records a chunk:
// the lease is released, so the client's retry is taken at once.
func TestLeaseReleasedWhenRecordingFails(t *testing.T) {
	t.Parallel()
	// A lease time far beyond the test's: only a release lets the retry in.
	e, fs := newFaultyEnv(t, 2, func(c *Config) { c.LeaseTime, c.LeaseWait = time.Hour, 10*time.Millisecond })
	b := data(20*mib, 21)
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Chunk(t.Context(), e.req(sess, b, 0, 12*mib)); err != nil {
		t.Fatal(err)
	}
	fs.setFail(func(method string, n int) error {
		if method == "UpdateSession" && n == 0 {
			return errors.New("store hiccup")
		}
		return nil
	})
	_, err = e.svc.Chunk(t.Context(), e.req(sess, b, 12*mib, len(b)))
	if ce, ok := AsError(err); !ok || ce.Kind != Unavailable || !strings.Contains(ce.Msg, "cannot record the chunk") {
		t.Fatalf("chunk whose record fails: %v, want Unavailable", err)
	}
	fs.setFail(nil)
	res := e.upload2(t, sess, b, 12*mib, 12*mib)
	e.holds(t, res.File, b, "1", "2")
}

// logSignal is a log handler that closes c at the first record whose
// message starts with prefix.
type logSignal struct {
	prefix string
	c      chan struct{}
	once   sync.Once
}

func (l *logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSignal) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logSignal) WithGroup(string) slog.Handler            { return l }

func (l *logSignal) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, l.prefix) {
		l.once.Do(func() { close(l.c) })
	}
	return nil
}

// stall is a body that yields r, then blocks until release, then ends.
type stall struct {
	r       io.Reader
	release chan struct{}
}

func (s *stall) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		<-s.release
	}
	return n, err
}

// TestLeaseLostStopsTheWriter cuts the store off while a request writes: it
// cannot renew its lease, so it stops writing and tells the client to
// retry, and once its lease runs out a retry finishes the file.
func TestLeaseLostStopsTheWriter(t *testing.T) {
	t.Parallel()
	const lt = time.Second
	gaveUp := &logSignal{prefix: "upload lease not renewed in time", c: make(chan struct{})}
	e, fs := newFaultyEnv(t, 2, func(c *Config) { c.LeaseTime, c.LeaseWait, c.Log = lt, 3*lt, slog.New(gaveUp) })
	fs.renewed = make(chan error, 100)
	b := data(12*mib, 22)
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	cut := errors.New("store unreachable")
	fs.setFail(func(method string, n int) error {
		if method == "Renew" {
			return cut
		}
		return nil
	})
	req := e.req(sess, b, 0, len(b))
	body := &stall{r: io.LimitReader(req.Body, 6*mib), release: make(chan struct{})}
	req.Body = body
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := e.svc.Chunk(context.Background(), req)
		errc <- err
	}()
	if err := <-fs.renewed; !errors.Is(err, cut) {
		t.Fatalf("renewal: %v", err)
	}
	// The request gives up at the first failure half a lease time after
	// the take: after one or more, however slowly the ticker runs.
	select {
	case <-gaveUp.c:
	case <-time.After(20 * lt):
		t.Fatal("the writer went on though its lease could not be renewed")
	}
	close(body.release)
	err = <-errc
	if ce, ok := AsError(err); !ok || ce.Kind != Unavailable || !strings.Contains(ce.Msg, "retry this chunk") || !errors.Is(err, errLeaseLost) {
		t.Fatalf("a writer that lost its lease: %v", err)
	}
	if time.Since(start) < lt/2 {
		t.Fatalf("the writer gave up after %v, before half its lease time", time.Since(start))
	}
	fs.renewed = nil
	fs.setFail(nil)
	res, err := e.svc.Chunk(t.Context(), e.req(sess, b, 0, len(b)))
	if err != nil || !res.Done {
		t.Fatalf("retry after the lease ran out: %+v, %v", res, err)
	}
	e.holds(t, res.File, b, "1", "2")
}
