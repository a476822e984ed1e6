// Package store keeps acestash's metadata: accounts, upload sessions and file
// records. File bytes live on mirrors, never here.
//
// Implementations live in their own packages (boltstore, redisstore) and pass
// the conformance suite in storetest.
package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/acestash/acestash/mirrors"
)

var (
	// ErrNotFound is returned (wrapped) for a missing or expired record.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned (wrapped) when creating a record whose key is taken.
	ErrExists = errors.New("already exists")
	// ErrConflict is returned (wrapped) by UpdateSession when the session
	// changed since it was read, and by UpdateFile when it would bring back
	// a file taken down.
	ErrConflict = errors.New("changed concurrently")
	// ErrLeased is returned (wrapped) by Lease when another holder's lease
	// on the session is still running.
	ErrLeased = errors.New("leased by another request")
)

// Account is an API user.
type Account struct {
	Name        string `json:"name"`
	APIKey      string `json:"api_key"`
	TokenHash   []byte `json:"token_hash"` // HashToken of the api_token
	UserID      string `json:"user_id"`    // public 17-character id (Rocket.Chat)
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`

	Mirrors        []string `json:"mirrors,omitempty"`         // allowed mirror ids; empty allows all
	DefaultMirrors []string `json:"default_mirrors,omitempty"` // empty means the allowed ones
	MaxMirrors     int      `json:"max_mirrors,omitempty"`     // 0 means no account limit
	MaxFileSize    int64    `json:"max_file_size,omitempty"`   // 0 means the server limit
	Rooms          []string `json:"rooms,omitempty"`           // Rocket.Chat rooms; empty allows all
	QuotaBytes     int64    `json:"quota_bytes,omitempty"`     // most bytes of files stored; 0 means no limit
	QuotaFiles     int64    `json:"quota_files,omitempty"`     // most files stored; 0 means no limit
	// DefaultExpiry is how long a file is kept when its upload does not
	// say; MaxExpiry the longest an upload may ask for. 0: forever, no limit.
	DefaultExpiry time.Duration `json:"default_expiry,omitempty"`
	MaxExpiry     time.Duration `json:"max_expiry,omitempty"`
}

// HashToken returns the form in which an API token is stored. Tokens are
// random and long, so a fast hash is enough; compare with CheckToken.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// CheckToken reports, in constant time, whether token is the account's.
func (a Account) CheckToken(token string) bool {
	return len(a.TokenHash) == sha256.Size &&
		subtle.ConstantTimeCompare(HashToken(token), a.TokenHash) == 1
}

// Session is one upload: created with its upload key by file/upload, then
// advanced chunk by chunk until it completes.
type Session struct {
	UploadKey string    `json:"upload_key"`
	CTracker  string    `json:"ctracker"` // empty for a stream upload (tus)
	APIKey    string    `json:"api_key"`  // owner
	Issued    time.Time `json:"issued"`
	// Expires is when an upload key that never started an upload lapses.
	Expires time.Time `json:"expires"`
	Started bool      `json:"started"`
	Updated time.Time `json:"updated"`
	// Version increases with every UpdateSession; the store sets it.
	Version int64 `json:"version"`

	Name         string   `json:"name,omitempty"`
	Type         string   `json:"type,omitempty"` // sniffed from the first bytes
	PasswordHash []byte   `json:"password_hash,omitempty"`
	Mirrors      []string `json:"mirrors,omitempty"` // mirror ids still being written
	ObjectKey    string   `json:"object_key,omitempty"`

	Total     int64  `json:"total"`      // -1 until known
	Held      int64  `json:"held"`       // bytes stored so far
	Chunks    int    `json:"chunks"`     // chunks stored so far
	LastStart int64  `json:"last_start"` // Content-Range start of the latest chunk
	LastEnd   int64  `json:"last_end"`   // Content-Range end of the latest chunk
	PrevHeld  int64  `json:"prev_held"`  // Held before the latest chunk
	Hash      []byte `json:"hash"`       // serialised SHA-256 state after the latest chunk
	PrevHash  []byte `json:"prev_hash"`  // ... and before it

	Uploads map[string]mirrors.Upload `json:"uploads,omitempty"` // by mirror id
	Last    map[string]mirrors.Part   `json:"last,omitempty"`    // by mirror id
	Prev    map[string]mirrors.Part   `json:"prev,omitempty"`    // by mirror id
	Failed  map[string]string         `json:"failed,omitempty"`  // mirror id -> why it was dropped
	Slug    string                    `json:"slug,omitempty"`    // reserved when publishing starts
	Done    bool                      `json:"done,omitempty"`    // the file is published
	// FileExpires and MaxDownloads are the published file's Expires and
	// MaxDownloads, decided when the upload starts.
	FileExpires  time.Time `json:"file_expires,omitzero"`
	MaxDownloads int64     `json:"max_downloads,omitempty"`

	// Meta is what the client said about a file sent as one stream (tus's
	// Upload-Metadata), kept to be told back.
	Meta map[string]string `json:"meta,omitempty"`
	// Partial marks a stream upload that is to be joined into another
	// file and is never published by itself; Joined lists, in order, the
	// upload keys of the partial uploads a file was joined from.
	Partial bool     `json:"partial,omitempty"`
	Joined  []string `json:"joined,omitempty"`

	// Lease names the request writing to the mirrors until LeaseUntil; no
	// other request writes while it holds. Lease sets both.
	Lease      string    `json:"lease,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// LeaseWants counts the requests that asked the lease's holders to let
	// go; a holder that sees it grow ends its request.
	LeaseWants int `json:"lease_wants,omitempty"`
}

