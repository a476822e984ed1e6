package chunks

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/acestash/acestash/store"
)

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
	// Terms are the file's expiry and download limit (TermsFor).
	Terms Terms
	// Late, when set, is called once Body has ended and before anything is
	// committed; it returns the fields that were sent after the body,
	// which count as if they had come before it.
	Late func() (LateFields, error)
}

// LateFields are what a request that starts an upload may send after its
// body.
type LateFields struct {
	Password string
	Mirrors  []string
	Terms    *Terms // nil: none sent
}

// ErrNoMirrors is wrapped by the error Chunk returns, before it reads the
// body, when a request that starts an upload names no mirrors. A caller
// that has not read the whole request yet may read on and try again.
var ErrNoMirrors = errors.New("chunks: the request starts an upload and names no mirrors")

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
	sess, h, err := s.take(ctx, req.UploadKey, req.CTracker, req.Account)
	if err != nil {
		return Result{}, err
	}
	defer h.End()
	ctx = h.context(ctx)
	if finished(sess) {
		res, err := s.repeat(ctx, sess, h != nil, req)
		return res, kept(h, err)
	}
	if h == nil {
		return Result{}, busy(nil)
	}
	if !sess.Started && len(req.Mirrors) == 0 {
		s.release(ctx, sess, true)
		return Result{}, &Error{Kind: Invalid, Msg: "no mirrors selected: send mirrors[] with at least one mirror id", Err: ErrNoMirrors}
	}
	res, err := s.advance(ctx, sess, req)
	return res, kept(h, err)
}

// advance writes the request's chunk under the lease sess holds and
// commits it; every path commits or releases the lease.
func (s *Service) advance(ctx context.Context, sess store.Session, req ChunkRequest) (Result, error) {
	next, w, err := s.receive(ctx, sess, req)
	if isOverQuota(err) {
		s.discard(context.WithoutCancel(ctx), sess) // the upload cannot finish: drop all of it
		return Result{}, err
	}
	if err != nil {
		s.release(ctx, sess, true)
		return Result{}, err
	}
	if w.n == 0 && next.Total != 0 && sess.Chunks > 0 {
		s.release(ctx, sess, true) // an empty chunk in the middle changes nothing
		return Result{Name: sess.Name, Total: sess.Total}, nil
	}
	if w.put {
		return s.publishWhole(ctx, req.Account, next, w)
	}
	return s.commit(ctx, req.Account, sess, next, w)
}

// receive starts the upload if the request is its first, and feeds it the
// request's chunk where classify places it. On error nothing it wrote is
// left for a record to point to.
func (s *Service) receive(ctx context.Context, sess store.Session, req ChunkRequest) (store.Session, *write, error) {
	next := sess
	if !sess.Started {
		if err := s.start(&next, req.Account, req.Name, req.Mirrors, req.Password); err != nil {
			return next, nil, err
		}
		setTerms(&next, req.Terms)
	}
	st, err := s.classify(next, req.Range, req.Account)
	if err != nil {
		return next, nil, err
	}
	next, w, err := s.feed(ctx, req.Account, next, st, req.Body)
	if err == nil && req.Late != nil {
		if err = s.late(&next, sess.Started, req.Late); err != nil {
			s.undo(ctx, &next, w, sess.Uploads == nil)
		}
	}
	return next, w, err
}

// commit stores the session after a chunk; once it holds every byte, the
// file is published.
func (s *Service) commit(ctx context.Context, a store.Account, sess, next store.Session, w *write) (Result, error) {
	if next.Held < next.Total {
		// Done with the mirrors: the save ends the lease. The last
		// chunk keeps it until the file is published.
		next.Lease, next.LeaseUntil = "", time.Time{}
	}
	saved, err := s.saveHeld(ctx, sess, next, sess.Lease, "cannot record the chunk")
	if err != nil {
		s.undo(ctx, &next, w, sess.Uploads == nil)
		if !errors.Is(err, store.ErrConflict) { // else another request took over
			s.release(ctx, sess, true)
		}
		return Result{}, err
	}
	if saved.Held < saved.Total {
		return Result{Name: saved.Name, Total: saved.Total}, nil
	}
	return s.finish(ctx, a, saved)
}

// late takes the fields sent after the body into an upload that this
// request starts; a request that continues an upload ignores them.
func (s *Service) late(sess *store.Session, started bool, late func() (LateFields, error)) error {
	lf, err := late()
	if err != nil || started {
		return err
	}
	password, ids := lf.Password, lf.Mirrors
	if lf.Terms != nil {
		setTerms(sess, *lf.Terms)
	}
	for _, id := range ids {
		if !slices.Contains(sess.Mirrors, id) {
			return Errorf(Invalid, "mirrors[] sent after the file names mirror %q; send mirrors[] before the file", id)
		}
	}
	if password != "" && len(sess.PasswordHash) == 0 {
		return s.setPassword(sess, password)
	}
	return nil
}

// Check reports whether Fill would accept req, without reading its body,
// so a caller can refuse a request before fetching what it names.
func (s *Service) Check(ctx context.Context, req ChunkRequest) error {
	sess, err := s.cfg.Store.Session(ctx, req.UploadKey)
	if err := belongs(sess, err, req.Account, req.CTracker); err != nil {
		return err
	}
	if err := unused(sess); err != nil {
		return err
	}
	_, err = s.SelectMirrors(req.Account, req.Mirrors)
	return err
}

// unused refuses a session that has started an upload already.
func unused(sess store.Session) error {
	switch {
	case sess.Done:
		return Errorf(Invalid, "this upload_key already made the file %s; ask file/upload for a new one", sess.Slug)
	case sess.Started:
		return Errorf(Invalid, "an upload has already started with this upload_key; ask file/upload for a new one")
	}
	return nil
}

