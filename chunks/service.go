package chunks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/slug"
	"github.com/acestash/acestash/store"
)

// Config holds what a Service needs; zero limits take the defaults below.
type Config struct {
	Store   store.Store
	Mirrors *mirrors.Set
	// SpoolDir is created for callers that must park a request body on
	// local disk before they can hand it on; chunks itself streams.
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
	// LagLimit is how long an upload waits for a mirror still storing
	// what write_quorum others already hold (plus four times what they took
	// for it) before it drops that mirror; 0 never drops one (acestash
	// serve uses DefaultLagLimit). See laggard.go.
	LagLimit time.Duration
	// MirrorStall is how long an operation on a mirror may go without
	// progress before that mirror fails; 0 waits up to MirrorTimeout
	// (acestash serve uses DefaultMirrorStall).
	MirrorStall time.Duration
	// Suspect, when set, is told of every mirror dropped from an upload
	// and why, so that a dead mirror can be skipped by the next requests
	// at once.
	Suspect func(id string, err error)
	// HedgeAfter is how long a read waits for a mirror's first byte before
	// it asks the next mirror too; 0 derives it from each mirror's recent
	// first-byte times (their 95th percentile, at least 20 ms), waiting
	// less for a mirror that looks hung and more for one that is busy.
	HedgeAfter time.Duration
	// PieceSize is the size of the pieces bytes are written to the mirrors
	// in; at least 5 MiB, S3's smallest part. Default 8 MiB.
	PieceSize int
	// Pieces is how many pieces this node holds in memory at most, across
	// all requests; a request that streams more than one piece holds three,
	// one read while two are written. Default 24.
	Pieces int
	// LeaseTime is how long an upload's lease lasts unless its request
	// renews it, which it does while it runs; default 10 s. A request on a
	// node that died, or cut off from the store, holds up its upload at
	// most this long.
	LeaseTime time.Duration
	// AbortPause is the first pause before an abort that failed is tried
	// again in the background; the pauses double. Default 1 s.
	AbortPause time.Duration
	// LeaseWait is how long a request waits for another request's lease
	// on the same upload before it is told to retry; default 5 s.
	LeaseWait time.Duration
	// GaveUp, when set, is told each time a read gives a mirror up and
	// goes on elsewhere, and why: "hedge" (another mirror answered first),
	// "stall" (no byte for MirrorStall) or "error".
	GaveUp func(mirror, reason string)
	// Health, when set, reports mirrors known to be down; they are skipped
	// when an upload starts and read last.
	Health func(id string) error
	// Draining, when set, reports mirrors being drained: new uploads
	// and the repairer leave them alone.
	Draining func(id string) bool
	// Notify, when set, is told of each file published (EventCompleted)
	// and taken down (EventRemoved), after the store records it.
	Notify func(ctx context.Context, event string, f store.File)
	// Sniff, when set, names the content type of a file from its first
	// bytes (at most 512).
	Sniff func(head []byte) string
}

// Events Notify is told of.
const (
	EventCompleted = "file.completed"
	EventRemoved   = "file.removed"
)

// notify tells Notify, if set, of an event.
func (s *Service) notify(ctx context.Context, event string, f store.File) {
	if s.cfg.Notify != nil {
		s.cfg.Notify(context.WithoutCancel(ctx), event, f)
	}
}

// Defaults of the limits in Config.
const (
	DefaultMaxFileSize  = 10 << 30
	DefaultMaxChunkSize = 99999995
	DefaultSlugLength   = 8
	DefaultPieceSize    = 8 << 20
	DefaultPieces       = 24
	minPieceSize        = 5 << 20
)

