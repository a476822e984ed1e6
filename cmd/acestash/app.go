package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/acestash/acestash/api"
	"github.com/acestash/acestash/api/metrics"
	"github.com/acestash/acestash/api/remote"
	"github.com/acestash/acestash/api/reqid"
	"github.com/acestash/acestash/api/tus"
	"github.com/acestash/acestash/api/webhooks"
	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/fsmirror"
	"github.com/acestash/acestash/mirrors/s3mirror"
	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/boltstore"
	"github.com/acestash/acestash/store/redisstore"
)

// app is one acestash node: its store, mirrors and handlers.
type app struct {
	id      string // this node's name in job locks
	cfg     Config
	log     *slog.Logger
	clock   store.Clock
	store   store.Store
	mirrors *mirrors.Set
	health  *mirrors.Health
	chunks  *chunks.Service
	metrics *metrics.Metrics
	hooks   *webhooks.Dispatcher // nil without webhooks
	drains  drains               // mirrors being drained, as last read
	// jobsChanged wakes mirrorJobs when this node's admin API changed a
	// job.
	jobsChanged chan struct{}
	handler     http.Handler
	// stopping ends when serve begins to stop; tus PATCHes end then.
	stopping context.Context
	stop     context.CancelFunc
}

// openStore opens the store the configuration names.
func openStore(ctx context.Context, cfg Config, clock store.Clock) (store.Store, error) {
	if cfg.RedisURL != "" {
		st, err := redisstore.Open(ctx, cfg.RedisURL, clock)
		if err != nil || cfg.RedisAllowVolatile {
			return st, err
		}
		if err := st.CheckDurable(ctx); err != nil {
			st.Close()
			return nil, err
		}
		return st, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return boltstore.Open(filepath.Join(cfg.DataDir, "acestash.db"), clock)
}

// openMirrors connects to every configured mirror, each timed by met.
func openMirrors(ctx context.Context, cfg Config, met *metrics.Metrics) (*mirrors.Set, error) {
	var entries []mirrors.Entry
	for _, mc := range cfg.Mirrors {
		var m mirrors.Mirror
		var redirect mirrors.Presigner
		var err error
		switch mc.Type {
		case "fs":
			m, err = fsmirror.New(mc.Path)
		case "s3":
			var s3 *s3mirror.Mirror
			s3, err = s3mirror.New(ctx, s3mirror.Config{
				Endpoint: mc.Endpoint, Bucket: mc.Bucket, AccessKey: mc.AccessKey,
				SecretKey: mc.SecretKey, Secure: mc.Secure, Region: mc.Region,
				PublicEndpoint: mc.PublicEndpoint,
			})
			m = s3
			if mc.Redirect {
				redirect = s3
			}
		}
		if err != nil {
			return nil, fmt.Errorf("mirror %s: %w", mc.ID, err)
		}
		entries = append(entries, mirrors.Entry{ID: mc.ID, Name: mc.Name, Mirror: met.Mirror(mc.ID, m), Redirect: redirect})
	}
	return mirrors.NewSet(entries...)
}

// newApp opens everything a node needs; close it with app.Close.
func newApp(ctx context.Context, cfg Config, log *slog.Logger, clock store.Clock) (_ *app, err error) {
	log = slog.New(reqid.Handler(log.Handler())) // lines name the request that caused them
	met := metrics.New()
	st, err := openStore(ctx, cfg, clock)
	if err != nil {
		return nil, err
	}
	st = met.Store(st)
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	set, err := openMirrors(ctx, cfg, met)
	if err != nil {
		return nil, err
	}
	if err := checkMirrors(ctx, st, cfg); err != nil {
		return nil, err
	}
	spool := filepath.Join(cfg.DataDir, "spool")
	if err := cleanSpool(spool, log); err != nil {
		return nil, err
	}
	a := &app{id: uuid.NewString(), cfg: cfg, log: log, clock: clock, store: st, mirrors: set, metrics: met,
		jobsChanged: make(chan struct{}, 1)}
	a.stopping, a.stop = context.WithCancel(context.Background())
	a.health = mirrors.NewHealth(set, 5*time.Second, log)
	for _, e := range set.All() {
		met.MirrorUp(e.ID, func() bool { return a.health.Err(e.ID) == nil })
	}
	var notify func(context.Context, string, store.File)
	if len(cfg.Webhooks) > 0 {
		var hooks []webhooks.Hook
		for _, w := range cfg.Webhooks {
			hooks = append(hooks, webhooks.Hook{URL: w.URL, Secret: w.Secret, Events: w.Events})
		}
		a.hooks = webhooks.New(webhooks.Config{
			Hooks: hooks, Store: st, Log: log,
			View: func(f store.File) any { return api.FileInfo(cfg.PublicURL, f) },
		})
		notify = a.hooks.Notify
	}
	a.chunks, err = chunks.New(chunks.Config{
		Store: st, Mirrors: set, Clock: clock, Log: log,
		SpoolDir:      spool,
		SlugLength:    cfg.SlugLength,
		MaxFileSize:   cfg.Limits.MaxFileSize,
		MaxChunkSize:  cfg.Limits.MaxChunkSize,
		PieceSize:     cfg.Limits.PieceSize,
		Pieces:        cfg.Limits.Pieces,
		WriteQuorum:   cfg.WriteQuorum,
		MirrorTimeout: cfg.MirrorTimeout,
		LagLimit:      cfg.LagLimit,
		MirrorStall:   cfg.MirrorStall,
		Suspect:       a.health.Report,
		HedgeAfter:    cfg.HedgeAfter,
		GaveUp:        met.GaveUp,
		LeaseTime:     cfg.LeaseTime,
		Health:        a.health.Err,
		Draining:      a.drains.has,
		Sniff:         api.Sniff,
		Notify:        notify,
	})
	if err != nil {
		return nil, err
	}
	if err := a.seedAccounts(ctx); err != nil {
		return nil, err
	}
	anon, err := a.anonymous(ctx)
	if err != nil {
		return nil, err
	}
	tusHandler, err := tus.New(tus.Config{
		Store: st, Chunks: a.chunks, PublicURL: cfg.PublicURL, Clock: clock, Log: log,
		Idle: cfg.Limits.SessionIdle, Origins: cfg.Tus.CORSOrigins, MaxSize: cfg.Limits.MaxFileSize,
		Stopping: a.stopping, MinBodyRate: cfg.Limits.MinBodyRate, BodyWindow: cfg.Limits.BodyWindow,
	})
	if err != nil {
		return nil, err
	}
	a.handler = api.New(api.Config{
		Store: st, Chunks: a.chunks, Mirrors: set, Clock: clock, Log: log,
		PublicURL: cfg.PublicURL,
		SpoolDir:  spool,
		Raw: api.Raw{
			MaxSize: cfg.Raw.MaxSize, RequireKey: cfg.Raw.RequireKey,
			Anonymous: anon, TTL: cfg.Raw.TTL,
		},
		UnconfirmedTTL:  cfg.RocketChat.UnconfirmedTTL,
		Remote:          fetcher(cfg.Remote),
		RemoteSlots:     cfg.Remote.MaxConcurrent,
		MinBodyRate:     cfg.Limits.MinBodyRate,
		BodyWindow:      cfg.Limits.BodyWindow,
		Tus:             tusHandler,
		Health:          a.health.Err,
		Metrics:         met,
		MetricsHandler:  met.Handler(),
		MetricsToken:    cfg.MetricsToken,
		Ready:           a.ready,
		AdminToken:      cfg.AdminToken,
		RedirectExpiry:  cfg.RedirectExpiry,
		RedirectOrigins: redirectOrigins(cfg.Mirrors),
		JobsChanged: func() {
			select {
			case a.jobsChanged <- struct{}{}:
			default: // a wake-up is pending already
			}
		},
	})
	return a, nil
}

// redirectOrigins lists where downloads may be redirected to.
func redirectOrigins(ms []MirrorConfig) []string {
	var o []string
	for _, m := range ms {
		if m.Redirect {
			o = append(o, m.publicOrigin())
		}
	}
	return o
}

func (a *app) Close() error {
	a.stop()
	a.chunks.Close()
	return a.store.Close()
}

// cleanSpool removes what requests parked in the spool directory before
// this node started: nothing is left to read it.
func cleanSpool(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	if len(entries) > 0 {
		log.Info("removed what the spool held from before the start", "count", len(entries))
	}
	return nil
}

// seedAccounts writes the configured accounts to the store and, when the
// store has no account at all, creates one and logs its credentials once.
func (a *app) seedAccounts(ctx context.Context) error {
	for _, ac := range a.cfg.Accounts {
		acct := store.Account{APIKey: ac.APIKey, TokenHash: store.HashToken(ac.APIToken),
			UserID: ac.UserID, Username: ac.Username, DisplayName: ac.DisplayName}
		if err := acct.Set(ac.Settings); err != nil {
			return fmt.Errorf("seed account %s: %w", ac.Name, err)
		}
		old, err := a.store.Account(ctx, ac.APIKey)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("seed account %s: %w", ac.Name, err)
		}
		if acct.UserID == "" {
			acct.UserID = old.UserID // generated once, then kept
		}
		if err := acct.CompleteIdentity(); err != nil {
			return err
		}
		if err := a.store.PutAccount(ctx, acct); err != nil {
			return fmt.Errorf("seed account %s: %w", ac.Name, err)
		}
	}
	all, err := a.store.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	if len(all) > 0 {
		return nil
	}
	acct, token, err := createAccount(ctx, a.store, "admin")
	if err != nil {
		return err
	}
	a.log.Info("created the first account; its token is shown only now",
		"name", acct.Name, "api_key", acct.APIKey, "api_token", token, "user_id", acct.UserID)
	return nil
}