// Fill stores everything req.Body yields as the upload of a session from
// Issue that has not started, after the same checks as Chunk; req.Range is
// ignored. More than maxSize bytes (0: the account's limit) is a TooLarge
// error. A failed Fill leaves the upload key as it was, so the client may
// try again.
func (s *Service) Fill(ctx context.Context, req ChunkRequest, maxSize int64) (Result, error) {
	sess, h, err := s.take(ctx, req.UploadKey, req.CTracker, req.Account)
	if err != nil {
		return Result{}, err
	}
	defer h.End()
	if err := unused(sess); err != nil {
		s.release(ctx, sess, h != nil)
		return Result{}, err
	}
	if h == nil {
		return Result{}, busy(nil)
	}
	res, err := s.fill(h.context(ctx), sess, req, maxSize)
	return res, kept(h, err)
}

// fill is Fill under the lease sess holds.
func (s *Service) fill(ctx context.Context, sess store.Session, req ChunkRequest, maxSize int64) (Result, error) {
	if maxSize <= 0 {
		maxSize = s.MaxFileSize(req.Account)
	}
	next := sess
	if err := s.start(&next, req.Account, req.Name, req.Mirrors, req.Password); err != nil {
		s.release(ctx, sess, true)
		return Result{}, err
	}
	setTerms(&next, req.Terms)
	w, err := s.whole(ctx, req.Account, &next, req.Body, -1, maxSize)
	if err != nil {
		s.release(ctx, sess, true)
		return Result{}, err
	}
	return s.publishWhole(ctx, req.Account, next, w)
}

// Spec describes a file stored from one stream by Put.
type Spec struct {
	Account      store.Account
	Name         string
	Mirrors      []string // empty: the account's default mirrors
	Password     string
	MaxSize      int64  // 0: the account's maximum file size
	Size         int64  // the body's length when known in advance, else 0
	Terms        Terms  // expiry and download limit (TermsFor)
	Alias        string // optional second public id
	PasswordHash []byte // used when Password is empty
	DeleteHash   []byte // the hashed secret of the file's delete link, if any
	// Unconfirmed: the file lapses at Terms.Expires unless Confirm keeps it.
	Unconfirmed bool
}

// Put stores everything r yields as one file and publishes it. More than
// MaxSize bytes is a TooLarge error and publishes nothing. A file that fits
// in one piece is written with one request per mirror; a larger one streams
// through a multipart upload, so memory stays bounded.
func (s *Service) Put(ctx context.Context, spec Spec, r io.Reader) (store.File, error) {
	maxSize := spec.MaxSize
	if maxSize <= 0 {
		maxSize = s.MaxFileSize(spec.Account)
	}
	if spec.Size > 0 { // refused before a byte is read
		if err := s.Room(ctx, spec.Account, spec.Size); err != nil {
			return store.File{}, err
		}
	}
	ids := spec.Mirrors
	if len(ids) == 0 {
		ids = s.DefaultMirrors(spec.Account)
	}
	// The session only carries the upload through this call; it is never
	// stored, and what a crash leaves on the mirrors has no record.
	sess := store.Session{APIKey: spec.Account.APIKey, Total: -1}
	if err := s.start(&sess, spec.Account, spec.Name, ids, spec.Password); err != nil {
		return store.File{}, err
	}
	if spec.Password == "" {
		sess.PasswordHash = spec.PasswordHash
	}
	w, err := s.whole(ctx, spec.Account, &sess, r, -1, maxSize)
	if err != nil {
		return store.File{}, err
	}
	file, err := s.record(sess)
	if err != nil {
		return store.File{}, err
	}
	file.Alias, file.Expires, file.MaxDownloads = spec.Alias, spec.Terms.Expires, spec.Terms.MaxDownloads
	file.DeleteHash = spec.DeleteHash
	file.Unconfirmed = spec.Unconfirmed && !spec.Terms.Expires.IsZero()
	created, err := s.publish(ctx, spec.Account, &sess, file, false)
	if err != nil {
		if mayUndo(err) {
			s.undo(context.WithoutCancel(ctx), &sess, w, true)
		}
		return store.File{}, err
	}
	return created, nil
}

// whole feeds everything r yields, at most maxSize bytes (size of them
// when size >= 0), to a session that has begun on no mirror, and completes
// its object: on success the session holds every byte.
func (s *Service) whole(ctx context.Context, a store.Account, sess *store.Session, r io.Reader, size, maxSize int64) (*write, error) {
	st := step{total: size, ends: true, whole: true, limit: maxSize, over: overMax(maxSize)}
	next, w, err := s.feed(ctx, a, *sess, st, r)
	if err == nil && !w.put {
		if err = s.completeAll(context.WithoutCancel(ctx), &next, next.Last); err != nil {
			s.undo(ctx, &next, w, true)
		}
	}
	if err != nil {
		return nil, err
	}
	*sess = next
	return w, nil
}

// start fills in what the first request of an upload decides.
func (s *Service) start(sess *store.Session, a store.Account, name string, ids []string, password string) error {
	sel, err := s.SelectMirrors(a, ids)
	if err != nil {
		return err
	}
	sess.Mirrors = sel
	sess.Name = CleanName(name)
	sess.ObjectKey = objectPrefix + uuid.NewString()
	if password != "" {
		return s.setPassword(sess, password)
	}
	return nil
}

func (s *Service) setPassword(sess *store.Session, password string) error {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return Errorf(Invalid, "file_password cannot be used: %v", err)
	}
	sess.PasswordHash = h
	return nil
}
