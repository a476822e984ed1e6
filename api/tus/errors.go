package tus

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// Failures reach tus clients as tusd writes them: an HTTP status and a
// line of text, "ERR_CODE: words the client can act on". Clients retry a
// 5xx; a 4xx is final.

func errUnavailable(msg string) handler.Error {
	return handler.NewError("ERR_STORAGE_UNAVAILABLE", msg, http.StatusServiceUnavailable)
}

// tusError names err as a tus error; causes that are not the client's to
// know are logged, not shown.
func tusError(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	var he handler.Error
	if errors.As(err, &he) {
		return err
	}
	if errors.Is(err, chunks.ErrNoUpload) {
		return handler.ErrNotFound
	}
	if ce, ok := chunks.AsError(err); ok {
		switch ce.Kind {
		case chunks.TooLarge:
			return handler.NewError("ERR_MAX_SIZE_EXCEEDED", ce.Msg, http.StatusRequestEntityTooLarge)
		case chunks.OverQuota:
			return handler.NewError("ERR_QUOTA_EXCEEDED", ce.Msg, http.StatusRequestEntityTooLarge)
		case chunks.Unavailable:
			if ce.Err != nil {
				log.WarnContext(ctx, "tus: storage", "err", err)
			}
			return errUnavailable(ce.Msg)
		}
		return handler.NewError("ERR_UPLOAD_REFUSED", ce.Msg, http.StatusBadRequest)
	}
	log.ErrorContext(ctx, "tus: request failed", "err", err)
	return handler.NewError("ERR_INTERNAL_SERVER_ERROR", "internal server error; the failure is logged", http.StatusInternalServerError)
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// errSlowBody is the read error of a PATCH body that came too slowly. tusd
// answers it as a tus error, 400: the bytes that came are kept and the
// client may resume from Upload-Offset. It still wraps the connection's
// deadline error, so tusd does not move the deadline on.
type errSlowBody struct{ cause error }

func (e errSlowBody) Error() string { return e.cause.Error() }
func (e errSlowBody) Unwrap() error { return e.cause }

// As makes the error tusd's handler.Error.
func (e errSlowBody) As(target any) bool {
	he, ok := target.(*handler.Error)
	if ok {
		*he = handler.NewError("ERR_BODY_TOO_SLOW", e.cause.Error()+"; the bytes that came are kept: resume from Upload-Offset", http.StatusBadRequest)
	}
	return ok
}