// fetcher returns the fetcher upload/remote uses, or nil when it is off.
// The configuration was validated when it was loaded.
func fetcher(rc RemoteConfig) *remote.Fetcher {
	if !*rc.Enabled {
		return nil
	}
	var allow []netip.Prefix
	for _, c := range rc.AllowCIDRs {
		allow = append(allow, netip.MustParsePrefix(c))
	}
	return remote.New(remote.Config{
		Policy:         remote.Policy{Allow: allow},
		ConnectTimeout: rc.ConnectTimeout,
		Timeout:        rc.Timeout,
		Resolver:       rc.resolver,
	})
}

// anonymous returns the api_key of the account that owns keyless uploads to
// POST /upload: raw.anonymous_account, else the first configured account,
// else the first account in the store.
func (a *app) anonymous(ctx context.Context) (string, error) {
	key := a.cfg.Raw.AnonymousAccount
	if key == "" && len(a.cfg.Accounts) > 0 {
		key = a.cfg.Accounts[0].APIKey
	}
	if key == "" {
		all, err := a.store.Accounts(ctx)
		if err != nil {
			return "", fmt.Errorf("list accounts: %w", err)
		}
		if len(all) == 0 {
			return "", errors.New("no account to own anonymous uploads")
		}
		return all[0].APIKey, nil
	}
	if _, err := a.store.Account(ctx, key); err != nil {
		return "", fmt.Errorf("raw.anonymous_account: %w", err)
	}
	return key, nil
}

