// Package chunks turns bytes arriving in pieces into a published file: it
// decides which chunk a request carries, writes it to every selected mirror
// at once, hashes the file as it passes, and publishes the file record when
// the last byte is held. It knows nothing about HTTP.
package chunks

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

// Config holds what a Service needs; zero limits take the defaults below.
type Config struct {
	Store   store.Store
	Mirrors *mirrors.Set
	// SpoolDir holds each chunk on local disk while it is written to the
	// mirrors; a request spools one chunk at a time.
	SpoolDir     string
	Clock        store.Clock
	Log          *slog.Logger
	SlugLength   int           // default 8
	MaxFileSize  int64         // default 10 GiB
	MaxChunkSize int64         // default 99999995
	KeyLifetime  time.Duration // upload keys that start no upload; default 1 h
	// WriteQuorum is how many selected mirrors must hold a file for an
	// upload to succeed; 0 means all of them.
	WriteQuorum int
	// MirrorTimeout bounds one operation on one mirror; default 10 min.
	MirrorTimeout time.Duration
	// StreamPart is the piece size Put cuts streams into; default 16 MiB.
	StreamPart int64
	// Health, when set, reports mirrors known to be down; they are skipped
	// when an upload starts and read last.
	Health func(id string) error
	// Sniff, when set, names the content type of a file from its first
	// bytes (at most 512).
	Sniff func(head []byte) string
}

// Defaults of the limits in Config.
const (
	DefaultMaxFileSize  = 10 << 30
	DefaultMaxChunkSize = 99999995
	DefaultSlugLength   = 8
)

// Service assembles uploads. It holds no state of its own between calls:
// every node of a cluster can serve any chunk of any upload.
type Service struct {
	cfg Config
}

// New returns a Service; it creates SpoolDir if needed.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Mirrors == nil {
		return nil, errors.New("chunks: a store and mirrors are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SlugLength == 0 {
		cfg.SlugLength = DefaultSlugLength
	}
	if cfg.MaxFileSize == 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.MaxChunkSize == 0 {
		cfg.MaxChunkSize = DefaultMaxChunkSize
	}
	if cfg.KeyLifetime == 0 {
		cfg.KeyLifetime = time.Hour
	}
	if cfg.MirrorTimeout == 0 {
		cfg.MirrorTimeout = 10 * time.Minute
	}
	if cfg.StreamPart == 0 {
		cfg.StreamPart = 16 << 20
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("chunks: spool dir: %w", err)
	}
	return &Service{cfg: cfg}, nil
}

// MaxChunkSize is the chunk size advertised to clients.
func (s *Service) MaxChunkSize() int64 { return s.cfg.MaxChunkSize }

// MaxFileSize is the largest file the account may upload.
func (s *Service) MaxFileSize(a store.Account) int64 {
	if a.MaxFileSize > 0 {
		return a.MaxFileSize
	}
	return s.cfg.MaxFileSize
}

// Issue creates an upload key and cTracker for the account. The key lapses
// after the key lifetime unless an upload starts with it.
func (s *Service) Issue(ctx context.Context, a store.Account) (store.Session, error) {
	for range 3 {
		key, err := slug.Hex(16)
		if err != nil {
			return store.Session{}, err
		}
		tracker, err := slug.Hex(16)
		if err != nil {
			return store.Session{}, err
		}
		now := s.cfg.Clock().UTC()
		sess := store.Session{
			UploadKey: key, CTracker: tracker, APIKey: a.APIKey,
			Issued: now, Expires: now.Add(s.cfg.KeyLifetime), Updated: now, Total: -1,
		}
		err = s.cfg.Store.CreateSession(ctx, sess)
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if err != nil {
			return store.Session{}, unavailable("cannot issue an upload key", err)
		}
		sess.Version = 1 // as CreateSession stored it
		return sess, nil
	}
	return store.Session{}, errors.New("chunks: could not find a free upload key")
}

// ChunkRequest is one request of a MirrorAce upload.
type ChunkRequest struct {
	Account   store.Account
	UploadKey string
	CTracker  string
	// Range is the request's Content-Range; nil sends the whole file at once.
	Range *Range
	Body  io.Reader
	// Name, Mirrors and Password are read from the request that starts the
	// upload; later requests may repeat them and are not checked against them.
	Name     string
	Mirrors  []string
	Password string
}

// Result is the state of an upload after a request.
type Result struct {
	Name  string
	Total int64
	Done  bool
	File  store.File // set when Done
}

