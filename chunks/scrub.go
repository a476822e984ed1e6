package chunks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// The scrubber re-reads every copy of every file, compares its SHA-256 with
// the record, and rewrites a bad copy (changed, cut short or gone) from a
// good one. It reads at most Share of the time, pausing between reads, so
// it takes at most that share of a mirror's bandwidth.

// Scrub checks every copy of every active file once, reading at most share
// (0 < share <= 1) of the time, and returns how many bad copies it
// rewrote.
func (s *Service) Scrub(ctx context.Context, share float64) (int, error) {
	ctx = mirrors.Patient(ctx)
	if share <= 0 || share > 1 {
		share = 1
	}
	d := &duty{share: share, start: time.Now()}
	n := 0
	err := s.cfg.Store.EachFile(ctx, func(f store.File) error {
		if f.Status != store.StatusActive {
			return nil
		}
		n += s.scrub(ctx, f, d)
		return ctx.Err()
	})
	if err != nil {
		return n, fmt.Errorf("chunks: scrub: %w", err)
	}
	return n, nil
}

// scrub checks the copies of one file and rewrites the bad ones.
func (s *Service) scrub(ctx context.Context, f store.File, d *duty) int {
	var good, bad []string
	for _, id := range f.Mirrors {
		e, ok := s.cfg.Mirrors.Get(id)
		if !ok || s.healthy(id) != nil {
			continue
		}
		err := s.check(ctx, f, e.Mirror, d)
		switch {
		case err == nil:
			good = append(good, id)
		case errors.Is(err, errBadCopy) || errors.Is(err, mirrors.ErrNotFound):
			s.cfg.Log.Warn("scrub: bad copy", "slug", f.Slug, "mirror", id, "err", err)
			bad = append(bad, id)
		default: // the mirror failed; not the copy's fault
			s.cfg.Log.Warn("scrub: cannot read copy", "slug", f.Slug, "mirror", id, "err", err)
		}
	}
	if len(bad) == 0 {
		return 0
	}
	if len(good) == 0 {
		s.cfg.Log.Error("scrub: no good copy left to rewrite bad ones from", "slug", f.Slug, "bad", bad)
		return 0
	}
	src := f
	src.Mirrors = good
	n := 0
	for _, id := range bad {
		e, _ := s.cfg.Mirrors.Get(id)
		if err := s.copyTo(ctx, src, e.Mirror); err != nil {
			s.cfg.Log.Warn("scrub: rewrite bad copy", "slug", f.Slug, "mirror", id, "err", err)
			continue
		}
		if _, gone, err := s.removed(ctx, f); err != nil || gone {
			if gone {
				s.deleteCopy(ctx, id, f.ObjectKey)
			}
			s.cfg.Log.Warn("scrub: rewrite bad copy", "slug", f.Slug, "mirror", id, "removed", gone, "err", err)
			continue
		}
		s.cfg.Log.Info("scrub: rewrote a bad copy", "slug", f.Slug, "mirror", id)
		n++
	}
	return n
}

// removed reads f's record as it is now and reports whether it no longer
// serves f's object (the file was removed or taken down), so that a copy
// just written for it is not left behind.
func (s *Service) removed(ctx context.Context, f store.File) (cur store.File, gone bool, err error) {
	cur, err = s.cfg.Store.File(ctx, f.Slug)
	if errors.Is(err, store.ErrNotFound) {
		return cur, true, nil
	}
	if err != nil {
		return cur, false, fmt.Errorf("read the record after writing a copy: %w", err)
	}
	return cur, cur.ObjectKey != f.ObjectKey || cur.Status != store.StatusActive, nil
}

// errBadCopy is a copy whose bytes are not the file's.
var errBadCopy = errors.New("the copy differs from the record")

// check reads one copy whole and compares it with the record.
func (s *Service) check(ctx context.Context, f store.File, m mirrors.Mirror, d *duty) error {
	t := time.Now()
	rc, err := m.Open(ctx, f.ObjectKey, 0, -1)
	if werr := d.spent(ctx, t); err == nil {
		err = werr
	}
	if err != nil {
		if rc != nil {
			rc.Close()
		}
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, d.reader(ctx, rc), make([]byte, 256<<10))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || sum != f.SHA256 {
		return fmt.Errorf("%w: %d bytes, SHA-256 %s; the record says %d, %s", errBadCopy, n, sum, f.Size, f.SHA256)
	}
	return nil
}

// duty keeps the time spent working at most share of the time since
// start, by pausing after reads. It may be shared by several readers at
// once: their times add up.
type duty struct {
	share float64
	start time.Time
	mu    sync.Mutex
	busy  time.Duration
}

// spent counts the time since t as busy and pauses as long as the share
// asks.
func (d *duty) spent(ctx context.Context, t time.Time) error {
	d.mu.Lock()
	d.busy += time.Since(t)
	idle := time.Duration(float64(d.busy)/d.share) - time.Since(d.start)
	d.mu.Unlock()
	if idle > 0 {
		select {
		case <-time.After(idle):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// reader counts the time r's reads take.
func (d *duty) reader(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		t := time.Now()
		n, err := r.Read(p)
		if werr := d.spent(ctx, t); err == nil {
			err = werr
		}
		return n, err
	})
}

// stream counts the time from the first read of r to its last, pauses
// excepted: the reads and what the consumer does with the bytes between
// them.
func (d *duty) stream(ctx context.Context, r io.Reader) io.Reader {
	var since time.Time
	return readerFunc(func(p []byte) (int, error) {
		if since.IsZero() {
			since = time.Now()
		}
		n, err := r.Read(p)
		if werr := d.spent(ctx, since); err == nil {
			err = werr
		}
		since = time.Now()
		return n, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
