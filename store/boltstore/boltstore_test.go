package boltstore

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock store.Clock) store.Store {
		s, err := Open(filepath.Join(t.TempDir(), "acestash.db"), clock)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "acestash.db")
	clock := storetest.NewClock(storetest.Epoch())
	s, err := Open(path, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if err := s.PutAccount(ctx, store.Account{APIKey: "k", UserID: "u", Name: "n"}); err != nil {
		t.Fatal(err)
	}
	sess := store.Session{UploadKey: "up", Started: true, Updated: now, Expires: now.Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	f, err := s.CreateFile(ctx, store.File{Slug: "s", Alias: "a", Status: store.StatusActive, Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path, clock.Now)
	if a, err := s.AccountByUserID(ctx, "u"); err != nil || a.Name != "n" {
		t.Fatalf("AccountByUserID after reopen = %+v, %v", a, err)
	}
	if got, err := s.Session(ctx, "up"); err != nil || got.Version != 1 {
		t.Fatalf("Session after reopen = %+v, %v", got, err)
	}
	if idle, err := s.IdleSessions(ctx, now.Add(time.Second), 10); err != nil || len(idle) != 1 {
		t.Fatalf("IdleSessions after reopen = %+v, %v", idle, err)
	}
	if got, err := s.FileByAlias(ctx, "a"); err != nil || got.ID != f.ID {
		t.Fatalf("FileByAlias after reopen = %+v, %v", got, err)
	}
	if exp, err := s.ExpiredFiles(ctx, now.Add(time.Hour), 10); err != nil || len(exp) != 1 {
		t.Fatalf("ExpiredFiles after reopen = %+v, %v", exp, err)
	}
	g, err := s.CreateFile(ctx, store.File{Slug: "s2"})
	if err != nil || g.ID <= 0 || g.ID == f.ID {
		t.Fatalf("CreateFile after reopen = ID %d (before: %d), %v", g.ID, f.ID, err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acestash.db")
	clock := storetest.NewClock(storetest.Epoch())
	s, err := Open(path, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	s2, err := Open(path, clock.Now)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of an open store succeeded")
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open error %q does not say the store is in use", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

func TestLapsedSessionsArePurged(t *testing.T) {
	ctx := t.Context()
	clock := storetest.NewClock(storetest.Epoch())
	s, err := Open(filepath.Join(t.TempDir(), "acestash.db"), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := clock.Now()
	if err := s.CreateSession(ctx, store.Session{UploadKey: "old", Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if err := s.CreateSession(ctx, store.Session{UploadKey: "new", Expires: clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if bucket(tx, bucketSessions).Get([]byte("old")) != nil {
			t.Error("lapsed session still stored")
		}
		if n := bucket(tx, bucketLapses).Stats().KeyN; n != 1 {
			t.Errorf("lapses index has %d keys, want 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A store written before the owner index existed gets one on open.
func TestOpenIndexesOwners(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "acestash.db")
	clock := storetest.NewClock(storetest.Epoch())
	s, err := Open(path, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, slug := range []string{"old", "new"} {
		if _, err := s.CreateFile(ctx, store.File{Slug: slug, Owner: "k", Status: store.StatusActive, Created: clock.Now()}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(bucketOwners)) })
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path, clock.Now)
	list, total, err := s.OwnerFiles(ctx, "k", 0, 10)
	if err != nil || total != 2 || len(list) != 2 || list[0].Slug != "new" || list[1].Slug != "old" {
		t.Fatalf("OwnerFiles after reopen = %+v, %d, %v; want new, old", list, total, err)
	}
}

// A store written before the usage counters existed is counted on open.
func TestOpenCountsUsage(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "acestash.db")
	clock := storetest.NewClock(storetest.Epoch())
	s, err := Open(path, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range []int64{100, 20, 3} {
		f := store.File{Slug: fmt.Sprintf("old%d", i), Owner: "k", Size: size, Status: store.StatusActive, Created: clock.Now()}
		if i == 2 {
			f.Status = store.StatusCopyright
		}
		if _, err := s.CreateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(bucketUsage)) }); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path, clock.Now)
	if u, err := s.Usage(ctx, "k"); err != nil || u != (store.Usage{Bytes: 120, Files: 2}) {
		t.Fatalf("Usage after reopen = %+v, %v; want 120 bytes in 2 files", u, err)
	}
}

// reopen closes s and opens the database at path again, to be closed when
// the test ends.
func reopen(t *testing.T, s *Store, path string, clock store.Clock) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
