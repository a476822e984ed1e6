package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// netLog is what became of each request a tab sent.
type netLog struct {
	mu   sync.Mutex
	reqs map[network.RequestID]*netReq
	ids  []network.RequestID // in the order sent
}

type netReq struct {
	method, path string
	status       int64
	finished     bool   // the whole answer arrived and was handed over
	failed       string // why it did not, as Chromium says ("net::ERR_ABORTED")
}

// watchNetwork records every http request of the tab from now on.
func watchNetwork(t *testing.T, b tab) *netLog {
	t.Helper()
	n := &netLog{reqs: map[network.RequestID]*netReq{}}
	err := chromedp.Listen(b.ctx, func(ev any) {
		n.mu.Lock()
		defer n.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			u, err := url.Parse(ev.Request.URL)
			if err != nil || !strings.HasPrefix(u.Scheme, "http") {
				return
			}
			if _, ok := n.reqs[ev.RequestID]; !ok {
				n.ids = append(n.ids, ev.RequestID)
			}
			n.reqs[ev.RequestID] = &netReq{method: ev.Request.Method, path: u.Path}
		case *network.EventResponseReceived:
			if r := n.reqs[ev.RequestID]; r != nil {
				r.status = ev.Response.Status
			}
		case *network.EventLoadingFinished:
			if r := n.reqs[ev.RequestID]; r != nil {
				r.finished = true
			}
		case *network.EventLoadingFailed:
			if r := n.reqs[ev.RequestID]; r != nil {
				r.failed = ev.ErrorText
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// open lists the requests that have neither finished nor failed.
func (n *netLog) open() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, id := range n.ids {
		if r := n.reqs[id]; !r.finished && r.failed == "" {
			out = append(out, r.method+" "+r.path)
		}
	}
	return out
}

// last returns what became of the latest request with the method and path.
func (n *netLog) last(method, path string) (netReq, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range slices.Backward(n.ids) {
		if r := n.reqs[id]; r.method == method && r.path == path {
			return *r, true
		}
	}
	return netReq{}, false
}

// settle waits until no request of the tab is open, as tools that wait for
// the network to go idle do.
func (n *netLog) settle(t *testing.T, b tab, where string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(n.open()) > 0 {
		if time.Now().After(deadline) {
			b.shot("failed")
			t.Fatalf("%s: requests still open after 10 s: %v", where, n.open())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowserEdges uses the page at 1280×800 with the keyboard, as a
// person would, and checks what used to go wrong: no request left open on
// the sign-in page, a favicon, focus after sign-in, after opening "My
// files" and after a delete, which is announced; a new upload's row
// brought into view; an upload running in the tab neither listed as
// unfinished nor sent twice when its file is picked again; no gap for an
// empty error; a way back from a file's page to "My files"; and no key
// left in the form after sign-out.
func TestBrowserEdges(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Limits.MaxChunkSize = browserChunk
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := newGate(0, 0)
	srv := startOn(t, cfg, nil, ln, gate.wrap)
	t.Cleanup(func() { close(gate.halt) })
	home := srv.URL + "/"
	b := tab{t: t, ctx: chromium(t), dir: t.ArtifactDir()}
	t.Logf("screenshots in %s", b.dir)
	reqs := watchNetwork(t, b)

	b.do("open the sign-in page at 1280×800", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(home),
		chromedp.WaitVisible(chromedp.CSS(`#api_key`)))
	reqs.settle(t, b, "the sign-in page")
	if r, ok := reqs.last("GET", "/web/session"); !ok || r.status != 401 || r.failed != "" {
		t.Fatalf("GET /web/session on the sign-in page: %+v, want a 401 read to its end", r)
	}
	resp, icon := fetch(t, srv.URL+"/favicon.ico", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/vnd.microsoft.icon" {
		t.Fatalf("GET /favicon.ico: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if w := eval[int](b, `(async () => { const i = new Image(); i.src = '/favicon.ico'; await i.decode(); return i.naturalWidth })()`,
		chromedp.EvalAwaitPromise); w < 16 {
		t.Fatalf("the browser decodes /favicon.ico (%d bytes) as %d pixels wide", len(icon), w)
	}
	b.shot("edges-signin")

	// Twelve uploads left by a tab closed mid-way, kept as the page keeps
	// them, push the list of uploads below the fold.
	eval[bool](b, `for (let i = 1; i <= 12; i++)
		localStorage.setItem('acestash.upload.' + JSON.stringify(['old ' + i + '.bin', i << 20, 1700000000000 + i]),
			JSON.stringify({ upload_key: 'gone' + i, cTracker: 'gone' + i, chunk: 1 << 20, mirrors: ['1'] }));
		true`)
	b.do("sign in with the keyboard", chromedp.SendKeys(chromedp.CSS(`#api_key`), testKey),
		chromedp.SendKeys(chromedp.CSS(`#api_token`), testToken+kb.Enter), chromedp.WaitVisible(chromedp.CSS(`#file-input`)))
	b.poll("focus moves to the upload view after sign-in", `document.activeElement.id === 'upload-title'`)
	if h := eval[float64](b, `document.getElementById('upload-error').getBoundingClientRect().height`); h != 0 {
		t.Errorf("the empty error paragraph takes %v px", h)
	}

	// A 4 MiB upload whose second chunk the server holds.
	dir := t.TempDir()
	four := filepath.Join(dir, "four.bin")
	if err := os.WriteFile(four, testData(4*browserChunk, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	if top := eval[float64](b, `document.getElementById('queue').getBoundingClientRect().top`); top < 800 {
		b.shot("failed")
		t.Fatalf("at 1280×800 the list of uploads starts %v px down, above the fold; the test needs it below", top)
	}
	gate.cut.Store(2)
	b.do("pick a file", chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{four}))
	<-gate.arrived
	b.poll("the new upload's row is in view", `(() => {
		const r = document.querySelector('#queue li').getBoundingClientRect();
		return r.top >= 0 && r.bottom <= innerHeight })()`)
	b.shot("edges-row-in-view")

	b.do("open my files while it runs", chromedp.Click(chromedp.CSS(`#nav-files`)), chromedp.WaitVisible(chromedp.CSS(`#files-title`)))
	b.poll("focus moves to my files", `document.activeElement.id === 'files-title'`)
	b.do("back to the upload", chromedp.Click(chromedp.CSS(`#nav-upload`)), chromedp.WaitVisible(chromedp.CSS(`#file-input`)))
	if got := b.text("#unfinished-list"); strings.Contains(got, "four.bin") || strings.Count(got, "old ") != 12 {
		t.Fatalf("unfinished uploads: %q, want the twelve old ones and not the one running in this tab", got)
	}
	b.do("pick the same file again", chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{four}))
	b.poll("the page says it is uploading already", `document.getElementById('upload-error').textContent.includes('already')`)
	gate.release <- struct{}{}
	b.do("the upload finishes", chromedp.WaitVisible(chromedp.CSS(`#queue a.file-link`)))
	if n := gate.n.Load(); n != 4 {
		t.Fatalf("4 chunks went out as %d upload requests: a second sender ran", n)
	}
	if n := eval[int](b, `document.querySelectorAll('#queue li').length`); n != 1 {
		t.Fatalf("%d rows for one upload", n)
	}
	fourURL := eval[string](b, `document.querySelector('#queue a.file-link').href`)
	fourSlug := strings.TrimPrefix(fourURL, srv.URL+"/m/")

	srv.clock.Advance(time.Minute) // the next file is the newer
	note := filepath.Join(dir, "note.txt")
	if err := os.WriteFile(note, []byte("a short note\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("upload a second file", chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{note}),
		chromedp.WaitVisible(chromedp.CSS(`#queue li:first-child a.file-link`)))
	if msg := b.text("#upload-error"); msg != "" {
		t.Errorf("a new file leaves the old message %q", msg)
	}

	b.do("open my files", chromedp.Click(chromedp.CSS(`#nav-files`)), chromedp.WaitVisible(chromedp.CSS(`#file-rows tr`)))
	rows := eval[[]string](b, `[...document.querySelectorAll('#file-rows tr')].map(r => r.dataset.slug)`)
	if len(rows) != 2 || rows[1] != fourSlug {
		t.Fatalf("my files lists %v, want the note, then %s", rows, fourSlug)
	}
	b.do("delete the note with the keyboard", chromedp.Focus(chromedp.CSS(fmt.Sprintf(`tr[data-slug="%s"] button`, rows[0]))),
		chromedp.KeyEvent(kb.Enter), chromedp.KeyEvent(kb.Enter))
	b.poll("the note's row says removed", fmt.Sprintf(`document.querySelector('tr[data-slug="%s"] .status')?.textContent === 'user removed'`, rows[0]))
	b.poll("focus moves to the next file's delete button",
		fmt.Sprintf(`document.activeElement === document.querySelector('tr[data-slug="%s"] button')`, fourSlug))
	if got := eval[string](b, `document.querySelector('#files [role="status"]').textContent`); got != "Deleted note.txt." {
		t.Errorf("the status region says %q after the delete, want Deleted note.txt.", got)
	}
	b.shot("edges-deleted")

	b.do("open the file's page", chromedp.Navigate(fourURL), chromedp.WaitVisible(chromedp.CSS(`#sha256`)))
	b.shot("edges-file-page")
	b.do("go back to my files", chromedp.Click(chromedp.CSS(`a[href="/#files"]`)), chromedp.WaitVisible(chromedp.CSS(`#file-rows tr`)))

	b.do("sign out", chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`#api_key`)))
	reqs.settle(t, b, "after sign-out")
	if r, ok := reqs.last("POST", "/web/signout"); !ok || r.status != 204 || !r.finished || r.failed != "" {
		t.Fatalf("POST /web/signout: %+v, want a 204 that finished", r)
	}
	b.do("sign in and out again in the same page", chromedp.SendKeys(chromedp.CSS(`#api_key`), testKey),
		chromedp.SendKeys(chromedp.CSS(`#api_token`), testToken+kb.Enter), chromedp.WaitVisible(chromedp.CSS(`#signout`)),
		chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`#api_key`)))
	if v := eval[string](b, `document.getElementById('api_key').value + document.getElementById('api_token').value`); v != "" {
		t.Errorf("after sign-out the form still holds %q", v)
	}
	b.shot("edges-signed-out")
}
