package storetest

import "testing"

// testPing: a store that is open answers.
func testPing(t *testing.T, e *env) {
	must(t, "Ping", e.s.Ping(e.ctx))
}
