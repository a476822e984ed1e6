package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/api/remote"
	"github.com/acestash/acestash/chunks"
)

// uploadRemote is MirrorAce's upload/remote: the server fetches url and
// stores it like an upload. Every check that needs no traffic runs before
// the fetch, so a bad request never reaches the remote server.
func (s *Server) uploadRemote(c echo.Context) error {
	ctx := c.Request().Context()
	v, a, err := s.authForm(c)
	if err != nil {
		return err
	}
	if s.cfg.Remote == nil {
		return badRequest("remote upload is not enabled on this server")
	}
	rawURL := v.Get("url")
	if rawURL == "" {
		return badRequest("url is required: the http or https address of the file to fetch")
	}
	req, err := s.chunkRequest(a, v)
	if err != nil {
		return err
	}
	if err := s.cfg.Chunks.Check(ctx, req); err != nil {
		return err
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return unavailable("this server is fetching as many remote files as it may at once; try again shortly", nil)
	}
	limit := s.cfg.Chunks.MaxFileSize(a)
	res, err := s.fetch(ctx, req, rawURL, limit)
	if err != nil {
		return err
	}
	return success(c, s.complete(res.File))
}

// fetch stores the file at rawURL and counts the fetch by its result.
func (s *Server) fetch(ctx context.Context, req chunks.ChunkRequest, rawURL string, limit int64) (chunks.Result, error) {
	resp, err := s.cfg.Remote.Fetch(ctx, rawURL, limit)
	if err == nil {
		defer resp.Body.Close()
		req.Name, req.Body = resp.Name, resp.Body
		var res chunks.Result
		if res, err = s.cfg.Chunks.Fill(ctx, req, limit); err == nil {
			s.observer().Fetched("ok")
			return res, nil
		}
	}
	err = remoteError(ctx, err, limit)
	if p := asProblem(err); p.status < 500 {
		s.observer().Fetched("refused")
	} else {
		s.observer().Fetched("failed")
	}
	return chunks.Result{}, err
}

// remoteError says in the client's terms why fetching a URL failed.
func remoteError(ctx context.Context, err error, limit int64) error {
	var denied *remote.DeniedError
	var status *remote.StatusError
	switch {
	case errors.Is(err, remote.ErrTooLarge):
		return badRequest(fmt.Sprintf("the file at url is larger than the limit of %d bytes; nothing was stored", limit))
	case errors.As(err, &denied):
		// Not the address: that would map the operator's DNS for strangers.
		return badRequest("url is refused: it leads to a " + denied.Reason + " address, which this server does not fetch from")
	case errors.As(err, &status):
		return badRequest(fmt.Sprintf("the remote server answered %s; nothing was stored", status.Status))
	case errors.Is(err, remote.ErrTooManyRedirects):
		return badRequest("url redirects too many times; nothing was stored")
	case errors.Is(err, remote.ErrNoHost):
		// Asking again will not make the name resolve.
		return badRequest("the host name in url does not resolve; check the address; nothing was stored")
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return unavailable("the remote server took too long; nothing was stored", err)
	}
	if _, ok := chunks.AsError(err); ok {
		return err
	}
	if errors.Is(err, remote.ErrBadURL) {
		return badRequest("url cannot be fetched: " + strings.TrimPrefix(err.Error(), "remote: "))
	}
	// Not the cause: connection errors would let strangers probe ports.
	return unavailable("cannot fetch url: the remote server could not be reached; nothing was stored", err)
}
