package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

// MirrorAce API v1 (README, "Walkthrough with curl"). Every answer is the
// {"status","result"} envelope; a request error is HTTP 200 with status
// "error", because the PHP and .NET clients read the body of a 200 only.

// maxInfoSlugs is the most slugs file/info answers for at once.
const maxInfoSlugs = 50

// mirrorAceTime is the API's date format, always UTC.
const mirrorAceTime = "2006-01-02 15:04:05"

func (s *Server) mirrorAce(g *echo.Group) {
	g.POST("/file/upload", s.fileUpload, s.withSession)
	g.POST("/file/info", s.fileInfo, s.withSession)
	g.POST("/upload", s.upload, s.withSession)
	g.POST("/upload/remote", s.uploadRemote, s.withSession)
	s.extensions(g)
}

type envelope struct {
	Status string `json:"status"`
	Result any    `json:"result"`
}

func writeEnvelope(c echo.Context, code int, status string, result any) error {
	return c.JSON(code, envelope{Status: status, Result: result})
}

func success(c echo.Context, result any) error {
	return writeEnvelope(c, http.StatusOK, "success", result)
}

// smallForm reads a request without a file.
func (s *Server) smallForm(c echo.Context) (*form, error) {
	return readForm(c.Request(), s.cfg.SpoolDir, nil, 0, func(url.Values) bool { return true })
}

// authForm reads a form without a file and the account it authenticates.
func (s *Server) authForm(c echo.Context) (url.Values, store.Account, error) {
	f, err := s.smallForm(c)
	if err != nil {
		return nil, store.Account{}, err
	}
	defer f.Close()
	a, err := s.authenticate(c.Request().Context(), f.Values)
	return f.Values, a, err
}

func (s *Server) fileUpload(c echo.Context) error {
	ctx := c.Request().Context()
	_, a, err := s.authForm(c)
	if err != nil {
		return err
	}
	sess, err := s.cfg.Chunks.Issue(ctx, a)
	if err != nil {
		return err
	}
	all := map[string]bool{}
	for _, m := range s.cfg.Mirrors.All() {
		all[m.ID] = chunks.Allowed(a, m.ID)
	}
	maxMirrors := a.MaxMirrors
	if maxMirrors <= 0 {
		maxMirrors = len(all)
	}
	return success(c, map[string]any{
		"server":            s.cfg.PublicURL,
		"server_file":       s.cfg.PublicURL + "/api/v1/upload",
		"server_remote":     s.cfg.PublicURL + "/api/v1/upload/remote",
		"cTracker":          sess.CTracker,
		"mirrors":           all,
		"default_mirrors":   s.cfg.Chunks.DefaultMirrors(a),
		"max_chunk_size":    itoa(s.cfg.Chunks.MaxChunkSize()),
		"max_file_size":     itoa(s.cfg.Chunks.MaxFileSize(a)),
		"max_mirrors":       itoa(int64(maxMirrors)),
		"upload_key":        sess.UploadKey,
		"upload_key_expiry": sess.Expires.UTC().Format(mirrorAceTime),
	})
}

func (s *Server) upload(c echo.Context) error {
	ctx := c.Request().Context()
	r := c.Request()
	// Enough for the largest chunk and its form; chunks enforces the limits.
	r.Body = http.MaxBytesReader(c.Response(), r.Body, s.cfg.Chunks.MaxChunkSize()+1+maxFormBytes+64<<10)
	// The file streams to the mirrors when the fields that say where it
	// goes came before it; the fields after it are read once it has ended.
	// Otherwise it is spooled to local disk and the whole form read first.
	stream := func(v url.Values) bool {
		return hasCredentials(ctx, v) &&
			v.Get("upload_key") != "" && first(v.Get("cTracker"), v.Get("ctracker")) != ""
	}
	limit := s.cfg.Chunks.MaxChunkSize() + 1
	f, err := readForm(r, s.cfg.SpoolDir, []string{"files", "files[]"}, limit, stream)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := s.chunk(ctx, r, f)
	if errors.Is(err, chunks.ErrNoMirrors) && f.mr != nil {
		// The upload starts here and its mirrors may come after the file.
		if err = f.spool(s.cfg.SpoolDir, limit); err == nil {
			res, err = s.chunk(ctx, r, f)
		}
	}
	if err != nil {
		// Read what is left, so the client gets to read the answer.
		io.Copy(io.Discard, r.Body)
		return err
	}
	if !res.Done {
		return success(c, map[string]string{"name": res.Name, "size": itoa(res.Total), "info": "continue"})
	}
	return success(c, s.complete(res.File))
}

