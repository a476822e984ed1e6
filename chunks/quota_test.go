package chunks

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/acestash/acestash/store"
)

// TestQuotaHoldsAtOnce: two uploads that each fit in what the quota
// leaves, but not both, run at once; the one that publishes second is
// refused and leaves nothing behind, whether it went out as one Put or as
// a multipart upload.
func TestQuotaHoldsAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		size int // piece size is 5 MiB: at most one piece goes out with one Put
	}{{"one put", 2 * mib}, {"multipart", 6 * mib}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1, nil)
			e.acct.QuotaBytes = int64(tc.size * 3 / 2)
			a, b := data(tc.size, 1), data(tc.size, 2)
			first, err := e.svc.Issue(t.Context(), e.acct)
			if err != nil {
				t.Fatal(err)
			}
			// The first upload passes its checks and is reading its body
			// while the second comes and goes, published.
			req := e.req(first, a, 0, len(a))
			g, errc := held(req.Body, func(body io.Reader) error {
				req.Body = body
				_, err := e.svc.Chunk(t.Context(), req)
				return err
			})
			e.publishedFirst(t, g, errc, first.UploadKey, b)
		})
	}
}

// TestQuotaHoldsAtOnceStream: the same for a stream (tus) upload, whose
// last bytes finish it.
func TestQuotaHoldsAtOnceStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, nil)
	e.acct.QuotaBytes = 3 * mib
	a, b := data(2*mib, 3), data(2*mib, 4)
	sess, lease := e.streamHeld(t, StreamSpec{Account: e.acct, Name: "s.bin", Mirrors: e.ids(), Size: int64(len(a))})
	g, errc := held(bytes.NewReader(a), func(body io.Reader) error {
		_, err := e.svc.Append(t.Context(), e.acct, sess.UploadKey, lease.Holder(), 0, body)
		return err
	})
	e.publishedFirst(t, g, errc, sess.UploadKey, b)
}

// publishedFirst uploads b, which publishes while the upload of key waits
// at its gate, then lets that one go on: it must be refused by the quota
// and leave nothing on the mirror or in the store.
func (e *env) publishedFirst(t *testing.T, g *gate, errc chan error, key string, b []byte) {
	t.Helper()
	res := e.upload(t, b, len(b))
	e.holds(t, res.File, b, "1")
	close(g.release)
	err := <-errc
	if ce, ok := AsError(err); !ok || ce.Kind != OverQuota {
		t.Fatalf("the upload published second: %v, want OverQuota", err)
	}
	if want := "does not fit in this account's quota"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if u, err := e.store.Usage(t.Context(), e.acct.APIKey); err != nil || u != (store.Usage{Bytes: int64(len(b)), Files: 1}) {
		t.Fatalf("usage %+v (%v), want the first file published alone", u, err)
	}
	if n := len(e.mem[0].Keys()); n != 1 {
		t.Errorf("the mirror holds %d objects, want the published file's alone", n)
	}
	if n := e.mem[0].Uploads(); n != 0 {
		t.Errorf("the mirror has %d uploads in progress", n)
	}
	if _, err := e.store.Session(t.Context(), key); err == nil {
		t.Error("the refused upload's session is still stored")
	}
}
