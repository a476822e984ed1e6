package api

import (
	"bytes"
	"context"
	"encoding/json"
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

// Rocket.Chat's file uploads (README, "Chat servers"), in both of its flows:
// rooms.upload posts a file to a room and answers the message that carries
// it (Rocket.Chat 6); rooms.media stores a file that becomes a message only
// when rooms.mediaConfirm names it (Rocket.Chat 7 and later). A file gets a
// 17-character id (the file record's alias) for /file-upload/<id>/<name>.

// rocketTime is Rocket.Chat's timestamp format, always UTC.
const rocketTime = "2006-01-02T15:04:05.000Z"

func (s *Server) rocketChat(e *echo.Echo) {
	s.group(e, "/api/v1/rooms.upload", rocket).POST("/:rid", s.roomsUpload)
	s.group(e, "/api/v1/rooms.media", rocket).POST("/:rid", s.roomsMedia)
	s.group(e, "/api/v1/rooms.mediaConfirm", rocket).POST("/:rid/:fileId", s.roomsMediaConfirm)
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

func invalidFile(msg string) *problem {
	return rocketProblem(http.StatusBadRequest, msg, "invalid-file")
}

func (s *Server) roomsUpload(c echo.Context) error {
	a, rid, err := s.roomAccount(c)
	if err != nil {
		return err
	}
	// The account's default expiry applies; Rocket.Chat asks for none.
	terms, err := chunks.TermsFor(a, "", "", 0, s.cfg.Clock())
	if err != nil {
		return err
	}
	up, err := s.postedFile(c, a, chunks.Spec{Terms: terms}, "rooms.upload", "msg", "description", "tmid")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"message": s.rocketMessage(a, rid, up), "success": true})
}

// roomsMedia stores a file that waits for rooms.mediaConfirm. Rocket.Chat
// takes a description here and does not use it; neither does acestash.
func (s *Server) roomsMedia(c echo.Context) error {
	a, _, err := s.roomAccount(c)
	if err != nil {
		return err
	}
	spec := chunks.Spec{Terms: chunks.Terms{Expires: s.cfg.Clock().Add(s.cfg.UnconfirmedTTL).UTC()}, Unconfirmed: true}
	up, err := s.postedFile(c, a, spec, "rooms.media", "description")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"file":    map[string]any{"_id": up.file.Alias, "url": rocketLink(*up.file)},
		"success": true,
	})
}

// roomsMediaConfirm turns a file stored by rooms.media into a message. A
// file confirmed already is confirmed again, so a client whose answer was
// lost may ask twice.
func (s *Server) roomsMediaConfirm(c echo.Context) error {
	ctx := c.Request().Context()
	a, rid, err := s.roomAccount(c)
	if err != nil {
		return err
	}
	fields, err := readConfirmBody(c.Request())
	if err != nil {
		return err
	}
	id := c.Param("fileId")
	unknown := invalidFile(fmt.Sprintf("no file %q waits for a confirmation from this user; send it with rooms.media first", id))
	if !slug.Valid(id, 64) {
		return unknown
	}
	f, err := s.cfg.Store.FileByAlias(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.Owner != a.APIKey) {
		return unknown
	}
	if err != nil {
		return fmt.Errorf("look up file %s: %w", id, err)
	}
	f, err = s.cfg.Chunks.Confirm(ctx, f)
	if ce, ok := chunks.AsError(err); ok && ce.Kind == chunks.Invalid {
		return invalidFile(ce.Msg)
	}
	if err != nil {
		return err
	}
	up := roomUpload{file: &f, fileType: declaredType("", f.Type), fields: fields}
	return c.JSON(http.StatusOK, map[string]any{"message": s.rocketMessage(a, rid, up), "success": true})
}

// roomAccount returns the caller's account and the room of the request's
// path, refusing a room outside the account's rooms.
func (s *Server) roomAccount(c echo.Context) (store.Account, string, error) {
	rid := c.Param("rid")
	a, err := s.rocketAccount(c.Request())
	if err != nil {
		return a, rid, err
	}
	if len(a.Rooms) > 0 && !slices.Contains(a.Rooms, rid) {
		return a, rid, rocketProblem(http.StatusForbidden, fmt.Sprintf("this account may not post to room %q", rid), "error-not-allowed")
	}
	return a, rid, nil
}

