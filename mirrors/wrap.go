package mirrors

// Decorators (timing, fault injection) are Mirrors that hold a Mirror. The
// optional interfaces (Concurrent, Pinger, Lister) are found through them
// with As, as errors.As finds an error in a chain: a decorator need not
// enumerate which of them the mirror it wraps has.

// Wrapper is a Mirror that decorates another, which Unwrap returns. A
// Wrapper may implement optional interfaces to see their calls (a timer
// times Ping); it passes them on to the mirror it wraps.
type Wrapper interface {
	Mirror
	Unwrap() Mirror
}

// As returns m as a T when the mirror at the end of m's chain of wrappers
// implements T, and false when it does not. The T returned is the outermost
// mirror of the chain that implements T, so calls through it pass every
// wrapper that wants to see them.
func As[T any](m Mirror) (T, bool) {
	var zero T
	base := m
	for {
		w, ok := base.(Wrapper)
		if !ok {
			break
		}
		base = w.Unwrap()
	}
	if _, ok := base.(T); !ok {
		return zero, false
	}
	for c := m; ; {
		if t, ok := c.(T); ok {
			return t, true
		}
		c = c.(Wrapper).Unwrap() // base implements T: the loop ends there
	}
}
