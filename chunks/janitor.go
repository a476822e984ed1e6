package chunks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// The janitor removes from the mirrors what no record points to: objects
// written but never published (a node died between the two) and uploads
// never completed nor aborted. Only what is older than a grace period goes,
// so what a request is writing right now, before any record names it, is
// left alone; only keys under objectPrefix, which acestash alone writes, are
// touched.

// objectPrefix starts the key of every object acestash writes.
const objectPrefix = "files/"

// Sweep removes, from every mirror that can list what it holds, the
// objects and uploads under objectPrefix that are older than grace and
// that no active file record or upload session names. It returns how many it
// removed.
func (s *Service) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	ctx = mirrors.Patient(ctx)
	keys := map[string]bool{}               // object keys live files and sessions name
	uploads := map[string]map[string]bool{} // mirror id -> upload ids sessions name
	err := s.cfg.Store.EachFile(ctx, func(f store.File) error {
		// A file taken down keeps its record, not its bytes: a copy a
		// mirror failed to delete then is swept.
		if f.Status == store.StatusActive {
			keys[f.ObjectKey] = true
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("chunks: sweep: %w", err)
	}
	sessions, err := s.cfg.Store.IdleSessions(ctx, time.Unix(1<<40, 0), math.MaxInt32)
	if err != nil {
		return 0, fmt.Errorf("chunks: sweep: %w", err)
	}
	for _, sess := range sessions {
		keys[sess.ObjectKey] = true
		for id, up := range sess.Uploads {
			if uploads[id] == nil {
				uploads[id] = map[string]bool{}
			}
			uploads[id][up.ID] = true
		}
	}
	// The clock of a test may stand still; the mirrors' runs.
	before := time.Now().Add(-grace)
	n := 0
	var errs []error
	for _, e := range s.cfg.Mirrors.All() {
		l, ok := mirrors.As[mirrors.Lister](e.Mirror)
		if !ok || s.healthy(e.ID) != nil {
			continue
		}
		k, err := s.sweep(ctx, e.ID, e.Mirror, l, keys, uploads[e.ID], before)
		n += k
		if err != nil {
			errs = append(errs, fmt.Errorf("mirror %s: %w", e.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("chunks: sweep: %w", err)
	}
	return n, nil
}

// sweep cleans one mirror.
func (s *Service) sweep(ctx context.Context, id string, m mirrors.Mirror, l mirrors.Lister,
	keys, uploads map[string]bool, before time.Time) (int, error) {
	var stale []string
	err := l.ListObjects(ctx, objectPrefix, func(key string, info mirrors.Info) error {
		if !keys[key] && info.Modified.Before(before) {
			stale = append(stale, key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var open []mirrors.Upload
	err = l.ListUploads(ctx, objectPrefix, func(up mirrors.Upload, began time.Time) error {
		if !uploads[up.ID] && began.Before(before) {
			open = append(open, up)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range stale {
		if err := m.Delete(ctx, key); err != nil {
			s.cfg.Log.Warn("janitor: delete unrecorded object", "mirror", id, "key", key, "err", err)
			continue
		}
		s.cfg.Log.Info("janitor: deleted an object no record names", "mirror", id, "key", key)
		n++
	}
	for _, up := range open {
		if err := abort(ctx, m, up, s.cfg.MirrorTimeout); err != nil {
			s.cfg.Log.Warn("janitor: abort unrecorded upload", "mirror", id, "key", up.Key, "err", err)
			continue
		}
		s.cfg.Log.Info("janitor: aborted an upload no session names", "mirror", id, "key", up.Key)
		n++
	}
	return n, nil
}
