package chunks

import (
	"context"
	"fmt"
	"time"

	"github.com/acestash/acestash/store"
)

// Download limits. Two counters in the store, shared by every node, keep a
// limited file's downloads: the ones taken (sent or being sent) and the
// ones done (the last byte delivered). A response that will deliver the
// last byte takes one first (Reserve) and settles it when it ends
// (Ticket.Settle): kept if it delivered the last byte, given back
// otherwise. No more are taken than the limit allows, so with a limit of n
// at most n responses deliver the file, on however many nodes. Once n are
// done, the file is taken down as at expiry. A node that dies in the middle
// of a response keeps its download taken.

// Ticket is one download of a limited file, taken by Reserve.
type Ticket struct {
	s *Service
	f store.File
}

func countKeys(slug string) (taken, done string) {
	return "downloads-taken:" + slug, "downloads-done:" + slug
}

// countsUntil is when a limited file's counters lapse: a day after the
// file expires, or in ten years.
func (s *Service) countsUntil(f store.File) time.Time {
	if !f.Expires.IsZero() {
		return f.Expires.Add(24 * time.Hour)
	}
	return s.cfg.Clock().Add(10 * 365 * 24 * time.Hour)
}

// Reserve takes one of f's downloads for a response about to send the
// file's last byte. It returns a nil Ticket (settling it does nothing) for
// a file without a limit, and a Gone error when every download is taken.
func (s *Service) Reserve(ctx context.Context, f store.File) (*Ticket, error) {
	if f.MaxDownloads <= 0 {
		return nil, nil
	}
	taken, _ := countKeys(f.Slug)
	n, err := s.cfg.Store.Count(ctx, taken, 1, s.countsUntil(f))
	if err != nil {
		return nil, unavailable("cannot count the file's downloads", err)
	}
	if n > f.MaxDownloads {
		if _, err := s.cfg.Store.Count(context.WithoutCancel(ctx), taken, -1, s.countsUntil(f)); err != nil {
			s.cfg.Log.WarnContext(ctx, "give back a download not taken", "slug", f.Slug, "err", err)
		}
		return nil, Errorf(Gone, "this file's download limit of %d is reached", f.MaxDownloads)
	}
	return &Ticket{s: s, f: f}, nil
}

// Settle ends the download: delivered says whether the response delivered
// the file's last byte. A delivered download counts, and the last one the
// limit allows takes the file down; one that was not is given back.
func (t *Ticket) Settle(ctx context.Context, delivered bool) {
	if t == nil {
		return
	}
	s, f := t.s, t.f
	ctx = context.WithoutCancel(ctx)
	taken, done := countKeys(f.Slug)
	if !delivered {
		if _, err := s.cfg.Store.Count(ctx, taken, -1, s.countsUntil(f)); err != nil {
			s.cfg.Log.WarnContext(ctx, "give back a download cut off", "slug", f.Slug, "err", err)
		}
		return
	}
	n, err := s.cfg.Store.Count(ctx, done, 1, s.countsUntil(f))
	if err != nil {
		s.cfg.Log.WarnContext(ctx, "count a download", "slug", f.Slug, "err", err)
		return
	}
	if n >= f.MaxDownloads {
		if _, err := s.lapse(ctx, f.Slug, ReasonDownloads); err != nil {
			s.cfg.Log.WarnContext(ctx, "remove a file downloaded its last time", "slug", f.Slug, "err", err)
		}
	}
}

// DownloadsLeft returns how many more whole downloads f allows, or -1 for
// a file without a limit.
func (s *Service) DownloadsLeft(ctx context.Context, f store.File) (int64, error) {
	if f.MaxDownloads <= 0 {
		return -1, nil
	}
	_, done := countKeys(f.Slug)
	n, err := s.cfg.Store.Count(ctx, done, 0, s.countsUntil(f))
	if err != nil {
		return 0, fmt.Errorf("chunks: read downloads of %s: %w", f.Slug, err)
	}
	return max(f.MaxDownloads-n, 0), nil
}
