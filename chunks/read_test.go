package chunks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/acestash/acestash/store"
)

// hungBody is a mirror's reader that hands out give bytes, then blocks as a
// hung server would until its request is cancelled; released is closed
// then.
type hungBody struct {
	ctx      context.Context
	rc       io.ReadCloser
	give     int
	released chan struct{}
}

func hang(ctx context.Context, rc io.ReadCloser, give int) *hungBody {
	return &hungBody{ctx: ctx, rc: rc, give: give, released: make(chan struct{})}
}

func (h *hungBody) Read(p []byte) (int, error) {
	if h.give == 0 {
		<-h.ctx.Done()
		close(h.released)
		return 0, h.ctx.Err()
	}
	n, err := h.rc.Read(p[:min(len(p), h.give)])
	h.give -= n
	return n, err
}

func (h *hungBody) Close() error { return h.rc.Close() }

// storedFile puts b on every mirror of e and returns a record naming them.
func (e *env) storedFile(t *testing.T, b []byte) store.File {
	t.Helper()
	f := store.File{Slug: "read", ObjectKey: "files/read", Size: int64(len(b)), Mirrors: e.ids()}
	for _, m := range e.mem {
		if err := m.Put(context.Background(), f.ObjectKey, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// readAll reads n bytes of f from off through Service.Open, by Read only,
// so the mirrors' own copy methods are not used.
func readAll(t *testing.T, s *Service, f store.File, off, n int64) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), f, off, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(struct{ io.Reader }{rc})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestHedgedRead: a mirror that keeps its first byte is hedged by the next
// one, whose bytes are served; the hung request is cancelled, and the hung
// mirror is asked last afterwards.
func TestHedgedRead(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) { c.HedgeAfter = 10 * time.Millisecond; c.MirrorStall = time.Minute })
	b := data(3*mib+17, 1)
	f := e.storedFile(t, b)
	stuck := make(chan *hungBody, 1)
	e.faulty[0].Reads = func(ctx context.Context, n int, rc io.ReadCloser) io.ReadCloser {
		h := hang(ctx, rc, 0)
		stuck <- h
		return h
	}
	start := time.Now()
	if got := readAll(t, e.svc, f, 0, f.Size); !bytes.Equal(got, b) {
		t.Fatalf("read %d bytes, not the file's %d", len(got), len(b))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the read took %v, as long as the hung mirror hung it", d)
	}
	select {
	case <-(<-stuck).released:
	case <-time.After(10 * time.Second):
		t.Fatal("the hung mirror's request was never cancelled")
	}
	// Mirror 1 lost: the next read asks mirror 2 first, so it makes no
	// call to mirror 1 at all.
	e.faulty[0].Reads = nil
	opens := e.mem[0].Calls("Open")
	if got := readAll(t, e.svc, f, 5, 100); !bytes.Equal(got, b[5:105]) {
		t.Fatal("second read: wrong bytes")
	}
	if e.mem[0].Calls("Open") != opens {
		t.Fatal("a mirror that lost a hedged read was asked first again")
	}
}

// TestStallMidBody: a mirror that stops in the middle of the body is given
// up after the stall limit, and the read goes on from the same offset on
// another mirror without a gap.
func TestStallMidBody(t *testing.T) {
	for _, copied := range []bool{false, true} { // by Read; by WriteTo, as downloads are
		e := newEnv(t, 3, func(c *Config) { c.MirrorStall = 100 * time.Millisecond; c.HedgeAfter = time.Minute })
		b := data(2*mib+5, 2)
		f := e.storedFile(t, b)
		for i := range 2 { // mirrors 1 and 2 both stall, at different offsets
			e.faulty[i].Reads = func(ctx context.Context, n int, rc io.ReadCloser) io.ReadCloser {
				return hang(ctx, rc, (i+1)*300<<10)
			}
		}
		rc, err := e.svc.Open(context.Background(), f, 1000, f.Size-1000)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if copied {
			_, err = io.Copy(&out, rc)
		} else {
			_, err = io.Copy(&out, struct{ io.Reader }{rc})
		}
		rc.Close()
		if err != nil || !bytes.Equal(out.Bytes(), b[1000:]) {
			t.Fatalf("copied %v: %v, %d bytes of %d, equal %v", copied, err, out.Len(), len(b)-1000, bytes.Equal(out.Bytes(), b[1000:]))
		}
		if e.mem[2].Calls("Open") != 1 {
			t.Fatalf("mirror 3 was opened %d times, want once", e.mem[2].Calls("Open"))
		}
	}
}

// TestStallEverywhere: when every mirror stalls the read fails with an
// error naming the stall, instead of hanging.
func TestStallEverywhere(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) { c.MirrorStall = 50 * time.Millisecond })
	b := data(mib, 3)
	f := e.storedFile(t, b)
	for i := range 2 {
		e.faulty[i].Reads = func(ctx context.Context, n int, rc io.ReadCloser) io.ReadCloser { return hang(ctx, rc, 0) }
	}
	if _, err := e.svc.Open(context.Background(), f, 0, f.Size); err == nil || !bytes.Contains([]byte(err.Error()), []byte(errStalled.Error())) {
		t.Fatalf("Open: %v, want the stall named", err)
	}
}

