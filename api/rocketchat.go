package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

// Rocket.Chat's rooms.upload (README, "Chat servers"): a file posted to a
// room is answered with the message object that carries it. The file gets a
// 17-character id (the file record's alias) for /file-upload/<id>/<name>.

// rocketTime is Rocket.Chat's timestamp format, always UTC.
const rocketTime = "2006-01-02T15:04:05.000Z"

func (s *Server) rocketChat(g *echo.Group, e *echo.Echo) {
	g.POST("/:rid", s.roomsUpload)
	e.GET("/file-upload/:id/:name", s.rocketDownload)
	e.HEAD("/file-upload/:id/:name", s.rocketDownload)
}

// rocketProblem is a problem with Rocket.Chat's errorType, which its
// message ends with, as Rocket.Chat's own do.
func rocketProblem(status int, msg, kind string) *problem {
	return &problem{status: status, msg: msg + " [" + kind + "]", rocket: kind}
}

func invalidField(msg string) *problem {
	return rocketProblem(http.StatusBadRequest, msg, "invalid-field")
}

func invalidParams(msg string) *problem {
	return rocketProblem(http.StatusBadRequest, msg, "invalid-params")
}

func (s *Server) roomsUpload(c echo.Context) error {
	ctx := c.Request().Context()
	rid := c.Param("rid")
	a, err := s.rocketAccount(ctx, c.Request())
	if err != nil {
		return err
	}
	if len(a.Rooms) > 0 && !slices.Contains(a.Rooms, rid) {
		return rocketProblem(http.StatusForbidden, fmt.Sprintf("this account may not post to room %q", rid), "error-not-allowed")
	}
	up, err := s.readRocketForm(ctx, c.Request(), a)
	if up.file != nil && err != nil {
		if rerr := s.cfg.Chunks.Remove(context.WithoutCancel(ctx), *up.file); rerr != nil {
			s.cfg.Log.WarnContext(ctx, "remove refused upload", "slug", up.file.Slug, "err", rerr)
		}
	}
	if err != nil {
		io.Copy(io.Discard, c.Request().Body)
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"message": s.rocketMessage(a, rid, up), "success": true})
}

// rocketAccount checks X-User-Id (the account's user id or api key) and
// X-Auth-Token (its api token).
func (s *Server) rocketAccount(ctx context.Context, r *http.Request) (store.Account, error) {
	unauthorized := fail(http.StatusUnauthorized, "unauthorized")
	id, token := r.Header.Get("X-User-Id"), r.Header.Get("X-Auth-Token")
	if id == "" || token == "" {
		return store.Account{}, unauthorized
	}
	a, err := s.cfg.Store.AccountByUserID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		a, err = s.cfg.Store.Account(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && !a.CheckToken(token)) {
		return store.Account{}, unauthorized
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("look up account: %w", err)
	}
	return a, nil
}

// roomUpload is what a rooms.upload request carried.
type roomUpload struct {
	file     *store.File
	fileType string // as the client declared it, else as sniffed
	fields   url.Values
}

// readRocketForm reads the multipart body, storing the file as it streams
// past. On error, a file already stored is returned for the caller to remove.
func (s *Server) readRocketForm(ctx context.Context, r *http.Request, a store.Account) (roomUpload, error) {
	up := roomUpload{fields: url.Values{}}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" && mt != "multipart/mixed" {
		return up, invalidField("send the file as multipart/form-data in the field file")
	}
	mr, err := newMultipartReader(r.Body, params["boundary"])
	if err != nil {
		return up, invalidField(err.Error())
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return up, invalidField("cannot read the multipart body: " + err.Error())
		}
		name := p.FormName()
		switch {
		case name == "file":
			if up.file != nil {
				return up, invalidField("only one file per message")
			}
			if p.FileName() == "" {
				return up, invalidField("the file field must be a file, with a file name")
			}
			alias, err := slug.ID()
			if err != nil {
				return up, err
			}
			f, err := s.cfg.Chunks.Put(ctx, chunks.Spec{Account: a, Name: chunks.CleanName(p.FileName()), Alias: alias}, p)
			if err != nil {
				return up, err
			}
			up.file = &f
			up.fileType = declaredType(p.Header.Get("Content-Type"), f.Type)
		case name == "msg" || name == "description" || name == "tmid":
			if up.fields.Has(name) {
				return up, invalidParams(fmt.Sprintf("field %q is given twice", name))
			}
			v, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
			if err != nil {
				return up, invalidField("cannot read field " + name + ": " + err.Error())
			}
			if len(v) > maxFieldBytes {
				return up, invalidParams(fmt.Sprintf("field %q is too long", name))
			}
			up.fields.Set(name, string(v))
		default:
			return up, invalidParams(fmt.Sprintf("unknown field %q: rooms.upload takes file, msg, description and tmid", name))
		}
	}
	if up.file == nil {
		return up, invalidField("the file field is required")
	}
	return up, nil
}

// declaredType is the part's Content-Type unless it says nothing more than
// the sniffed type does.
func declaredType(declared, sniffed string) string {
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil || mt == "application/octet-stream" {
		mt, _, _ = mime.ParseMediaType(sniffed)
	}
	if mt == "" {
		mt = "application/octet-stream"
	}
	return mt
}

// rocketMessage builds the message object as Rocket.Chat returns it.
func (s *Server) rocketMessage(a store.Account, rid string, up roomUpload) map[string]any {
	f := up.file
	now := s.cfg.Clock().UTC().Format(rocketTime)
	msgID, err := slug.ID()
	if err != nil {
		msgID = f.Alias // slug.ID fails only without system randomness
	}
	text := up.fields.Get("msg")
	ref := map[string]any{"_id": f.Alias, "name": f.Name, "type": up.fileType}
	link := "/file-upload/" + f.Alias + "/" + url.PathEscape(f.Name)
	att := map[string]any{
		"ts": now, "title": f.Name, "title_link": link, "title_link_download": true,
		"type": "file", "description": up.fields.Get("description"),
	}
	if strings.HasPrefix(up.fileType, "image/") && inlineSafe(f.Type) {
		att["image_url"], att["image_type"], att["image_size"] = link, up.fileType, f.Size
	}
	md := []any{}
	if text != "" {
		md = append(md, map[string]any{"type": "PARAGRAPH", "value": []any{
			map[string]any{"type": "PLAIN_TEXT", "value": text}}})
	}
	m := map[string]any{
		"_id": msgID, "rid": rid, "ts": now, "msg": text,
		"file": ref, "files": []any{ref}, "attachments": []any{att},
		"u":          map[string]any{"_id": a.UserID, "username": a.Username, "name": a.DisplayName},
		"_updatedAt": now, "urls": []any{}, "md": md,
	}
	if tmid := up.fields.Get("tmid"); tmid != "" {
		m["tmid"] = tmid
	}
	return m
}

// rocketDownload serves /file-upload/<fileId>/<name>.
func (s *Server) rocketDownload(c echo.Context) error {
	f, err := s.find(c.Request().Context(), c.Param("id"), s.cfg.Store.FileByAlias)
	if err != nil {
		return err
	}
	return s.serveSniffed(c, f)
}
