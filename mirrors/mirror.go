// Package mirrors defines where file bytes live: a Mirror is one storage
// target (an S3 bucket, a local directory) written through multipart uploads.
//
// Implementations live in their own packages (fsmirror, s3mirror) and pass the
// conformance suite in mirrortest.
package mirrors

import (
	"context"
	"errors"
	"io"
	"time"
)

// Response is what a mirror answers a client's GET with besides the bytes,
// where acestash would have set it.
type Response struct {
	ContentType        string
	ContentDisposition string
	CacheControl       string
}

// Presigner is implemented by mirrors that clients can read from
// directly, through a URL the mirror signs: a download can then be
// redirected there instead of passing through acestash.
type Presigner interface {
	// PresignGet returns a URL through which anyone may GET the object
	// (whole or by Range) until expiry has passed, answered with resp's
	// headers.
	PresignGet(ctx context.Context, key string, expiry time.Duration, resp Response) (string, error)
}

// Splicer is implemented by readers that Open returns when they can hand
// their bytes to a writer's io.ReaderFrom themselves, as a socket the
// kernel copies to the client's socket without passing them through the
// process (splice(2)).
type Splicer interface {
	// Splice writes the reader's next bytes to w while the mirror sends
	// them and returns how many it wrote. It stops early, leaving the rest
	// to Read, when w cannot take them that way, when the mirror ends the
	// body early and when the copy fails (Read then tells whose fault it
	// was); stalled reports that it stopped because the mirror sent no
	// byte for stall.
	Splice(w io.Writer, stall time.Duration) (n int64, stalled bool)
}

// ErrNotFound is returned (wrapped) when an object or upload does not exist.
var ErrNotFound = errors.New("not found")

// Upload names one multipart upload in progress on a mirror.
type Upload struct {
	Key string // object key the upload will produce
	ID  string // mirror-assigned upload id
}

// Part is what a mirror reports after storing one chunk of an upload.
// Callers keep the Part of the latest chunk (and the one before it, to allow
// a retry) and hand it back to PutPart and Complete; they never look inside
// Token.
type Part struct {
	N     int    // chunk number, 1 for the first chunk
	Size  int64  // bytes in the upload up to and including this chunk
	Token string // mirror-defined state; opaque to callers
}

// Info describes a stored object.
type Info struct {
	Size     int64
	Modified time.Time
}

// Mirror stores objects under keys, written chunk by chunk.
//
// An upload receives its chunks in order. PutPart with prev set to the Part of
// chunk n-1 (the zero Part for the first chunk) stores chunk n; calling it
// again with the same prev replaces chunk n, so a failed or repeated chunk can
// be retried. Chunks may have any size, including 0. Complete publishes chunks
// 1..last.N, in order, as the object; the zero Part publishes an empty object.
// The object is not visible to Open or Stat before Complete returns.
//
// Put stores a whole object in one call, for bytes that arrive at once.
//
// All methods are safe for concurrent use. Errors wrap ErrNotFound where the
// key or upload does not exist.
type Mirror interface {
	// Put stores exactly size bytes from r as the object under key,
	// replacing any object there. The object is not visible to Open or
	// Stat before Put returns, and a failed Put leaves the old one.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Begin starts an upload that Complete will publish under key.
	Begin(ctx context.Context, key string) (Upload, error)
	// PutPart stores the chunk after prev, reading exactly size bytes from r.
	PutPart(ctx context.Context, up Upload, prev Part, r io.Reader, size int64) (Part, error)
	// Complete publishes the upload's chunks up to and including last.
	Complete(ctx context.Context, up Upload, last Part) error
	// Abort discards the upload and everything stored for it.
	Abort(ctx context.Context, up Upload) error
	// Open reads length bytes of the object from offset off; length < 0 reads
	// to the end.
	Open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Stat reports the object's size and modification time.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// Concurrent is implemented by mirrors that can store several chunks of
// one upload at the same time, so that a writer need not wait for a chunk
// before it sends the next.
type Concurrent interface {
	// Next returns the Part to pass as prev for the chunk after a chunk of
	// size bytes that is being stored after prev, and false when that
	// chunk must be stored before the next can start.
	Next(prev Part, size int64) (Part, bool)
	// Settle returns the Part of the last of parts: the results of PutPart
	// calls for successive chunks, in order, each made after the Part
	// Next gave for the one before.
	Settle(parts []Part) Part
}

// Pinger is implemented by mirrors that can report their health cheaply.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Lister is implemented by mirrors that can list what they hold, so that
// what no record points to can be found and removed.
type Lister interface {
	// ListObjects calls fn for every object whose key starts with prefix, in
	// no particular order, until fn returns an error, which it returns.
	// Objects of uploads in progress are not listed.
	ListObjects(ctx context.Context, prefix string, fn func(key string, info Info) error) error
	// ListUploads calls fn for every upload in progress whose key starts with
	// prefix, with when it began, until fn returns an error.
	ListUploads(ctx context.Context, prefix string, fn func(up Upload, began time.Time) error) error
}

// patientKey marks contexts of background jobs.
type patientKey struct{}

// Patient marks ctx as a background job's (repair, scrubbing, the
// janitor, aborts left for later): mirrors may retry its operations at
// leisure, where a client's request gets one try and moves on.
func Patient(ctx context.Context) context.Context {
	return context.WithValue(ctx, patientKey{}, true)
}

// IsPatient reports whether ctx was marked by Patient.
func IsPatient(ctx context.Context) bool {
	p, _ := ctx.Value(patientKey{}).(bool)
	return p
}
