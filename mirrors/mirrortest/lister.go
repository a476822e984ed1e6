package mirrortest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// RunLister checks the mirrors.Lister contract against mirrors made by
// newMirror, as Run does for mirrors.Mirror.
func RunLister(t *testing.T, newMirror func(t *testing.T) mirrors.Mirror) {
	t.Run("ListObjectsAndUploads", func(t *testing.T) {
		m := newMirror(t)
		l, ok := mirrors.As[mirrors.Lister](m)
		if !ok {
			t.Fatalf("%T is not a mirrors.Lister", m)
		}
		testList(t, m, l)
	})
}

func objects(t *testing.T, l mirrors.Lister, prefix string) map[string]mirrors.Info {
	t.Helper()
	got := map[string]mirrors.Info{}
	if err := l.ListObjects(t.Context(), prefix, func(key string, info mirrors.Info) error {
		if _, dup := got[key]; dup {
			return fmt.Errorf("%q listed twice", key)
		}
		got[key] = info
		return nil
	}); err != nil {
		t.Fatalf("ListObjects(%q): %v", prefix, err)
	}
	return got
}

func uploads(t *testing.T, l mirrors.Lister, prefix string) map[string]mirrors.Upload {
	t.Helper()
	got := map[string]mirrors.Upload{}
	if err := l.ListUploads(t.Context(), prefix, func(up mirrors.Upload, began time.Time) error {
		if d := time.Since(began); d < -time.Minute || d > time.Hour {
			return fmt.Errorf("upload %s began at %v, not just now", up.ID, began)
		}
		got[up.ID] = up
		return nil
	}); err != nil {
		t.Fatalf("ListUploads(%q): %v", prefix, err)
	}
	return got
}

func testList(t *testing.T, m mirrors.Mirror, l mirrors.Lister) {
	ctx := t.Context()
	base := key("list")
	a, b, c := base+"/a", base+"/sub/b", base+"-other/c"
	upload(t, m, a, randBytes(1, 100))
	if err := m.Put(ctx, b, strings.NewReader("bee"), 3); err != nil {
		t.Fatal(err)
	}
	upload(t, m, c, randBytes(2, 10))
	// In progress: one with a small staged chunk, one with a large part,
	// one empty; none is an object yet.
	var open []mirrors.Upload
	for i, size := range []int{100, 6 * mib, 0} {
		up, err := m.Begin(ctx, fmt.Sprintf("%s/open-%d", base, i))
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			put(t, m, up, mirrors.Part{}, randBytes(3, size))
		}
		open = append(open, up)
	}

	got := objects(t, l, base+"/")
	if keys := slices.Sorted(maps.Keys(got)); fmt.Sprint(keys) != fmt.Sprint([]string{a, b}) {
		t.Fatalf("ListObjects(%q) = %v, want %v", base+"/", keys, []string{a, b})
	}
	if got[a].Size != 100 || got[b].Size != 3 || time.Since(got[a].Modified) > time.Hour {
		t.Fatalf("ListObjects infos: %+v", got)
	}
	if all := objects(t, l, base); len(all) != 3 {
		t.Fatalf("ListObjects(%q) = %v, want 3 objects", base, slices.Sorted(maps.Keys(all)))
	}
	ups := uploads(t, l, base+"/")
	if len(ups) != len(open) {
		t.Fatalf("ListUploads = %v, want the %d uploads in progress", ups, len(open))
	}
	for _, up := range open {
		if got, ok := ups[up.ID]; !ok || got.Key != up.Key {
			t.Fatalf("ListUploads lacks %+v: %v", up, ups)
		}
	}
	if other := uploads(t, l, base+"-other/"); len(other) != 0 {
		t.Fatalf("ListUploads of another prefix: %v", other)
	}
	// A listed upload can be aborted; it is then gone from the list.
	for _, up := range open {
		if err := m.Abort(ctx, ups[up.ID]); err != nil {
			t.Fatalf("Abort of a listed upload: %v", err)
		}
	}
	if left := uploads(t, l, base+"/"); len(left) != 0 {
		t.Fatalf("ListUploads after Abort: %v", left)
	}
	if n := len(objects(t, l, base+"/")); n != 2 {
		t.Fatalf("objects after the aborts: %d, want 2", n)
	}
	// fn's error stops the listing and comes back.
	stop := fmt.Errorf("stop")
	calls := 0
	err := l.ListObjects(ctx, base, func(string, mirrors.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ListObjects with fn failing: %v after %d calls; want fn's error after 1", err, calls)
	}
	for _, k := range []string{a, b, c} {
		m.Delete(context.WithoutCancel(ctx), k)
	}
}
