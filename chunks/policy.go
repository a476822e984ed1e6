package chunks

// Mirror policy: which mirrors an upload may use, running an operation on
// all of them at once, and dropping those that fail while the write quorum
// holds.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// quorum is how many of n selected mirrors must succeed.
func (s *Service) quorum(n int) int {
	if s.cfg.WriteQuorum <= 0 || s.cfg.WriteQuorum > n {
		return n
	}
	return s.cfg.WriteQuorum
}

// live returns the session's mirrors that have not been dropped.
func live(sess *store.Session) []string {
	var ids []string
	for _, id := range sess.Mirrors {
		if _, failed := sess.Failed[id]; !failed {
			ids = append(ids, id)
		}
	}
	return ids
}

// drop records that a mirror failed and checks the quorum still holds.
// Failures of a request whose context ended are not the mirrors': nothing
// is recorded and the request's end is the error.
func (s *Service) drop(ctx context.Context, sess *store.Session, failures map[string]error) error {
	if len(failures) == 0 {
		return nil
	}
	if err := ended(ctx); err != nil {
		return err
	}
	sess.Failed = maps.Clone(sess.Failed)
	if sess.Failed == nil {
		sess.Failed = map[string]string{}
	}
	for id, err := range failures {
		sess.Failed[id] = err.Error()
		s.cfg.Log.WarnContext(ctx, "mirror dropped from upload", "mirror", id, "upload_key", sess.UploadKey, "err", err)
		if s.cfg.Suspect != nil {
			s.cfg.Suspect(id, err)
		}
	}
	if have, need := len(live(sess)), s.quorum(len(sess.Mirrors)); have < need {
		ids := slices.Sorted(maps.Keys(failures))
		return &Error{Kind: Unavailable,
			Msg: fmt.Sprintf("storage unavailable: mirror(s) %v failed and %d of %d required mirrors remain; retry later", ids, have, need),
			Err: errors.Join(slices.Collect(maps.Values(failures))...)}
	}
	return nil
}

// each runs fn for every live mirror of the session in parallel and returns
// the failures by mirror id. An operation without progress (p beats) for
// MirrorStall is cancelled and fails.
func (s *Service) each(ctx context.Context, sess *store.Session, fn func(ctx context.Context, id string, m mirrors.Mirror, p *pulse) error) map[string]error {
	type op struct {
		id     string
		cancel context.CancelCauseFunc
		pulse  pulse
		err    error
		done   bool
	}
	ids := live(sess)
	ops := make([]*op, len(ids))
	results := make(chan int, len(ids))
	for i, id := range ids {
		o := &op{id: id}
		ops[i] = o
		octx, cancel := context.WithCancelCause(ctx)
		o.cancel = cancel
		o.pulse.start()
		go func() {
			tctx, tcancel := context.WithTimeout(octx, s.cfg.MirrorTimeout)
			defer tcancel()
			var err error
			if e, ok := s.cfg.Mirrors.Get(id); !ok {
				err = fmt.Errorf("mirror %s is no longer configured", id)
			} else {
				err = fn(tctx, id, e.Mirror, &o.pulse)
			}
			if cause := context.Cause(octx); err != nil && cause != nil && ctx.Err() == nil {
				err = cause // why it was cancelled
			}
			o.err = err
			results <- i
		}()
	}
	t := time.NewTicker(s.tick())
	defer t.Stop()
	if s.cfg.MirrorStall <= 0 {
		t.Stop() // its channel never fires
	}
	for left := len(ops); left > 0; {
		select {
		case i := <-results:
			left--
			ops[i].done = true
		case now := <-t.C:
			for _, o := range ops {
				if !o.done && o.pulse.stalled(now, s.cfg.MirrorStall) {
					o.cancel(StallError{s.cfg.MirrorStall})
				}
			}
		}
	}
	failures := map[string]error{}
	for _, o := range ops {
		o.cancel(nil)
		if o.err != nil {
			failures[o.id] = o.err
		}
	}
	return failures
}

// healthy returns why the mirror failed its last health check, or nil.
func (s *Service) healthy(id string) error {
	if s.cfg.Health == nil {
		return nil
	}
	if err := s.cfg.Health(id); err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	return nil
}

