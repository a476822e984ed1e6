package chunks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
)

// TestStreamQuorum streams an upload over three requests while mirror 3
// fails part way: with a quorum of 2 the file is published on 1 and 2,
// names 3 as missing, and holds exactly the bytes sent.
func TestStreamQuorum(t *testing.T) {
	e := newEnv(t, 3, func(c *Config) { c.WriteQuorum = 2 })
	e.faulty[2].Fail = func(method string, n int) error {
		if method == "PutPart" && n >= 1 {
			return errors.New("disk on fire")
		}
		return nil
	}
	body := data(11*mib+3, 9)
	sess, lease := e.streamHeld(t, StreamSpec{Account: e.acct, Name: "s.bin", Mirrors: e.ids(), Size: int64(len(body))})
	holder := lease.Holder()
	var err error
	// Another holder may not write meanwhile.
	if _, err := e.svc.Append(t.Context(), e.acct, sess.UploadKey, "h2", 0, bytes.NewReader(body)); err == nil {
		t.Fatal("Append without the lease succeeded")
	}
	for _, cut := range [][2]int{{0, 2 * mib}, {2 * mib, 8 * mib}, {8 * mib, len(body)}} {
		sess, err = e.svc.Append(t.Context(), e.acct, sess.UploadKey, holder, int64(cut[0]), bytes.NewReader(body[cut[0]:cut[1]]))
		if err != nil {
			t.Fatalf("Append %v: %v", cut, err)
		}
		if sess.Held != int64(cut[1]) {
			t.Fatalf("after Append %v the upload holds %d", cut, sess.Held)
		}
	}
	if !sess.Done {
		t.Fatalf("session after the last byte: %+v", sess)
	}
	f, err := e.store.File(t.Context(), sess.Slug)
	sum := sha256.Sum256(body)
	if err != nil || f.SHA256 != hex.EncodeToString(sum[:]) || len(f.Mirrors) != 2 || len(f.Missing) != 1 || f.Missing[0] != "3" {
		t.Fatalf("file %+v, %v", f, err)
	}
	for _, m := range e.mem[:2] {
		rc, err := m.Open(t.Context(), f.ObjectKey, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) {
			t.Fatalf("a mirror holds %d bytes that differ from the %d sent", len(got), len(body))
		}
	}
	if e.mem[2].Uploads() != 0 || len(e.mem[2].Keys()) != 0 {
		t.Fatalf("the failed mirror keeps %d uploads and %v", e.mem[2].Uploads(), e.mem[2].Keys())
	}
	if err := e.svc.Release(t.Context(), sess.UploadKey, holder); err != nil {
		t.Fatal(err)
	}
}

// TestStreamReapPartial reaps an idle partial upload that was never
// joined: its object goes with it.
func TestStreamReapPartial(t *testing.T) {
	e := newEnv(t, 1, nil)
	body := data(mib, 3)
	sess, lease := e.streamHeld(t, StreamSpec{Account: e.acct, Size: int64(len(body)), Partial: true})
	sess, err := e.svc.Append(t.Context(), e.acct, sess.UploadKey, lease.Holder(), 0, bytes.NewReader(body))
	if err != nil || !sess.Done {
		t.Fatalf("Append: %+v, %v", sess, err)
	}
	if len(e.mem[0].Keys()) != 1 {
		t.Fatalf("the partial upload's object: %v", e.mem[0].Keys())
	}
	if _, err := e.store.File(t.Context(), sess.Slug); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a partial upload was published: %v", err)
	}
	if n, err := e.svc.Reap(t.Context(), -time.Hour); err != nil || n != 1 {
		t.Fatalf("Reap: %d, %v", n, err)
	}
	if len(e.mem[0].Keys()) != 0 {
		t.Fatalf("after reaping, the mirror holds %v", e.mem[0].Keys())
	}
}

// TestStreamNotMirrorAce keeps the two kinds of upload apart: a MirrorAce
// request cannot write to a stream upload.
func TestStreamNotMirrorAce(t *testing.T) {
	e := newEnv(t, 1, nil)
	sess, err := e.svc.Create(t.Context(), StreamSpec{Account: e.acct, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Chunk(t.Context(), ChunkRequest{Account: e.acct, UploadKey: sess.UploadKey, Mirrors: e.ids(), Body: bytes.NewReader(body10)})
	if ce, ok := AsError(err); !ok || ce.Msg != "upload_key not found or expired; ask file/upload for a new one" {
		t.Fatalf("MirrorAce chunk to a stream upload: %v", err)
	}
}

var body10 = []byte("0123456789")

// TestLongAppendKeepsItsLease: an Append that runs for several lease
// times, its lease renewed meanwhile, leaves the lease running when it
// saves: no other request can take the upload once it returns.
func TestLongAppendKeepsItsLease(t *testing.T) {
	t.Parallel()
	// Generous for a loaded machine: a renewal starved for half a lease
	// time gives the lease up.
	e := newEnv(t, 1, func(c *Config) { c.LeaseTime = 3 * time.Second })
	body := data(2*mib, 4)
	sess, lease := e.streamHeld(t, StreamSpec{Account: e.acct, Name: "long.bin", Mirrors: e.ids(), Size: int64(2 * len(body))})
	pr, pw := io.Pipe()
	go func() {
		pw.Write(body[:mib])
		time.Sleep(7 * time.Second) // a slow client: over two lease times
		pw.Write(body[mib:])
		pw.Close()
	}()
	sess, err := e.svc.Append(t.Context(), e.acct, sess.UploadKey, lease.Holder(), 0, pr)
	if err != nil || sess.Held != int64(len(body)) {
		t.Fatalf("Append: %d held, %v", sess.Held, err)
	}
	if other, _, err := e.svc.Acquire(t.Context(), sess.UploadKey, false); !errors.Is(err, store.ErrLeased) {
		other.End()
		t.Fatalf("another request took the upload right after a long Append: %v", err)
	}
}

// streamHeld creates a stream upload of spec and takes its lease, which is
// held until the test ends.
func (e *env) streamHeld(t *testing.T, spec StreamSpec) (store.Session, *Lease) {
	t.Helper()
	sess, err := e.svc.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	lease, _, err := e.svc.Acquire(t.Context(), sess.UploadKey, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lease.End)
	return sess, lease
}
