// Package reqid names requests: an id travels in a request's context, and a
// slog.Handler adds it to every log line written with that context, so the
// lines one request caused in api, chunks, mirrors and the store can be
// found together.
package reqid

import (
	"context"
	"log/slog"

	"github.com/google/uuid"
)

type key struct{}

// With returns ctx carrying the request id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the request id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// New returns a fresh request id (a random UUID).
func New() string { return uuid.NewString() }

// Valid reports whether an id sent by a client may be kept: 1 to 128
// letters, digits, '-', '_', '.', ':' or '/'. Anything else (empty, long,
// spaces, control characters) is replaced by a fresh id.
func Valid(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-' || r == '_' || r == '.' || r == ':' || r == '/':
		default:
			return false
		}
	}
	return true
}

// Attr is the name of the attribute the handler adds.
const Attr = "request_id"

// Handler returns h adding the request id of each record's context, when
// there is one, as the attribute request_id.
func Handler(h slog.Handler) slog.Handler { return handler{h} }

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id := From(ctx); id != "" {
		r.AddAttrs(slog.String(Attr, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler { return handler{h.Handler.WithAttrs(as)} }
func (h handler) WithGroup(name string) slog.Handler    { return handler{h.Handler.WithGroup(name)} }