func (s *Server) chunk(ctx context.Context, r *http.Request, f *form) (chunks.Result, error) {
	a, err := s.authenticate(ctx, f.Values)
	if err != nil {
		return chunks.Result{}, err
	}
	if f.File == nil {
		return chunks.Result{}, badRequest("no file: send it in the files (or files[]) field")
	}
	req, err := s.chunkRequest(a, f.Values)
	if err != nil {
		return chunks.Result{}, err
	}
	req.Body, req.Name = f.File, f.FileName
	if f.mr != nil { // the file streams; fields may follow it
		req.Late = func() (chunks.LateFields, error) {
			after, err := f.rest()
			if err != nil {
				return chunks.LateFields{}, err
			}
			lf := chunks.LateFields{Password: after.Get("file_password"), Mirrors: mirrorIDs(after)}
			if after.Has("expires") || after.Has("max_downloads") {
				t, err := s.terms(a, after)
				if err != nil {
					return lf, err
				}
				lf.Terms = &t
			}
			return lf, nil
		}
	}
	if h := r.Header.Get("Content-Range"); h != "" {
		rng, err := chunks.ParseRange(h)
		if err != nil {
			return chunks.Result{}, err
		}
		req.Range = &rng
	}
	return s.cfg.Chunks.Chunk(ctx, req)
}

// terms reads acestash's extension fields expires and max_downloads.
func (s *Server) terms(a store.Account, v url.Values) (chunks.Terms, error) {
	return chunks.TermsFor(a, v.Get("expires"), v.Get("max_downloads"), 0, s.cfg.Clock())
}

// chunkRequest reads the fields upload and upload/remote share.
func (s *Server) chunkRequest(a store.Account, v url.Values) (chunks.ChunkRequest, error) {
	t, err := s.terms(a, v)
	if err != nil {
		return chunks.ChunkRequest{}, err
	}
	req := chunks.ChunkRequest{
		Terms:     t,
		Account:   a,
		UploadKey: v.Get("upload_key"),
		CTracker:  first(v.Get("cTracker"), v.Get("ctracker")),
		Mirrors:   mirrorIDs(v),
		Password:  v.Get("file_password"),
	}
	if req.UploadKey == "" || req.CTracker == "" {
		return req, badRequest("upload_key and cTracker are required; get them from file/upload")
	}
	return req, nil
}

// complete is the result of a finished upload.
func (s *Server) complete(f store.File) map[string]string {
	return map[string]string{
		"name": f.Name, "size": itoa(f.Size), "slug": f.Slug,
		"url": s.fileURL(f.Slug), "info": "complete",
	}
}

func (s *Server) fileURL(slug string) string { return s.cfg.PublicURL + "/m/" + slug }

// namedFiles authenticates a request that names files (files=slug,slug) and
// returns its account, the slugs, and the records found of them.
func (s *Server) namedFiles(c echo.Context) (store.Account, []string, map[string]store.File, error) {
	v, acct, err := s.authForm(c)
	if err != nil {
		return store.Account{}, nil, nil, err
	}
	slugs, err := slugList(v)
	if err != nil {
		return store.Account{}, nil, nil, err
	}
	found, err := s.files(c.Request().Context(), slugs)
	if err != nil {
		return store.Account{}, nil, nil, err
	}
	return acct, slugs, found, nil
}