// Chunk stores the chunk a request carries and publishes the file once every
// byte is held. A repeated request on a finished upload that adds no bytes,
// or repeats the last chunk exactly, gets the same result again.
func (s *Service) Chunk(ctx context.Context, req ChunkRequest) (Result, error) {
	sess, err := s.session(ctx, req)
	if err != nil {
		return Result{}, err
	}
	if !sess.Started {
		if err := s.start(&sess, req.Account, req.Name, req.Mirrors, req.Password); err != nil {
			return Result{}, err
		}
	}
	if sess.Done {
		return s.repeat(ctx, sess, req)
	}
	if sess.Total >= 0 && sess.Held == sess.Total && sess.Started {
		// Every byte is held but publishing did not finish; finish it now.
		return s.finishResult(ctx, sess)
	}
	st, err := s.classify(sess, req.Range, req.Account)
	if err != nil {
		return Result{}, err
	}
	sess, err = s.advance(ctx, sess, st, req.Body)
	if err != nil {
		return Result{}, err
	}
	if sess.Held < sess.Total {
		return Result{Name: sess.Name, Total: sess.Total}, nil
	}
	return s.finishResult(ctx, sess)
}

// session returns the session a request names, checking that it belongs
// to the request's account and cTracker.
func (s *Service) session(ctx context.Context, req ChunkRequest) (store.Session, error) {
	sess, err := s.cfg.Store.Session(ctx, req.UploadKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return sess, Errorf(Invalid, "upload_key not found or expired; ask file/upload for a new one")
	case err != nil:
		return sess, unavailable("cannot read the upload session", err)
	case sess.APIKey != req.Account.APIKey:
		return sess, Errorf(Invalid, "upload_key belongs to another api_key")
	case sess.CTracker != req.CTracker:
		return sess, Errorf(Invalid, "cTracker does not match the upload_key")
	}
	return sess, nil
}

// Check reports whether Fill would accept req, without reading its body,
// so a caller can refuse a request before fetching what it names.
func (s *Service) Check(ctx context.Context, req ChunkRequest) error {
	if _, err := s.unused(ctx, req); err != nil {
		return err
	}
	_, err := s.SelectMirrors(req.Account, req.Mirrors)
	return err
}

// unused returns the session of a request whose upload key has not started
// an upload yet.
func (s *Service) unused(ctx context.Context, req ChunkRequest) (store.Session, error) {
	sess, err := s.session(ctx, req)
	switch {
	case err != nil:
		return sess, err
	case sess.Done:
		return sess, Errorf(Invalid, "this upload_key already made the file %s; ask file/upload for a new one", sess.Slug)
	case sess.Started:
		return sess, Errorf(Invalid, "an upload has already started with this upload_key; ask file/upload for a new one")
	}
	return sess, nil
}

// Fill stores everything req.Body yields as the upload of a session from
// Issue that has not started, after the same checks as Chunk; req.Range is
// ignored. More than maxSize bytes (0: the account's limit) is a TooLarge
// error. A failed Fill leaves the upload key as it was, so the client may
// try again.
func (s *Service) Fill(ctx context.Context, req ChunkRequest, maxSize int64) (Result, error) {
	orig, err := s.unused(ctx, req)
	if err != nil {
		return Result{}, err
	}
	if maxSize <= 0 {
		maxSize = s.MaxFileSize(req.Account)
	}
	sess := orig
	if err := s.start(&sess, req.Account, req.Name, req.Mirrors, req.Password); err != nil {
		return Result{}, err
	}
	f, err := s.put(ctx, sess, req.Body, maxSize, store.File{})
	if err != nil {
		s.rewind(context.WithoutCancel(ctx), orig)
		return Result{}, err
	}
	return Result{Name: f.Name, Total: f.Size, Done: true, File: f}, nil
}

// rewind aborts whatever a failed Fill stored and puts its session back.
func (s *Service) rewind(ctx context.Context, orig store.Session) {
	cur, err := s.cfg.Store.Session(ctx, orig.UploadKey)
	if err != nil {
		return
	}
	if cur.Done {
		return
	}
	s.abortAll(ctx, cur.Uploads)
	orig.Version = cur.Version
	if _, err := s.cfg.Store.UpdateSession(ctx, orig); err != nil {
		s.cfg.Log.Warn("rewind failed upload", "upload_key", orig.UploadKey, "err", err)
	}
}

// start fills in what the first request of an upload decides.
func (s *Service) start(sess *store.Session, a store.Account, name string, ids []string, password string) error {
	sel, err := s.SelectMirrors(a, ids)
	if err != nil {
		return err
	}
	sess.Mirrors = sel
	sess.Name = CleanName(name)
	sess.ObjectKey = "files/" + uuid.NewString()
	if password != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return Errorf(Invalid, "file_password cannot be used: %v", err)
		}
		sess.PasswordHash = h
	}
	return nil
}

// step is what classify decided about one request.
type step struct {
	retry      bool  // the request replaces the latest chunk
	base       int64 // bytes held before this chunk
	start, end int64 // header values to remember
	total      int64 // -1 until known
	limit      int64 // most bytes this chunk may carry
	// stream marks a piece of Put's stream: the total stays unknown until
	// the stream ends, and max bounds the bytes held.
	stream bool
	max    int64
}

