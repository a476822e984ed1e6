package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/boltstore"
)

// The signature is the one the README's verification example computes:
// HMAC-SHA256 of the raw body, hex, after "sha256=". The expected value is
// from RFC 4231's test case 2.
func TestSign(t *testing.T) {
	got := Sign("Jefe", []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if Sign("Jefe", []byte("what do ya want for nothing!")) == want {
		t.Fatal("a changed body kept its signature")
	}
}

// refusing is a store whose AddDeliveries fails while refusals are left.
type refusing struct {
	store.Store
	refusals atomic.Int32
}

func (s *refusing) AddDeliveries(ctx context.Context, ds []store.Delivery) error {
	if s.refusals.Add(-1) >= 0 {
		return errors.New("store unreachable")
	}
	return s.Store.AddDeliveries(ctx, ds)
}

// TestStoreRefusesQueue: an event whose deliveries the store refuses at
// first still reaches its receiver, once the store takes them.
func TestStoreRefusesQueue(t *testing.T) {
	got := make(chan Event, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- ev
	}))
	defer recv.Close()

	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "store.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	st := &refusing{Store: bolt}
	st.refusals.Store(3) // Notify's try and Run's first two
	d := New(Config{Hooks: []Hook{{URL: recv.URL, Secret: "s"}}, Store: st,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Poll: 10 * time.Millisecond})

	d.Notify(context.Background(), "file.completed", store.File{Slug: "Xy3abcde", Size: 5})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	select {
	case ev := <-got:
		if ev.Type != "file.completed" {
			t.Fatalf("event %+v, want file.completed", ev)
		}
		if f, _ := ev.File.(map[string]any); f["slug"] != "Xy3abcde" {
			t.Fatalf("event's file %v, want slug Xy3abcde", ev.File)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event was never delivered: its deliveries were lost when the store refused them")
	}
}
