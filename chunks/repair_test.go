package chunks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
)

// TestRepair publishes files while mirror 3 is down (quorum 2 of 3) and
// repairs them once it is back: each gets its copy, checked, and the
// record lists it.
func TestRepair(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, func(c *Config) { c.WriteQuorum = 2 })
	var down atomic.Bool
	down.Store(true)
	e.faulty[2].Fail = func(method string, n int) error {
		if down.Load() {
			return errors.New("mirror 3 is down")
		}
		return nil
	}
	small, large := data(1000, 30), data(14*mib+3, 31)
	var files []Result
	for _, b := range [][]byte{small, large} {
		res := e.upload(t, b, 12*mib)
		if fmt.Sprint(res.File.Missing) != "[3]" {
			t.Fatalf("record while mirror 3 is down: missing %v", res.File.Missing)
		}
		files = append(files, res)
	}
	// Still down: nothing is repaired, nothing breaks.
	if n, err := e.svc.Repair(t.Context()); err != nil || n != 0 {
		t.Fatalf("Repair with the mirror down: %d, %v", n, err)
	}
	down.Store(false)
	// A file taken down is not repaired.
	gone := e.upload(t, data(500, 33), 500)
	gone.File.Status, gone.File.Missing = store.StatusUser, []string{"3"}
	if err := e.store.UpdateFile(t.Context(), gone.File); err != nil {
		t.Fatal(err)
	}
	e.mem[2].Delete(t.Context(), gone.File.ObjectKey)
	if n, err := e.svc.Repair(t.Context()); err != nil || n != 2 {
		t.Fatalf("Repair: %d copies, %v; want 2", n, err)
	}
	for i, b := range [][]byte{small, large} {
		f, err := e.store.File(t.Context(), files[i].File.Slug)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(f.Mirrors) != "[1 2 3]" || len(f.Missing) != 0 {
			t.Fatalf("record after repair: mirrors %v, missing %v", f.Mirrors, f.Missing)
		}
		e.holds(t, f, b, "1", "2", "3")
	}
	if n, err := e.svc.Repair(t.Context()); err != nil || n != 0 {
		t.Fatalf("Repair with nothing to do: %d, %v", n, err)
	}
	if _, err := e.mem[2].Stat(t.Context(), gone.File.ObjectKey); err == nil {
		t.Fatal("a file taken down was copied to the mirror it missed")
	}
}

// TestRepairChecksTheBytes gives a damaged file a bad source copy: the
// copy it would make does not match the record, so it is not kept.
func TestRepairChecksTheBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, func(c *Config) { c.WriteQuorum = 1 })
	e.faulty[1].Fail = func(method string, n int) error {
		if n == 0 && (method == "Put" || method == "Begin") {
			return errors.New("down for the upload")
		}
		return nil
	}
	b := data(5000, 32)
	res := e.upload(t, b, len(b))
	if fmt.Sprint(res.File.Missing) != "[2]" {
		t.Fatalf("missing %v, want [2]", res.File.Missing)
	}
	bad := append([]byte(nil), b...)
	bad[100] ^= 1
	if err := e.mem[0].Put(t.Context(), res.File.ObjectKey, bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.Repair(t.Context()); n != 0 {
		t.Fatalf("Repair from a bad copy made %d copies", n)
	}
	if keys := e.mem[1].Keys(); len(keys) != 0 {
		t.Fatalf("mirror 2 kept a copy that does not match: %v", keys)
	}
}