// Status values of a File.
const (
	StatusActive    = "active"
	StatusUser      = "user removed"
	StatusAdmin     = "admin removed"
	StatusCopyright = "copyright removed"
)

// File is a published file.
type File struct {
	ID           int64     `json:"id"`                   // assigned by CreateFile: unique, random, below 2^53
	UploadKey    string    `json:"upload_key,omitempty"` // the session that made it, if any
	Slug         string    `json:"slug"`
	Alias        string    `json:"alias,omitempty"` // optional second public id
	Name         string    `json:"name"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"` // lowercase hex
	Type         string    `json:"type,omitempty"`
	Owner        string    `json:"owner"` // api key
	ObjectKey    string    `json:"object_key"`
	Mirrors      []string  `json:"mirrors"`           // mirror ids holding a copy
	Missing      []string  `json:"missing,omitempty"` // selected mirror ids without a copy
	Status       string    `json:"status"`
	PasswordHash []byte    `json:"password_hash,omitempty"`
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires,omitzero"` // zero keeps the file forever
	// Unconfirmed marks a file that lapses at Expires unless its owner
	// confirms it (Rocket.Chat's rooms.media); confirming clears both.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// MaxDownloads is how many whole downloads the file allows before it
	// is removed; 0 allows any number.
	MaxDownloads int64 `json:"max_downloads,omitempty"`
	// Reason says why a file was removed by its own terms ("expired",
	// "download limit reached"); empty otherwise.
	Reason string `json:"reason,omitempty"`
	// DeleteHash is HashToken of the secret in the file's delete link;
	// empty when it has none.
	DeleteHash []byte `json:"delete_hash,omitempty"`
}

// Usage is what an account's active files take.
type Usage struct {
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
}

// Delivery is one webhook event on its way to one receiver.
type Delivery struct {
	ID        string    `json:"id"` // unique key in the queue
	URL       string    `json:"url"`
	Event     string    `json:"event"` // the event's type
	Body      []byte    `json:"body"`  // the event as JSON, signed when sent
	Attempts  int       `json:"attempts"`
	Due       time.Time `json:"due"` // when to try next
	LastError string    `json:"last_error,omitempty"`
}

// Kinds of a Job.
const (
	JobDrain   = "drain"   // move every copy off the mirror, then empty it
	JobRebuild = "rebuild" // check every copy the mirror should hold, and copy the missing or wrong ones
)

// States of a Job.
const (
	JobRunning   = "running"
	JobPaused    = "paused"
	JobCancelled = "cancelled"
	JobDone      = "done"
	JobFailed    = "failed"
)