// classify applies SPEC 1's continuation and retry rules.
func (s *Service) classify(sess store.Session, r *Range, a store.Account) (step, error) {
	maxFile := s.MaxFileSize(a)
	// PHP's example sends max_chunk_size+1 bytes a chunk; allow that one byte.
	limit := s.cfg.MaxChunkSize + 1
	if r == nil {
		if sess.Chunks > 0 {
			return step{}, Errorf(Invalid, "this upload already holds %d bytes: send the next chunk with a Content-Range header", sess.Held)
		}
		return step{start: 0, end: -1, total: -1, limit: min(limit, maxFile)}, nil
	}
	if r.Total > maxFile {
		return step{}, Errorf(TooLarge, "file of %d bytes is over the maximum file size of %d bytes", r.Total, maxFile)
	}
	if sess.Total >= 0 && sess.Chunks > 0 && r.Total != sess.Total {
		return step{}, Errorf(Invalid, "Content-Range total changed from %d to %d", sess.Total, r.Total)
	}
	st := step{start: r.Start, end: r.End, total: r.Total}
	switch {
	case r.Start == sess.Held:
		st.base = sess.Held
	case sess.Chunks > 0 && r.Start == sess.LastStart:
		st.retry, st.base = true, sess.PrevHeld
	case sess.Chunks > 0 && (r.Start == sess.LastEnd || r.Start == sess.LastEnd+1):
		st.base = sess.Held
	case sess.Chunks > 0 && r.Start == sess.LastStart+(sess.Held-sess.PrevHeld)+1:
		// mirror_up's start drifts one byte a chunk even where its end
		// was cut at the total.
		st.base = sess.Held
	default:
		return step{}, Errorf(Invalid, "Content-Range start %d does not continue this upload: expected %d", r.Start, sess.Held)
	}
	st.limit = limit
	return st, nil
}

// advance spools the chunk, writes it to the mirrors and records it.
func (s *Service) advance(ctx context.Context, sess store.Session, st step, body io.Reader) (store.Session, error) {
	state := sess.Hash
	prev := sess.Last
	if st.retry {
		state, prev = sess.PrevHash, sess.Prev
	}
	h, err := restoreHash(state)
	if err != nil {
		return sess, fmt.Errorf("chunks: session %s: %w", sess.UploadKey, err)
	}
	limit := st.limit
	if st.total >= 0 {
		limit = min(limit, st.total-st.base)
	}
	f, n, err := s.spool(body, limit, h)
	if errors.Is(err, errOver) && limit < st.limit {
		return sess, Errorf(Invalid, "chunk goes past the Content-Range total of %d bytes (%d held before it)", st.total, st.base)
	}
	if errors.Is(err, errOver) {
		return sess, Errorf(TooLarge, "chunk is over its limit of %d bytes", limit)
	}
	if err != nil {
		return sess, err
	}
	defer closeSpool(f)
	if n == 0 && st.total != 0 && sess.Chunks > 0 {
		return sess, nil // an empty chunk in the middle changes nothing
	}
	switch {
	case st.stream && st.base+n > st.max:
		return sess, Errorf(TooLarge, "file is over the maximum size of %d bytes", st.max)
	case st.stream:
	case st.total < 0: // the whole file in one request
		st.total = st.base + n
	case st.base+n > st.total:
		return sess, Errorf(Invalid, "chunk of %d bytes at offset %d goes past the total of %d bytes", n, st.base, st.total)
	}
	if st.base == 0 && n > 0 {
		sess.Type = s.sniff(f)
	}
	leased, err := s.lease(ctx, sess)
	if err != nil {
		return sess, err
	}
	next := leased
	began, err := s.begin(ctx, &next)
	if err != nil {
		s.release(ctx, leased)
		return sess, err
	}
	parts, err := s.writeAll(ctx, &next, prev, f, n)
	if err != nil {
		s.abortAll(ctx, began)
		s.release(ctx, leased)
		return sess, err
	}
	sum, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return sess, fmt.Errorf("chunks: save hash state: %w", err)
	}
	if !st.retry {
		next.PrevHeld, next.PrevHash, next.Prev = sess.Held, sess.Hash, sess.Last
		next.Chunks++
	}
	next.Held, next.Hash, next.Last = st.base+n, sum, parts
	next.LastStart, next.LastEnd, next.Total = st.start, st.end, st.total
	next.Started = true
	next.Updated = s.cfg.Clock().UTC()
	next.Lease, next.LeaseUntil = "", time.Time{}
	saved, err := s.cfg.Store.UpdateSession(ctx, next)
	if errors.Is(err, store.ErrConflict) {
		// The lease ran out and another request took over.
		s.abortAll(ctx, began)
		return sess, busy(err)
	}
	if err != nil {
		s.abortAll(ctx, began)
		return sess, unavailable("cannot record the chunk", err)
	}
	return saved, nil
}