// writeCounter counts the writes it takes.
type writeCounter struct {
	bytes.Buffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestSmallFileOneWrite: a file of up to firstBytes reaches the client in
// one write however the mirror's body trickles in, and one that ends short
// on its mirror is read from another.
func TestSmallFileOneWrite(t *testing.T) {
	e := newEnv(t, 2, nil)
	b := data(firstBytes, 4)
	f := e.storedFile(t, b)
	e.faulty[0].Reads = func(_ context.Context, _ int, rc io.ReadCloser) io.ReadCloser {
		return struct {
			io.Reader
			io.Closer
		}{iotest.HalfReader(rc), rc}
	}
	for _, short := range []bool{false, true} {
		if short { // mirror 1 holds all but the last byte
			if err := e.mem[0].Put(context.Background(), f.ObjectKey, bytes.NewReader(b[:len(b)-1]), int64(len(b)-1)); err != nil {
				t.Fatal(err)
			}
		}
		rc, err := e.svc.Open(context.Background(), f, 0, f.Size)
		if err != nil {
			t.Fatal(err)
		}
		var w writeCounter
		_, err = io.Copy(&w, rc)
		rc.Close()
		if err != nil || !bytes.Equal(w.Bytes(), b) {
			t.Fatalf("short %v: %v; %d bytes, equal %v", short, err, w.Len(), bytes.Equal(w.Bytes(), b))
		}
		if w.writes != 1 {
			t.Fatalf("short %v: %d writes for a %d-byte file, want 1", short, w.writes, len(b))
		}
	}
}

// readBack reads the whole of f through s and reports to errs whether it
// got b: for reads in goroutines, which may not call t.Fatal.
func readBack(s *Service, f store.File, b []byte, errs chan<- error) {
	rc, err := s.Open(context.Background(), f, 0, f.Size)
	if err != nil {
		errs <- err
		return
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err == nil && !bytes.Equal(got, b) {
		err = fmt.Errorf("read %d wrong bytes", len(got))
	}
	errs <- err
}

// TestHedgeWaits: with hedge waits derived from the mirrors' own times, a
// read late on a mirror that serves other reads meanwhile waits twice its
// wait before it asks another (on a busy machine the hedge would only add
// to the load); one late on a mirror that serves nobody asks the next
// after its wait, and reads that all wait on a mirror that answers none of
// them ask the next after hedgeFloor: it looks hung.
func TestHedgeWaits(t *testing.T) {
	const wait = time.Second // mirror 1's hedge wait, from its first-byte times below
	for _, c := range []struct {
		name           string
		others         int  // reads that wait on mirror 1 too
		busy           bool // another read is served by mirror 1 meanwhile
		least, longest time.Duration
	}{
		{"busy", 0, true, 2 * wait, time.Hour},
		{"alone", 0, false, wait, 2 * wait},
		{"crowd", 3, false, hedgeFloor, wait},
	} {
		e := newEnv(t, 2, func(c *Config) { c.MirrorStall = time.Minute })
		for range minSamples + 4 {
			e.svc.speeds.firstByte("1", wait)
		}
		b := data(1000, 5)
		f := e.storedFile(t, b)
		asked := make(chan struct{}, 8)
		e.faulty[0].Reads = func(ctx context.Context, n int, rc io.ReadCloser) io.ReadCloser {
			asked <- struct{}{}
			if c.busy && n > 0 { // the other read's
				return rc
			}
			return hang(ctx, rc, 0)
		}
		hedged := make(chan time.Time, 8)
		e.faulty[1].Reads = func(_ context.Context, _ int, rc io.ReadCloser) io.ReadCloser {
			hedged <- time.Now()
			return rc
		}
		start := time.Now()
		late := 1 + c.others
		errs := make(chan error, late)
		for range late {
			go readBack(e.svc, f, b, errs)
		}
		for range late {
			<-asked
		}
		if c.busy {
			if got := readAll(t, e.svc, f, 0, f.Size); !bytes.Equal(got, b) {
				t.Fatal("the other read: wrong bytes")
			}
		}
		for range late {
			if err := <-errs; err != nil {
				t.Fatalf("%s: a late read: %v", c.name, err)
			}
		}
		if len(hedged) != late {
			t.Fatalf("%s: mirror 2 asked %d times for %d late reads", c.name, len(hedged), late)
		}
		for range late {
			if waited := (<-hedged).Sub(start); waited < c.least || waited >= c.longest {
				t.Fatalf("%s: mirror 2 was asked %v after the reads began, want %v to %v", c.name, waited, c.least, c.longest)
			}
		}
	}
}

// TestHungMirrorLast: a mirror that looked hung to reads waiting on it is
// asked after the mirrors that merely lost a race lately, so it does not
// keep every read waiting on it when all have lost one.
func TestHungMirrorLast(t *testing.T) {
	e := newEnv(t, 3, func(c *Config) { c.MirrorStall = time.Minute })
	b := data(1000, 6)
	f := e.storedFile(t, b)
	e.svc.speeds.letDown("1")
	e.svc.speeds.letDown("2")
	e.svc.speeds.letDown("3")
	e.faulty[0].Reads = func(ctx context.Context, _ int, rc io.ReadCloser) io.ReadCloser { return hang(ctx, rc, 0) }
	// Reads at once: mirror 1 comes first among equals, and they all wait
	// on it until it looks hung.
	errs := make(chan error, 4)
	for range 4 {
		go readBack(e.svc, f, b, errs)
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	opens := e.mem[0].Calls("Open")
	for range 3 {
		if got := readAll(t, e.svc, f, 0, f.Size); !bytes.Equal(got, b) {
			t.Fatal("wrong bytes")
		}
	}
	if n := e.mem[0].Calls("Open") - opens; n != 0 {
		t.Fatalf("the hung mirror was asked %d more times, though the others only lost a race", n)
	}
}
