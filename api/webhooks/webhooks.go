// Package webhooks tells receivers about files: each event (a file
// completed or removed) is queued in the store, one delivery per receiver,
// and POSTed as JSON signed with the receiver's secret
// (X-Acestash-Signature: sha256=<hex HMAC-SHA256 of the body>). A delivery
// that fails is tried again with growing pauses; the queue lives in the
// store, so a restart or another node carries on. Each event is delivered
// at least once; its id lets a receiver drop repeats.
package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/acestash/acestash/store"
)

// Hook is one receiver.
type Hook struct {
	URL    string
	Secret string
	Events []string // event types it wants; empty: all
}

// Config is what a Dispatcher needs; zero values take the defaults.
type Config struct {
	Hooks []Hook
	Store store.Deliveries
	Log   *slog.Logger
	// View is the file as events show it.
	View func(store.File) any
	// Client sends deliveries; default: a 10 s timeout.
	Client *http.Client
	// Backoff is the pause after the nth failed attempt; default 1 s
	// doubling each time, at most 10 min.
	Backoff func(n int) time.Duration
	// MaxAttempts is how many times a delivery is tried before it is
	// dropped (and logged); default 30, about four hours.
	MaxAttempts int
	// Poll is how often the queue is checked for deliveries due; default 1 s.
	Poll time.Duration
}

// Event is what a receiver gets.
type Event struct {
	ID   string    `json:"id"`   // the same on every delivery and retry of the event
	Type string    `json:"type"` // file.completed or file.removed
	Time time.Time `json:"time"`
	File any       `json:"file"` // as file/info shows it
}

// Dispatcher queues and delivers events.
type Dispatcher struct {
	cfg  Config
	kick chan struct{}

	mu       sync.Mutex
	unqueued []store.Delivery // refused by the store; Run queues them again
}

// maxUnqueued bounds the deliveries held while the store refuses them.
const maxUnqueued = 10000

// lease is how long a claimed delivery is kept from other claimers: longer
// than one attempt may take.
const lease = time.Minute

// New returns a dispatcher; Run delivers what it queues.
func New(cfg Config) *Dispatcher {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func(n int) time.Duration { return min(time.Second<<min(n-1, 20), 10*time.Minute) }
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 30
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.View == nil {
		cfg.View = func(f store.File) any { return f }
	}
	return &Dispatcher{cfg: cfg, kick: make(chan struct{}, 1)}
}

// Sign returns the X-Acestash-Signature of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Notify queues the event for every hook that wants it. While the store
// refuses the deliveries, this process holds them and Run queues them as
// soon as it can: the file itself is stored either way.
func (d *Dispatcher) Notify(ctx context.Context, event string, f store.File) {
	now := time.Now().UTC()
	body, err := json.Marshal(Event{ID: uuid.NewString(), Type: event, Time: now, File: d.cfg.View(f)})
	if err != nil {
		d.cfg.Log.ErrorContext(ctx, "webhook event not queued", "event", event, "slug", f.Slug, "err", err)
		return
	}
	var ds []store.Delivery
	for _, h := range d.cfg.Hooks {
		if len(h.Events) == 0 || slices.Contains(h.Events, event) {
			ds = append(ds, store.Delivery{ID: uuid.NewString(), URL: h.URL, Event: event, Body: body, Due: now})
		}
	}
	if len(ds) == 0 {
		return
	}
	if err := d.cfg.Store.AddDeliveries(ctx, ds); err != nil {
		d.cfg.Log.WarnContext(ctx, "webhook event not queued; held in memory until the store takes it", "event", event, "slug", f.Slug, "err", err)
		d.hold(ds)
		return
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// hold keeps deliveries the store refused, dropping the oldest past
// maxUnqueued.
func (d *Dispatcher) hold(ds []store.Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unqueued = append(d.unqueued, ds...)
	if over := len(d.unqueued) - maxUnqueued; over > 0 {
		for _, dv := range d.unqueued[:over] {
			d.cfg.Log.Error("webhooks: delivery dropped: the store refused it too long", "url", dv.URL, "event", dv.Event, "delivery", dv.ID)
		}
		d.unqueued = slices.Delete(d.unqueued, 0, over)
	}
}

// requeue queues the held deliveries; they stay held while the store
// refuses them.
func (d *Dispatcher) requeue(ctx context.Context) {
	d.mu.Lock()
	ds := slices.Clone(d.unqueued)
	d.mu.Unlock()
	if len(ds) == 0 {
		return
	}
	if err := d.cfg.Store.AddDeliveries(ctx, ds); err != nil {
		if ctx.Err() == nil {
			d.cfg.Log.Warn("webhooks: queue held deliveries", "count", len(ds), "err", err)
		}
		return
	}
	queued := make(map[string]bool, len(ds))
	for _, dv := range ds {
		queued[dv.ID] = true
	}
	d.mu.Lock()
	d.unqueued = slices.DeleteFunc(d.unqueued, func(dv store.Delivery) bool { return queued[dv.ID] })
	d.mu.Unlock()
	d.cfg.Log.Info("webhooks: queued held deliveries", "count", len(ds))
}

// batch is how many deliveries one claim takes.
const batch = 16

// Run delivers due deliveries until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		d.requeue(ctx)
		for d.deliverDue(ctx) == batch {
		}
		select {
		case <-ctx.Done():
			d.mu.Lock()
			n := len(d.unqueued)
			d.mu.Unlock()
			if n > 0 {
				d.cfg.Log.Error("webhooks: deliveries the store refused are lost: stopping", "count", n)
			}
			return
		case <-d.kick:
		case <-t.C:
		}
	}
}