// Job is a long task on one mirror that every node sees and one node at a
// time runs: a drain or a rebuild. A mirror has at most one job.
type Job struct {
	Mirror string   `json:"mirror"`
	Kind   string   `json:"kind"`
	To     []string `json:"to,omitempty"`   // drain: the mirrors copies may go to; empty: the owner's allowed ones
	Rate   int64    `json:"rate,omitempty"` // most bytes a second it copies; 0: no limit
	// Share is the most of the time it spends copying, as the scrubber's
	// scrub_share; 0: no limit.
	Share float64 `json:"share,omitempty"`
	State string  `json:"state"`

	Files     int64  `json:"files"`      // files it has to go through, as last counted
	Bytes     int64  `json:"bytes"`      // and their bytes
	DoneFiles int64  `json:"done_files"` // files gone through
	DoneBytes int64  `json:"done_bytes"`
	Copied    int64  `json:"copied"`  // copies it wrote
	Skipped   int64  `json:"skipped"` // files it could not handle on its last pass
	Error     string `json:"error,omitempty"`
	// Cursor: a rebuild has gone through every file whose slug sorts at
	// or before it, and goes on after it when it is resumed.
	Cursor string `json:"cursor,omitempty"`

	Node    string    `json:"node,omitempty"` // the node running it
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Version increases with every PutJob; the store sets it.
	Version int64 `json:"version"`
}