// errOver is spool's answer to a body of more than its limit.
var errOver = errors.New("over the limit")

// spool copies at most limit bytes of body to a temporary file, feeding h.
// More than limit bytes is errOver.
func (s *Service) spool(body io.Reader, limit int64, h hash.Hash) (*os.File, int64, error) {
	f, err := os.CreateTemp(s.cfg.SpoolDir, "chunk-*")
	if err != nil {
		return nil, 0, unavailable("cannot spool the chunk", err)
	}
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, limit+1))
	if err != nil {
		closeSpool(f)
		return nil, 0, &Error{Kind: Invalid, Msg: "the body could not be read whole: " + err.Error(), Err: err}
	}
	if n > limit {
		closeSpool(f)
		return nil, 0, errOver
	}
	return f, n, nil
}

func closeSpool(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// finished returns the file a finished session published.
func (s *Service) finished(ctx context.Context, sess store.Session) (store.File, error) {
	f, err := s.cfg.Store.File(ctx, sess.Slug)
	if errors.Is(err, store.ErrNotFound) {
		return f, Errorf(Invalid, "this upload_key made the file %s, which has since been removed; ask file/upload for a new one", sess.Slug)
	}
	if err != nil {
		return f, unavailable("cannot read the finished file", err)
	}
	return f, nil
}

// lease marks the session as written by this request, so that no other
// request writes to its mirrors until the lease is committed, released or
// runs out. An upload key that has not started yet lives at least as long.
func (s *Service) lease(ctx context.Context, sess store.Session) (store.Session, error) {
	now := s.cfg.Clock().UTC()
	if sess.Lease != "" && now.Before(sess.LeaseUntil) {
		return sess, busy(nil)
	}
	// Each mirror operation is bounded by MirrorTimeout and a write takes
	// at most two rounds of them (begin, then the part).
	sess.Lease, sess.LeaseUntil = uuid.NewString(), now.Add(2*s.cfg.MirrorTimeout+time.Minute)
	if !sess.Started && sess.Expires.Before(sess.LeaseUntil) {
		sess.Expires = sess.LeaseUntil
	}
	saved, err := s.cfg.Store.UpdateSession(ctx, sess)
	if errors.Is(err, store.ErrConflict) {
		return sess, busy(err)
	}
	if err != nil {
		return sess, unavailable("cannot record the chunk", err)
	}
	return saved, nil
}

// release gives up a lease that wrote nothing worth keeping.
func (s *Service) release(ctx context.Context, leased store.Session) {
	leased.Lease, leased.LeaseUntil = "", time.Time{}
	if _, err := s.cfg.Store.UpdateSession(context.WithoutCancel(ctx), leased); err != nil {
		s.cfg.Log.Warn("release upload lease", "upload_key", leased.UploadKey, "err", err)
	}
}

func busy(err error) *Error {
	return &Error{Kind: Unavailable, Msg: "another request for this upload is in progress; retry this chunk", Err: err}
}

// repeat answers a request on a finished upload: an empty request, or an
// exact repeat of the last chunk, gets the finished result again.
func (s *Service) repeat(ctx context.Context, sess store.Session, req ChunkRequest) (Result, error) {
	file, err := s.finished(ctx, sess)
	if err != nil {
		return Result{}, err
	}
	done := Result{Name: file.Name, Total: file.Size, Done: true, File: file}
	h, err := restoreHash(sess.PrevHash)
	if err != nil {
		return Result{}, fmt.Errorf("chunks: session %s: %w", sess.UploadKey, err)
	}
	f, n, err := s.spool(req.Body, s.cfg.MaxChunkSize+1, h)
	if errors.Is(err, errOver) {
		return Result{}, Errorf(Invalid, "this upload is already complete as %s; ask file/upload for a new upload_key", file.Slug)
	}
	if err != nil {
		return Result{}, err
	}
	closeSpool(f)
	if n == 0 {
		return done, nil
	}
	if req.Range != nil && req.Range.Start == sess.LastStart && sess.PrevHeld+n == sess.Held &&
		hex.EncodeToString(h.Sum(nil)) == file.SHA256 {
		return done, nil
	}
	return Result{}, Errorf(Invalid, "this upload is already complete as %s; ask file/upload for a new upload_key", file.Slug)
}

func restoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("restore hash state: %w", err)
	}
	return h, nil
}

// hashOf returns the hex SHA-256 of the bytes a hash state has seen.
func hashOf(state []byte) (string, error) {
	h, err := restoreHash(state)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