// deliverDue claims the deliveries due now, sends them at once and records
// each outcome; it returns how many it claimed.
func (d *Dispatcher) deliverDue(ctx context.Context) int {
	now := time.Now()
	ds, err := d.cfg.Store.ClaimDeliveries(ctx, now, now.Add(lease), batch)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Log.Warn("webhooks: claim deliveries", "err", err)
		}
		return 0
	}
	var wg sync.WaitGroup
	for _, dv := range ds {
		wg.Go(func() { d.deliver(ctx, dv) })
	}
	wg.Wait()
	return len(ds)
}

// deliver makes one attempt and records it: done, retried later, or given
// up after MaxAttempts.
func (d *Dispatcher) deliver(ctx context.Context, dv store.Delivery) {
	i := slices.IndexFunc(d.cfg.Hooks, func(h Hook) bool { return h.URL == dv.URL })
	if i < 0 { // the hook left the configuration
		d.cfg.Log.Warn("webhooks: delivery dropped: its url is no longer configured", "url", dv.URL, "delivery", dv.ID)
		d.forget(ctx, dv)
		return
	}
	err := d.send(ctx, d.cfg.Hooks[i].Secret, dv)
	ctx, cut := context.WithoutCancel(ctx), ctx.Err() != nil
	if err != nil && cut {
		// Shutting down mid-attempt: due again at once, for whichever
		// node runs next.
		dv.Due = time.Now()
		if err := d.cfg.Store.PutDelivery(ctx, dv); err != nil {
			d.cfg.Log.Warn("webhooks: release delivery", "delivery", dv.ID, "err", err)
		}
		return
	}
	if err == nil {
		d.forget(ctx, dv)
		return
	}
	dv.Attempts++
	dv.LastError = err.Error()
	if dv.Attempts >= d.cfg.MaxAttempts {
		d.cfg.Log.Error("webhooks: delivery given up", "url", dv.URL, "event", dv.Event, "delivery", dv.ID, "attempts", dv.Attempts, "err", err)
		d.forget(ctx, dv)
		return
	}
	dv.Due = time.Now().Add(d.cfg.Backoff(dv.Attempts))
	d.cfg.Log.Info("webhooks: delivery failed; will retry", "url", dv.URL, "event", dv.Event, "attempts", dv.Attempts, "retry_at", dv.Due, "err", err)
	if err := d.cfg.Store.PutDelivery(ctx, dv); err != nil {
		d.cfg.Log.Warn("webhooks: record attempt", "delivery", dv.ID, "err", err)
	}
}

func (d *Dispatcher) forget(ctx context.Context, dv store.Delivery) {
	if err := d.cfg.Store.DeleteDelivery(ctx, dv.ID); err != nil {
		d.cfg.Log.Warn("webhooks: delete delivery", "delivery", dv.ID, "err", err)
	}
}

// send POSTs the delivery; any answer but 2xx is a failure.
func (d *Dispatcher) send(ctx context.Context, secret string, dv store.Delivery) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dv.URL, bytes.NewReader(dv.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "acestash-webhooks")
	req.Header.Set("X-Acestash-Event", dv.Event)
	req.Header.Set("X-Acestash-Delivery", dv.ID)
	req.Header.Set("X-Acestash-Signature", Sign(secret, dv.Body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
