package chunks

import (
	"context"
	"errors"
	"time"

	"github.com/acestash/acestash/mirrors"
)

// Aborts that fail, most often on a mirror that is down, are not retried
// in a client's request: a few goroutines per node retry them in the
// background for a while. What they give up on, or what a crash loses,
// the janitor finds on the mirror later.

const (
	// abortWait bounds an abort tried in a request.
	abortWait = 3 * time.Second
	// abortTries is how often an abort is tried in the background, with
	// pauses doubling from Config.AbortPause.
	abortTries = 8
	// abortSlots bounds the uploads waiting for a background abort.
	abortSlots = 256
)

// abortLater aborts the uploads in the background, retrying each; ctx is
// the request's, for its values (the request id on log lines).
func (s *Service) abortLater(ctx context.Context, ups map[string]mirrors.Upload) {
	ctx = context.WithoutCancel(ctx)
	for id, up := range ups {
		select {
		case s.aborts <- struct{}{}:
		default:
			s.cfg.Log.WarnContext(ctx, "too many aborts waiting; the janitor will remove this upload", "mirror", id, "key", up.Key)
			continue
		}
		s.bg.Go(func() {
			defer func() { <-s.aborts }()
			s.abortRetry(ctx, id, up)
		})
	}
}

func (s *Service) abortRetry(ctx context.Context, id string, up mirrors.Upload) {
	pause := s.cfg.AbortPause
	var err error
	for range abortTries {
		e, ok := s.cfg.Mirrors.Get(id)
		if !ok {
			return
		}
		if s.healthy(id) == nil {
			if err = abort(mirrors.Patient(context.Background()), e.Mirror, up, s.cfg.MirrorTimeout); err == nil {
				return
			}
		}
		select {
		case <-time.After(pause):
		case <-s.stop:
			return
		}
		pause *= 2
	}
	s.cfg.Log.WarnContext(ctx, "abort upload: giving up; the janitor will remove it", "mirror", id, "key", up.Key, "err", err)
}

// Close stops the background aborts and waits for them to end, and gives
// back the memory of pieces no upload holds.
func (s *Service) Close() {
	s.closeOnce.Do(func() { close(s.stop) })
	s.bg.Wait()
	s.pieces.close()
}

// abort aborts up on m within timeout; an upload the mirror no longer has
// is aborted already.
func abort(ctx context.Context, m mirrors.Mirror, up mirrors.Upload, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := m.Abort(ctx, up); err != nil && !errors.Is(err, mirrors.ErrNotFound) {
		return err
	}
	return nil
}
