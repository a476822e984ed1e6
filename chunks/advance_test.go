package chunks

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/acestash/acestash/store"
)

// TestEveryWayRecordsTheSame sends one file every way bytes arrive: in
// MirrorAce chunks (the first sent with other bytes, then retried), as a
// whole MirrorAce request, by Fill, by Put, and as a stream in two
// requests. Each file holds the same bytes, size, SHA-256 and sniffed type;
// a stream upload that declared its type keeps it.
func TestEveryWayRecordsTheSame(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) { c.Sniff = http.DetectContentType })
	b := data(7*mib+5, 11)
	copy(b, "\x89PNG\r\n\x1a\n")
	ctx := t.Context()
	var files []store.File

	sess, err := e.svc.Issue(ctx, e.acct)
	if err != nil {
		t.Fatal(err)
	}
	wrong := bytes.Clone(b[:3*mib])
	copy(wrong, "GIF89a")
	first := e.req(sess, b, 0, 3*mib)
	first.Body = bytes.NewReader(wrong)
	if _, err := e.svc.Chunk(ctx, first); err != nil {
		t.Fatal(err)
	}
	var res Result
	for _, c := range [][2]int{{0, 3 * mib}, {3 * mib, 6 * mib}, {6 * mib, len(b)}} {
		if res, err = e.svc.Chunk(ctx, e.req(sess, b, c[0], c[1])); err != nil {
			t.Fatalf("chunk %v: %v", c, err)
		}
	}
	files = append(files, res.File)

	sess, err = e.svc.Issue(ctx, e.acct)
	if err != nil {
		t.Fatal(err)
	}
	whole := e.req(sess, b, 0, len(b))
	whole.Range = nil
	if res, err = e.svc.Chunk(ctx, whole); err != nil {
		t.Fatal(err)
	}
	files = append(files, res.File)

	sess, err = e.svc.Issue(ctx, e.acct)
	if err != nil {
		t.Fatal(err)
	}
	if res, err = e.svc.Fill(ctx, e.req(sess, b, 0, len(b)), 0); err != nil {
		t.Fatal(err)
	}
	files = append(files, res.File)

	f, err := e.svc.Put(ctx, Spec{Account: e.acct, Name: "f.bin", Mirrors: e.ids()}, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, f)

	for _, typ := range []string{"", "application/x-declared"} {
		s, lease := e.streamHeld(t, StreamSpec{Account: e.acct, Name: "f.bin", Mirrors: e.ids(), Size: int64(len(b)), Type: typ})
		for _, c := range [][2]int{{0, 4 * mib}, {4 * mib, len(b)}} {
			if s, err = e.svc.Append(ctx, e.acct, s.UploadKey, lease.Holder(), int64(c[0]), bytes.NewReader(b[c[0]:c[1]])); err != nil {
				t.Fatalf("append %v: %v", c, err)
			}
		}
		f, err := e.store.File(ctx, s.Slug)
		if err != nil {
			t.Fatal(err)
		}
		if typ != "" {
			if f.Type != typ {
				t.Errorf("stream upload declared as %s: type %q", typ, f.Type)
			}
			e.holds(t, f, b, e.ids()...)
			continue
		}
		files = append(files, f)
	}

	for i, f := range files {
		e.holds(t, f, b, e.ids()...)
		if f.Type != "image/png" {
			t.Errorf("way %d: type %q, want image/png", i, f.Type)
		}
	}
}
