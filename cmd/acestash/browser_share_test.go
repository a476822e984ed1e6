package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/storetest"
)

// TestBrowserSharing drives the page's sharing choices in headless
// Chromium: the expiries the account allows (its default chosen), a
// download limit set before the file is picked, the file page showing
// both, and the ShareX button, whose .sxcu uploads as it says.
func TestBrowserSharing(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Limits.MaxChunkSize = browserChunk
	cfg.Accounts[0].DefaultExpiry = store.DurationOf(24 * time.Hour)
	cfg.Accounts[0].MaxExpiry = store.DurationOf(7 * 24 * time.Hour)
	clock := storetest.NewClock(time.Now().UTC())
	srv := start(t, cfg, clock)
	b := tab{t: t, ctx: chromium(t), dir: t.ArtifactDir()}

	b.do("sign in",
		chromedp.Navigate(srv.URL),
		chromedp.WaitVisible(chromedp.CSS(`input[name="api_key"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="api_key"]`), testKey),
		chromedp.SendKeys(chromedp.CSS(`input[name="api_token"]`), testToken),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#file-input`)),
	)
	if got := eval[string](b, `document.getElementById('expires').value`); got != "1d" {
		t.Fatalf("expiry chosen at first %q, want the account's default 1d", got)
	}
	offered := eval[[]string](b, `[...document.querySelectorAll('#expires option')].filter(o => !o.disabled).map(o => o.value)`)
	if strings.Join(offered, ",") != "1h,1d,7d" {
		t.Fatalf("expiries offered %v, want those within the account's 7 days", offered)
	}
	// The choices come before the file picker.
	if !eval[bool](b, `!!(document.getElementById('expires').compareDocumentPosition(document.getElementById('file-input')) & Node.DOCUMENT_POSITION_FOLLOWING)`) {
		t.Fatal("the expiry choice comes after the file picker")
	}

	data := testData(3*browserChunk+17, 81)
	path := filepath.Join(t.TempDir(), "shared.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("choose 1 hour and 2 downloads, then pick the file",
		chromedp.SetValue(chromedp.CSS(`#expires`), "1h"),
		chromedp.SendKeys(chromedp.CSS(`#max-downloads`), "2"),
		chromedp.SetUploadFiles(chromedp.CSS(`#file-input`), []string{path}),
		chromedp.WaitVisible(chromedp.CSS(`#queue a.file-link`)),
	)
	b.shot("sharing-done")
	href := eval[string](b, `document.querySelector('#queue a.file-link').href`)
	sl := strings.TrimPrefix(href, srv.URL+"/m/")
	info := fileInfo(t, srv, testKey, testToken, sl)
	if want := clock.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05"); info["expires"] != want || info["max_downloads"] != "2" {
		t.Fatalf("file/info %v, want expires %s and max_downloads 2", info, want)
	}

	b.do("open the ShareX and curl section", chromedp.Click(chromedp.CSS(`#tools summary`)))
	b.poll("the curl line is filled in", `document.getElementById('curl').textContent.includes('curl ')`)
	curl := b.text("#curl")
	b.shot("sharing-tools")
	sx := b.download("#sharex")
	var c sxcu
	if err := json.Unmarshal(sx, &c); err != nil {
		t.Fatalf("the ShareX button saved %q: %v", sx, err)
	}
	if !strings.Contains(curl, c.Headers["Authorization"]) || !strings.Contains(curl, c.RequestURL+"?format=json") {
		t.Fatalf("curl line %q does not match the .sxcu %+v", curl, c)
	}
	u, _ := sharexUpload(t, c, data)
	if resp, got := fetch(t, u, nil); resp.StatusCode != 200 || string(got) != string(data) {
		t.Fatalf("the .sxcu's upload: %d", resp.StatusCode)
	}

	b.do("open the file page", chromedp.Navigate(href), chromedp.WaitVisible(chromedp.CSS(`#downloads-left`)))
	if left := b.text("#downloads-left"); left != "2" {
		t.Fatalf("downloads left %q, want 2", left)
	}
	if exp := b.text("#expires"); !strings.HasSuffix(exp, "UTC") {
		t.Fatalf("expiry shown %q", exp)
	}
	b.shot("sharing-page")
}
