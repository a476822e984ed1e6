package chunks

import (
	"slices"
	"sync"
	"time"
)

// Defaults of the read path's timing.
const (
	// hedgeFloor is the least a read waits for a mirror's first byte
	// before it asks another one too: below it, hedges would double the
	// load of healthy mirrors for nothing.
	hedgeFloor = 20 * time.Millisecond
	// hedgeUnknown is the wait while a mirror has too few samples to say.
	hedgeUnknown = 200 * time.Millisecond
	// minSamples is how many first-byte times a mirror needs before its
	// own percentile sets its hedge.
	minSamples = 20
	// keptSamples is how many of a mirror's latest first-byte times count.
	keptSamples = 128
	// slowFor is how long a mirror that lost a hedged read, stalled or
	// failed is read after the others.
	slowFor = 10 * time.Second
)

// speeds keeps, for each mirror, how long its latest reads took to bring
// their first byte, and when it last let a read down. Reads use it to
// order mirrors and to choose when to ask a second one.
type speeds struct {
	fixed time.Duration // hedge_after when set; 0 derives it

	mu     sync.Mutex
	byID   map[string]*speed
	sorted []time.Duration // scratch for percentiles, under mu
}

type speed struct {
	samples []time.Duration // a ring of the latest keptSamples
	n       int             // samples ever taken
	hedge   time.Duration   // the wait samples give, refreshed as they come
	slow    time.Time       // read after the others until then
	late    int             // reads waiting for it past their hedge wait
}

// newSpeeds returns a tracker; fixed, when positive, is the hedge wait of
// every mirror. Its times are the process's own, not the store's clock.
func newSpeeds(fixed time.Duration) *speeds {
	return &speeds{fixed: fixed, byID: map[string]*speed{}}
}

func (s *speeds) get(id string) *speed {
	sp := s.byID[id]
	if sp == nil {
		sp = &speed{hedge: hedgeUnknown}
		s.byID[id] = sp
	}
	return sp
}

// firstByte records how long a read of the mirror took to bring its first
// byte.
func (s *speeds) firstByte(id string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.get(id)
	if len(sp.samples) < keptSamples {
		sp.samples = append(sp.samples, d)
	} else {
		sp.samples[sp.n%keptSamples] = d
	}
	sp.n++
	// The 95th percentile, refreshed every 8 samples (sorting 128
	// durations takes about a microsecond).
	if sp.n >= minSamples && sp.n%8 == 0 {
		s.sorted = append(s.sorted[:0], sp.samples...)
		slices.Sort(s.sorted)
		sp.hedge = max(hedgeFloor, s.sorted[len(s.sorted)*95/100])
	}
}

// letDown records that the mirror lost a hedged read, stalled or failed:
// it is read after the others for a while.
func (s *speeds) letDown(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(id).slow = time.Now().Add(slowFor)
}

// overdue counts reads of the mirror waiting past their hedge wait (d = 1)
// and those that then answered (d = -1). While any waits, the mirror is
// read after the others: when it hangs, the reads that come after the
// first overdue one do not wait for it at all.
func (s *speeds) overdue(id string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(id).late += d
}

// hedgeAfter is how long a read waits for the mirror's first byte before it
// asks the next mirror as well.
func (s *speeds) hedgeAfter(id string) time.Duration {
	if s.fixed > 0 {
		return s.fixed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(id).hedge
}

// isSlow reports whether the mirror let a read down lately, or keeps one
// waiting past its hedge wait now.
func (s *speeds) isSlow(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.byID[id]
	return sp != nil && (sp.late > 0 || time.Now().Before(sp.slow))
}
