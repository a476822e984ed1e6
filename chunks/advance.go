package chunks

import (
	"context"
	"errors"
	"io"

	"github.com/acestash/acestash/store"
)

// The upload state machine. Every way bytes reach an upload (a MirrorAce
// chunk or whole file, a tus PATCH, a file stored by Fill, Put or Join)
// moves a session through the same states, by the same code:
//
//	issued  a key from Issue, nothing chosen yet (Started false)
//	open    Started; Held bytes of Total (-1 while unknown) on the mirrors
//	held    Held == Total: every byte is there, the file is not published
//	done    Done: the file is published (a partial upload: completed)
//
// A body moves an issued or open upload forward under the upload's lease:
// feed writes it, where its step places it, through the fan-out and books
// it (Held, Hash and Last, and in PrevHeld, PrevHash and Prev what they were
// before, so that a retried chunk can replace the latest); saveHeld stores
// the session, keeping the lease or ending it. A body past its step's limit
// or the account's quota is refused and nothing of it is kept. Chunk
// (upload.go) and Append (stream.go) call both; whole (Fill, Put, Join)
// feeds a session that has begun on no mirror and completes it at once.
// A held upload is published by finish or complete (publish.go,
// stream.go); one that crosses its quota, is cancelled or lies idle is
// discarded, its session deleted.

// step is where one body's bytes go in an upload, and how many may come.
type step struct {
	retry      bool  // the body replaces the latest chunk
	base       int64 // bytes held before the body
	start, end int64 // Content-Range values to remember
	total      int64 // the file's size, -1 until known
	ends       bool  // the body is the rest of the file: its end is the total
	// whole: the body may be the whole file; if it fits in a piece (and is
	// total bytes long, when total is known) it is stored with one Put a
	// mirror instead of a multipart upload.
	whole bool
	limit int64 // most bytes the body may carry, before the account's quota
	over  error // what a body of more than limit bytes is told
}

// feed writes body's bytes to the mirrors of sess, whose lease the caller
// holds, where st places them, and returns the session after them, not yet
// stored, with the write that put them there (for undo). On error nothing
// it wrote is left, and the error is the client's: a body cut at what the
// account's quota leaves crosses it (OverQuota), one past st.limit gets
// st.over.
func (s *Service) feed(ctx context.Context, a store.Account, sess store.Session, st step, body io.Reader) (store.Session, *write, error) {
	limit, quota, err := s.capped(ctx, a, st.total, st.base, st.limit)
	if err != nil {
		return sess, nil, err
	}
	state, prev := sess.Hash, sess.Last
	if st.retry {
		state, prev = sess.PrevHash, sess.Prev
	}
	h, err := restoreHash(state)
	if err != nil {
		return sess, nil, err
	}
	next := sess
	w := s.newWrite(&next, prev, h)
	w.whole, w.total = st.whole, st.total
	err = w.copy(ctx, body, limit)
	var sum []byte
	if err == nil {
		sum, err = saveHash(h)
	}
	if err != nil {
		s.undo(ctx, &next, w, sess.Uploads == nil)
		switch {
		case errors.Is(err, errOver) && quota >= 0:
			err = crossed(a, quota)
		case errors.Is(err, errOver):
			err = st.over
		}
		return sess, nil, err
	}
	if !st.retry {
		next.PrevHeld, next.PrevHash, next.Prev = sess.Held, sess.Hash, sess.Last
		next.Chunks++
	}
	next.Held, next.Hash, next.Last = st.base+w.n, sum, w.parts
	next.LastStart, next.LastEnd, next.Total = st.start, st.end, st.total
	if st.ends {
		next.Total = next.Held
	}
	if st.base == 0 && w.n > 0 && (st.retry || next.Type == "") {
		next.Type = w.sniff() // a type the client declared stays
	}
	next.Started, next.Updated = true, s.cfg.Clock().UTC()
	return next, w, nil
}

// saveHeld stores next, the session after base, written under holder's
// lease. The save renews the lease as it stands (next was read before the
// holder's renewals, which do not change the session's Version, so its end
// would be an old one), or ends it when next's Lease is cleared. Another
// request asking for the lease is no conflict: the save is tried again over
// the session as it is now. A lease lost is a busy error (wrapping
// store.ErrConflict); fail says what failed when the store does.
func (s *Service) saveHeld(ctx context.Context, base, next store.Session, holder, fail string) (store.Session, error) {
	for range 5 {
		if next.Lease == holder {
			next.LeaseUntil = s.until()
		}
		saved, err := s.cfg.Store.UpdateSession(ctx, next)
		if err == nil {
			return saved, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return base, unavailable(fail, err)
		}
		cur, err := s.cfg.Store.Session(ctx, next.UploadKey)
		if err != nil {
			return base, unavailable(fail, err)
		}
		if cur.Lease != holder || cur.Held != base.Held || cur.Total != base.Total || cur.Done != base.Done {
			return base, busy(store.ErrConflict)
		}
		next.Version, next.LeaseWants = cur.Version, cur.LeaseWants
	}
	return base, busy(store.ErrConflict)
}
