package tus

import (
	"sync"
	"time"
)

// A pace holds a request body to a minimum rate, as acestash's other
// endpoints do: while the server waits in a read, the client must bring
// need bytes in every window of waiting. Time the server spends elsewhere
// (writing to the mirrors) does not count. tusd sets read deadlines of its
// own, so a body too slow is not failed by a deadline but ended as a
// stopped request is: its bytes are kept and the client may resume.
type pace struct {
	need   int64
	window time.Duration

	mu      sync.Mutex
	got     int64         // bytes in the current window
	waited  time.Duration // waiting in it, before the read in progress
	reading bool
	since   time.Time // when the read in progress began
}

// newPace returns the pace of rate bytes a second over window. It measures
// time as it passes, never by the store's clock.
func newPace(rate int64, window time.Duration) *pace {
	return &pace{need: max(1, int64(float64(rate)*window.Seconds())), window: window}
}

// begin and end bracket a read of the body that brought n bytes.
func (p *pace) begin() {
	p.mu.Lock()
	p.reading, p.since = true, time.Now()
	p.mu.Unlock()
}

func (p *pace) end(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reading = false
	p.waited += time.Now().Sub(p.since)
	if p.got += int64(n); p.got >= p.need {
		p.got, p.waited = 0, 0
	}
}

// late reports whether a window of waiting has passed without need bytes.
func (p *pace) late() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.waited
	if p.reading {
		w += time.Now().Sub(p.since)
	}
	return w >= p.window
}

// watch calls cut once the body is late, checking four times a window,
// until done is closed.
func (p *pace) watch(done <-chan struct{}, cut func()) {
	every(done, max(p.window/4, time.Millisecond), func() bool {
		if p.late() {
			cut()
			return false
		}
		return true
	})
}

// every calls fn each period until done is closed or fn returns false.
func every(done <-chan struct{}, period time.Duration, fn func() bool) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}