// createAccount makes an account with fresh credentials and returns it and
// its token (which the store keeps only hashed).
func createAccount(ctx context.Context, st store.Accounts, name string) (store.Account, string, error) {
	acct, token, err := store.NewAccount(name)
	if err != nil {
		return store.Account{}, "", err
	}
	if err := st.PutAccount(ctx, acct); err != nil {
		return store.Account{}, "", fmt.Errorf("create account: %w", err)
	}
	return acct, token, nil
}

// serve answers HTTP on ln until ctx ends, then shuts down gracefully: it
// stops accepting connections and lets the requests in flight finish for
// up to shutdown_grace; their contexts are cancelled only after that.
func (a *app) serve(ctx context.Context, ln net.Listener) error {
	bg, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.health.Run(bg, a.cfg.HealthInterval)
	go a.reapLoop(bg)
	go a.mirrorJobs(bg)
	go a.job(bg, "repair", a.cfg.RepairInterval, a.chunks.Repair)
	go a.job(bg, "scrub", a.cfg.ScrubInterval, func(ctx context.Context) (int, error) {
		return a.chunks.Scrub(ctx, a.cfg.ScrubShare)
	})
	go a.job(bg, "janitor", a.cfg.Janitor.Interval, func(ctx context.Context) (int, error) {
		return a.chunks.Sweep(ctx, a.cfg.Janitor.Grace)
	})
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		if a.hooks != nil {
			a.hooks.Run(bg)
		}
	}()
	// Deliveries in progress record their outcome before the store closes.
	defer func() { cancel(); <-hooksDone }()
	// Requests live in their own context: the signal that ends ctx must
	// not cut off a chunk that is still arriving.
	reqs, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: a.cfg.Limits.HeaderTimeout,
		IdleTimeout:       a.cfg.Limits.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return api.BaseContext(reqs) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("acestash listening", "addr", ln.Addr().String(), "public_url", a.cfg.PublicURL,
		"store", a.storeKind(), "mirrors", len(a.mirrors.All()))
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	hooked := make(chan struct{})
	srv.RegisterOnShutdown(func() { // once the listener is closed, in a goroutine of its own
		defer close(hooked)
		a.log.Info("shutting down: no new connections, waiting for requests in flight", "grace", a.cfg.ShutdownGrace)
		a.stop() // tus PATCHes end now and keep what they received
	})
	shut, done := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownGrace)
	defer done()
	err := srv.Shutdown(shut)
	<-hooked // Shutdown started it but does not wait for it
	if err != nil {
		cancelReqs()
		srv.Close()
		return fmt.Errorf("shutdown: requests still running after %v: %w", a.cfg.ShutdownGrace, err)
	}
	a.log.Info("stopped")
	return nil
}

func (a *app) storeKind() string {
	if a.cfg.RedisURL != "" {
		return "redis"
	}
	return "embedded"
}

// reapLoop abandons idle uploads and removes expired files every minute.
func (a *app) reapLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.reap(ctx)
	}
}

// reap abandons idle uploads and removes expired files once.
func (a *app) reap(ctx context.Context) {
	n, err := a.chunks.Reap(ctx, a.cfg.Limits.SessionIdle)
	a.metrics.Reaped(n)
	if err != nil {
		a.log.Warn("reap idle uploads", "err", err)
	} else if n > 0 {
		a.log.Info("abandoned idle uploads", "count", n)
	}
	n, err = a.chunks.Expire(ctx)
	if err != nil {
		a.log.Warn("remove expired files", "err", err)
	} else if n > 0 {
		a.log.Info("removed expired files", "count", n)
	}
}