// Store is safe for concurrent use by many goroutines and, for shared
// backends, by many processes. Reads of a missing record return an error
// wrapping ErrNotFound. It is the sum of its roles; a consumer takes the
// role it needs (authentication Accounts, webhooks Deliveries, …).
type Store interface {
	Accounts
	Sessions
	Files
	Coordination
	Deliveries
	Jobs

	// Ping reports whether the store answers; readiness probes call it.
	Ping(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// Accounts keeps the API users.
type Accounts interface {
	// PutAccount creates or replaces the account with a.APIKey; it
	// refuses an account whose Settings do not pass Validate.
	PutAccount(ctx context.Context, a Account) error
	// Account returns the account with the API key.
	Account(ctx context.Context, apiKey string) (Account, error)
	// AccountByUserID returns the account with the public user id.
	AccountByUserID(ctx context.Context, userID string) (Account, error)
	// Accounts returns every account, ordered by API key.
	Accounts(ctx context.Context) ([]Account, error)
	// DeleteAccount removes the account with the API key; its files stay.
	// A missing account is not an error.
	DeleteAccount(ctx context.Context, apiKey string) error
}

// Sessions keeps the uploads in progress and their leases.
type Sessions interface {
	// CreateSession stores a new session under s.UploadKey; ErrExists if
	// taken. A session that is not Started is gone once its Expires passes.
	CreateSession(ctx context.Context, s Session) error
	// Session returns the session of an upload key.
	Session(ctx context.Context, uploadKey string) (Session, error)
	// UpdateSession replaces the session if its Version still equals
	// s.Version, else fails with ErrConflict. It returns the session as
	// stored, with Version increased.
	UpdateSession(ctx context.Context, s Session) (Session, error)
	// Lease gives the session's lease to holder until the time until,
	// unless another holder's lease runs past now, and returns the session
	// as stored, with Version increased; a holder may renew its own lease.
	// While another lease runs it returns the session unchanged with an
	// error wrapping ErrLeased. A session that has not started is kept at
	// least until until.
	Lease(ctx context.Context, uploadKey, holder string, until time.Time) (Session, error)
	// Renew moves the end of holder's lease on the session to until,
	// leaving its Version as it is, so the holder's copy can still be
	// written. It fails with an error wrapping ErrLeased when holder no
	// longer holds the lease (released, or run out and taken by another),
	// and ErrNotFound when the session is gone. A lease that ran out and
	// was not taken is still holder's to renew.
	Renew(ctx context.Context, uploadKey, holder string, until time.Time) error
	// DeleteSession removes the session; a missing session is not an error.
	DeleteSession(ctx context.Context, uploadKey string) error
	// IdleSessions returns up to limit started sessions last updated before t.
	IdleSessions(ctx context.Context, t time.Time, limit int) ([]Session, error)
}

// Files keeps the published files' records and what they take per owner.
type Files interface {
	// CreateFile publishes f under f.Slug (and f.Alias, if set), assigning
	// f.ID unless it is set (a record copied from another store keeps its
	// id); ErrExists if the slug or alias is taken. Without an alias it
	// costs one round trip to a shared store.
	CreateFile(ctx context.Context, f File) (File, error)
	// File returns the file with the slug.
	File(ctx context.Context, slug string) (File, error)
	// Files returns the files with the given slugs, in one round trip;
	// slugs that are not found are absent from the map.
	Files(ctx context.Context, slugs []string) (map[string]File, error)
	// FileByAlias returns the file with the alias.
	FileByAlias(ctx context.Context, alias string) (File, error)
	// UpdateFile replaces the stored file with f.Slug; ErrNotFound if absent.
	// A file taken down stays down: an update that would make it active
	// again fails with ErrConflict, so a writer that read the record before
	// it was removed cannot bring it back.
	UpdateFile(ctx context.Context, f File) error
	// DeleteFile removes the file record with the slug and its alias; a
	// missing file is not an error.
	DeleteFile(ctx context.Context, slug string) error
	// OwnerFiles returns up to limit of the owner's files, newest first,
	// after skipping offset of them, and how many the owner has in all.
	// Removed files are included with their status; DeleteFile drops one.
	OwnerFiles(ctx context.Context, owner string, offset, limit int) ([]File, int, error)
	// Usage returns what the owner's active files take. The counters move
	// with CreateFile, UpdateFile and DeleteFile: a file counts while its
	// status is active.
	Usage(ctx context.Context, owner string) (Usage, error)
	// ExpiredFiles returns up to limit active files whose Expires is before t.
	ExpiredFiles(ctx context.Context, t time.Time, limit int) ([]File, error)
	// EachFile calls fn for every file record, in no particular order,
	// until fn returns an error, which it returns. Files created or
	// removed meanwhile may or may not be seen.
	EachFile(ctx context.Context, fn func(File) error) error
	// DamagedFiles returns up to limit files with a Missing mirror whose
	// slug sorts after after, in slug order.
	DamagedFiles(ctx context.Context, after string, limit int) ([]File, error)
}

// Coordination is what the nodes of a cluster share besides records:
// counters and locks. (The leases of uploads are the Sessions'.)
type Coordination interface {
	// Count adds add (0 only reads) to the counter under key and returns
	// its value. A counter begins at 0 when first counted and lapses at the
	// until given then; later calls do not move its end.
	Count(ctx context.Context, key string, add int64, until time.Time) (int64, error)

	// Lock gives the named lock to holder until the time until, unless
	// another holder's runs past now; then it fails with an error wrapping
	// ErrLeased. A holder may renew its own, also to end now, which lets
	// another take it at once. Background jobs that one node of a cluster
	// should run at a time take one, and so does publishing the files of
	// an account with quotas.
	Lock(ctx context.Context, name, holder string, until time.Time) error
}

// Deliveries is the queue of webhook deliveries.
type Deliveries interface {
	// AddDeliveries queues webhook deliveries under their IDs. One whose ID
	// is queued already is left as it is: adding again never resets a
	// delivery claimed or tried meanwhile.
	AddDeliveries(ctx context.Context, ds []Delivery) error
	// ClaimDeliveries returns up to limit deliveries due at or before now,
	// oldest first, and moves their Due to until, so that no caller, on
	// any node, claims them again before then; the returned ones carry
	// Due = until.
	ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]Delivery, error)
	// PutDelivery replaces the queued delivery with d.ID (an attempt and
	// its next Due); ErrNotFound if it is gone.
	PutDelivery(ctx context.Context, d Delivery) error
	// Deliveries returns every queued delivery, ordered by ID; a store
	// being copied is read with it.
	Deliveries(ctx context.Context) ([]Delivery, error)
	// DeleteDelivery removes a delivery; a missing one is not an error.
	DeleteDelivery(ctx context.Context, id string) error
}

// Jobs keeps the mirrors' long-running jobs (drain, rebuild, migrate), one
// per mirror.
type Jobs interface {
	// PutJob stores the job of j.Mirror. With j.Version 0 it creates it,
	// failing with ErrExists if the mirror has one; otherwise it replaces
	// the job if its Version still equals j.Version, else fails with
	// ErrConflict. It returns the job as stored, with Version increased.
	PutJob(ctx context.Context, j Job) (Job, error)
	// Job returns the mirror's job.
	Job(ctx context.Context, mirror string) (Job, error)
	// Jobs returns every job, ordered by mirror id as text.
	Jobs(ctx context.Context) ([]Job, error)
	// DeleteJob removes the mirror's job; a missing one is not an error.
	DeleteJob(ctx context.Context, mirror string) error
}

// NewFileID returns a random file id: positive, below 2^53 so that
// JavaScript reads it exactly, and telling nothing about how many files
// there are.
func NewFileID() int64 { return 1 + rand.Int64N(1<<53-1) }

// Clock returns the current time; stores and services take one so tests can
// move time.
type Clock func() time.Time