func (s *Server) fileInfo(c echo.Context) error {
	acct, slugs, found, err := s.namedFiles(c)
	if err != nil {
		return err
	}
	out := make(map[string]map[string]string, len(slugs))
	for _, sl := range slugs {
		file, ok := found[sl]
		if !ok {
			out[sl] = notFound()
			continue
		}
		if file.Owner == acct.APIKey {
			out[sl] = s.infoRecord(file)
		} else {
			out[sl] = s.publicRecord(file)
		}
	}
	return success(c, out)
}

// slugList reads the files field: distinct slugs, comma-separated, at
// most 50.
func slugList(v url.Values) ([]string, error) {
	var slugs []string
	seen := map[string]bool{}
	for _, sl := range strings.Split(v.Get("files"), ",") {
		if sl = strings.TrimSpace(sl); sl != "" && !seen[sl] {
			seen[sl] = true
			slugs = append(slugs, sl)
		}
	}
	if len(slugs) == 0 {
		return nil, badRequest("files is required: one slug or several, comma-separated")
	}
	if len(slugs) > maxInfoSlugs {
		return nil, badRequest("files lists " + strconv.Itoa(len(slugs)) + " slugs; at most 50 per call")
	}
	return slugs, nil
}

// files reads the records of the slugs that can name a file, in one round
// trip.
func (s *Server) files(ctx context.Context, slugs []string) (map[string]store.File, error) {
	var lookup []string
	for _, sl := range slugs {
		if slug.Valid(sl, 64) {
			lookup = append(lookup, sl)
		}
	}
	found, err := s.cfg.Store.Files(ctx, lookup)
	if err != nil {
		return nil, unavailable("cannot read file records", err)
	}
	return found, nil
}

// infoRecord is a file as file/info shows it to its owner: MirrorAce's
// fields, and the mirrors holding a copy, how many, and those missing one.
// A file past its expiry is "user removed" (reason "expired") at once,
// before any sweep has removed it.
func (s *Server) infoRecord(f store.File) map[string]string {
	if f.Status == store.StatusActive && chunks.Expired(f, s.cfg.Clock()) {
		f.Status, f.Reason, f.Mirrors, f.Missing = store.StatusUser, chunks.ReasonExpired, nil, nil
	}
	return FileInfo(s.cfg.PublicURL, f)
}

// publicRecord is a file as file/info shows it to another account: only
// what the file's public page shows.
func (s *Server) publicRecord(f store.File) map[string]string {
	m := s.infoRecord(f)
	m["id"] = "null"
	delete(m, "missing")
	return m
}

// notFound is file/info's record of a slug that names no file.
func notFound() map[string]string {
	return map[string]string{"id": "null", "name": "null", "slug": "null", "size": "null", "url": "null", "status": "not found"}
}

// FileInfo is a file as file/info shows it (and webhook events carry it):
// every value a string. acestash adds "expires" (UTC, the API's format)
// and "max_downloads" to files that have them, and "reason" to a file its
// own terms removed ("expired", "download limit reached").
func FileInfo(publicURL string, f store.File) map[string]string {
	m := map[string]string{
		"id": itoa(f.ID), "name": f.Name, "slug": f.Slug,
		"size": itoa(f.Size), "url": publicURL + "/m/" + f.Slug, "status": f.Status,
		"mirrors": strings.Join(f.Mirrors, ","), "copies": strconv.Itoa(len(f.Mirrors)),
		"missing": strings.Join(f.Missing, ","),
	}
	if !f.Expires.IsZero() {
		m["expires"] = f.Expires.UTC().Format(mirrorAceTime)
	}
	if f.MaxDownloads > 0 {
		m["max_downloads"] = itoa(f.MaxDownloads)
	}
	if f.Reason != "" {
		m["reason"] = f.Reason
	}
	return m
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
