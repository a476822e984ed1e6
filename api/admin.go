package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

// The admin API, under /api/admin/: listing, inspecting and taking down
// files, and managing accounts. It answers JSON, errors as {"error": "…"}
// with their HTTP status, and demands Authorization: Bearer <admin_token>;
// without an admin_token it is off.

// admin adds the admin API's routes to g, a group behind adminAuth.
func (s *Server) admin(g *echo.Group) {
	g.GET("/files", s.adminFiles)
	g.GET("/files/:slug", s.adminFile)
	g.DELETE("/files/:slug", s.adminRemoveFile)
	g.GET("/accounts", s.adminAccounts)
	g.POST("/accounts", s.adminCreateAccount)
	g.GET("/accounts/:key", s.adminAccount)
	g.PATCH("/accounts/:key", s.adminSetAccount)
	g.DELETE("/accounts/:key", s.adminDeleteAccount)
	g.POST("/accounts/:key/rotate-token", s.adminRotateToken)
	s.adminMirrorRoutes(g)
	g.GET("/backup", s.adminBackup)
}

func (s *Server) adminAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.AdminToken == "" {
			return fail(http.StatusForbidden, "the admin API is off: set admin_token (or ACESTASH_ADMIN_TOKEN) on the server")
		}
		if !bearerIs(c.Request(), s.cfg.AdminToken) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
			return fail(http.StatusUnauthorized, "send Authorization: Bearer <admin_token>")
		}
		return next(c)
	}
}

// AdminFile is a file record as the admin API shows it.
type AdminFile struct {
	ID       int64      `json:"id"`
	Slug     string     `json:"slug"`
	Name     string     `json:"name"`
	Size     int64      `json:"size"`
	SHA256   string     `json:"sha256"`
	Type     string     `json:"type,omitempty"`
	Owner    string     `json:"owner"`
	Status   string     `json:"status"`
	URL      string     `json:"url"`
	Mirrors  []string   `json:"mirrors"`
	Missing  []string   `json:"missing,omitempty"`
	Password bool       `json:"password"`
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires,omitempty"`
}

func (s *Server) adminView(f store.File) AdminFile {
	v := AdminFile{
		ID: f.ID, Slug: f.Slug, Name: f.Name, Size: f.Size, SHA256: f.SHA256, Type: f.Type, Owner: f.Owner,
		Status: f.Status, URL: s.fileURL(f.Slug), Mirrors: f.Mirrors, Missing: f.Missing,
		Password: len(f.PasswordHash) > 0, Created: f.Created,
	}
	if v.Mirrors == nil {
		v.Mirrors = []string{}
	}
	if !f.Expires.IsZero() {
		v.Expires = &f.Expires
	}
	return v
}

// adminFiles lists files, newest first: one account's (?account=KEY) or
// everyone's, ?offset= and ?limit= (default 100, at most 1000) paging.
func (s *Server) adminFiles(c echo.Context) error {
	ctx := c.Request().Context()
	offset, err := queryInt(c, "offset", 0, 0, 1<<31-1)
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	var keys []string
	if key := c.QueryParam("account"); key != "" {
		if _, err := s.cfg.Store.Account(ctx, key); err != nil {
			return storeProblem(err, "account "+key)
		}
		keys = []string{key}
	} else {
		all, err := s.cfg.Store.Accounts(ctx)
		if err != nil {
			return unavailable("cannot list accounts", err)
		}
		for _, a := range all {
			keys = append(keys, a.APIKey)
		}
	}
	var files []store.File
	total := 0
	for _, key := range keys {
		// Every account's first offset+limit files hold the page.
		list, n, err := s.cfg.Store.OwnerFiles(ctx, key, 0, offset+limit)
		if err != nil {
			return unavailable("cannot list files", err)
		}
		files, total = append(files, list...), total+n
	}
	slices.SortStableFunc(files, func(a, b store.File) int { return b.Created.Compare(a.Created) })
	files = files[min(offset, len(files)):min(offset+limit, len(files))]
	out := make([]AdminFile, len(files))
	for i, f := range files {
		out[i] = s.adminView(f)
	}
	return c.JSON(http.StatusOK, map[string]any{"files": out, "total": total, "offset": offset})
}

func (s *Server) adminFile(c echo.Context) error {
	f, err := s.adminLookup(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.adminView(f))
}

// adminRemoveFile takes a file down for ?reason=admin or copyright: its
// record stays with that status, its bytes leave every mirror.
func (s *Server) adminRemoveFile(c echo.Context) error {
	ctx := c.Request().Context()
	var status string
	switch c.QueryParam("reason") {
	case "admin":
		status = store.StatusAdmin
	case "copyright":
		status = store.StatusCopyright
	default:
		return badRequest("reason must be admin or copyright")
	}
	sl := c.Param("slug")
	if err := checkSlug(sl); err != nil {
		return err
	}
	f, err := s.cfg.Chunks.Withdraw(context.WithoutCancel(ctx), sl, status)
	if errors.Is(err, store.ErrNotFound) {
		return storeProblem(err, "file "+sl)
	}
	if err != nil {
		if f.Slug == "" {
			return unavailable("cannot take the file down", err)
		}
		return &problem{status: http.StatusInternalServerError, err: err,
			msg: "the file is taken down, but deleting it from a mirror failed; the failure is logged"}
	}
	return c.JSON(http.StatusOK, s.adminView(f))
}

func (s *Server) adminLookup(ctx context.Context, sl string) (store.File, error) {
	if err := checkSlug(sl); err != nil {
		return store.File{}, err
	}
	f, err := s.cfg.Store.File(ctx, sl)
	if err != nil {
		return store.File{}, storeProblem(err, "file "+sl)
	}
	return f, nil
}

