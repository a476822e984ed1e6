// Package storetest is the conformance suite every store.Store passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// Epoch returns the time every Run test's clock starts at. It has
// nanoseconds so that stores are seen to keep them.
func Epoch() time.Time { return time.Date(2031, 3, 4, 5, 6, 7, 123456789, time.UTC) }

// Open makes a new, empty store reading the time from clock; the suites
// close it when the subtest ends.
type Open func(t *testing.T, clock store.Clock) store.Store

// check is one subtest of a suite.
type check struct {
	name string
	fn   func(t *testing.T, e *env)
}

// The suites, one per role of store.Store.
var (
	accountChecks = []check{
		{"Accounts", testAccounts},
		{"AccountReplace", testAccountReplace},
		{"AccountDelete", testAccountDelete},
	}
	sessionChecks = []check{
		{"SessionCreate", testSessionCreate},
		{"SessionExpiry", testSessionExpiry},
		{"SessionStartedSurvives", testSessionStartedSurvives},
		{"SessionUpdate", testSessionUpdate},
		{"SessionUpdateRace", testSessionUpdateRace},
		{"SessionDelete", testSessionDelete},
		{"SessionLease", testSessionLease},
		{"SessionLeaseKeepsUnstarted", testSessionLeaseKeepsUnstarted},
		{"SessionRenew", testSessionRenew},
		{"IdleSessions", testIdleSessions},
		{"IdleSessionsLimit", testIdleSessionsLimit},
	}
	fileChecks = []check{
		{"FileCreate", testFileCreate},
		{"FileCreateConflicts", testFileCreateConflicts},
		{"FileCreateRace", testFileCreateRace},
		{"Files", testFiles},
		{"FileUpdate", testFileUpdate},
		{"FileDelete", testFileDelete},
		{"OwnerFiles", testOwnerFiles},
		{"ExpiredFiles", testExpiredFiles},
		{"Usage", testUsage},
		{"UsageConcurrent", testUsageConcurrent},
		{"DamagedFiles", testDamagedFiles},
		{"EachFile", testEachFile},
	}
	coordinationChecks = []check{
		{"Lock", testLock},
		{"Count", testCount},
	}
	jobChecks = []check{
		{"Jobs", testJobs},
		{"JobRace", testJobRace},
	}
	deliveryChecks = []check{
		{"Deliveries", testDeliveries},
		{"DeliveriesClaimedOnce", testDeliveriesClaimedOnce},
	}
)

// Run checks every contract of store.Store against stores made by open:
// each role's suite, and Ping. The subtests run one after another, so open
// may reuse one backing server.
func Run(t *testing.T, open Open) {
	RunAccounts(t, open)
	RunSessions(t, open)
	RunFiles(t, open)
	RunCoordination(t, open)
	RunDeliveries(t, open)
	RunJobs(t, open)
	run(t, open, []check{{"Ping", testPing}})
}

// RunAccounts checks the contract of store.Accounts.
func RunAccounts(t *testing.T, open Open) { run(t, open, accountChecks) }

// RunSessions checks the contract of store.Sessions.
func RunSessions(t *testing.T, open Open) { run(t, open, sessionChecks) }

// RunFiles checks the contract of store.Files.
func RunFiles(t *testing.T, open Open) { run(t, open, fileChecks) }

// RunCoordination checks the contract of store.Coordination.
func RunCoordination(t *testing.T, open Open) { run(t, open, coordinationChecks) }

// RunDeliveries checks the contract of store.Deliveries.
func RunDeliveries(t *testing.T, open Open) { run(t, open, deliveryChecks) }

// RunJobs checks the contract of store.Jobs.
func RunJobs(t *testing.T, open Open) { run(t, open, jobChecks) }

func run(t *testing.T, open Open, checks []check) {
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock(Epoch())
			s := open(t, clock.Now)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, &env{ctx: t.Context(), s: s, clock: clock})
		})
	}
}

