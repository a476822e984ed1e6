package fsmirror

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/mirrortest"
)

func newMirror(t *testing.T) *Mirror {
	t.Helper()
	m, err := New(filepath.Join(t.TempDir(), "mirror"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConformance(t *testing.T) {
	mirrortest.Run(t, func(t *testing.T) mirrors.Mirror { return newMirror(t) })
}

func TestBadKeys(t *testing.T) {
	m := newMirror(t)
	ctx := t.Context()
	for _, key := range []string{
		"", "/abs", "../up", "a/../../up", "a/..", "./a", "a//b", "a/", ".uploads", ".uploads/x", `a\b`, "a\x00b", ".", "..",
	} {
		if _, err := m.Begin(ctx, key); err == nil || !strings.Contains(err.Error(), "invalid key") {
			t.Errorf("Begin(%q): err = %v; want an invalid key error", key, err)
		}
		if _, err := m.Stat(ctx, key); err == nil || errors.Is(err, mirrors.ErrNotFound) {
			t.Errorf("Stat(%q): err = %v; want an invalid key error", key, err)
		}
		if _, err := m.Open(ctx, key, 0, -1); err == nil {
			t.Errorf("Open(%q): no error", key)
		}
		if err := m.Delete(ctx, key); err == nil {
			t.Errorf("Delete(%q): no error", key)
		}
	}
	for _, key := range []string{"a", ".hidden", "a/b..c/d", "..a", "a b/c"} {
		if _, err := m.Begin(ctx, key); err != nil {
			t.Errorf("Begin(%q): %v", key, err)
		}
	}
}

func TestBadUploadID(t *testing.T) {
	m := newMirror(t)
	up := mirrors.Upload{Key: "k", ID: "../../etc"}
	if _, err := m.PutPart(t.Context(), up, mirrors.Part{}, strings.NewReader("x"), 1); err == nil {
		t.Error("PutPart with a path as upload id: no error")
	}
	if err := m.Abort(t.Context(), up); err == nil {
		t.Error("Abort with a path as upload id: no error")
	}
}

// TestLeftoverTempFiles checks that files a crash leaves behind — a chunk or
// a concatenation half written — never show as objects, and that Complete
// still publishes the right bytes.
func TestLeftoverTempFiles(t *testing.T) {
	m := newMirror(t)
	ctx := t.Context()
	up, err := m.Begin(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.PutPart(ctx, up, mirrors.Part{}, strings.NewReader("hello"), 5)
	if err != nil {
		t.Fatal(err)
	}
	dir := m.uploadPath(up.ID)
	for _, name := range []string{".complete-123", ".chunk-456"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(m.dir, uploadsDir, "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stat(ctx, "obj"); !errors.Is(err, mirrors.ErrNotFound) {
		t.Fatalf("Stat before Complete: err = %v; want ErrNotFound", err)
	}
	for _, key := range []string{".uploads/stray", ".uploads/" + up.ID + "/.complete-123", ".uploads/" + up.ID + "/1"} {
		if _, err := m.Stat(ctx, key); err == nil {
			t.Errorf("Stat(%q) found a staging file", key)
		}
	}
	if err := m.Complete(ctx, up, p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(m.dir, "obj"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("object = %q, %v; want %q", got, err, "hello")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upload directory after Complete: %v; want it gone", err)
	}
}

func TestCompleteChecksSize(t *testing.T) {
	m := newMirror(t)
	ctx := t.Context()
	up, err := m.Begin(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.PutPart(ctx, up, mirrors.Part{}, strings.NewReader("hello"), 5)
	if err != nil {
		t.Fatal(err)
	}
	p.Size++
	if err := m.Complete(ctx, up, p); err == nil {
		t.Fatal("Complete with a wrong size: no error")
	}
	if _, err := m.Stat(ctx, "obj"); !errors.Is(err, mirrors.ErrNotFound) {
		t.Fatalf("Stat after a failed Complete: err = %v; want ErrNotFound", err)
	}
}

func TestPingMissingDir(t *testing.T) {
	m := newMirror(t)
	if err := os.RemoveAll(m.dir); err != nil {
		t.Fatal(err)
	}
	if err := m.Ping(t.Context()); err == nil {
		t.Fatal("Ping of a removed directory: no error")
	}
}

func TestListerConformance(t *testing.T) {
	mirrortest.RunLister(t, func(t *testing.T) mirrors.Mirror { return newMirror(t) })
}
