package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/chunks"
)

// Every failure reaches a client as a problem: an HTTP status saying what
// kind of failure it is, words the client can act on, and the cause for the
// log. Handlers return errors; the dialect of the route's group writes them
// (see dialects.go).

// problem is a failure told to the client.
type problem struct {
	status int    // what kind of failure, as an HTTP status
	msg    string // shown to the client
	rocket string // Rocket.Chat's errorType, where it names one
	// routing marks failures of the HTTP layer itself (no such route, a
	// body over Echo's limit) rather than of a call.
	routing bool
	err     error // the cause: logged, never shown
}

func (p *problem) Error() string {
	if p.err != nil {
		return p.msg + ": " + p.err.Error()
	}
	return p.msg
}

func (p *problem) Unwrap() error { return p.err }

// fail is a problem with a status and words.
func fail(status int, msg string) *problem { return &problem{status: status, msg: msg} }

// badRequest is a request the client must change.
func badRequest(msg string) *problem { return fail(http.StatusBadRequest, msg) }

// unavailable is a storage failure worth retrying.
func unavailable(msg string, err error) *problem {
	return &problem{status: http.StatusServiceUnavailable, msg: msg, err: err}
}

// asProblem names any error as a problem: the errors of chunks by their
// kind, Echo's own by their status, anything else as an internal error.
func asProblem(err error) *problem {
	var p *problem
	var fe errForm
	var he *echo.HTTPError
	if errors.As(err, &p) {
		return p
	}
	if ce, ok := chunks.AsError(err); ok {
		status := http.StatusBadRequest
		switch ce.Kind {
		case chunks.TooLarge, chunks.OverQuota:
			status = http.StatusRequestEntityTooLarge
		case chunks.Unavailable:
			status = http.StatusServiceUnavailable
		case chunks.Gone:
			status = http.StatusGone
		}
		return &problem{status: status, msg: ce.Msg, err: err}
	}
	if errors.As(err, &fe) {
		return &problem{status: http.StatusBadRequest, msg: fe.msg, err: fe.err}
	}
	if errors.As(err, &he) {
		msg := fmt.Sprint(he.Message)
		if he.Code == http.StatusRequestEntityTooLarge && he.Internal != nil {
			msg = "request body is too large" // Echo's body limit
		}
		return &problem{status: he.Code, msg: msg, routing: true, err: he.Internal}
	}
	return &problem{status: http.StatusInternalServerError, msg: "internal server error; the failure is logged", err: err}
}
