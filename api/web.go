package api

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"
)

// The web page (README, "The web page"): static files embedded in the
// binary, served with a Content-Security-Policy that lets them load only
// themselves, so no inline script or style runs.

//go:embed web
var webFiles embed.FS

// pageCSP is the policy of every page this server renders.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; " +
	"frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// filePageCSP is pageCSP with the origins a download page's preview may be
// redirected to added where previews load from.
func filePageCSP(origins []string) string {
	if len(origins) == 0 {
		return pageCSP
	}
	extra := " " + strings.Join(origins, " ")
	csp := pageCSP
	for _, d := range []string{"img-src 'self'", "media-src 'self'", "frame-src 'self'"} {
		csp = strings.Replace(csp, d, d+extra, 1)
	}
	return csp
}

func (s *Server) web(e *echo.Echo) {
	e.GET("/", s.home)
	e.HEAD("/", s.home)
	e.GET("/assets/:name", s.asset)
	e.GET("/favicon.ico", s.favicon)
	e.HEAD("/favicon.ico", s.favicon)
	g := s.group(e, "/web", jsonError)
	g.POST("/signin", s.signIn)
	g.POST("/signout", s.signOut)
	g.GET("/session", s.whoAmI)
}

// jsonError writes a failure as {"error": "..."}: the dialect of the page's
// own calls and of the admin API.
func jsonError(c echo.Context, p *problem) {
	c.JSON(p.status, map[string]string{"error": p.msg})
}

// pageHeaders are the headers of every HTML page.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Type", "text/html; charset=utf-8")
}

// home serves the page: sign-in, upload and "my files". It answers the
// keep-alive ping too, so it must never touch the store or a mirror.
func (s *Server) home(c echo.Context) error {
	h := c.Response().Header()
	pageHeaders(h)
	h.Set("Cache-Control", "no-store")
	if c.Request().Method == http.MethodHead {
		return c.NoContent(http.StatusOK)
	}
	b, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "text/html; charset=utf-8", b)
}

var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

func (s *Server) asset(c echo.Context) error {
	name := c.Param("name")
	typ, ok := assetTypes[path.Ext(name)]
	if !ok {
		return fail(http.StatusNotFound, "not found")
	}
	b, err := fs.ReadFile(webFiles, "web/"+name)
	if err != nil {
		return fail(http.StatusNotFound, "not found")
	}
	h := c.Response().Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, typ, b)
}

// favicon serves the icon browsers ask every page for, from memory.
func (s *Server) favicon(c echo.Context) error {
	b, err := webFiles.ReadFile("web/favicon.ico")
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=86400")
	return c.Blob(http.StatusOK, "image/vnd.microsoft.icon", b)
}

// mirrorInfo is a mirror as the upload page shows it.
type mirrorInfo struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Allowed bool   `json:"allowed"`
	Default bool   `json:"default"`
	Healthy bool   `json:"healthy"`
	Problem string `json:"problem,omitempty"`
}

// mirrorList is every mirror, as the session's account may use it.
func (s *Server) mirrorList(allowed func(string) bool, defaults []string) []mirrorInfo {
	def := map[string]bool{}
	for _, id := range defaults {
		def[id] = true
	}
	var out []mirrorInfo
	for _, m := range s.cfg.Mirrors.All() {
		mi := mirrorInfo{ID: m.ID, Name: m.Name, Allowed: allowed(m.ID), Default: def[m.ID], Healthy: true}
		if mi.Name == "" {
			mi.Name = m.ID
		}
		if s.cfg.Health != nil {
			if err := s.cfg.Health(m.ID); err != nil {
				mi.Healthy, mi.Problem = false, "unreachable at the last check"
			}
		}
		out = append(out, mi)
	}
	return out
}