// TestRepairWithdrawnMeanwhile takes a file down while its copy is being
// repaired: the copy made for a file no longer served must not stay on the
// mirror, nor be listed in the record.
func TestRepairWithdrawnMeanwhile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, func(c *Config) { c.WriteQuorum = 1 })
	var repairing atomic.Bool
	var slug atomic.Value
	e.faulty[1].Fail = func(method string, n int) error {
		if !repairing.Load() {
			if method == "Put" || method == "Begin" {
				return errors.New("down for the upload")
			}
			return nil
		}
		if method == "Put" && n == 1 {
			// The owner deletes the file while the repair copies it.
			if _, err := e.svc.Withdraw(t.Context(), slug.Load().(string), store.StatusUser); err != nil {
				return fmt.Errorf("withdraw: %w", err)
			}
		}
		return nil
	}
	b := data(3000, 34)
	res := e.upload(t, b, len(b))
	if fmt.Sprint(res.File.Missing) != "[2]" {
		t.Fatalf("missing %v, want [2]", res.File.Missing)
	}
	slug.Store(res.File.Slug)
	repairing.Store(true)
	if n, err := e.svc.Repair(t.Context()); err != nil || n != 0 {
		t.Fatalf("Repair of a file withdrawn meanwhile: %d copies, %v; want 0", n, err)
	}
	f, err := e.store.File(t.Context(), res.File.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != store.StatusUser || len(f.Mirrors) != 0 || len(f.Missing) != 0 {
		t.Fatalf("record after repair: status %q, mirrors %v, missing %v", f.Status, f.Mirrors, f.Missing)
	}
	for i, m := range e.mem {
		if keys := m.Keys(); len(keys) != 0 {
			t.Fatalf("mirror %d still holds %v of a withdrawn file", i+1, keys)
		}
	}
}

// TestCopyTimeoutPerOperation copies a file in parts to a mirror that takes
// a while for each: MirrorTimeout bounds each operation, not the whole
// copy, so a file of many parts still gets its copy.
func TestCopyTimeoutPerOperation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, func(c *Config) { c.MirrorTimeout = time.Second })
	e.faulty[0].Fail = func(method string, n int) error {
		if method == "PutPart" {
			time.Sleep(300 * time.Millisecond) // a slow link: each part takes this long, all five 1.5 s
		}
		return nil
	}
	b := data(5000, 35)
	if err := e.svc.writeParts(t.Context(), e.faulty[0], "files/copy", bytes.NewReader(b), int64(len(b)), 1000); err != nil {
		t.Fatalf("a copy of 5 parts, each well within MirrorTimeout: %v", err)
	}
	rc, err := e.mem[0].Open(t.Context(), "files/copy", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("the copy holds %d bytes (%v), not the file", len(got), err)
	}
}

// A file taken down after the repairer read its record, just before the
// repairer records the new copy, stays down and loses that copy.
func TestRepairWithdrawnBeforeRecord(t *testing.T) {
	t.Parallel()
	e, fs := newFaultyEnv(t, 2, func(c *Config) { c.WriteQuorum = 1 })
	e.faulty[1].Fail = func(method string, n int) error {
		if method == "Put" || method == "Begin" {
			return errors.New("down for the upload")
		}
		return nil
	}
	b := data(3000, 35)
	res := e.upload(t, b, len(b))
	e.faulty[1].Fail = nil
	fs.setFail(func(method string, n int) error {
		if method == "UpdateFile" && n == 0 {
			// The repairer's write: the owner deletes the file first.
			if _, err := e.svc.Withdraw(t.Context(), res.File.Slug, store.StatusUser); err != nil {
				return fmt.Errorf("withdraw: %w", err)
			}
		}
		return nil
	})
	if n, err := e.svc.Repair(t.Context()); err != nil || n != 0 {
		t.Fatalf("Repair: %d copies, %v; want 0", n, err)
	}
	f, err := e.store.File(t.Context(), res.File.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != store.StatusUser || len(f.Mirrors) != 0 {
		t.Fatalf("record after repair: status %q, mirrors %v; want it to stay removed", f.Status, f.Mirrors)
	}
	for i, m := range e.mem {
		if keys := m.Keys(); len(keys) != 0 {
			t.Fatalf("mirror %d still holds %v of a withdrawn file", i+1, keys)
		}
	}
}
