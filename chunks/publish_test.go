package chunks

import (
	"errors"
	"testing"
)

// TestLostCreateReply: the store creates a file's record but its reply is
// lost. The upload is published all the same, and its objects stay where
// the record points, for one Put and for a multipart upload.
func TestLostCreateReply(t *testing.T) {
	t.Parallel()
	for _, size := range []int{2 * mib, 6 * mib} { // piece size 5 MiB
		e, fs := newFaultyEnv(t, 2, nil)
		fs.setFail(func(method string, n int) error {
			if method == "CreateFile" && n == 0 {
				return errors.New("reply lost")
			}
			return nil
		})
		b := data(size, 30)
		res := e.upload(t, b, len(b))
		if !res.Done {
			t.Fatalf("%d bytes: %+v, want the file published", size, res)
		}
		e.holds(t, res.File, b, "1", "2")
		f, err := e.store.File(t.Context(), res.File.Slug)
		if err != nil || f.ObjectKey != res.File.ObjectKey {
			t.Fatalf("%d bytes: record %+v (%v), want the file's", size, f, err)
		}
	}
}

// TestLostCreateReplyUnknown: when the record cannot even be looked for
// after the lost reply, the upload fails, but nothing a record points to
// is deleted.
func TestLostCreateReplyUnknown(t *testing.T) {
	t.Parallel()
	e, fs := newFaultyEnv(t, 1, nil)
	fs.setFail(func(method string, n int) error {
		if method == "CreateFile" || method == "File" {
			return errors.New("store unreachable")
		}
		return nil
	})
	b := data(2*mib, 31)
	sess, err := e.svc.Issue(t.Context(), e.acct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Chunk(t.Context(), e.req(sess, b, 0, len(b))); err == nil {
		t.Fatal("the chunk succeeded though its publish could not be confirmed")
	}
	fs.setFail(nil)
	files, _, err := e.store.OwnerFiles(t.Context(), e.acct.APIKey, 0, 10)
	if err != nil || len(files) != 1 {
		t.Fatalf("%d records (%v), want the one the store created", len(files), err)
	}
	e.holds(t, files[0], b, "1")
}
