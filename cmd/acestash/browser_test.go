package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// browserChunk is the max_chunk_size of the browser tests: a 30 MiB file
// goes in 30 chunks.
const browserChunk = 1 << 20

// chromium starts headless Chromium for the test and returns a tab. The
// flags keep it off the network: without them it waits on connections the
// machine does not allow.
func chromium(t *testing.T) context.Context {
	t.Helper()
	skipShort(t, "Chromium")
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("Chromium is not installed; `make test-deps` installs Debian's chromium package")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// tab runs browser steps, failing the test with what was being done.
type tab struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots
}

func (b tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed")
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// eval evaluates a JavaScript expression.
func eval[T any](b tab, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll waits until a JavaScript expression is true.
func (b tab) poll(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr)); err != nil {
		b.shot("failed")
		b.t.Fatalf("waiting until %s: %v", what, err)
	}
}

// shot saves a PNG of the whole page under the test's artifact directory.
func (b tab) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// download clicks sel and returns the bytes the browser saved.
func (b tab) download(sel string) []byte {
	b.t.Helper()
	dir := b.t.TempDir()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true),
	})
	if err != nil {
		b.t.Fatalf("set download behaviour: %v", err)
	}
	events := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range events {
		if err != nil {
			b.t.Fatalf("download from %s: %v", sel, err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				b.t.Fatal(err)
			}
			return data
		case browser.DownloadProgressStateCanceled:
			b.t.Fatalf("download from %s was cancelled", sel)
		}
	}
	return nil
}

// uploadGate counts MirrorAce upload requests and holds some where the
// test wants them: the first steps requests each wait for a release, and
// the request numbered cut waits until halt is closed.
type uploadGate struct {
	n       atomic.Int32
	steps   int32
	cut     atomic.Int32
	arrived chan int32
	release chan struct{}
	halt    chan struct{} // closed: held requests fail, as if cut off
}

func newGate(steps, cut int32) *uploadGate {
	g := &uploadGate{steps: steps, arrived: make(chan int32, 1), release: make(chan struct{}), halt: make(chan struct{})}
	g.cut.Store(cut)
	return g
}

