package api

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// Mirage's storage service (README, "Chat servers"): the raw body of POST
// /upload is the file, the answer is its URL as plain text, and
// /uploads/<id> serves it.
// Mirage reads any non-2xx status as a failure and shows nothing of the
// body, so errors are short plain text for the operator's logs.

func (s *Server) mirage(e *echo.Echo) {
	e.POST("/upload", s.rawUpload)
	e.GET("/uploads/:id", s.rawDownload)
	e.HEAD("/uploads/:id", s.rawDownload)
}

func (s *Server) rawUpload(c echo.Context) error {
	ctx := c.Request().Context()
	r := c.Request()
	a, err := s.rawAccount(ctx, r)
	if err != nil {
		return err
	}
	limit := s.cfg.Raw.MaxSize
	if r.ContentLength > limit {
		return fail(http.StatusRequestEntityTooLarge, tooLarge(limit))
	}
	body := bufio.NewReader(r.Body)
	if _, err := body.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(http.StatusBadRequest, "empty body: send the file's bytes as the request body")
		}
		return fail(http.StatusBadRequest, "cannot read the body: "+err.Error())
	}
	q := r.URL.Query()
	terms, err := chunks.TermsFor(a, first(q.Get("expires"), r.Header.Get("X-Expires")),
		first(q.Get("max_downloads"), r.Header.Get("X-Max-Downloads")), s.cfg.Raw.TTL, s.cfg.Clock())
	if err != nil {
		return err
	}
	secret, hash, err := newDeleteSecret()
	if err != nil {
		return err
	}
	spec := chunks.Spec{Account: a, MaxSize: limit, Size: max(r.ContentLength, 0), Terms: terms, DeleteHash: hash}
	f, err := s.cfg.Chunks.Put(ctx, spec, body)
	if err != nil {
		return rawError(err, limit)
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	u, del := s.cfg.PublicURL+"/uploads/"+f.Name, s.deleteURL(f.Slug, secret)
	if q.Get("format") == "json" {
		return c.JSON(http.StatusOK, map[string]string{"url": u, "page": s.fileURL(f.Slug), "delete_url": del})
	}
	h.Set("Acestash-Delete-Url", del)
	return c.String(http.StatusOK, u+"\n")
}

// rawError names the limit when a file was too large.
func rawError(err error, limit int64) error {
	if ce, ok := chunks.AsError(err); ok && ce.Kind == chunks.TooLarge {
		return fail(http.StatusRequestEntityTooLarge, tooLarge(limit))
	}
	return err
}

func tooLarge(limit int64) string {
	return fmt.Sprintf("file is larger than this server's limit of %d bytes", limit)
}

// rawDownload serves /uploads/<slug>[.ext].
func (s *Server) rawDownload(c echo.Context) error {
	sl, _, _ := strings.Cut(c.Param("id"), ".")
	f, err := s.lookup(c.Request().Context(), sl)
	if err != nil {
		return err
	}
	return s.serveSniffed(c, f)
}

// serveSniffed serves a file with its sniffed type where a browser can only
// display it, and as an attachment where it could run as a page on this
// domain (HTML, SVG, XML, scripts, anything unknown). A file with a
// password is not found here: it is served only from its own page.
func (s *Server) serveSniffed(c echo.Context, f store.File) error {
	if len(f.PasswordHash) > 0 {
		return fail(http.StatusNotFound, "file not found")
	}
	typ := f.Type
	if typ == "" {
		typ = "application/octet-stream"
	}
	return s.serveFile(c, f, typ, !inlineSafe(typ))
}

// inlineSafe reports whether a browser may show content of the type inline
// without running anything in it.
func inlineSafe(contentType string) bool {
	t, _, _ := strings.Cut(contentType, ";")
	t = strings.ToLower(strings.TrimSpace(t))
	switch t {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/x-icon",
		"application/pdf", "application/ogg", "text/plain":
		return true
	}
	return strings.HasPrefix(t, "audio/") || strings.HasPrefix(t, "video/")
}

// Sniff names the content type of a file from its first bytes, as
// http.DetectContentType does, but also recognises SVG, which that
// reports as plain text or XML.
func Sniff(head []byte) string {
	t := http.DetectContentType(head)
	if (strings.HasPrefix(t, "text/plain") || strings.HasPrefix(t, "text/xml")) &&
		bytes.Contains(bytes.ToLower(head), []byte("<svg")) {
		return "image/svg+xml"
	}
	return t
}
