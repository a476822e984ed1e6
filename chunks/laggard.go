package chunks

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Laggards: the write quorum protects data, not time, so an upload waits
// for a mirror only while it keeps up. Once write_quorum mirrors hold a
// piece that a mirror is still storing, and that mirror has taken no
// bytes, for LagLimit plus four times what those mirrors took for the piece,
// it is dropped from the upload: its copy is recorded as missing and left
// to the repairer, as if it had failed. A mirror that is slow but still
// taking bytes is not dropped: on a loaded machine every mirror is slow
// at times. Whatever the quorum, an operation on a mirror that makes no
// progress for MirrorStall (no bytes taken, no answer) is given up and
// that mirror fails; this is what bounds Begin and Complete, which carry
// no bytes and whose cost to redo (a repair of the whole file) is far
// above a few seconds' wait.

// Defaults of Config.LagLimit and Config.MirrorStall.
const (
	DefaultLagLimit    = 200 * time.Millisecond
	DefaultMirrorStall = 15 * time.Second
)

// lagSlack is how many times what the quorum took for a piece or an
// operation a mirror may take beyond LagLimit: on a loaded machine, where
// every mirror is slow, slow is not lagging.
const lagSlack = 4

// laggedError is a mirror dropped for falling behind the quorum.
type laggedError struct{ behind time.Duration }

func (e laggedError) Error() string {
	return fmt.Sprintf("fell %v behind the other mirrors; dropped from the upload, to be repaired", e.behind.Round(time.Millisecond))
}

// StallError is a mirror operation that made no progress for the stall
// limit.
type StallError struct{ Limit time.Duration }

func (e StallError) Error() string {
	return fmt.Sprintf("no progress for %v", e.Limit)
}

// pulse tells when a mirror's operations last made progress.
type pulse struct {
	busy atomic.Int32 // operations in progress
	last atomic.Int64 // Unix nanoseconds of the last progress
}

// beat records progress.
func (p *pulse) beat() {
	if p != nil {
		p.last.Store(time.Now().UnixNano())
	}
}

// start counts an operation in; the first one starts the clock.
func (p *pulse) start() {
	if p.busy.Add(1) == 1 {
		p.beat()
	}
}

// end counts an operation out; ending is progress.
func (p *pulse) end() {
	p.beat()
	p.busy.Add(-1)
}

// idle returns how long ago the last progress was.
func (p *pulse) idle(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, p.last.Load()))
}

// stalled reports whether an operation has been in progress without
// progress for longer than limit.
func (p *pulse) stalled(now time.Time, limit time.Duration) bool {
	return limit > 0 && p.busy.Load() > 0 && p.idle(now) > limit
}

// lagWait is how long a mirror may stay behind a quorum that took took.
func (s *Service) lagWait(took time.Duration) time.Duration {
	return s.cfg.LagLimit + lagSlack*took
}

// watching reports whether laggards or stalls are looked for at all.
func (s *Service) watching() bool { return s.cfg.LagLimit > 0 || s.cfg.MirrorStall > 0 }

// tick is how often laggards and stalls are looked for.
func (s *Service) tick() time.Duration {
	d := max(s.cfg.LagLimit, s.cfg.MirrorStall)
	for _, l := range []time.Duration{s.cfg.LagLimit, s.cfg.MirrorStall} {
		if l > 0 {
			d = min(d, l)
		}
	}
	return max(10*time.Millisecond, d/8)
}

// ended returns the error of a request whose context ended, or nil: its
// mirrors did not fail, the request did.
func ended(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("chunks: the request ended: %w", context.Cause(ctx))
}