// begin starts the upload on every live mirror of the session and records
// the uploads in it.
func (s *Service) begin(ctx context.Context, sess *store.Session) error {
	var mu sync.Mutex
	began := map[string]mirrors.Upload{}
	failures := s.each(ctx, sess, func(ctx context.Context, id string, m mirrors.Mirror, _ *pulse) error {
		if err := s.healthy(id); err != nil {
			return err
		}
		up, err := m.Begin(ctx, sess.ObjectKey)
		if err != nil {
			return fmt.Errorf("begin upload: %w", err)
		}
		mu.Lock()
		began[id] = up
		mu.Unlock()
		return nil
	})
	if err := s.drop(ctx, sess, failures); err != nil {
		s.abortAll(ctx, began)
		return err
	}
	sess.Uploads = began
	return nil
}

// abortAll discards uploads that were started but never recorded, trying
// each mirror once, at once, for a few seconds; those that fail are tried
// again in the background.
func (s *Service) abortAll(ctx context.Context, ups map[string]mirrors.Upload) {
	ctx = context.WithoutCancel(ctx)
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := map[string]mirrors.Upload{}
	for id, up := range ups {
		e, ok := s.cfg.Mirrors.Get(id)
		if !ok {
			continue
		}
		wg.Go(func() {
			if err := abort(ctx, e.Mirror, up, min(s.cfg.MirrorTimeout, abortWait)); err != nil {
				mu.Lock()
				failed[id] = up
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.abortLater(ctx, failed)
}

// SelectMirrors checks the mirror ids a client asked for against the
// configuration and the account's limits, and returns them without repeats.
func (s *Service) SelectMirrors(a store.Account, ids []string) ([]string, error) {
	var sel, drained []string
	for _, id := range ids {
		if id == "" || slices.Contains(sel, id) {
			continue
		}
		if _, ok := s.cfg.Mirrors.Get(id); !ok {
			return nil, Errorf(Invalid, "mirror %q does not exist", id)
		}
		if !Allowed(a, id) {
			return nil, Errorf(Invalid, "mirror %q is not allowed for this account", id)
		}
		if s.draining(id) {
			drained = append(drained, id)
			continue
		}
		sel = append(sel, id)
	}
	// A client naming a draining mirror gets another allowed one in its
	// place, so the file has as many copies as it asked for.
	if len(sel) == 0 && len(drained) > 0 && len(s.DefaultMirrors(a)) == 0 {
		return nil, Errorf(Invalid, "mirror(s) %v are being drained and no other mirror is allowed for this account", drained)
	}
	for _, e := range s.cfg.Mirrors.All() {
		if len(drained) == 0 {
			break
		}
		if Allowed(a, e.ID) && !s.draining(e.ID) && !slices.Contains(sel, e.ID) {
			sel, drained = append(sel, e.ID), drained[1:]
		}
	}
	if len(sel) == 0 {
		return nil, Errorf(Invalid, "no mirrors selected: send mirrors[] with at least one mirror id")
	}
	if a.MaxMirrors > 0 && len(sel) > a.MaxMirrors {
		return nil, Errorf(Invalid, "%d mirrors selected, more than this account's maximum of %d", len(sel), a.MaxMirrors)
	}
	return sel, nil
}

// draining reports whether the mirror is being drained.
func (s *Service) draining(id string) bool {
	return s.cfg.Draining != nil && s.cfg.Draining(id)
}

// Allowed reports whether the account may upload to the mirror.
func Allowed(a store.Account, id string) bool {
	return len(a.Mirrors) == 0 || slices.Contains(a.Mirrors, id)
}

// DefaultMirrors returns the mirrors an account uploads to when it names none.
func (s *Service) DefaultMirrors(a store.Account) []string {
	var ids []string
	for _, id := range a.DefaultMirrors {
		if _, ok := s.cfg.Mirrors.Get(id); ok && Allowed(a, id) && !s.draining(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		for _, e := range s.cfg.Mirrors.All() {
			if Allowed(a, e.ID) && !s.draining(e.ID) {
				ids = append(ids, e.ID)
			}
		}
	}
	if a.MaxMirrors > 0 && len(ids) > a.MaxMirrors {
		ids = ids[:a.MaxMirrors]
	}
	return ids
}
