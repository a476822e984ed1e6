package chunks

import (
	"context"
	"fmt"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// Redirect returns a URL, valid for expiry, through which a client reads
// the whole file (or a Range of it) from a healthy mirror holding it that
// the operator lets clients be sent to, answered with resp's headers; ""
// when no such mirror holds it, and the file must be served by the caller.
// Mirrors that let a read down lately are passed over too.
func (s *Service) Redirect(ctx context.Context, f store.File, expiry time.Duration, resp mirrors.Response) (string, error) {
	if !s.redirects {
		return "", nil
	}
	for _, m := range s.readOrder(f) {
		if m.r > 0 { // unhealthy or let a read down lately, as all after it
			break
		}
		e, ok := s.cfg.Mirrors.Get(m.id)
		if !ok || e.Redirect == nil {
			continue
		}
		u, err := e.Redirect.PresignGet(ctx, f.ObjectKey, expiry, resp)
		if err != nil {
			return "", fmt.Errorf("chunks: file %s: mirror %s: %w", f.Slug, m.id, err)
		}
		return u, nil
	}
	return "", nil
}