// Service assembles uploads. It holds no state between calls that another
// node would need: every node of a cluster can serve any chunk of any
// upload.
type Service struct {
	cfg       Config
	pieces    *pool
	firsts    sync.Pool    // of *[]byte of firstRead bytes
	heads     chan *[]byte // free first-read buffers of downloads
	redirects bool         // some mirror lets downloads be sent to it
	copies    sync.Pool    // of *[]byte of copyBuffer bytes
	speeds    *speeds

	bg        sync.WaitGroup // background aborts
	aborts    chan struct{}  // a slot per background abort
	stop      chan struct{}  // closed by Close
	closeOnce sync.Once
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
	if cfg.MirrorStall == 0 {
		cfg.MirrorStall = DefaultMirrorStall
	}
	if cfg.MirrorStall < 0 || cfg.HedgeAfter < 0 {
		return nil, fmt.Errorf("chunks: mirror stall %v and hedge wait %v may not be negative", cfg.MirrorStall, cfg.HedgeAfter)
	}
	if cfg.LeaseTime == 0 {
		cfg.LeaseTime = DefaultLeaseTime
	}
	if cfg.LeaseTime < 100*time.Millisecond {
		return nil, fmt.Errorf("chunks: lease time %v is under 100ms", cfg.LeaseTime)
	}
	if cfg.AbortPause == 0 {
		cfg.AbortPause = time.Second
	}
	if cfg.LeaseWait == 0 {
		cfg.LeaseWait = 5 * time.Second
	}
	if cfg.PieceSize == 0 {
		cfg.PieceSize = DefaultPieceSize
	}
	if cfg.PieceSize < minPieceSize {
		return nil, fmt.Errorf("chunks: piece size %d is under S3's smallest part of %d bytes", cfg.PieceSize, minPieceSize)
	}
	if cfg.Pieces == 0 {
		cfg.Pieces = DefaultPieces
	}
	if cfg.Pieces < perRequest {
		return nil, fmt.Errorf("chunks: %d pieces in memory; at least %d are needed", cfg.Pieces, perRequest)
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("chunks: spool dir: %w", err)
	}
	redirects := false
	for _, e := range cfg.Mirrors.All() {
		redirects = redirects || e.Redirect != nil
	}
	return &Service{cfg: cfg, redirects: redirects, pieces: newPool(cfg.PieceSize, cfg.Pieces, keepFree),
		aborts: make(chan struct{}, abortSlots), stop: make(chan struct{}), speeds: newSpeeds(cfg.HedgeAfter),
		heads: make(chan *[]byte, keptHeads)}, nil
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
// after the key lifetime unless an upload starts with it. The slug the file
// will have is drawn now, so publishing needs no further write to the
// session.
func (s *Service) Issue(ctx context.Context, a store.Account) (store.Session, error) {
	if _, err := s.room(ctx, a); err != nil {
		return store.Session{}, err
	}
	return s.newSession(ctx, "cannot issue an upload key", func(key, sl string, now time.Time) (store.Session, error) {
		tracker, err := slug.Hex(16)
		if err != nil {
			return store.Session{}, err
		}
		return store.Session{
			UploadKey: key, CTracker: tracker, APIKey: a.APIKey, Slug: sl,
			Issued: now, Expires: now.Add(s.cfg.KeyLifetime), Updated: now, Total: -1,
		}, nil
	})
}

// newSession stores the session that build makes around a new upload key
// and slug, drawing both again while the key is taken; fail says what
// failed when the store does.
func (s *Service) newSession(ctx context.Context, fail string, build func(key, sl string, now time.Time) (store.Session, error)) (store.Session, error) {
	for range 3 {
		key, err := slug.Hex(16)
		if err != nil {
			return store.Session{}, err
		}
		sl, err := slug.New(s.cfg.SlugLength)
		if err != nil {
			return store.Session{}, err
		}
		sess, err := build(key, sl, s.cfg.Clock().UTC())
		if err != nil {
			return store.Session{}, err
		}
		err = s.cfg.Store.CreateSession(ctx, sess)
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if err != nil {
			return store.Session{}, unavailable(fail, err)
		}
		sess.Version = 1 // as CreateSession stored it
		return sess, nil
	}
	return store.Session{}, errors.New("chunks: could not find a free upload key")
}
