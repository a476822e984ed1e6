package chunks

import "github.com/acestash/acestash/store"

// Which chunk a request carries. The three public clients write
// Content-Range differently (inclusive ends, exclusive ends, and starts that
// drift a byte a chunk), so the bytes decide: a chunk's bytes are appended
// to those held, and its start only says whether it continues the upload or
// retries the latest chunk.

// classify applies the continuation and retry rules (README, "How chunked
// uploads are understood") and returns where the request's chunk goes.
func (s *Service) classify(sess store.Session, r *Range, a store.Account) (step, error) {
	maxFile := s.MaxFileSize(a)
	// PHP's example sends max_chunk_size+1 bytes a chunk; allow that one byte.
	limit := s.cfg.MaxChunkSize + 1
	st := step{start: 0, end: -1, total: -1, ends: true} // the whole file at once
	switch {
	case r == nil && sess.Chunks > 0:
		return step{}, Errorf(Invalid, "this upload already holds %d bytes: send the next chunk with a Content-Range header", sess.Held)
	case r == nil:
		limit = min(limit, maxFile)
	default:
		var err error
		if st, err = continued(sess, *r, maxFile); err != nil {
			return step{}, err
		}
	}
	st.whole = sess.Chunks == 0 && st.base == 0
	st.limit, st.over = limit, Errorf(TooLarge, "chunk is over its limit of %d bytes", limit)
	if left := st.total - st.base; st.total >= 0 && left < limit {
		st.limit, st.over = left, Errorf(Invalid, "chunk goes past the Content-Range total of %d bytes (%d held before it)", st.total, st.base)
	}
	return st, nil
}

// continued places a chunk sent with a Content-Range.
func continued(sess store.Session, r Range, maxFile int64) (step, error) {
	if r.Total > maxFile {
		return step{}, tooLarge(r.Total, maxFile)
	}
	if sess.Total >= 0 && sess.Chunks > 0 && r.Total != sess.Total {
		return step{}, Errorf(Invalid, "Content-Range total changed from %d to %d", sess.Total, r.Total)
	}
	st := step{start: r.Start, end: r.End, total: r.Total}
	switch {
	case r.Start == sess.Held:
		st.base = sess.Held
	case sess.Chunks > 0 && r.Start == sess.LastStart:
		st.retry, st.base = true, sess.PrevHeld
	case sess.Chunks > 0 && (r.Start == sess.LastEnd || r.Start == sess.LastEnd+1):
		st.base = sess.Held
	case sess.Chunks > 0 && r.Start == sess.LastStart+(sess.Held-sess.PrevHeld)+1:
		// mirror_up's start drifts one byte a chunk even where its end
		// was cut at the total.
		st.base = sess.Held
	default:
		return step{}, Errorf(Invalid, "Content-Range start %d does not continue this upload: expected %d", r.Start, sess.Held)
	}
	return st, nil
}