func (g *uploadGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/upload" {
			i := g.n.Add(1)
			if i <= g.steps || i == g.cut.Load() {
				g.arrived <- i
				select {
				case <-g.release:
				case <-g.halt: // the connection is lost as the server stops
					http.Error(w, "stopping", http.StatusServiceUnavailable)
					return
				case <-r.Context().Done():
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// TestBrowser drives the web page in headless Chromium: a wrong sign-in, a
// sign-in, a 30 MiB upload in 1 MiB chunks that survives a restart of the
// server, the download page and its download, a password upload downloaded
// through the form, a delete from "my files", and an upload left mid-way
// finished when the page is opened again.
func TestBrowser(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Limits.MaxChunkSize = browserChunk
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	const chunks = 30
	gate := newGate(3, 12)
	first := startOn(t, cfg, nil, ln, gate.wrap)
	url := first.URL
	// Mirror 3's directory goes away: the page must show it unhealthy.
	if err := os.RemoveAll(cfg.Mirrors[2].Path); err != nil {
		t.Fatal(err)
	}
	first.app.health.Check(context.Background())
	if first.app.health.Err("3") == nil {
		t.Fatal("mirror 3 is still healthy without its directory")
	}

	b := tab{t: t, ctx: chromium(t), dir: t.ArtifactDir()}
	t.Logf("screenshots in %s", b.dir)

	// A wrong token: a clear message, still signed out.
	b.do("open the page and sign in with a wrong token",
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`input[name="api_key"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="api_key"]`), testKey),
		chromedp.SendKeys(chromedp.CSS(`input[name="api_token"]`), "not-the-token"+kb.Enter),
	)
	b.poll("the sign-in error shows", `document.getElementById('signin-error').textContent !== ''`)
	if msg := b.text("#signin-error"); !strings.Contains(msg, "invalid api_key or api_token") {
		t.Fatalf("wrong sign-in says %q", msg)
	}
	if eval[bool](b, `document.getElementById('nav').checkVisibility()`) {
		t.Fatal("signed out, the page shows the signed-in navigation")
	}
	b.shot("signin-wrong")

	// The right token: the upload page, with a cookie scripts cannot read.
	b.do("sign in",
		chromedp.SetValue(chromedp.CSS(`input[name="api_token"]`), testToken),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[type="file"][multiple]`)),
	)
	if c := eval[string](b, `document.cookie`); c != "" {
		t.Fatalf("the page's script can read cookies %q; the session must be HttpOnly", c)
	}
	if got := eval[[]string](b, `[...document.querySelectorAll('#mirror-list input:checked')].map(b => b.value)`); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("ticked mirrors %v, want the account's defaults [1 2]", got)
	}
	if eval[bool](b, `document.getElementById('mirror-3').disabled`) != true {
		t.Fatal("mirror 3 is not allowed for the account but can be ticked")
	}
	if got := b.text(`label[for="mirror-3"]`); !strings.Contains(got, "unhealthy") {
		t.Fatalf("mirror 3 without its directory shows as %q", got)
	}
	b.shot("upload-empty")

	// 30 MiB in 1 MiB chunks; the bar moves chunk by chunk.
	data := testData(chunks*browserChunk, 30)
	big := filepath.Join(t.TempDir(), "thirty.bin")
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("pick the file", chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{big}))
	var seen []int
	for i := range gate.steps {
		if got := <-gate.arrived; got != i+1 {
			t.Fatalf("upload request %d arrived as %d", i+1, got)
		}
		gate.release <- struct{}{}
		b.poll(fmt.Sprintf("the bar passes chunk %d", i+1),
			fmt.Sprintf(`document.querySelector('#queue progress').value >= %d`, (i+1)*browserChunk))
		seen = append(seen, eval[int](b, `document.querySelector('#queue progress').value`))
	}
	if len(seen) < 3 || seen[0] <= 0 || seen[len(seen)-1] >= len(data) {
		t.Fatalf("progress values %v", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Fatalf("progress did not move: %v", seen)
		}
	}
	b.shot("upload-progress")

	// The server stops while chunk 12 is on its way, and comes back.
	<-gate.arrived
	before := eval[int](b, `document.querySelector('#queue progress').value`)
	close(gate.halt) // a stopping node lets requests finish; this one is cut off
	first.stop()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	after := newGate(0, 0)
	second := startOn(t, cfg, first.clock, ln, after.wrap)
	t.Cleanup(func() { close(after.halt) }) // before second stops: the chunk held below is cut off
	b.do("the upload finishes", chromedp.WaitVisible(chromedp.CSS(`#queue a.file-link`)))
	b.shot("upload-done")
	if n := after.n.Load(); n > chunks-11+2 {
		t.Fatalf("after the restart the page sent %d chunks of %d: it started again from zero (bar was at %d)", n, chunks, before)
	}
	href := eval[string](b, `document.querySelector('#queue a.file-link').href`)
	slug := strings.TrimPrefix(href, url+"/m/")
	if !strings.HasPrefix(href, url+"/m/") || slug == "" {
		t.Fatalf("finished link %q, want %s/m/<slug>", href, url)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	// The download page shows the hash; the browser's download matches it.
	b.do("open the download page", chromedp.Navigate(href), chromedp.WaitVisible(chromedp.CSS(`#sha256`)))
	if got := b.text("#sha256"); got != want {
		t.Fatalf("page shows SHA-256 %s, want %s", got, want)
	}
	b.shot("download-page")
	got := b.download("#download")
	if s := sha256.Sum256(got); hex.EncodeToString(s[:]) != want || len(got) != len(data) {
		t.Fatalf("downloaded %d bytes with another SHA-256 than the %d sent", len(got), len(data))
	}

	// A file with a password is downloaded through the page's form.
	second.clock.Advance(time.Minute) // so that it is the newer file
	secret := bytes.Repeat([]byte("a line of plain text to keep safe\n"), 3000)
	small := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(small, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("upload with a password",
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#file-input`)),
		chromedp.SendKeys(chromedp.CSS(`#password`), "open sesame"),
		chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{small}),
		chromedp.WaitVisible(chromedp.CSS(`#queue a.file-link`)),
	)
	locked := eval[string](b, `document.querySelector('#queue a.file-link').href`)
	b.do("open the locked page", chromedp.Navigate(locked), chromedp.WaitVisible(chromedp.CSS(`#file-password`)))
	if n := eval[int](b, `document.querySelectorAll('#sha256, #download, .preview').length`); n != 0 {
		t.Fatal("the page of a file with a password shows its hash, download button or preview")
	}
	b.shot("download-password")
	b.do("type the password", chromedp.SendKeys(chromedp.CSS(`#file-password`), "open sesame"))
	if got := b.download(`form button[type="submit"]`); !bytes.Equal(got, secret) {
		t.Fatalf("password download gave %d bytes, want the %d sent", len(got), len(secret))
	}

	// "My files" lists both, newest first; deleting one takes it down.
	b.do("open my files",
		chromedp.Navigate(url+"/#files"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-slug="%s"] button`, slug))),
	)
	if rows := eval[[]string](b, `[...document.querySelectorAll('#file-rows tr')].map(r => r.dataset.slug)`); len(rows) != 2 || rows[1] != slug {
		t.Fatalf("my files lists %v, want the password file then %s", rows, slug)
	}
	b.shot("my-files")
	del := fmt.Sprintf(`tr[data-slug="%s"] button`, slug)
	b.do("delete the big file with the keyboard", chromedp.Focus(chromedp.CSS(del)),
		chromedp.KeyEvent(kb.Enter), chromedp.KeyEvent(kb.Enter))
	b.poll("the row says removed", fmt.Sprintf(`document.querySelector('tr[data-slug="%s"] .status')?.textContent === 'user removed'`, slug))
	if st := fileInfo(t, second, testKey, testToken, slug)["status"]; st != "user removed" {
		t.Fatalf("file/info status %q after delete, want user removed", st)
	}
	if n := storedObjects(t, second); n != 2 {
		t.Fatalf("mirrors hold %d objects after the delete, want the password file's 2 copies", n)
	}

	// The page is left mid-upload (as when its tab is closed) and opened
	// again: it lists the upload and, given the same file, sends only the
	// chunks the server lacks.
	eight := filepath.Join(t.TempDir(), "eight.bin")
	eightData := testData(8*browserChunk, 8)
	if err := os.WriteFile(eight, eightData, 0o644); err != nil {
		t.Fatal(err)
	}
	after.cut.Store(after.n.Load() + 4)
	b.do("upload", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS(`#file-input`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{eight}))
	<-after.arrived // its fourth chunk is on the way
	b.do("leave the page and come back", chromedp.Navigate("about:blank"), chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#unfinished-list li`)))
	if got := b.text("#unfinished-list"); !strings.Contains(got, "eight.bin") {
		t.Fatalf("unfinished uploads list %q", got)
	}
	b.shot("upload-unfinished")
	sent := after.n.Load()
	b.do("pick the file again", chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{eight}),
		chromedp.WaitVisible(chromedp.CSS(`#queue a.file-link`)))
	if n := after.n.Load() - sent; n != 5 {
		t.Fatalf("the page sent %d chunks after coming back, want the 5 of 8 the server lacked", n)
	}
	resumed := eval[string](b, `document.querySelector('#queue a.file-link').href`)
	if resp, body := fetch(t, resumed+"/download", nil); resp.StatusCode != 200 || !bytes.Equal(body, eightData) {
		t.Fatalf("the resumed file downloads as %d bytes, want the %d sent", len(body), len(eightData))
	}
	if n := eval[int](b, `document.querySelectorAll('#unfinished-list li').length`); n != 0 {
		t.Fatalf("%d uploads still listed as unfinished", n)
	}

	// A phone-sized screen, then sign out.
	b.do("phone layout", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(url+"/#files"),
		chromedp.WaitVisible(chromedp.CSS(`#file-rows tr`)))
	b.shot("my-files-phone")
	b.do("sign out", chromedp.EmulateReset(), chromedp.Click(chromedp.CSS(`#signout`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="api_key"]`)))
	if code := eval[int](b, `fetch('/web/session').then(r => r.status)`, chromedp.EvalAwaitPromise); code != 401 {
		t.Fatalf("after sign-out /web/session answers %d, want 401", code)
	}
}
