package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// hookCall is one request a receiver got.
type hookCall struct {
	path, signature, delivery, event string
	body                             []byte
	answered                         int
}

// receiver is a webhook receiver that answers 503 to the first fails
// attempts at each delivery, and to everything while down is set.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	fails int
	down  bool
	tries map[string]int // by delivery id
	calls []hookCall
	news  chan hookCall
}

func newReceiver(t *testing.T, fails int) *receiver {
	r := &receiver{fails: fails, tries: map[string]int{}, news: make(chan hookCall, 1)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		c := hookCall{path: req.URL.Path, signature: req.Header.Get("X-Acestash-Signature"),
			delivery: req.Header.Get("X-Acestash-Delivery"), event: req.Header.Get("X-Acestash-Event"), body: body}
		r.mu.Lock()
		r.tries[c.delivery]++
		c.answered = http.StatusOK
		if r.down || r.tries[c.delivery] <= r.fails {
			c.answered = http.StatusServiceUnavailable
		}
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		w.WriteHeader(c.answered)
		select {
		case r.news <- c:
		default: // a wake-up is pending already
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// setDown makes the receiver refuse everything, or (down false) accept
// everything.
func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down, r.fails = down, 0
}

// wait returns the first call to path, so far or to come, for which ok
// holds.
func (r *receiver) wait(t *testing.T, path string, ok func(hookCall) bool) hookCall {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		for _, c := range r.calls {
			if c.path == path && ok(c) {
				r.mu.Unlock()
				return c
			}
		}
		r.mu.Unlock()
		select {
		case <-r.news:
		case <-deadline:
			t.Fatalf("no matching webhook call to %s", path)
		}
	}
}

// event decodes a webhook body and checks its signature under secret.
func hookEvent(t *testing.T, c hookCall, secret string) (ev struct {
	ID   string            `json:"id"`
	Type string            `json:"type"`
	Time time.Time         `json:"time"`
	File map[string]string `json:"file"`
}) {
	t.Helper()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(c.body)
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); c.signature != want {
		t.Fatalf("X-Acestash-Signature %q, want %q", c.signature, want)
	}
	if err := json.Unmarshal(c.body, &ev); err != nil {
		t.Fatalf("webhook body %s: %v", c.body, err)
	}
	return ev
}

// TestWebhooks: a completed upload and a removal reach the receivers that
// asked for them, signed, after the receiver fails the first tries; a
// delivery still failing when the node stops is sent by the next start
// from the queue in the store, with the same event id.
func TestWebhooks(t *testing.T) {
	rcv := newReceiver(t, 2)
	cfg := testConfig(t, embedded)
	cfg.AdminToken = testAdminToken
	cfg.Webhooks = []WebhookConfig{
		{URL: rcv.URL + "/all", Secret: "secret-one"},
		{URL: rcv.URL + "/removed", Secret: "secret-two", Events: []string{"file.removed"}},
	}
	srv := start(t, cfg, nil)

	var res uploadResult
	newUpload(t, srv, "1").send("", testData(777, 9)).result(t, &res)
	ok := rcv.wait(t, "/all", func(c hookCall) bool { return c.answered == 200 && c.event == "file.completed" })
	ev := hookEvent(t, ok, "secret-one")
	if ev.Type != "file.completed" || ok.event != "file.completed" || ev.Time.IsZero() || ev.ID == "" {
		t.Fatalf("event %+v", ev)
	}
	if want := fileInfo(t, srv, testKey, testToken, res.Slug); !maps.Equal(ev.File, want) {
		t.Fatalf("event file %v, want file/info's %v", ev.File, want)
	}
	rcv.mu.Lock()
	var attempts []hookCall
	for _, c := range rcv.calls {
		if c.delivery == ok.delivery {
			attempts = append(attempts, c)
		}
	}
	rcv.mu.Unlock()
	if len(attempts) != 3 || string(attempts[0].body) != string(ok.body) || attempts[0].answered != 503 {
		t.Fatalf("want 2 refused attempts with the same body before the success, got %d", len(attempts))
	}

	// The receivers go down; the file is removed; the node stops after a
	// refused attempt and a new one delivers the queued event.
	rcv.setDown(true)
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/api/admin/files/"+res.Slug+"?reason=admin", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if resp, body := doRaw(t, req); resp.StatusCode != 200 {
		t.Fatalf("remove: %s %s", resp.Status, body)
	}
	refused := rcv.wait(t, "/removed", func(c hookCall) bool { return c.answered == 503 && c.event == "file.removed" })
	before := hookEvent(t, refused, "secret-two")
	srv.stop()
	rcv.setDown(false)
	srv = start(t, cfg, nil)
	got := hookEvent(t, rcv.wait(t, "/removed", func(c hookCall) bool { return c.answered == 200 }), "secret-two")
	if got.ID != before.ID || got.Type != "file.removed" || got.File["status"] != "admin removed" || got.File["slug"] != res.Slug {
		t.Fatalf("after the restart: event %+v, want the queued one %+v", got, before)
	}
	all := hookEvent(t, rcv.wait(t, "/all", func(c hookCall) bool { return c.answered == 200 && c.event == "file.removed" }), "secret-one")
	if all.ID != got.ID || all.Type != "file.removed" {
		t.Fatalf("/all got %+v, want the removal %s", all, got.ID)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, c := range rcv.calls {
		if c.path == "/removed" && c.event != "file.removed" {
			t.Fatalf("/removed asked only for file.removed, got %s", c.event)
		}
	}
}
