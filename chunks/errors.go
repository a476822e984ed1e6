package chunks

import (
	"errors"
	"fmt"
)

// Kind says who can fix an Error.
type Kind int

const (
	// Invalid: the request is wrong; the message says how.
	Invalid Kind = iota
	// TooLarge: a file or chunk is over its limit.
	TooLarge
	// Unavailable: storage failed; the same request may succeed later.
	Unavailable
	// OverQuota: the account's quota leaves no room for the file.
	OverQuota
	// Gone: the file was there and is no more (its download limit is used up).
	Gone
)

// Error is a failure the client should be told about in words.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // cause, if any; not shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the kind with a formatted message.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// tooLarge is the error of a file of size bytes over the maximum of max.
func tooLarge(size, max int64) *Error {
	return Errorf(TooLarge, "file of %d bytes is over the maximum file size of %d bytes", size, max)
}

// overMax is the error of a body that goes past a maximum file size of
// most bytes.
func overMax(most int64) *Error {
	return Errorf(TooLarge, "file is over the maximum size of %d bytes", most)
}

// unavailable wraps a storage failure the client may retry.
func unavailable(msg string, err error) *Error {
	return &Error{Kind: Unavailable, Msg: msg, Err: err}
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
