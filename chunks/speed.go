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
	served  time.Time       // when it last brought a read's first bytes
	asking  int             // reads waiting for its first bytes
	slow    time.Time       // read after the others until then
	hung    time.Time       // read after the slow ones too until then
	late    int             // reads that asked another mirror too while they wait for it
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
	sp.served = time.Now()
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

// overdue counts reads of the mirror that asked another one too while
// they wait for it (d = 1), and those that then answered (d = -1). While
// any waits, the mirror ranks lower (see rank).
func (s *speeds) overdue(id string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(id).late += d
}

// asking counts the reads that asked the mirror and have no answer yet
// (d = 1 when one asks, -1 when it answers).
func (s *speeds) asking(id string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(id).asking += d
}

// patience returns how much longer a read that asked the mirror at asked
// waits for its first byte before it asks the next mirror as well (wait
// is its hedge wait, and 0 says now), and whether the mirror is busy
// serving other reads. With hedge_after set, that is the wait.
// Otherwise a read asks the next mirror:
//   - once hedgeFloor has passed, if other reads wait on the mirror too
//     or it let one down lately, and it has brought none its first byte
//     since: it looks hung, which counts against it in rank for slowFor;
//   - once wait has passed, if the mirror has brought no read its first
//     byte since (nothing else asked it, or it is hung);
//   - once twice wait has passed, if the mirror served others meanwhile:
//     it is busy, not hung, and a hedge would only add to the load of a
//     machine that is late everywhere.
func (s *speeds) patience(id string, asked time.Time, wait time.Duration) (d time.Duration, busy bool) {
	waited := time.Since(asked)
	if s.fixed > 0 {
		return max(0, s.fixed-waited), false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.get(id)
	now := time.Now()
	silent := !sp.served.After(asked)
	others := sp.asking > 1 || sp.late > 0 || now.Before(sp.slow)
	switch {
	case silent && others && waited >= hedgeFloor:
		sp.hung = now.Add(slowFor)
		return 0, false
	case silent:
		return max(0, wait-waited), false
	default:
		return max(0, 2*wait-waited), true
	}
}

// isFixed reports whether hedge_after sets every mirror's hedge wait.
func (s *speeds) isFixed() bool { return s.fixed > 0 }

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

// rank is where the mirror stands among the others a read may ask, from
// what reads saw of it lately, higher being worse: 2 if it looked hung
// lately, plus 1 if it keeps a read waiting past its time now, plus 1 if
// it let a read down lately.
func (s *speeds) rank(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.byID[id]
	if sp == nil {
		return 0
	}
	now := time.Now()
	r := 0
	if now.Before(sp.hung) {
		r += 2
	}
	if sp.late > 0 {
		r++
	}
	if now.Before(sp.slow) {
		r++
	}
	return r
}