// checkSlug is a 404 for what cannot be a slug.
func checkSlug(sl string) error {
	if !slug.Valid(sl, 64) {
		return fail(http.StatusNotFound, "file "+strconv.Quote(sl)+" not found")
	}
	return nil
}

// storeProblem is a 404 for a missing record, else a retryable failure.
func storeProblem(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &problem{status: http.StatusNotFound, msg: what + " not found", err: err}
	}
	return unavailable("cannot read "+what, err)
}

// queryInt reads the query parameter name as an integer in [lo, hi].
func queryInt(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest(fmt.Sprintf("%s must be a whole number from %d to %d", name, lo, hi))
	}
	return n, nil
}

// AdminAccount is an account as the admin API shows it: its identity and
// settings, not its token, which is kept only hashed.
type AdminAccount struct {
	APIKey      string `json:"api_key"`
	APIToken    string `json:"api_token,omitempty"` // only when created or rotated
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	store.Settings
}

func accountView(a store.Account) AdminAccount {
	v := AdminAccount{APIKey: a.APIKey, UserID: a.UserID, Username: a.Username, DisplayName: a.DisplayName, Settings: a.Settings()}
	for _, l := range []*[]string{&v.Mirrors, &v.DefaultMirrors, &v.Rooms} {
		if *l == nil {
			*l = []string{}
		}
	}
	return v
}

func (s *Server) adminAccounts(c echo.Context) error {
	all, err := s.cfg.Store.Accounts(c.Request().Context())
	if err != nil {
		return unavailable("cannot list accounts", err)
	}
	out := make([]AdminAccount, len(all))
	for i, a := range all {
		out[i] = accountView(a)
	}
	return c.JSON(http.StatusOK, map[string]any{"accounts": out})
}

func (s *Server) adminAccount(c echo.Context) error {
	a, err := s.cfg.Store.Account(c.Request().Context(), c.Param("key"))
	if err != nil {
		return storeProblem(err, "account "+c.Param("key"))
	}
	return c.JSON(http.StatusOK, accountView(a))
}

// decodeJSON decodes the request's body, a JSON object of what's fields,
// into v.
func decodeJSON(c echo.Context, v any, what string) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &problem{status: http.StatusBadRequest, msg: "the body must be a JSON object of " + what + ": " + err.Error(), err: err}
	}
	return nil
}

// readSettings decodes the request's account settings over set, so that
// the fields it does not name stay as they are, and checks the result with
// Settings.Validate. A mirror id must be configured unless set named it
// already (an account may keep a mirror taken out of the configuration).
func (s *Server) readSettings(c echo.Context, set *store.Settings) error {
	had := slices.Concat(set.Mirrors, set.DefaultMirrors)
	if err := decodeJSON(c, set, "account fields"); err != nil {
		return err
	}
	err := set.Validate(func(id string) bool {
		_, ok := s.cfg.Mirrors.Get(id)
		return ok || slices.Contains(had, id)
	})
	if err != nil {
		return badRequest(err.Error())
	}
	return nil
}

// adminCreateAccount creates an account with fresh credentials and
// answers it with its api_token, shown only now.
func (s *Server) adminCreateAccount(c echo.Context) error {
	var set store.Settings
	if err := s.readSettings(c, &set); err != nil {
		return err
	}
	if set.Name == "" {
		return badRequest("name is required")
	}
	a, token, err := store.NewAccount(set.Name)
	if err != nil {
		return err
	}
	if err := a.Set(set); err != nil {
		return badRequest(err.Error())
	}
	if err := s.cfg.Store.PutAccount(c.Request().Context(), a); err != nil {
		return unavailable("cannot store the account", err)
	}
	v := accountView(a)
	v.APIToken = token
	return c.JSON(http.StatusCreated, v)
}

func (s *Server) adminSetAccount(c echo.Context) error {
	ctx := c.Request().Context()
	a, err := s.cfg.Store.Account(ctx, c.Param("key"))
	if err != nil {
		return storeProblem(err, "account "+c.Param("key"))
	}
	set := a.Settings()
	if err := s.readSettings(c, &set); err != nil {
		return err
	}
	if err := a.Set(set); err != nil {
		return badRequest(err.Error())
	}
	if err := s.cfg.Store.PutAccount(ctx, a); err != nil {
		return unavailable("cannot store the account", err)
	}
	return c.JSON(http.StatusOK, accountView(a))
}

// adminDeleteAccount removes an account; its files stay.
func (s *Server) adminDeleteAccount(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := s.cfg.Store.Account(ctx, c.Param("key")); err != nil {
		return storeProblem(err, "account "+c.Param("key"))
	}
	if err := s.cfg.Store.DeleteAccount(ctx, c.Param("key")); err != nil {
		return unavailable("cannot delete the account", err)
	}
	return c.JSON(http.StatusOK, map[string]string{"deleted": c.Param("key")})
}

// adminRotateToken gives an account a new api_token; the old one stops
// working at once.
func (s *Server) adminRotateToken(c echo.Context) error {
	ctx := c.Request().Context()
	a, err := s.cfg.Store.Account(ctx, c.Param("key"))
	if err != nil {
		return storeProblem(err, "account "+c.Param("key"))
	}
	token, err := slug.Hex(16)
	if err != nil {
		return err
	}
	a.TokenHash = store.HashToken(token)
	if err := s.cfg.Store.PutAccount(ctx, a); err != nil {
		return unavailable("cannot store the account", err)
	}
	v := accountView(a)
	v.APIToken = token
	return c.JSON(http.StatusOK, v)
}
