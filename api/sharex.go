package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/api/auth"
	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

// ShareX (README, "ShareX"). GET /api/v1/sharex answers a custom uploader
// (.sxcu) for the account: it uploads with POST /upload?format=json and a
// bearer token made for it, and takes the file's URL and its delete link
// from the answer. Every raw upload gets a delete link, /d/<slug>/<secret>:
// the secret is stored hashed, like tokens; opening the link shows the
// file and a button, and only the button's POST deletes it, since link
// previewers and prefetchers follow links.

func (s *Server) sharex(e *echo.Echo) {
	s.group(e, "/api/v1/sharex", plain, s.withSession).GET("", s.sharexConfig)
	d := s.group(e, "/d", plain)
	d.GET("/:slug/:secret", s.deletePage)
	d.POST("/:slug/:secret", s.deletePage)
}

// sharexToken is the bearer token of an account's .sxcu: good for POST
// /upload only, and void once the account's token changes.
func sharexToken(a store.Account) string {
	m := hmac.New(sha256.New, a.TokenHash)
	m.Write([]byte("acestash sharex v1"))
	return "sx-" + auth.MAC(m.Sum(nil), "sharex", a.APIKey)
}

// sharexConfig answers the .sxcu of the signed-in session's account, or of
// the account of an Authorization: Bearer api_key:api_token header.
func (s *Server) sharexConfig(c echo.Context) error {
	a, ok := sessionAccount(c.Request().Context())
	if !ok {
		cred, _ := auth.Bearer(c.Request())
		acct, err := s.auth.Pair(c.Request().Context(), cred)
		if err != nil {
			refused := fail(http.StatusUnauthorized, "sign in, or send Authorization: Bearer <api_key>:<api_token>")
			return authProblem(err, refused, refused)
		}
		a = acct
	}
	host := s.cfg.PublicURL
	if u, err := url.Parse(host); err == nil {
		host = u.Host
	}
	b, err := json.MarshalIndent(map[string]any{
		"Version":         "17.0.0",
		"Name":            "acestash (" + host + ")",
		"DestinationType": "ImageUploader, TextUploader, FileUploader",
		"RequestMethod":   "POST",
		"RequestURL":      s.cfg.PublicURL + "/upload",
		"Parameters":      map[string]string{"format": "json"},
		"Headers":         map[string]string{"Authorization": "Bearer " + a.APIKey + ":" + sharexToken(a)},
		"Body":            "Binary",
		"URL":             "{json:url}",
		"DeletionURL":     "{json:delete_url}",
		"ErrorMessage":    "{response}",
	}, "", "  ")
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", disposition(true, "acestash-"+strings.ReplaceAll(host, ":", "-")+".sxcu"))
	return c.Blob(http.StatusOK, "application/json", b)
}

// newDeleteSecret returns a file's delete secret and the hash to store.
func newDeleteSecret() (string, []byte, error) {
	secret, err := slug.Hex(16)
	if err != nil {
		return "", nil, err
	}
	return secret, store.HashToken(secret), nil
}

func (s *Server) deleteURL(sl, secret string) string {
	return s.cfg.PublicURL + "/d/" + sl + "/" + secret
}

var deleteTmpl = template.Must(template.New("delete").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Delete {{.Name}} · acestash</title>
<link rel="stylesheet" href="/assets/style.css">
</head><body>
<header class="bar"><h1><a href="/">acestash</a></h1></header>
<main>
{{if .Deleted}}<p id="deleted">{{.Name}} is deleted.</p>
{{else}}<h2 id="name">{{.Name}}</h2>
<dl class="facts"><dt>Size</dt><dd>{{.Size}}</dd><dt>Link</dt><dd><code>{{.URL}}</code></dd></dl>
<form method="post" class="actions"><button type="submit" id="delete">Delete {{.Name}}</button></form>
{{end}}</main>
</body></html>
`))

// deletePage shows the file a delete link names (GET) or deletes it
// (POST).
func (s *Server) deletePage(c echo.Context) error {
	ctx := c.Request().Context()
	f, err := s.lookup(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	secret := c.Param("secret")
	if len(f.DeleteHash) != sha256.Size || subtle.ConstantTimeCompare(store.HashToken(secret), f.DeleteHash) != 1 {
		return fail(http.StatusNotFound, "file not found")
	}
	deleted := c.Request().Method == http.MethodPost
	if deleted {
		if _, err := s.cfg.Chunks.Withdraw(ctx, f.Slug, store.StatusUser); err != nil {
			return unavailable("cannot delete the file now; try again", err)
		}
	}
	h := c.Response().Header()
	pageHeaders(h)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the URL is the secret
	c.Response().WriteHeader(http.StatusOK)
	return deleteTmpl.Execute(c.Response(), map[string]any{
		"Name": f.Name, "Size": HumanSize(f.Size), "URL": s.fileURL(f.Slug), "Deleted": deleted,
	})
}