// postedFile reads a multipart body with a file and the named fields,
// storing the file as spec says. A file stored before the body turns out
// wrong is removed again, and the rest of the body is read, so the client
// sees the answer.
func (s *Server) postedFile(c echo.Context, a store.Account, spec chunks.Spec, call string, fields ...string) (roomUpload, error) {
	ctx := c.Request().Context()
	spec.Account = a
	up, err := s.readRocketForm(ctx, c.Request(), spec, call, fields)
	if up.file != nil && err != nil {
		if rerr := s.cfg.Chunks.Remove(context.WithoutCancel(ctx), *up.file); rerr != nil {
			s.cfg.Log.WarnContext(ctx, "remove refused upload", "slug", up.file.Slug, "err", rerr)
		}
	}
	if err != nil {
		io.Copy(io.Discard, c.Request().Body)
	}
	return up, err
}

// readConfirmBody reads rooms.mediaConfirm's msg, description and tmid from
// a JSON object or a form; an empty body sends none. Other keys (Rocket.Chat's
// apps send t and content for end-to-end encrypted rooms) are left alone.
func readConfirmBody(r *http.Request) (url.Values, error) {
	fields := url.Values{}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4*maxFieldBytes+1))
	if err != nil {
		return nil, invalidParams("cannot read the body: " + err.Error())
	}
	if len(raw) > 4*maxFieldBytes {
		return nil, invalidParams("the body is too long")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, invalidParams("cannot read the form: " + err.Error())
		}
		for _, k := range confirmFields {
			if form.Has(k) {
				fields.Set(k, form.Get(k))
			}
		}
		return fields, checkFieldSizes(fields)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return fields, nil
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, invalidParams("send msg, description and tmid as a JSON object")
	}
	for _, k := range confirmFields {
		v, ok := body[k]
		if !ok || string(v) == "null" {
			continue
		}
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			return nil, invalidParams(fmt.Sprintf("%q must be a string", k))
		}
		fields.Set(k, str)
	}
	return fields, checkFieldSizes(fields)
}

// confirmFields are the keys of rooms.mediaConfirm's body acestash reads.
var confirmFields = []string{"msg", "description", "tmid"}

func checkFieldSizes(fields url.Values) error {
	for k, v := range fields {
		if len(v[0]) > maxFieldBytes {
			return invalidParams(fmt.Sprintf("field %q is too long", k))
		}
	}
	return nil
}

// roomUpload is what a rooms.upload request carried.
type roomUpload struct {
	file     *store.File
	fileType string // as the client declared it, else as sniffed
	fields   url.Values
}

// readRocketForm reads the multipart body of call, storing the file as
// spec says as it streams past; fields are the other fields call takes. On
// error, a file already stored is returned for the caller to remove.
func (s *Server) readRocketForm(ctx context.Context, r *http.Request, spec chunks.Spec, call string, fields []string) (roomUpload, error) {
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
			spec.Alias, err = slug.ID()
			if err != nil {
				return up, err
			}
			spec.Name = chunks.CleanName(p.FileName())
			f, err := s.cfg.Chunks.Put(ctx, spec, p)
			if err != nil {
				return up, err
			}
			up.file = &f
			up.fileType = declaredType(p.Header.Get("Content-Type"), f.Type)
		case slices.Contains(fields, name):
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
			msg := fmt.Sprintf("unknown field %q: %s takes file and %s", name, call, strings.Join(fields, ", "))
			if call == "rooms.media" {
				msg += "; send msg and tmid with rooms.mediaConfirm"
			}
			return up, invalidParams(msg)
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
	link := rocketLink(*f)
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

// rocketLink is the path that serves a file posted to a room.
func rocketLink(f store.File) string {
	return "/file-upload/" + f.Alias + "/" + url.PathEscape(f.Name)
}

// rocketDownload serves /file-upload/<fileId>/<name>.
func (s *Server) rocketDownload(c echo.Context) error {
	f, err := s.find(c.Request().Context(), c.Param("id"), s.cfg.Store.FileByAlias)
	if err != nil {
		return err
	}
	return s.serveSniffed(c, f)
}
