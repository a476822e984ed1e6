package api

import (
	"errors"
	"math"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/store"
)

// acestash's extensions of the MirrorAce API (README, "API extensions"):
// the same envelope, credentials and error format as the calls MirrorAce
// defines, so its clients never notice them.

// maxPerPage is the most files file/list returns at once.
const maxPerPage = 100

func (s *Server) extensions(g *echo.Group) {
	g.POST("/file/list", s.fileList, s.withSession)
	g.POST("/file/delete", s.fileDelete, s.withSession)
	g.POST("/upload/status", s.uploadStatus, s.withSession)
}

// listRecord is a file as file/list shows it: file/info's record and when
// it was uploaded, its SHA-256 and the mirrors holding it.
func (s *Server) listRecord(f store.File) map[string]any {
	out := map[string]any{}
	for k, v := range s.infoRecord(f) {
		out[k] = v
	}
	mirrors := f.Mirrors
	if mirrors == nil {
		mirrors = []string{}
	}
	out["created"] = f.Created.UTC().Format(mirrorAceTime)
	out["sha256"] = f.SHA256
	out["mirrors"] = mirrors
	out["password"] = strconv.FormatBool(len(f.PasswordHash) > 0)
	return out
}

// positive reads an optional positive integer field.
func positive(v string, name string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badRequest(name + " must be a whole number from 1 up")
	}
	return n, nil
}

func (s *Server) fileList(c echo.Context) error {
	v, a, err := s.authForm(c)
	if err != nil {
		return err
	}
	page, err := positive(v.Get("page"), "page", 1)
	if err != nil {
		return err
	}
	per, err := positive(v.Get("per_page"), "per_page", 20)
	if err != nil {
		return err
	}
	if per > maxPerPage {
		return badRequest("per_page is at most 100")
	}
	// A page far past the end is empty; capping it keeps the offset from
	// overflowing.
	offset := min(page-1, math.MaxInt32/per) * per
	files, total, err := s.cfg.Store.OwnerFiles(c.Request().Context(), a.APIKey, offset, per)
	if err != nil {
		return unavailable("cannot list files", err)
	}
	out := make([]map[string]any, 0, len(files))
	for _, f := range files {
		out = append(out, s.listRecord(f))
	}
	return success(c, map[string]any{"files": out, "total": strconv.Itoa(total)})
}

// fileDelete takes the account's files down: each is deleted from every
// mirror and its record says "user removed". A slug of another account's
// file fails the whole call before anything is deleted.
func (s *Server) fileDelete(c echo.Context) error {
	ctx := c.Request().Context()
	a, slugs, found, err := s.namedFiles(c)
	if err != nil {
		return err
	}
	for _, sl := range slugs {
		if f, ok := found[sl]; ok && f.Owner != a.APIKey {
			return badRequest("file " + sl + " belongs to another account; nothing was deleted")
		}
	}
	out := make(map[string]map[string]string, len(slugs))
	for _, sl := range slugs {
		if _, ok := found[sl]; !ok {
			out[sl] = notFound()
			continue
		}
		f, err := s.cfg.Chunks.Withdraw(ctx, sl, store.StatusUser)
		if errors.Is(err, store.ErrNotFound) {
			out[sl] = notFound()
			continue
		}
		if err != nil && f.Slug == "" {
			return unavailable("cannot delete file "+sl+"; try again", err)
		}
		if err != nil {
			// The record says removed; a copy a mirror kept is logged.
			s.cfg.Log.WarnContext(ctx, "delete file: a mirror kept its copy", "slug", sl, "err", err)
		}
		out[sl] = s.infoRecord(f)
	}
	return success(c, out)
}

// uploadStatus tells a client how far an upload got, so that it can go on
// from the bytes the server holds: received is where the next chunk
// starts.
func (s *Server) uploadStatus(c echo.Context) error {
	ctx := c.Request().Context()
	v, a, err := s.authForm(c)
	if err != nil {
		return err
	}
	key, tracker := v.Get("upload_key"), first(v.Get("cTracker"), v.Get("ctracker"))
	if key == "" || tracker == "" {
		return badRequest("upload_key and cTracker are required")
	}
	sess, err := s.cfg.Store.Session(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return badRequest("upload_key not found or expired; ask file/upload for a new one")
	case err != nil:
		return unavailable("cannot read the upload session", err)
	case sess.APIKey != a.APIKey:
		return badRequest("upload_key belongs to another api_key")
	case sess.CTracker != tracker:
		return badRequest("cTracker does not match the upload_key")
	}
	size := max(sess.Total, 0)
	out := map[string]string{"name": sess.Name, "received": itoa(sess.Held), "size": itoa(size), "info": "continue"}
	// The file's record, made under the session's slug, marks it finished.
	if sess.Done || sess.Started && sess.Held == sess.Total && sess.Slug != "" {
		f, err := s.cfg.Store.File(ctx, sess.Slug)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return unavailable("cannot read the finished file", err)
		}
		if err == nil && f.UploadKey == sess.UploadKey {
			out["info"], out["slug"], out["url"] = "complete", f.Slug, s.fileURL(f.Slug)
		}
	}
	return success(c, out)
}
