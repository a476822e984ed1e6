package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

// Download pages: /m/<slug> shows a file, /m/<slug>/download serves it.

func (s *Server) downloads(g *echo.Group) {
	g.GET("/:slug", s.filePage)
	g.HEAD("/:slug", s.filePage)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		g.Add(m, "/:slug/download", s.download)
	}
}

// lookup returns the active file with the slug, or an HTTP error.
func (s *Server) lookup(ctx context.Context, sl string) (store.File, error) {
	return s.find(ctx, sl, s.cfg.Store.File)
}

// find returns the active file get finds under id (a slug or an alias), or
// an HTTP error.
func (s *Server) find(ctx context.Context, id string, get func(context.Context, string) (store.File, error)) (store.File, error) {
	if !slug.Valid(id, 64) {
		return store.File{}, fail(http.StatusNotFound, "file not found")
	}
	f, err := get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.File{}, fail(http.StatusNotFound, "file not found")
	}
	if err != nil {
		return store.File{}, fmt.Errorf("look up file %s: %w", id, err)
	}
	if f.Status != store.StatusActive {
		return store.File{}, fail(http.StatusGone, "file "+first(f.Reason, f.Status))
	}
	// Every node refuses an expired file from its expiry on, whether or
	// not a sweep has removed it yet.
	if chunks.Expired(f, s.cfg.Clock()) {
		if f.Unconfirmed { // never confirmed: it was never more than a draft
			return store.File{}, fail(http.StatusNotFound, "file not found")
		}
		return store.File{}, fail(http.StatusGone, "file "+chunks.ReasonExpired)
	}
	return f, nil
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.File.Name}} · acestash</title>
<meta property="og:site_name" content="acestash">
<meta property="og:type" content="website">
<meta property="og:title" content="{{.File.Name}}">
<meta property="og:description" content="{{.Size}}{{with .File.Type}} · {{.}}{{end}}">
<meta property="og:url" content="{{.URL}}">
<meta name="twitter:title" content="{{.File.Name}}">
<meta name="twitter:description" content="{{.Size}}{{with .File.Type}} · {{.}}{{end}}">
{{with .Card}}<meta property="og:{{.Kind}}" content="{{.URL}}">
<meta property="og:{{.Kind}}:type" content="{{.Type}}">
{{if eq .Kind "image"}}<meta name="twitter:card" content="summary_large_image">
<meta name="twitter:image" content="{{.URL}}">{{else}}<meta name="twitter:card" content="summary">{{end}}
{{else}}<meta name="twitter:card" content="summary">
{{end}}<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/file.js" defer></script>
</head><body>
<header class="bar"><h1><a href="/">acestash</a></h1><nav aria-label="Main"><a href="/#files">My files</a></nav></header>
<main>
<h2 id="name">{{.File.Name}}</h2>
<dl class="facts">
<dt>Size</dt><dd id="size">{{.Size}} ({{.File.Size}} bytes)</dd>
{{if not .Locked}}<dt>SHA-256</dt><dd><code id="sha256">{{.File.SHA256}}</code> <button type="button" class="copy" data-copy="sha256">Copy SHA-256</button></dd>{{end}}
<dt>Uploaded</dt><dd>{{.Created}}</dd>
{{with .Expires}}<dt>Expires</dt><dd id="expires">{{.}}</dd>{{end}}
{{if ge .Left 0}}<dt>Downloads left</dt><dd id="downloads-left">{{.Left}}</dd>{{end}}
<dt>Mirrors</dt><dd id="mirrors">{{range $i, $m := .Mirrors}}{{if $i}}, {{end}}{{$m}}{{end}}</dd>
<dt>Link</dt><dd><code id="link">{{.URL}}</code> <button type="button" class="copy" data-copy="link">Copy link</button></dd>
</dl>
{{if .Locked}}
<form method="post" action="{{.Download}}" class="actions">
<p>This file is protected by a password.</p>
{{with .Guessing}}<p id="guessing" role="status">You own this file: {{.Wrong}} wrong passwords were tried in the last 15 minutes.
{{if .Locked}}Guessing is throttled: the password form refuses everyone but you for now ({{.Strikes}} times in the last day).{{end}}</p>{{end}}
<label for="file-password">Password</label>
<input id="file-password" type="password" name="password" autocomplete="off" required autofocus>
<button type="submit">Download</button>
</form>
{{else}}
<p class="actions"><a class="button" id="download" href="{{.Download}}" download>Download {{.File.Name}}</a></p>
{{with .Preview}}<section class="preview" aria-label="Preview">
{{if eq .Kind "image"}}<img src="{{.URL}}" alt="Preview of {{$.File.Name}}">
{{else if eq .Kind "audio"}}<audio controls preload="metadata" src="{{.URL}}" aria-label="Play {{$.File.Name}}"></audio>
{{else if eq .Kind "video"}}<video controls preload="metadata" src="{{.URL}}" aria-label="Play {{$.File.Name}}"></video>
{{else if eq .Kind "pdf"}}<iframe src="{{.URL}}" title="Preview of {{$.File.Name}}"></iframe>
{{else}}<iframe src="{{.URL}}" title="Preview of {{$.File.Name}}" sandbox></iframe>{{end}}
</section>{{end}}
{{end}}
</main>
</body></html>
`))

// card is the media a link preview shows of a file: og:image, og:video
// or og:audio, at the file's direct URL.
type card struct{ Kind, URL, Type string }

// cardOf returns the file's card: images, video and audio that have no
// password and no download limit (a preview fetcher must not use one up).
func (s *Server) cardOf(f store.File) *card {
	p := previewOf(f)
	if p == nil || p.Kind != "image" && p.Kind != "video" && p.Kind != "audio" {
		return nil
	}
	return &card{Kind: p.Kind, URL: s.cfg.PublicURL + p.URL, Type: f.Type}
}

// previewers are words in the user agents of link-preview fetchers: chat
// apps and social sites that load a shared link to show a card of it.
var previewers = []string{"discordbot", "slackbot", "slack-imgproxy", "telegrambot", "twitterbot",
	"facebookexternalhit", "facebookcatalog", "whatsapp", "synapse", "matrix", "linkedinbot",
	"mastodon", "skypeuripreview", "iframely", "embedly", "redditbot", "pinterest", "vkshare", "bingpreview"}

// previewer reports whether a request comes from a link-preview fetcher.
func previewer(r *http.Request) bool {
	ua := strings.ToLower(r.UserAgent())
	for _, p := range previewers {
		if strings.Contains(ua, p) {
			return true
		}
	}
	return false
}

// preview is how the download page shows a file inline, if it can.
type preview struct{ Kind, URL string }

// previewOf returns the file's preview: served at /uploads/<slug> like
// Mirage's downloads, with the sniffed type only where inlineSafe allows.
// A file with a download limit has none: showing it would use one up.
func previewOf(f store.File) *preview {
	if len(f.PasswordHash) > 0 || f.MaxDownloads > 0 || f.Size == 0 || !inlineSafe(f.Type) {
		return nil
	}
	t, _, _ := strings.Cut(f.Type, ";")
	kind := "text"
	switch {
	case t == "application/pdf":
		kind = "pdf" // browsers show no PDF in a sandbox
	case strings.HasPrefix(t, "image/"):
		kind = "image"
	case strings.HasPrefix(t, "audio/"), t == "application/ogg":
		kind = "audio"
	case strings.HasPrefix(t, "video/"):
		kind = "video"
	}
	return &preview{Kind: kind, URL: "/uploads/" + f.Slug}
}

func (s *Server) filePage(c echo.Context) error {
	f, err := s.lookup(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	var names []string
	for _, id := range f.Mirrors {
		if e, ok := s.cfg.Mirrors.Get(id); ok {
			names = append(names, e.Name)
		}
	}
	left, err := s.cfg.Chunks.DownloadsLeft(c.Request().Context(), f)
	if err != nil {
		return unavailable("cannot read the file's downloads", err)
	}
	var guessing *Guessing
	if len(f.PasswordHash) > 0 && s.ownerSignedIn(c.Request(), f) {
		g, err := s.guesses.guessing(c.Request().Context(), f.Slug)
		if err != nil {
			return unavailable("cannot read the file's password guesses", err)
		}
		if g.Wrong > 0 || g.Strikes > 0 {
			guessing = &g
		}
	}
	expires := ""
	if !f.Expires.IsZero() {
		expires = f.Expires.UTC().Format(mirrorAceTime) + " UTC"
	}
	pageHeaders(c.Response().Header())
	if guessing != nil {
		c.Response().Header().Set("Cache-Control", "private, no-store") // the owner's view
	}
	c.Response().Header().Set("Content-Security-Policy", s.fileCSP)
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	return pageTmpl.Execute(c.Response(), map[string]any{
		"Expires": expires, "Left": left, "Card": s.cardOf(f), "Guessing": guessing,
		"File": f, "Size": HumanSize(f.Size), "Mirrors": names,
		"Created":  f.Created.UTC().Format(mirrorAceTime) + " UTC",
		"Locked":   len(f.PasswordHash) > 0,
		"Download": "/m/" + f.Slug + "/download",
		"URL":      s.fileURL(f.Slug),
		"Preview":  previewOf(f),
	})
}

// ownerSignedIn reports whether the request carries the signed-in session
// of the file's owner: its password guesses are never limited or counted.
func (s *Server) ownerSignedIn(r *http.Request, f store.File) bool {
	a, _, err := s.auth.Session(r)
	return err == nil && a.APIKey == f.Owner
}

func (s *Server) download(c echo.Context) error {
	f, err := s.lookup(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	if len(f.PasswordHash) > 0 {
		pw := c.Request().Header.Get("X-File-Password")
		if pw == "" && c.Request().Method == http.MethodPost {
			pw = c.FormValue("password")
		}
		locked := fail(http.StatusForbidden, "this file needs its password: send it from the file's page or in an X-File-Password header")
		if pw == "" {
			return locked
		}
		if s.ownerSignedIn(c.Request(), f) {
			if !chunks.CheckPassword(f, pw) {
				return locked
			}
			return s.serveFile(c, f, "application/octet-stream", true)
		}
		ctx, addr := c.Request().Context(), c.RealIP()
		ok, err := s.guesses.try(ctx, f.Slug, addr)
		if err != nil {
			return fmt.Errorf("check password guesses: %w", err)
		}
		if !ok {
			return fail(http.StatusTooManyRequests, "too many wrong passwords for this file; try again later")
		}
		if !chunks.CheckPassword(f, pw) {
			if err := s.guesses.wrong(ctx, f.Slug, addr); err != nil {
				s.cfg.Log.WarnContext(ctx, "count a wrong password", "slug", f.Slug, "err", err)
			}
			return locked
		}
		s.guesses.right(ctx, f.Slug, addr)
	} else if c.Request().Method == http.MethodPost {
		return fail(http.StatusMethodNotAllowed, "use GET")
	}
	return s.serveFile(c, f, "application/octet-stream", true)
}

// unguarded reports whether anyone holding the file's link may fetch its
// bytes, any number of times, without acestash seeing the request: no
// password and no download limit (and, as they come, no other rule a
// download must pass). Only such files are cached by shared caches and
// redirected to a mirror.
func unguarded(f store.File) bool {
	return len(f.PasswordHash) == 0 && f.MaxDownloads == 0
}

// contentMaxAge is how long caches may keep an unguarded file's bytes. They
// never change, but a file taken down stays in shared caches this long.
const contentMaxAge = 24 * time.Hour

// cacheControl says how caches may keep the file's bytes.
func (s *Server) cacheControl(f store.File) string {
	if !unguarded(f) {
		return "private, no-store"
	}
	age := contentMaxAge
	if !f.Expires.IsZero() {
		age = min(age, f.Expires.Sub(s.cfg.Clock()))
	}
	return "public, max-age=" + itoa(max(int64(age/time.Second), 0)) + ", immutable"
}

// serveFile writes the file's bytes with the headers downloads rely on:
// Content-Length, validators and conditional requests (ETag from the
// SHA-256, Last-Modified; RFC 9110), Cache-Control, Accept-Ranges, a
// single Range (206) and HEAD. A GET of an unguarded file on a mirror that
// clients may be sent to is answered with a redirect there instead.
// attachment asks the browser to save rather than show it.
func (s *Server) serveFile(c echo.Context, f store.File, contentType string, attachment bool) error {
	w, r := c.Response(), c.Request()
	h := w.Header()
	etag := `"` + f.SHA256 + `"`
	modified := f.Created.UTC().Truncate(time.Second)
	cache := s.cacheControl(f)
	h.Set("ETag", etag)
	h.Set("Last-Modified", modified.Format(http.TimeFormat))
	h.Set("Cache-Control", cache)
	h.Set("X-Content-Type-Options", "nosniff")
	if status := preconditions(r, etag, modified); status != 0 {
		w.WriteHeader(status)
		return nil
	}
	disp := disposition(attachment, f.Name)
	if r.Method == http.MethodGet && f.Size > 0 && unguarded(f) && r.Header.Get("If-Range") == "" {
		u, err := s.cfg.Chunks.Redirect(r.Context(), f, s.cfg.RedirectExpiry,
			mirrors.Response{ContentType: contentType, ContentDisposition: disp, CacheControl: cache})
		if err != nil {
			s.cfg.Log.WarnContext(r.Context(), "cannot redirect a download; serving it", "slug", f.Slug, "err", err)
		}
		if u != "" {
			for _, k := range []string{"ETag", "Last-Modified"} {
				h.Del(k)
			}
			h.Set("Cache-Control", "private, no-store") // the URL dies soon
			return c.Redirect(http.StatusFound, u)
		}
	}
	h.Set("Accept-Ranges", "bytes")
	if !strings.HasPrefix(contentType, "application/pdf") {
		// Whatever the browser makes of the bytes, it runs no script from them.
		h.Set("Content-Security-Policy", "sandbox")
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", disp)
	off, n, status := int64(0), f.Size, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" && f.Size > 0 && ifRange(r, etag, modified) {
		var ok bool
		off, n, ok = parseByteRange(rh, f.Size)
		switch {
		case !ok:
			h.Set("Content-Range", "bytes */"+itoa(f.Size))
			return fail(http.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
		case n < 0: // not a single byte range: serve the whole file
			off, n = 0, f.Size
		default:
			status = http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, f.Size))
		}
	}
	h.Set("Content-Length", itoa(n))
	if r.Method == http.MethodHead || n == 0 {
		w.WriteHeader(status)
		return nil
	}
	// A response that sends the last byte takes one of a limited file's
	// downloads first, and keeps it only if that byte went out.
	var ticket *chunks.Ticket
	if off+n == f.Size && f.MaxDownloads > 0 && previewer(r) {
		unsetFile(h)
		return fail(http.StatusForbidden, "link previews do not get files with a download limit")
	}
	if off+n == f.Size {
		var err error
		if ticket, err = s.cfg.Chunks.Reserve(r.Context(), f); err != nil {
			unsetFile(h)
			return err
		}
	}
	// Open returns once the first bytes are in hand, so a status and
	// Content-Length are never sent for a body no mirror can give.
	body, err := s.cfg.Chunks.Open(r.Context(), f, off, n)
	if err != nil {
		ticket.Settle(r.Context(), false)
		unsetFile(h)
		return unavailable("the file cannot be read from any mirror right now; try again later", err)
	}
	defer body.Close()
	w.WriteHeader(status)
	// The server's own writer lets a file on a directory mirror go out with
	// sendfile; Echo's wrapper would copy it through a small buffer.
	sent, err := io.Copy(w.Unwrap(), body)
	if err == nil {
		err = http.NewResponseController(w.Unwrap()).Flush()
	}
	if err != nil {
		s.cfg.Log.WarnContext(r.Context(), "download cut off", "slug", f.Slug, "err", err)
	}
	ticket.Settle(r.Context(), err == nil && sent == n)
	return nil
}

// unsetFile drops the headers that describe the file from a response
// that turns out to be an error.
func unsetFile(h http.Header) {
	for _, k := range []string{"Content-Length", "Content-Range", "Content-Disposition", "ETag", "Last-Modified", "Accept-Ranges"} {
		h.Del(k)
	}
}

// preconditions evaluates the request's conditional headers against the
// file's validators in RFC 9110's order (section 13.2.2) and returns the
// status that answers it instead of the content (304 or 412), or 0.
func preconditions(r *http.Request, etag string, modified time.Time) int {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if im := r.Header.Get("If-Match"); im != "" {
		if !matchETag(im, etag, false) {
			return http.StatusPreconditionFailed
		}
	} else if t, err := http.ParseTime(r.Header.Get("If-Unmodified-Since")); err == nil && modified.After(t) {
		return http.StatusPreconditionFailed
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if !matchETag(inm, etag, true) {
			return 0
		}
		if read {
			return http.StatusNotModified
		}
		return http.StatusPreconditionFailed
	}
	if t, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && read && !modified.After(t) {
		return http.StatusNotModified
	}
	return 0
}

// matchETag reports whether the list of entity tags (or "*") in a
// conditional header names etag, compared weakly (W/"x" matches "x") or
// strongly.
func matchETag(list, etag string, weak bool) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if w, ok := strings.CutPrefix(t, "W/"); ok {
			if !weak {
				continue
			}
			t = w
		}
		if t == etag {
			return true
		}
	}
	return false
}

// disposition builds a Content-Disposition that no file name can break.
func disposition(attachment bool, name string) string {
	kind := "inline"
	if attachment {
		kind = "attachment"
	}
	if name == "" {
		return kind
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": name}); v != "" {
		return v
	}
	// FormatMediaType refuses some names; keep the safe characters only.
	safe := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	return kind + `; filename="` + safe + `"`
}

// ifRange reports whether a Range header applies given If-Range: an entity
// tag must match strongly, a date must be the Last-Modified exactly.
func ifRange(r *http.Request, etag string, modified time.Time) bool {
	ir := r.Header.Get("If-Range")
	if ir == "" || ir == etag {
		return true
	}
	t, err := http.ParseTime(ir)
	return err == nil && modified.Equal(t)
}

// parseByteRange reads a Range header against a file of size bytes. It
// returns the offset and length of a single satisfiable range; n < 0 when
// the header is not one simple byte range (the whole file is served then);
// ok false when the range cannot be satisfied.
func parseByteRange(h string, size int64) (off, n int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, -1, true
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, -1, true
	}
	if a == "" { // the last b bytes
		k, err := strconv.ParseInt(b, 10, 64)
		if err != nil || k < 0 {
			return 0, -1, true
		}
		if k == 0 || size == 0 { // nothing to give the last bytes of
			return 0, 0, false
		}
		k = min(k, size)
		return size - k, k, true
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, -1, true
	}
	if start >= size {
		return 0, 0, false
	}
	end := size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, -1, true
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, true
}

// HumanSize writes n bytes in binary units: "512 B", "4.1 MiB".
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