type env struct {
	ctx   context.Context
	s     store.Store
	clock *Clock
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// must fails on a non-nil error.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// utc normalises a time for comparison: UTC, no monotonic reading.
func utc(t time.Time) time.Time { return t.UTC() }

func normSession(s store.Session) store.Session {
	s.Issued, s.Expires, s.Updated = utc(s.Issued), utc(s.Expires), utc(s.Updated)
	if !s.LeaseUntil.IsZero() {
		s.LeaseUntil = utc(s.LeaseUntil)
	}
	return s
}

func normFile(f store.File) store.File {
	f.Created, f.Expires = utc(f.Created), utc(f.Expires)
	return f
}

func sameSession(t *testing.T, what string, got, want store.Session) {
	t.Helper()
	if g, w := normSession(got), normSession(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func sameFile(t *testing.T, what string, got, want store.File) {
	t.Helper()
	if g, w := normFile(got), normFile(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func account(key, user string) store.Account {
	return store.Account{
		Name:           "name " + key,
		APIKey:         key,
		TokenHash:      store.HashToken("token-" + key),
		UserID:         user,
		Username:       "user-" + key,
		DisplayName:    "Display " + key,
		Mirrors:        []string{"m1", "m2"},
		DefaultMirrors: []string{"m2"},
		MaxMirrors:     2,
		MaxFileSize:    1 << 30,
		Rooms:          []string{"GENERAL"},
		DefaultExpiry:  24 * time.Hour,
		MaxExpiry:      7 * 24 * time.Hour,
	}
}

func testAccounts(t *testing.T, e *env) {
	list, err := e.s.Accounts(e.ctx)
	must(t, "Accounts on empty store", err)
	if len(list) != 0 {
		t.Fatalf("Accounts on empty store = %v", list)
	}
	_, err = e.s.Account(e.ctx, "nope")
	wantErr(t, "Account(missing)", err, store.ErrNotFound)
	_, err = e.s.AccountByUserID(e.ctx, "nope")
	wantErr(t, "AccountByUserID(missing)", err, store.ErrNotFound)

	keys := []string{"kc", "ka", "kd", "kb"}
	for i, k := range keys {
		must(t, "PutAccount", e.s.PutAccount(e.ctx, account(k, fmt.Sprintf("user%017d", i))))
	}
	for i, k := range keys {
		want := account(k, fmt.Sprintf("user%017d", i))
		got, err := e.s.Account(e.ctx, k)
		must(t, "Account", err)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Account(%q):\n got %+v\nwant %+v", k, got, want)
		}
		got, err = e.s.AccountByUserID(e.ctx, want.UserID)
		must(t, "AccountByUserID", err)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("AccountByUserID(%q):\n got %+v\nwant %+v", want.UserID, got, want)
		}
		if !got.CheckToken("token-"+k) || got.CheckToken("token-x") {
			t.Fatalf("CheckToken after store is wrong for %q", k)
		}
	}
	list, err = e.s.Accounts(e.ctx)
	must(t, "Accounts", err)
	var got []string
	for _, a := range list {
		got = append(got, a.APIKey)
	}
	if want := []string{"ka", "kb", "kc", "kd"}; !slices.Equal(got, want) {
		t.Fatalf("Accounts keys = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(list[0], account("ka", fmt.Sprintf("user%017d", 1))) {
		t.Fatalf("Accounts()[0] = %+v", list[0])
	}
	// An account whose settings fail Settings.Validate is refused with its
	// words, and the account stored under its key is left as it was.
	for _, bad := range []func(*store.Account){
		func(a *store.Account) { a.QuotaBytes = -1 },
		func(a *store.Account) { a.DefaultExpiry = 8 * 24 * time.Hour },
	} {
		a := account("ka", fmt.Sprintf("user%017d", 1))
		bad(&a)
		want := a.Settings().Validate(nil)
		if want == nil {
			t.Fatalf("Validate passes %+v", a.Settings())
		}
		if err := e.s.PutAccount(e.ctx, a); err == nil || !strings.Contains(err.Error(), want.Error()) {
			t.Fatalf("PutAccount of an account Validate refuses (%v): %v", want, err)
		}
		got, err := e.s.Account(e.ctx, "ka")
		must(t, "Account after a refused PutAccount", err)
		if !reflect.DeepEqual(got, account("ka", fmt.Sprintf("user%017d", 1))) {
			t.Fatalf("a refused PutAccount changed the account: %+v", got)
		}
	}
}

func testAccountReplace(t *testing.T, e *env) {
	must(t, "PutAccount", e.s.PutAccount(e.ctx, account("k", "old-user")))
	a := account("k", "new-user")
	a.Name = "renamed"
	a.TokenHash = store.HashToken("rotated")
	a.Mirrors = nil
	must(t, "PutAccount replace", e.s.PutAccount(e.ctx, a))

	got, err := e.s.Account(e.ctx, "k")
	must(t, "Account", err)
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("Account after replace:\n got %+v\nwant %+v", got, a)
	}
	if !got.CheckToken("rotated") || got.CheckToken("token-k") {
		t.Fatal("token not replaced")
	}
	_, err = e.s.AccountByUserID(e.ctx, "old-user")
	wantErr(t, "AccountByUserID(old user id)", err, store.ErrNotFound)
	got, err = e.s.AccountByUserID(e.ctx, "new-user")
	must(t, "AccountByUserID(new user id)", err)
	if got.APIKey != "k" {
		t.Fatalf("AccountByUserID(new) = %+v", got)
	}
	list, err := e.s.Accounts(e.ctx)
	must(t, "Accounts", err)
	if len(list) != 1 {
		t.Fatalf("Accounts after replace has %d accounts", len(list))
	}
}

// session returns an unstarted session as file/upload creates it.
func (e *env) session(key string) store.Session {
	now := e.clock.Now()
	return store.Session{
		UploadKey: key,
		CTracker:  "ct-" + key,
		APIKey:    "owner",
		Issued:    now,
		Expires:   now.Add(time.Hour),
		Updated:   now,
		Total:     -1,
	}
}

// fullSession returns a started session with every field set.
func (e *env) fullSession(key string) store.Session {
	s := e.session(key)
	s.Started = true
	s.Updated = e.clock.Now().Add(time.Minute)
	s.Name = "film.mkv"
	s.Type = "video/x-matroska"
	s.PasswordHash = []byte{0, 1, 2, 255}
	s.Mirrors = []string{"a", "b"}
	s.ObjectKey = "obj/" + key
	s.Total = 1 << 40
	s.Held = 3 << 20
	s.Chunks = 3
	s.LastStart = 2 << 20
	s.LastEnd = 3<<20 - 1
	s.PrevHeld = 2 << 20
	s.Hash = []byte("hash-state\x00\xff")
	s.PrevHash = []byte("prev-state")
	s.Uploads = map[string]mirrors.Upload{"a": {Key: "obj/a", ID: "up-a"}, "b": {Key: "obj/b", ID: "up-b"}}
	s.Last = map[string]mirrors.Part{"a": {N: 3, Size: 3 << 20, Token: "etag3"}, "b": {N: 3, Size: 3 << 20, Token: "t3"}}
	s.Prev = map[string]mirrors.Part{"a": {N: 2, Size: 2 << 20, Token: "etag2"}}
	s.Failed = map[string]string{"c": "timeout"}
	s.Slug = "slug-" + key
	s.Done = true
	s.Meta = map[string]string{"filename": "film.mkv", "filetype": ""}
	s.Partial = true
	s.Joined = []string{"p1-" + key, "p2-" + key}
	s.Lease = "lease-" + key
	s.LeaseUntil = e.clock.Now().Add(21 * time.Minute)
	s.LeaseWants = 2
	s.FileExpires = e.clock.Now().Add(48 * time.Hour)
	s.MaxDownloads = 5
	return s
}

func testSessionCreate(t *testing.T, e *env) {
	_, err := e.s.Session(e.ctx, "missing")
	wantErr(t, "Session(missing)", err, store.ErrNotFound)

	s := e.session("k1")
	s.Version = 42 // the store sets it
	must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
	got, err := e.s.Session(e.ctx, "k1")
	must(t, "Session", err)
	want := s
	want.Version = 1
	sameSession(t, "Session after create", got, want)

	dup := e.session("k1")
	dup.Name = "other"
	wantErr(t, "CreateSession(duplicate)", e.s.CreateSession(e.ctx, dup), store.ErrExists)
	got, err = e.s.Session(e.ctx, "k1")
	must(t, "Session", err)
	sameSession(t, "Session after duplicate create", got, want)

	// Every field survives CreateSession too.
	full := e.fullSession("k2")
	must(t, "CreateSession(full)", e.s.CreateSession(e.ctx, full))
	got, err = e.s.Session(e.ctx, "k2")
	must(t, "Session(full)", err)
	full.Version = 1
	sameSession(t, "full session", got, full)
}

func testSessionExpiry(t *testing.T, e *env) {
	s := e.session("k")
	must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
	e.clock.Set(s.Expires.Add(-time.Nanosecond))
	got, err := e.s.Session(e.ctx, "k")
	must(t, "Session just before Expires", err)

	e.clock.Set(s.Expires)
	_, err = e.s.Session(e.ctx, "k")
	wantErr(t, "Session at Expires", err, store.ErrNotFound)
	_, err = e.s.UpdateSession(e.ctx, got)
	wantErr(t, "UpdateSession at Expires", err, store.ErrNotFound)
	e.clock.Advance(time.Hour)
	_, err = e.s.Session(e.ctx, "k")
	wantErr(t, "Session after Expires", err, store.ErrNotFound)

	// The lapsed key is free again.
	again := e.session("k")
	again.CTracker = "again"
	must(t, "CreateSession over a lapsed session", e.s.CreateSession(e.ctx, again))
	got, err = e.s.Session(e.ctx, "k")
	must(t, "Session", err)
	again.Version = 1
	sameSession(t, "recreated session", got, again)
}

func testSessionStartedSurvives(t *testing.T, e *env) {
	s := e.session("k")
	must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
	got, err := e.s.Session(e.ctx, "k")
	must(t, "Session", err)
	e.clock.Advance(30 * time.Minute)
	got.Started = true
	got.Updated = e.clock.Now()
	got, err = e.s.UpdateSession(e.ctx, got)
	must(t, "UpdateSession(Started)", err)

	e.clock.Advance(48 * time.Hour)
	got2, err := e.s.Session(e.ctx, "k")
	must(t, "started Session past Expires", err)
	sameSession(t, "started session", got2, got)
	got2.Held = 10
	_, err = e.s.UpdateSession(e.ctx, got2)
	must(t, "UpdateSession past Expires", err)

	// A session created already started never lapses either.
	st := e.fullSession("born-started")
	must(t, "CreateSession(started)", e.s.CreateSession(e.ctx, st))
	e.clock.Advance(48 * time.Hour)
	_, err = e.s.Session(e.ctx, "born-started")
	must(t, "Session(born started) past Expires", err)
}

func testSessionUpdate(t *testing.T, e *env) {
	_, err := e.s.UpdateSession(e.ctx, e.session("missing"))
	wantErr(t, "UpdateSession(missing)", err, store.ErrNotFound)
	if _, err := e.s.Session(e.ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateSession(missing) created it: %v", err)
	}

	must(t, "CreateSession", e.s.CreateSession(e.ctx, e.session("k")))
	v1, err := e.s.Session(e.ctx, "k")
	must(t, "Session", err)

	full := e.fullSession("k")
	full.Version = v1.Version
	v2, err := e.s.UpdateSession(e.ctx, full)
	must(t, "UpdateSession", err)
	if v2.Version != v1.Version+1 {
		t.Fatalf("UpdateSession returned Version %d, want %d", v2.Version, v1.Version+1)
	}
	want := full
	want.Version = v1.Version + 1
	sameSession(t, "UpdateSession result", v2, want)
	got, err := e.s.Session(e.ctx, "k")
	must(t, "Session", err)
	sameSession(t, "Session after update", got, want)

	// The stale copy loses and changes nothing.
	v1.Name = "stale"
	_, err = e.s.UpdateSession(e.ctx, v1)
	wantErr(t, "UpdateSession(stale)", err, store.ErrConflict)
	ahead := v2
	ahead.Version = v2.Version + 5
	_, err = e.s.UpdateSession(e.ctx, ahead)
	wantErr(t, "UpdateSession(version ahead)", err, store.ErrConflict)
	got, err = e.s.Session(e.ctx, "k")
	must(t, "Session", err)
	sameSession(t, "Session after stale update", got, want)

	// Fields can be cleared again.
	v2.Uploads, v2.Last, v2.Prev, v2.Failed = nil, nil, nil, nil
	v2.PasswordHash, v2.Mirrors, v2.Slug, v2.Done = nil, nil, "", false
	v3, err := e.s.UpdateSession(e.ctx, v2)
	must(t, "UpdateSession(cleared)", err)
	got, err = e.s.Session(e.ctx, "k")
	must(t, "Session", err)
	sameSession(t, "cleared session", got, v3)
	if v3.Version != v2.Version+1 {
		t.Fatalf("Version = %d, want %d", v3.Version, v2.Version+1)
	}
}

func testSessionLease(t *testing.T, e *env) {
	_, err := e.s.Lease(e.ctx, "missing", "h1", e.clock.Now().Add(time.Minute))
	wantErr(t, "Lease(missing)", err, store.ErrNotFound)

	full := e.fullSession("k")
	full.Lease, full.LeaseUntil = "", time.Time{}
	must(t, "CreateSession", e.s.CreateSession(e.ctx, full))
	base, err := e.s.Session(e.ctx, "k")
	must(t, "Session", err)

	until := e.clock.Now().Add(time.Minute)
	got, err := e.s.Lease(e.ctx, "k", "h1", until)
	must(t, "Lease", err)
	want := base
	want.Version, want.Lease, want.LeaseUntil = base.Version+1, "h1", until
	sameSession(t, "Lease result", got, want)
	stored, err := e.s.Session(e.ctx, "k")
	must(t, "Session after Lease", err)
	sameSession(t, "Session after Lease", stored, want)

	// A copy read before the lease can no longer be written.
	_, err = e.s.UpdateSession(e.ctx, base)
	wantErr(t, "UpdateSession(read before the lease)", err, store.ErrConflict)

	// Another holder is refused and told what the session is.
	held, err := e.s.Lease(e.ctx, "k", "h2", e.clock.Now().Add(time.Hour))
	wantErr(t, "Lease(another holder)", err, store.ErrLeased)
	sameSession(t, "session shown to a refused holder", held, want)

	// The holder renews; a commit that clears the lease frees it.
	e.clock.Advance(30 * time.Second)
	until = e.clock.Now().Add(time.Minute)
	got, err = e.s.Lease(e.ctx, "k", "h1", until)
	must(t, "Lease(renew)", err)
	if got.Version != want.Version+1 || got.LeaseUntil.UnixNano() != until.UnixNano() {
		t.Fatalf("renewed lease: Version %d, until %v; want %d, %v", got.Version, got.LeaseUntil, want.Version+1, until)
	}
	got.Lease, got.LeaseUntil, got.Held = "", time.Time{}, got.Held+1
	got, err = e.s.UpdateSession(e.ctx, got)
	must(t, "UpdateSession(release)", err)
	stored, err = e.s.Session(e.ctx, "k")
	must(t, "Session after release", err)
	sameSession(t, "Session after release", stored, got)
	if _, err := e.s.Lease(e.ctx, "k", "h2", e.clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("Lease after release: %v", err)
	}

	// A lease that ran out is taken over.
	e.clock.Advance(time.Minute)
	got, err = e.s.Lease(e.ctx, "k", "h3", e.clock.Now().Add(time.Minute))
	must(t, "Lease after the last one ran out", err)
	if got.Lease != "h3" {
		t.Fatalf("Lease holder = %q, want h3", got.Lease)
	}
}

func testSessionLeaseKeepsUnstarted(t *testing.T, e *env) {
	s := e.session("k")
	must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
	e.clock.Set(s.Expires.Add(-time.Minute))
	until := s.Expires.Add(10 * time.Minute)
	got, err := e.s.Lease(e.ctx, "k", "h", until)
	must(t, "Lease", err)
	if !got.Expires.Equal(until) {
		t.Fatalf("Expires after a lease past it = %v, want %v", got.Expires, until)
	}
	e.clock.Set(s.Expires.Add(5 * time.Minute))
	got, err = e.s.Session(e.ctx, "k")
	must(t, "Session past its first Expires, within the lease", err)
	got.Started, got.Lease, got.LeaseUntil = true, "", time.Time{}
	_, err = e.s.UpdateSession(e.ctx, got)
	must(t, "UpdateSession(start) within the lease", err)

	// Without a start, the session lapses when the lease ends.
	o := e.session("other")
	must(t, "CreateSession", e.s.CreateSession(e.ctx, o))
	_, err = e.s.Lease(e.ctx, "other", "h", e.clock.Now().Add(2*time.Hour))
	must(t, "Lease", err)
	e.clock.Advance(2 * time.Hour)
	_, err = e.s.Session(e.ctx, "other")
	wantErr(t, "Session after the lease that kept it", err, store.ErrNotFound)
}

func testSessionRenew(t *testing.T, e *env) {
	wantErr(t, "Renew(missing)", e.s.Renew(e.ctx, "missing", "h1", e.clock.Now().Add(time.Minute)), store.ErrNotFound)
	must(t, "CreateSession", e.s.CreateSession(e.ctx, e.session("k")))
	wantErr(t, "Renew(never leased)", e.s.Renew(e.ctx, "k", "h1", e.clock.Now().Add(time.Minute)), store.ErrLeased)
	leased, err := e.s.Lease(e.ctx, "k", "h1", e.clock.Now().Add(10*time.Second))
	must(t, "Lease", err)

	// Renewing keeps the Version, so the holder's copy can still be written,
	// and keeps others out past the first end.
	e.clock.Advance(8 * time.Second)
	until := e.clock.Now().Add(10 * time.Second)
	must(t, "Renew", e.s.Renew(e.ctx, "k", "h1", until))
	got, err := e.s.Session(e.ctx, "k")
	must(t, "Session", err)
	want := leased
	want.LeaseUntil = until
	if until.After(want.Expires) {
		want.Expires = until
	}
	sameSession(t, "Session after Renew", got, want)
	e.clock.Advance(5 * time.Second)
	_, err = e.s.Lease(e.ctx, "k", "h2", e.clock.Now().Add(10*time.Second))
	wantErr(t, "Lease(another holder, within the renewed lease)", err, store.ErrLeased)
	leased.Held = 7
	committed, err := e.s.UpdateSession(e.ctx, leased)
	must(t, "UpdateSession(the holder's copy after Renew)", err)

	// A lease that ran out and was not taken is still the holder's.
	e.clock.Advance(time.Minute)
	must(t, "Renew(run out, not taken)", e.s.Renew(e.ctx, "k", "h1", e.clock.Now().Add(10*time.Second)))

	// Once taken by another, or released, it is not.
	e.clock.Advance(time.Minute)
	if _, err := e.s.Lease(e.ctx, "k", "h2", e.clock.Now().Add(10*time.Second)); err != nil {
		t.Fatalf("Lease after h1's ran out: %v", err)
	}
	wantErr(t, "Renew(taken by another)", e.s.Renew(e.ctx, "k", "h1", e.clock.Now().Add(time.Minute)), store.ErrLeased)
	cur, err := e.s.Session(e.ctx, "k")
	must(t, "Session", err)
	if cur.Version != committed.Version+1 {
		t.Fatalf("Version %d after the take-over, want %d", cur.Version, committed.Version+1)
	}
	cur.Lease, cur.LeaseUntil = "", time.Time{}
	_, err = e.s.UpdateSession(e.ctx, cur)
	must(t, "UpdateSession(release)", err)
	wantErr(t, "Renew(released)", e.s.Renew(e.ctx, "k", "h2", e.clock.Now().Add(time.Minute)), store.ErrLeased)
}

func testSessionUpdateRace(t *testing.T, e *env) {
	must(t, "CreateSession", e.s.CreateSession(e.ctx, e.session("k")))
	base, err := e.s.Session(e.ctx, "k")
	must(t, "Session", err)

	const n = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		others  []error
	)
	for i := range n {
		wg.Go(func() {
			s := base
			s.Name = fmt.Sprintf("writer %d", i)
			s.Chunks = i
			_, err := e.s.UpdateSession(e.ctx, s)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, s.Name)
			case !errors.Is(err, store.ErrConflict):
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("racing UpdateSession failed other than ErrConflict: %v", others)
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d racing UpdateSession calls won, want exactly 1: %v", len(winners), n, winners)
	}
	got, err := e.s.Session(e.ctx, "k")
	must(t, "Session", err)
	if got.Name != winners[0] || got.Version != base.Version+1 {
		t.Fatalf("stored Name %q Version %d, want %q %d", got.Name, got.Version, winners[0], base.Version+1)
	}
}

func testSessionDelete(t *testing.T, e *env) {
	must(t, "DeleteSession(missing)", e.s.DeleteSession(e.ctx, "missing"))
	s := e.fullSession("k")
	must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
	must(t, "DeleteSession", e.s.DeleteSession(e.ctx, "k"))
	_, err := e.s.Session(e.ctx, "k")
	wantErr(t, "Session after delete", err, store.ErrNotFound)
	_, err = e.s.UpdateSession(e.ctx, store.Session{UploadKey: "k", Version: 1})
	wantErr(t, "UpdateSession after delete", err, store.ErrNotFound)
	idle, err := e.s.IdleSessions(e.ctx, e.clock.Now().Add(time.Hour), 10)
	must(t, "IdleSessions", err)
	if len(idle) != 0 {
		t.Fatalf("IdleSessions after delete = %v", keysOfSessions(idle))
	}
	must(t, "DeleteSession twice", e.s.DeleteSession(e.ctx, "k"))
	must(t, "CreateSession after delete", e.s.CreateSession(e.ctx, s))
}

func keysOfSessions(list []store.Session) []string {
	var keys []string
	for _, s := range list {
		keys = append(keys, s.UploadKey)
	}
	slices.Sort(keys)
	return keys
}

// idleKeys returns the sorted upload keys IdleSessions(t, limit) reports.
func (e *env) idleKeys(t *testing.T, before time.Time, limit int) []string {
	t.Helper()
	list, err := e.s.IdleSessions(e.ctx, before, limit)
	must(t, "IdleSessions", err)
	for _, s := range list {
		if !s.Started || !s.Updated.Before(before) {
			t.Fatalf("IdleSessions(%v) returned %+v", before, s)
		}
	}
	return keysOfSessions(list)
}

func testIdleSessions(t *testing.T, e *env) {
	now := e.clock.Now()
	if got := e.idleKeys(t, now.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("IdleSessions on empty store = %v", got)
	}
	// started sessions updated at now+i minutes; s3 is started at create.
	for i := range 5 {
		key := fmt.Sprintf("s%d", i)
		s := e.session(key)
		if i == 3 {
			s.Started = true
			s.Updated = now.Add(3 * time.Minute)
			must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
			continue
		}
		must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
		s, err := e.s.Session(e.ctx, key)
		must(t, "Session", err)
		s.Started = true
		s.Updated = now.Add(time.Duration(i) * time.Minute)
		_, err = e.s.UpdateSession(e.ctx, s)
		must(t, "UpdateSession", err)
	}
	// unstarted sessions, however old, are never idle.
	for i := range 3 {
		s := e.session(fmt.Sprintf("u%d", i))
		s.Updated = now.Add(-time.Hour)
		must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
	}

	if got, want := e.idleKeys(t, now.Add(2*time.Minute), 10), []string{"s0", "s1"}; !slices.Equal(got, want) {
		t.Fatalf("IdleSessions(now+2m) = %v, want %v (Updated equal to t is not before t)", got, want)
	}
	if got, want := e.idleKeys(t, now.Add(2*time.Minute+time.Nanosecond), 10), []string{"s0", "s1", "s2"}; !slices.Equal(got, want) {
		t.Fatalf("IdleSessions(now+2m+1ns) = %v, want %v", got, want)
	}
	if got, want := e.idleKeys(t, now.Add(time.Hour), 10), []string{"s0", "s1", "s2", "s3", "s4"}; !slices.Equal(got, want) {
		t.Fatalf("IdleSessions(now+1h) = %v, want %v", got, want)
	}

	// An update moves a session out of (and back into) the idle set.
	s1, err := e.s.Session(e.ctx, "s1")
	must(t, "Session", err)
	s1.Updated = now.Add(10 * time.Minute)
	s1, err = e.s.UpdateSession(e.ctx, s1)
	must(t, "UpdateSession", err)
	if got, want := e.idleKeys(t, now.Add(5*time.Minute), 10), []string{"s0", "s2", "s3", "s4"}; !slices.Equal(got, want) {
		t.Fatalf("IdleSessions after update = %v, want %v", got, want)
	}
	list, err := e.s.IdleSessions(e.ctx, now.Add(time.Hour), 10)
	must(t, "IdleSessions", err)
	for _, s := range list {
		if s.UploadKey == "s1" {
			sameSession(t, "idle session", s, s1)
		}
	}
	// A session no longer started is not idle.
	s2, err := e.s.Session(e.ctx, "s2")
	must(t, "Session", err)
	s2.Started = false
	s2.Expires = e.clock.Now().Add(time.Hour)
	_, err = e.s.UpdateSession(e.ctx, s2)
	must(t, "UpdateSession(unstart)", err)
	// Deleted sessions are not idle.
	must(t, "DeleteSession", e.s.DeleteSession(e.ctx, "s0"))
	if got, want := e.idleKeys(t, now.Add(time.Hour), 10), []string{"s1", "s3", "s4"}; !slices.Equal(got, want) {
		t.Fatalf("IdleSessions after delete = %v, want %v", got, want)
	}
}

func testIdleSessionsLimit(t *testing.T, e *env) {
	now := e.clock.Now()
	for i := range 12 {
		s := e.session(fmt.Sprintf("s%02d", i))
		s.Started = true
		s.Updated = now.Add(time.Duration(i) * time.Millisecond)
		must(t, "CreateSession", e.s.CreateSession(e.ctx, s))
	}
	for _, limit := range []int{1, 5, 12, 20} {
		got := e.idleKeys(t, now.Add(time.Hour), limit)
		if want := min(limit, 12); len(got) != want {
			t.Fatalf("IdleSessions(limit %d) returned %d sessions, want %d", limit, len(got), want)
		}
	}
	if got := e.idleKeys(t, now.Add(5*time.Millisecond), 3); len(got) != 3 {
		t.Fatalf("IdleSessions(limit 3 of 5) = %v", got)
	}
	// The limit counts only qualifying sessions.
	if got := e.idleKeys(t, now.Add(5*time.Millisecond), 10); len(got) != 5 {
		t.Fatalf("IdleSessions(5 qualify, limit 10) = %v", got)
	}
}

// file returns a complete active file record.
func (e *env) file(slug, alias string) store.File {
	return store.File{
		ID:           0, // the store assigns it
		Slug:         slug,
		Alias:        alias,
		Name:         "name-" + slug + ".bin",
		Size:         12345,
		SHA256:       "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Type:         "application/octet-stream",
		Owner:        "owner",
		ObjectKey:    "obj/" + slug,
		Mirrors:      []string{"a", "b"},
		Missing:      []string{"c"},
		Status:       store.StatusActive,
		PasswordHash: []byte{1, 2, 3},
		Created:      e.clock.Now(),
		Expires:      e.clock.Now().Add(24 * time.Hour),
		MaxDownloads: 3,
		DeleteHash:   store.HashToken("delete-" + slug),
	}
}

func testFileCreate(t *testing.T, e *env) {
	_, err := e.s.File(e.ctx, "missing")
	wantErr(t, "File(missing)", err, store.ErrNotFound)
	_, err = e.s.FileByAlias(e.ctx, "missing")
	wantErr(t, "FileByAlias(missing)", err, store.ErrNotFound)

	seen := map[int64]bool{}
	for i := range 5 {
		alias := ""
		if i%2 == 0 {
			alias = fmt.Sprintf("alias%d", i)
		}
		f := e.file(fmt.Sprintf("slug%d", i), alias)
		if i == 4 {
			f.Expires = time.Time{}
			f.Missing, f.PasswordHash, f.Type = nil, nil, ""
		}
		got, err := e.s.CreateFile(e.ctx, f)
		must(t, "CreateFile", err)
		// IDs are random, so they say nothing of how many files exist.
		if got.ID <= 0 || got.ID >= 1<<53 || seen[got.ID] {
			t.Fatalf("CreateFile #%d assigned ID %d; want a new random id in 1..2^53 (seen: %v)", i, got.ID, seen)
		}
		seen[got.ID] = true
		want := f
		want.ID = got.ID
		sameFile(t, "CreateFile result", got, want)
		stored, err := e.s.File(e.ctx, f.Slug)
		must(t, "File", err)
		sameFile(t, "File", stored, want)
		if alias != "" {
			byAlias, err := e.s.FileByAlias(e.ctx, alias)
			must(t, "FileByAlias", err)
			sameFile(t, "FileByAlias", byAlias, want)
		}
	}
	// A record copied from another store keeps its id.
	copied := e.file("copied", "")
	copied.ID = 4242
	got, err := e.s.CreateFile(e.ctx, copied)
	must(t, "CreateFile(with an id)", err)
	stored, err := e.s.File(e.ctx, "copied")
	must(t, "File", err)
	if got.ID != 4242 || stored.ID != 4242 {
		t.Fatalf("CreateFile of a record with id 4242 stored id %d (returned %d)", stored.ID, got.ID)
	}
	// A slug is not an alias.
	_, err = e.s.FileByAlias(e.ctx, "slug0")
	wantErr(t, "FileByAlias(a slug)", err, store.ErrNotFound)
}

func testFileCreateConflicts(t *testing.T, e *env) {
	first, err := e.s.CreateFile(e.ctx, e.file("taken", "taken-alias"))
	must(t, "CreateFile", err)

	_, err = e.s.CreateFile(e.ctx, e.file("taken", "fresh-alias"))
	wantErr(t, "CreateFile(duplicate slug)", err, store.ErrExists)
	_, err = e.s.FileByAlias(e.ctx, "fresh-alias")
	wantErr(t, "FileByAlias after failed create", err, store.ErrNotFound)
	got, err := e.s.File(e.ctx, "taken")
	must(t, "File", err)
	sameFile(t, "File after duplicate create", got, first)

	_, err = e.s.CreateFile(e.ctx, e.file("fresh", "taken-alias"))
	wantErr(t, "CreateFile(duplicate alias)", err, store.ErrExists)
	_, err = e.s.File(e.ctx, "fresh")
	wantErr(t, "File after failed create", err, store.ErrNotFound)
	got, err = e.s.FileByAlias(e.ctx, "taken-alias")
	must(t, "FileByAlias", err)
	sameFile(t, "FileByAlias after duplicate create", got, first)
	m, err := e.s.Files(e.ctx, []string{"fresh"})
	must(t, "Files", err)
	if len(m) != 0 {
		t.Fatalf("Files after failed create = %v", m)
	}
	expired, err := e.s.ExpiredFiles(e.ctx, e.clock.Now().Add(100*24*time.Hour), 10)
	must(t, "ExpiredFiles", err)
	if len(expired) != 1 || expired[0].Slug != "taken" {
		t.Fatalf("ExpiredFiles after failed creates = %+v", expired)
	}

	// Neither failed create left anything behind.
	second, err := e.s.CreateFile(e.ctx, e.file("fresh", "fresh-alias"))
	must(t, "CreateFile with the names a failed create tried", err)
	if second.ID == first.ID || second.ID <= 0 {
		t.Fatalf("IDs %d then %d", first.ID, second.ID)
	}
}

func testFileCreateRace(t *testing.T, e *env) {
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  int
		errs []error
	)
	for i := range n {
		wg.Go(func() {
			f := e.file("contested", fmt.Sprintf("alias-%d", i))
			_, err := e.s.CreateFile(e.ctx, f)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrExists):
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || won != 1 {
		t.Fatalf("%d racing CreateFile calls won (want 1); other errors: %v", won, errs)
	}
	f, err := e.s.File(e.ctx, "contested")
	must(t, "File", err)
	for i := range n {
		alias := fmt.Sprintf("alias-%d", i)
		_, err := e.s.FileByAlias(e.ctx, alias)
		if alias == f.Alias {
			must(t, "FileByAlias(winner)", err)
		} else {
			wantErr(t, "FileByAlias(loser)", err, store.ErrNotFound)
		}
	}
}

func testFiles(t *testing.T, e *env) {
	m, err := e.s.Files(e.ctx, nil)
	must(t, "Files(nil)", err)
	if len(m) != 0 {
		t.Fatalf("Files(nil) = %v", m)
	}
	want := map[string]store.File{}
	var slugs []string
	for i := range 50 {
		f, err := e.s.CreateFile(e.ctx, e.file(fmt.Sprintf("f%02d", i), ""))
		must(t, "CreateFile", err)
		want[f.Slug] = f
		slugs = append(slugs, f.Slug)
	}
	asked := append(slices.Clone(slugs), "missing1", "missing2", "f07")
	m, err = e.s.Files(e.ctx, asked)
	must(t, "Files", err)
	if len(m) != len(want) {
		t.Fatalf("Files returned %d files, want %d", len(m), len(want))
	}
	for slug, w := range want {
		g, ok := m[slug]
		if !ok {
			t.Fatalf("Files lacks %q", slug)
		}
		sameFile(t, "Files["+slug+"]", g, w)
	}
	if _, ok := m["missing1"]; ok {
		t.Fatal("Files reports a missing slug")
	}
}

func testFileUpdate(t *testing.T, e *env) {
	err := e.s.UpdateFile(e.ctx, e.file("missing", ""))
	wantErr(t, "UpdateFile(missing)", err, store.ErrNotFound)
	_, err = e.s.File(e.ctx, "missing")
	wantErr(t, "File after UpdateFile(missing)", err, store.ErrNotFound)

	f, err := e.s.CreateFile(e.ctx, e.file("s", "a1"))
	must(t, "CreateFile", err)
	day := e.clock.Now().Add(24 * time.Hour)

	f.Name = "renamed"
	f.Mirrors = []string{"b"}
	f.Missing = nil
	f.Expires = day.Add(48 * time.Hour)
	must(t, "UpdateFile", e.s.UpdateFile(e.ctx, f))
	got, err := e.s.File(e.ctx, "s")
	must(t, "File", err)
	sameFile(t, "File after update", got, f)
	got, err = e.s.FileByAlias(e.ctx, "a1")
	must(t, "FileByAlias", err)
	sameFile(t, "FileByAlias after update", got, f)
	if got := expiredSlugs(t, e, day.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("ExpiredFiles still sees the old Expires: %v", got)
	}
	if got := expiredSlugs(t, e, day.Add(49*time.Hour), 10); !slices.Equal(got, []string{"s"}) {
		t.Fatalf("ExpiredFiles misses the new Expires: %v", got)
	}
	// Zero Expires keeps the file forever.
	f.Expires = time.Time{}
	must(t, "UpdateFile(no expiry)", e.s.UpdateFile(e.ctx, f))
	if got := expiredSlugs(t, e, day.Add(1000*time.Hour), 10); len(got) != 0 {
		t.Fatalf("ExpiredFiles sees a file that never expires: %v", got)
	}
	f.Expires = day
	must(t, "UpdateFile(expiry again)", e.s.UpdateFile(e.ctx, f))
	if got := expiredSlugs(t, e, day.Add(time.Hour), 10); !slices.Equal(got, []string{"s"}) {
		t.Fatalf("ExpiredFiles = %v, want [s]", got)
	}
	// A removed file is not expired.
	f.Status = store.StatusUser
	must(t, "UpdateFile(removed)", e.s.UpdateFile(e.ctx, f))
	if got := expiredSlugs(t, e, day.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("ExpiredFiles sees a removed file: %v", got)
	}
	got, err = e.s.File(e.ctx, "s")
	must(t, "File", err)
	if got.Status != store.StatusUser {
		t.Fatalf("Status = %q", got.Status)
	}
	// A writer that read the record before it was taken down cannot bring
	// it back; the record and its alias stay as they were.
	stale := f
	stale.Status, stale.Alias = store.StatusActive, "a-stale"
	wantErr(t, "UpdateFile(active again)", e.s.UpdateFile(e.ctx, stale), store.ErrConflict)
	got, err = e.s.File(e.ctx, "s")
	must(t, "File", err)
	if got.Status != store.StatusUser || got.Alias != f.Alias {
		t.Fatalf("after a refused revival: status %q, alias %q", got.Status, got.Alias)
	}
	_, err = e.s.FileByAlias(e.ctx, "a-stale")
	wantErr(t, "FileByAlias(alias of a refused update)", err, store.ErrNotFound)

	// Changing the alias moves it.
	_, err = e.s.CreateFile(e.ctx, e.file("other", "a-other"))
	must(t, "CreateFile", err)
	f.Alias = "a-other"
	wantErr(t, "UpdateFile(alias taken)", e.s.UpdateFile(e.ctx, f), store.ErrExists)
	f.Alias = "a2"
	must(t, "UpdateFile(new alias)", e.s.UpdateFile(e.ctx, f))
	_, err = e.s.FileByAlias(e.ctx, "a1")
	wantErr(t, "FileByAlias(old alias)", err, store.ErrNotFound)
	got, err = e.s.FileByAlias(e.ctx, "a2")
	must(t, "FileByAlias(new alias)", err)
	sameFile(t, "FileByAlias(new alias)", got, f)
	got, err = e.s.FileByAlias(e.ctx, "a-other")
	must(t, "FileByAlias(other)", err)
	if got.Slug != "other" {
		t.Fatalf("FileByAlias(a-other) = %q", got.Slug)
	}
}

func expiredSlugs(t *testing.T, e *env, before time.Time, limit int) []string {
	t.Helper()
	list, err := e.s.ExpiredFiles(e.ctx, before, limit)
	must(t, "ExpiredFiles", err)
	var slugs []string
	for _, f := range list {
		if f.Status != store.StatusActive || f.Expires.IsZero() || !f.Expires.Before(before) {
			t.Fatalf("ExpiredFiles(%v) returned %+v", before, f)
		}
		slugs = append(slugs, f.Slug)
	}
	slices.Sort(slugs)
	return slugs
}

func testFileDelete(t *testing.T, e *env) {
	must(t, "DeleteFile(missing)", e.s.DeleteFile(e.ctx, "missing"))
	f, err := e.s.CreateFile(e.ctx, e.file("s", "a"))
	must(t, "CreateFile", err)
	must(t, "DeleteFile", e.s.DeleteFile(e.ctx, "s"))
	_, err = e.s.File(e.ctx, "s")
	wantErr(t, "File after delete", err, store.ErrNotFound)
	_, err = e.s.FileByAlias(e.ctx, "a")
	wantErr(t, "FileByAlias after delete", err, store.ErrNotFound)
	m, err := e.s.Files(e.ctx, []string{"s"})
	must(t, "Files", err)
	if len(m) != 0 {
		t.Fatalf("Files after delete = %v", m)
	}
	if got := expiredSlugs(t, e, f.Expires.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("ExpiredFiles after delete = %v", got)
	}
	wantErr(t, "UpdateFile after delete", e.s.UpdateFile(e.ctx, f), store.ErrNotFound)
	must(t, "DeleteFile twice", e.s.DeleteFile(e.ctx, "s"))

	again, err := e.s.CreateFile(e.ctx, e.file("s", "a"))
	must(t, "CreateFile reusing slug and alias", err)
	if again.ID == f.ID {
		t.Fatalf("ID %d reused", f.ID)
	}
}

func testExpiredFiles(t *testing.T, e *env) {
	now := e.clock.Now()
	mk := func(slug string, expires time.Time, status string) {
		f := e.file(slug, "")
		f.Expires, f.Status = expires, status
		_, err := e.s.CreateFile(e.ctx, f)
		must(t, "CreateFile", err)
	}
	mk("forever", time.Time{}, store.StatusActive)
	mk("removed", now.Add(time.Minute), store.StatusAdmin)
	mk("copyright", now.Add(time.Minute), store.StatusCopyright)
	mk("lapsed", now.Add(time.Minute), store.StatusUser) // taken down at its expiry; keeps Expires
	for i := range 6 {
		mk(fmt.Sprintf("e%d", i), now.Add(time.Duration(i+1)*time.Minute), store.StatusActive)
	}
	if got := expiredSlugs(t, e, now, 10); len(got) != 0 {
		t.Fatalf("ExpiredFiles(now) = %v", got)
	}
	if got, want := expiredSlugs(t, e, now.Add(3*time.Minute), 10), []string{"e0", "e1"}; !slices.Equal(got, want) {
		t.Fatalf("ExpiredFiles(now+3m) = %v, want %v (Expires equal to t is not before t)", got, want)
	}
	if got, want := expiredSlugs(t, e, now.Add(3*time.Minute+time.Nanosecond), 10), []string{"e0", "e1", "e2"}; !slices.Equal(got, want) {
		t.Fatalf("ExpiredFiles(now+3m+1ns) = %v, want %v", got, want)
	}
	if got := expiredSlugs(t, e, now.Add(time.Hour), 4); len(got) != 4 {
		t.Fatalf("ExpiredFiles(limit 4) = %v", got)
	}
	if got := expiredSlugs(t, e, now.Add(time.Hour), 100); len(got) != 6 {
		t.Fatalf("ExpiredFiles(limit 100) = %v", got)
	}
	list, err := e.s.ExpiredFiles(e.ctx, now.Add(time.Hour), 1)
	must(t, "ExpiredFiles", err)
	want, err := e.s.File(e.ctx, list[0].Slug)
	must(t, "File", err)
	sameFile(t, "ExpiredFiles record", list[0], want)
}

func testAccountDelete(t *testing.T, e *env) {
	must(t, "DeleteAccount(missing)", e.s.DeleteAccount(e.ctx, "nope"))
	must(t, "PutAccount", e.s.PutAccount(e.ctx, account("ka", "user-a")))
	must(t, "PutAccount", e.s.PutAccount(e.ctx, account("kb", "user-b")))
	must(t, "DeleteAccount", e.s.DeleteAccount(e.ctx, "ka"))
	_, err := e.s.Account(e.ctx, "ka")
	wantErr(t, "Account(deleted)", err, store.ErrNotFound)
	_, err = e.s.AccountByUserID(e.ctx, "user-a")
	wantErr(t, "AccountByUserID(deleted)", err, store.ErrNotFound)
	list, err := e.s.Accounts(e.ctx)
	must(t, "Accounts", err)
	if len(list) != 1 || list[0].APIKey != "kb" {
		t.Fatalf("Accounts after delete = %+v, want only kb", list)
	}
	if _, err := e.s.AccountByUserID(e.ctx, "user-b"); err != nil {
		t.Fatalf("AccountByUserID(user-b) after deleting another account: %v", err)
	}
}

func testOwnerFiles(t *testing.T, e *env) {
	page := func(owner string, offset, limit int) ([]string, int) {
		t.Helper()
		list, total, err := e.s.OwnerFiles(e.ctx, owner, offset, limit)
		must(t, "OwnerFiles", err)
		var slugs []string
		for _, f := range list {
			if f.Owner != owner {
				t.Fatalf("OwnerFiles(%q) returned %s of owner %q", owner, f.Slug, f.Owner)
			}
			slugs = append(slugs, f.Slug)
		}
		return slugs, total
	}
	if got, total := page("owner", 0, 10); len(got) != 0 || total != 0 {
		t.Fatalf("OwnerFiles on empty store = %v, %d", got, total)
	}
	for i := range 7 {
		f := e.file(fmt.Sprintf("s%d", i), "")
		if i == 3 {
			f.Owner = "other"
		}
		_, err := e.s.CreateFile(e.ctx, f)
		must(t, "CreateFile", err)
		e.clock.Advance(time.Second)
	}
	got, total := page("owner", 0, 4)
	if want := []string{"s6", "s5", "s4", "s2"}; !slices.Equal(got, want) || total != 6 {
		t.Fatalf("first page = %v of %d, want %v of 6", got, total, want)
	}
	got, total = page("owner", 4, 4)
	if want := []string{"s1", "s0"}; !slices.Equal(got, want) || total != 6 {
		t.Fatalf("second page = %v of %d, want %v of 6", got, total, want)
	}
	if got, total := page("owner", 6, 4); len(got) != 0 || total != 6 {
		t.Fatalf("page past the end = %v of %d", got, total)
	}
	if got, total := page("other", 0, 10); !slices.Equal(got, []string{"s3"}) || total != 1 {
		t.Fatalf("other owner = %v of %d", got, total)
	}

	// A removed file stays listed with its status; a deleted one goes.
	f, err := e.s.File(e.ctx, "s5")
	must(t, "File", err)
	f.Status = store.StatusUser
	must(t, "UpdateFile", e.s.UpdateFile(e.ctx, f))
	must(t, "DeleteFile", e.s.DeleteFile(e.ctx, "s6"))
	list, total, err := e.s.OwnerFiles(e.ctx, "owner", 0, 2)
	must(t, "OwnerFiles", err)
	if total != 5 || len(list) != 2 || list[0].Slug != "s5" || list[0].Status != store.StatusUser || list[1].Slug != "s4" {
		t.Fatalf("after remove and delete: %d files, page %+v", total, list)
	}

	// Moving a file to another owner moves it in the index.
	f.Owner = "other"
	must(t, "UpdateFile", e.s.UpdateFile(e.ctx, f))
	if got, total := page("other", 0, 10); !slices.Equal(got, []string{"s5", "s3"}) || total != 2 {
		t.Fatalf("other owner after move = %v of %d", got, total)
	}
	if _, total := page("owner", 0, 10); total != 4 {
		t.Fatalf("owner after move has %d files, want 4", total)
	}
}

func damagedSlugs(t *testing.T, e *env, after string, limit int) []string {
	t.Helper()
	list, err := e.s.DamagedFiles(e.ctx, after, limit)
	must(t, "DamagedFiles", err)
	var slugs []string
	for _, f := range list {
		if len(f.Missing) == 0 {
			t.Fatalf("DamagedFiles returned %s, which misses no mirror", f.Slug)
		}
		slugs = append(slugs, f.Slug)
	}
	return slugs
}

func testDamagedFiles(t *testing.T, e *env) {
	for _, slug := range []string{"d", "a", "c", "b", "e"} {
		f := e.file(slug, "")
		f.Missing = nil
		if slug != "b" {
			f.Missing = []string{"3"}
		}
		_, err := e.s.CreateFile(e.ctx, f)
		must(t, "CreateFile", err)
	}
	if got := fmt.Sprint(damagedSlugs(t, e, "", 10)); got != "[a c d e]" {
		t.Fatalf("DamagedFiles = %s, want [a c d e]", got)
	}
	if got := fmt.Sprint(damagedSlugs(t, e, "a", 2)); got != "[c d]" {
		t.Fatalf("DamagedFiles after a, 2 = %s, want [c d]", got)
	}
	// Repaired, damaged, deleted: the list follows.
	c, err := e.s.File(e.ctx, "c")
	must(t, "File", err)
	c.Mirrors, c.Missing = append(c.Mirrors, "3"), nil
	must(t, "UpdateFile", e.s.UpdateFile(e.ctx, c))
	b, err := e.s.File(e.ctx, "b")
	must(t, "File", err)
	b.Missing = []string{"2"}
	must(t, "UpdateFile", e.s.UpdateFile(e.ctx, b))
	must(t, "DeleteFile", e.s.DeleteFile(e.ctx, "d"))
	if got := fmt.Sprint(damagedSlugs(t, e, "", 10)); got != "[a b e]" {
		t.Fatalf("DamagedFiles after changes = %s, want [a b e]", got)
	}
}

func testLock(t *testing.T, e *env) {
	until := e.clock.Now().Add(time.Minute)
	must(t, "Lock", e.s.Lock(e.ctx, "repair", "n1", until))
	wantErr(t, "Lock(another holder)", e.s.Lock(e.ctx, "repair", "n2", until), store.ErrLeased)
	must(t, "Lock(another name)", e.s.Lock(e.ctx, "scrub", "n2", until))
	e.clock.Advance(30 * time.Second)
	must(t, "Lock(renew)", e.s.Lock(e.ctx, "repair", "n1", e.clock.Now().Add(time.Minute)))
	e.clock.Advance(45 * time.Second)
	wantErr(t, "Lock(another holder, within the renewal)", e.s.Lock(e.ctx, "repair", "n2", until), store.ErrLeased)
	e.clock.Advance(20 * time.Second)
	must(t, "Lock(after it ran out)", e.s.Lock(e.ctx, "repair", "n2", e.clock.Now().Add(time.Minute)))
	wantErr(t, "Lock(the old holder)", e.s.Lock(e.ctx, "repair", "n1", e.clock.Now().Add(time.Minute)), store.ErrLeased)
	// Renewed to end now, a lock is free at once.
	must(t, "Lock(renew to now)", e.s.Lock(e.ctx, "repair", "n2", e.clock.Now()))
	must(t, "Lock(after it was let go)", e.s.Lock(e.ctx, "repair", "n3", e.clock.Now().Add(time.Minute)))
}

func testEachFile(t *testing.T, e *env) {
	want := map[string]bool{}
	files := 2500 // pages of every store; under -short, past one of the embedded store's 1000
	if testing.Short() {
		files = 1100
	}
	for i := range files {
		f := e.file(fmt.Sprintf("s%05d", i), "")
		f.Expires = time.Time{}
		_, err := e.s.CreateFile(e.ctx, f)
		must(t, "CreateFile", err)
		want[f.Slug] = true
	}
	must(t, "DeleteFile", e.s.DeleteFile(e.ctx, "s00007"))
	delete(want, "s00007")
	seen := map[string]bool{}
	err := e.s.EachFile(e.ctx, func(f store.File) error {
		if seen[f.Slug] {
			return fmt.Errorf("%s seen twice", f.Slug)
		}
		if f.ObjectKey != "obj/"+f.Slug {
			return fmt.Errorf("%s has object key %q", f.Slug, f.ObjectKey)
		}
		seen[f.Slug] = true
		return nil
	})
	must(t, "EachFile", err)
	if len(seen) != len(want) {
		t.Fatalf("EachFile saw %d files, want %d", len(seen), len(want))
	}
	for slug := range want {
		if !seen[slug] {
			t.Fatalf("EachFile missed %s", slug)
		}
	}
	stop := errors.New("stop")
	n := 0
	err = e.s.EachFile(e.ctx, func(store.File) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("EachFile with fn failing: %v after %d calls", err, n)
	}
}

func testCount(t *testing.T, e *env) {
	count := func(key string, add int64, until time.Time, want int64) {
		t.Helper()
		n, err := e.s.Count(e.ctx, key, add, until)
		must(t, "Count", err)
		if n != want {
			t.Fatalf("Count(%q, %d) = %d, want %d", key, add, n, want)
		}
	}
	end := e.clock.Now().Add(time.Minute)
	count("a", 0, end, 0)
	count("a", 1, end, 1)
	count("a", 2, end.Add(time.Hour), 3) // a later end does not move it
	count("b", 1, end, 1)
	count("a", 0, end, 3)
	e.clock.Advance(59 * time.Second)
	count("a", 1, e.clock.Now().Add(time.Minute), 4)
	e.clock.Advance(time.Second)
	count("a", 0, e.clock.Now().Add(time.Minute), 0) // lapsed
	count("a", 1, e.clock.Now().Add(time.Minute), 1)
	count("b", 0, end, 0)
}
