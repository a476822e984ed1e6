package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/acestash/acestash/store"
)

// testPing: a store that is open answers.
func testPing(t *testing.T, e *env) {
	must(t, "Ping", e.s.Ping(e.ctx))
}

// wantUsage fails unless the owner's usage is bytes and files.
func (e *env) wantUsage(t *testing.T, what, owner string, bytes, files int64) {
	t.Helper()
	u, err := e.s.Usage(e.ctx, owner)
	must(t, what+": Usage", err)
	if u != (store.Usage{Bytes: bytes, Files: files}) {
		t.Fatalf("%s: usage of %s is %+v, want %d bytes in %d files", what, owner, u, bytes, files)
	}
}

// testUsage: an owner's usage counts its active files, through creates,
// a create whose slug is taken, removals, owner changes and deletes.
func testUsage(t *testing.T, e *env) {
	e.wantUsage(t, "no files", "alice", 0, 0)
	sized := func(slug, owner string, size int64) store.File {
		f := e.file(slug, "")
		f.Owner, f.Size = owner, size
		return f
	}
	for _, f := range []store.File{sized("a1", "alice", 10), sized("a2", "alice", 20), sized("b1", "bob", 5)} {
		_, err := e.s.CreateFile(e.ctx, f)
		must(t, "CreateFile "+f.Slug, err)
	}
	e.wantUsage(t, "after creates", "alice", 30, 2)
	e.wantUsage(t, "after creates", "bob", 5, 1)

	_, err := e.s.CreateFile(e.ctx, sized("a1", "alice", 99))
	wantErr(t, "CreateFile of a taken slug, same owner", err, store.ErrExists)
	_, err = e.s.CreateFile(e.ctx, sized("a1", "bob", 99))
	wantErr(t, "CreateFile of a taken slug, other owner", err, store.ErrExists)
	e.wantUsage(t, "after taken slugs", "alice", 30, 2)
	e.wantUsage(t, "after taken slugs", "bob", 5, 1)

	a1, err := e.s.File(e.ctx, "a1")
	must(t, "File", err)
	a1.Status = store.StatusAdmin
	must(t, "UpdateFile to removed", e.s.UpdateFile(e.ctx, a1))
	must(t, "UpdateFile again", e.s.UpdateFile(e.ctx, a1))
	e.wantUsage(t, "after a removal", "alice", 20, 1)
	must(t, "DeleteFile of a removed file", e.s.DeleteFile(e.ctx, "a1"))
	e.wantUsage(t, "after deleting a removed file", "alice", 20, 1)

	b1, err := e.s.File(e.ctx, "b1")
	must(t, "File", err)
	b1.Owner = "alice"
	must(t, "UpdateFile to another owner", e.s.UpdateFile(e.ctx, b1))
	e.wantUsage(t, "after an owner change", "alice", 25, 2)
	e.wantUsage(t, "after an owner change", "bob", 0, 0)

	must(t, "DeleteFile", e.s.DeleteFile(e.ctx, "a2"))
	must(t, "DeleteFile again", e.s.DeleteFile(e.ctx, "a2"))
	e.wantUsage(t, "after deletes", "alice", 5, 1)
}

// testUsageConcurrent: files created at once are all counted.
func testUsageConcurrent(t *testing.T, e *env) {
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			f := e.file(fmt.Sprintf("c%02d", i), "")
			f.Owner, f.Size = "carol", int64(i+1)
			_, errs[i] = e.s.CreateFile(e.ctx, f)
		})
	}
	wg.Wait()
	for i, err := range errs {
		must(t, fmt.Sprintf("CreateFile %d", i), err)
	}
	e.wantUsage(t, "after concurrent creates", "carol", n*(n+1)/2, n)
}
