package s3mirror

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/s3mirror/miniotest"
)

// socketPair returns the writing end of a loopback TCP connection and a
// channel that yields everything read from the other end once the writing
// end is closed.
func socketPair(t *testing.T) (*net.TCPConn, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Accepted before the listener closes, which would reset it.
	r, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		defer r.Close()
		b, _ := io.ReadAll(r)
		got <- b
	}()
	return c.(*net.TCPConn), got
}

// bigObject starts a MinIO and stores n random bytes as "big" on a mirror
// there.
func bigObject(t *testing.T, n int) (*miniotest.Server, *Mirror, []byte) {
	t.Helper()
	srv := miniotest.Start(t)
	m := newMirror(t, srv, "splice")
	data := randBytes(uint64(n), n)
	if err := m.Put(t.Context(), "big", bytes.NewReader(data), int64(n)); err != nil {
		t.Fatal(err)
	}
	return srv, m, data
}

// A large read is spliced from MinIO's socket to another one: the bytes
// that arrive are exactly the range asked for, whether spliced, read, or
// read after the first bytes. Missing objects still say so.
func TestSplice(t *testing.T) {
	_, m, data := bigObject(t, 3*spliceMin)
	ctx := t.Context()
	for _, c := range []struct {
		name      string
		off, n    int64
		first     int // bytes read with Read before splicing
		wantBytes int64
	}{
		{"whole", 0, int64(len(data)), 0, int64(len(data))},
		{"middle", 1<<20 + 3, 2*spliceMin + 5, 32 << 10, 2*spliceMin + 5},
		{"past the end", int64(len(data)) - spliceMin, 2 * spliceMin, 100, spliceMin},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc, err := m.Open(ctx, "big", c.off, c.n)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			sp, ok := rc.(mirrors.Splicer)
			if !ok {
				t.Fatalf("Open of %d bytes returned a %T, not a mirrors.Splicer", c.n, rc)
			}
			head := make([]byte, c.first)
			if _, err := io.ReadFull(rc, head); err != nil {
				t.Fatal(err)
			}
			w, got := socketPair(t)
			n, stalled := sp.Splice(w, 10*time.Second)
			w.Close()
			if stalled || int64(c.first)+n != c.wantBytes {
				t.Fatalf("Splice wrote %d bytes after %d read (stalled %v), want %d in all", n, c.first, stalled, c.wantBytes)
			}
			if k, err := rc.Read(make([]byte, 1)); k != 0 || err != io.EOF {
				t.Fatalf("Read after the whole range: %d, %v; want 0, EOF", k, err)
			}
			all := append(head, <-got...)
			if want := data[c.off : c.off+c.wantBytes]; !bytes.Equal(all, want) {
				t.Fatalf("got %d bytes that differ from the %d of the range", len(all), len(want))
			}
		})
	}
	t.Run("read", func(t *testing.T) {
		rc, err := m.Open(ctx, "big", 5, spliceMin)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(b, data[5:5+spliceMin]) {
			t.Fatalf("ReadAll: %d bytes, %v; want the %d of the range", len(b), err, spliceMin)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := m.Open(ctx, "nothing here", 0, spliceMin)
		if !errors.Is(err, mirrors.ErrNotFound) {
			t.Fatalf("Open of a missing object: %v; want ErrNotFound", err)
		}
	})
}

// A MinIO that stops sending in the middle of a spliced read is noticed
// within the stall limit, and what came before is intact.
func TestSpliceStall(t *testing.T) {
	srv, m, data := bigObject(t, 6*spliceMin)
	ctx := t.Context()
	rc, err := m.Open(ctx, "big", 0, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	srv.Pause()
	defer srv.Resume()
	w, got := socketPair(t)
	stall := 500 * time.Millisecond
	start := time.Now()
	n, stalled := rc.(mirrors.Splicer).Splice(w, stall)
	took := time.Since(start)
	w.Close()
	if !stalled || n >= int64(len(data)) {
		t.Fatalf("Splice from a stopped MinIO: %d of %d bytes, stalled %v; want it stalled", n, len(data), stalled)
	}
	if took > 20*stall {
		t.Errorf("the stall was noticed after %v; the limit is %v", took, stall)
	}
	if b := <-got; !bytes.Equal(b, data[:n]) {
		t.Fatalf("the %d bytes before the stall differ from the object's", n)
	}
}
