package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/redisstore/redistest"
	"github.com/acestash/acestash/store/storetest"
)

func open(t *testing.T, url string, clock store.Clock) *Store {
	t.Helper()
	s, err := Open(t.Context(), url, clock)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	storetest.Run(t, func(t *testing.T, clock store.Clock) store.Store {
		if err := client.FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		return open(t, srv.URL, clock)
	})
}

func TestConformanceCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	storetest.Run(t, func(t *testing.T, clock store.Clock) store.Store {
		cluster.FlushAll(t)
		return open(t, cluster.URL, clock)
	})
}

func TestRestartKeepsData(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	clock := storetest.NewClock(storetest.Epoch())
	now := clock.Now()
	s := open(t, srv.URL, clock.Now)
	if err := s.PutAccount(ctx, store.Account{APIKey: "k", UserID: "u", Name: "n"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, store.Session{UploadKey: "started", Started: true, Updated: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, store.Session{UploadKey: "fresh", Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f, err := s.CreateFile(ctx, store.File{Slug: "s", Alias: "a", Status: store.StatusActive, Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	aliased, last := f.ID, f.ID

	for _, restart := range []struct {
		name string
		do   func()
	}{
		{"Restart", srv.Restart},
		{"Kill", func() { srv.Kill(); srv.Restart() }},
	} {
		restart.do()
		s := open(t, srv.URL, clock.Now)
		if a, err := s.AccountByUserID(ctx, "u"); err != nil || a.Name != "n" {
			t.Fatalf("%s: AccountByUserID = %+v, %v", restart.name, a, err)
		}
		for _, key := range []string{"started", "fresh"} {
			if got, err := s.Session(ctx, key); err != nil || got.Version != 1 {
				t.Fatalf("%s: Session(%s) = %+v, %v", restart.name, key, got, err)
			}
		}
		if idle, err := s.IdleSessions(ctx, now.Add(time.Second), 10); err != nil || len(idle) != 1 {
			t.Fatalf("%s: IdleSessions = %+v, %v", restart.name, idle, err)
		}
		if got, err := s.FileByAlias(ctx, "a"); err != nil || got.ID != aliased {
			t.Fatalf("%s: FileByAlias = %+v, %v", restart.name, got, err)
		}
		if exp, err := s.ExpiredFiles(ctx, now.Add(time.Hour), 10); err != nil || len(exp) != 1 {
			t.Fatalf("%s: ExpiredFiles = %+v, %v", restart.name, exp, err)
		}
		g, err := s.CreateFile(ctx, store.File{Slug: "after-" + restart.name})
		if err != nil || g.ID <= 0 || g.ID == last || g.ID == aliased {
			t.Fatalf("%s: CreateFile = ID %d (before: %d), %v", restart.name, g.ID, last, err)
		}
		last = g.ID
		s.Close()
	}
}

// TestTwoNodesRace races UpdateSession from two Store instances, as two
// acestash nodes sharing one Redis would.
func TestTwoNodesRace(t *testing.T) {
	srv := redistest.Start(t)
	cluster := redistest.StartCluster(t, 3)
	for name, url := range map[string]string{"Single": srv.URL, "Cluster": cluster.URL} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			clock := storetest.NewClock(storetest.Epoch())
			nodes := []*Store{open(t, url, clock.Now), open(t, url, clock.Now)}
			defer nodes[0].Close()
			defer nodes[1].Close()
			for round := range 20 {
				key := fmt.Sprintf("race-%d", round)
				if err := nodes[0].CreateSession(ctx, store.Session{UploadKey: key, Expires: clock.Now().Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				base, err := nodes[1].Session(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				var (
					wg      sync.WaitGroup
					mu      sync.Mutex
					winners []int
				)
				for i := range 16 {
					wg.Go(func() {
						s := base
						s.Chunks = i
						s.Started = true
						_, err := nodes[i%2].UpdateSession(ctx, s)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							winners = append(winners, i)
						case !errors.Is(err, store.ErrConflict):
							t.Errorf("UpdateSession: %v", err)
						}
					})
				}
				wg.Wait()
				if len(winners) != 1 {
					t.Fatalf("round %d: %d winners, want 1: %v", round, len(winners), winners)
				}
				got, err := nodes[0].Session(ctx, key)
				if err != nil || got.Chunks != winners[0] || got.Version != 2 {
					t.Fatalf("round %d: stored %+v, %v; winner %d", round, got, err, winners[0])
				}
			}
		})
	}
}

// TestUnstartedSessionTTL checks that Redis itself drops upload keys that
// never start, and keeps started ones.
func TestUnstartedSessionTTL(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	client := srv.Client()
	clock := storetest.NewClock(time.Now())
	s := open(t, srv.URL, clock.Now)
	defer s.Close()
	if err := s.CreateSession(ctx, store.Session{UploadKey: "k", Expires: clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ttl, err := client.PTTL(ctx, sessionKey("k")).Result()
	if err != nil || ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("PTTL of an unstarted session = %v, %v", ttl, err)
	}
	sess, err := s.Session(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	sess.Started = true
	if _, err := s.UpdateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if ttl, err := client.PTTL(ctx, sessionKey("k")).Result(); err != nil || ttl != -1 {
		t.Fatalf("PTTL of a started session = %v, %v; want none", ttl, err)
	}

	if err := s.CreateSession(ctx, store.Session{UploadKey: "short", Expires: clock.Now().Add(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n, err := client.Exists(ctx, sessionKey("short")).Result(); err != nil || n != 0 {
		t.Fatalf("lapsed session still in Redis: %d, %v", n, err)
	}
}

// TestIndexRepair checks that IdleSessions and ExpiredFiles drop index
// entries whose records are gone and fix stale scores.
func TestIndexRepair(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	client := srv.Client()
	clock := storetest.NewClock(storetest.Epoch())
	now := clock.Now()
	s := open(t, srv.URL, clock.Now)
	defer s.Close()
	for _, key := range []string{"gone", "stale"} {
		if err := s.CreateSession(ctx, store.Session{UploadKey: key, Started: true, Updated: now}); err != nil {
			t.Fatal(err)
		}
	}
	client.Del(ctx, sessionKey("gone"))
	sess, _ := s.Session(ctx, "stale")
	sess.Updated = now.Add(time.Hour)
	if _, err := s.UpdateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	client.ZAdd(ctx, keyIdle, redisZ(score(now), "stale")) // as if an older write's index update landed last
	if idle, err := s.IdleSessions(ctx, now.Add(time.Minute), 10); err != nil || len(idle) != 0 {
		t.Fatalf("IdleSessions = %+v, %v", idle, err)
	}
	if n, _ := client.ZCard(ctx, keyIdle).Result(); n != 1 {
		t.Fatalf("idle index has %d entries, want 1", n)
	}
	if sc, _ := client.ZScore(ctx, keyIdle, "stale").Result(); sc != score(now.Add(time.Hour)) {
		t.Fatalf("stale score not repaired: %v", sc)
	}

	if _, err := s.CreateFile(ctx, store.File{Slug: "f", Status: store.StatusActive, Expires: now}); err != nil {
		t.Fatal(err)
	}
	client.Del(ctx, fileKey("f"))
	if exp, err := s.ExpiredFiles(ctx, now.Add(time.Minute), 10); err != nil || len(exp) != 0 {
		t.Fatalf("ExpiredFiles = %+v, %v", exp, err)
	}
	if n, _ := client.ZCard(ctx, keyExpiry).Result(); n != 0 {
		t.Fatalf("expiry index has %d entries, want 0", n)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, url := range []string{"", "http://x", "redis+cluster:///", "redis+sentinel://h:1/"} {
		if _, err := Open(ctx, url, time.Now); err == nil || !strings.Contains(err.Error(), "URL") {
			t.Errorf("Open(%q) = %v, want a URL error", url, err)
		}
	}
	srv := redistest.Start(t)
	srv.Stop()
	_, err := Open(ctx, "redis://:secret@"+srv.Addr+"/0?max_retries=-1", time.Now)
	if err == nil || !strings.Contains(err.Error(), "does not answer") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Open of a stopped server = %v", err)
	}
}

func TestSeedURL(t *testing.T) {
	for _, tc := range []struct{ in, param, want string }{
		{"h1:1,h2:2,h3:3/", "", "redis://h1:1/?addr=h2%3A2&addr=h3%3A3"},
		{"u:p@h1:1,h2:2/?dial_timeout=3", "", "redis://u:p@h1:1/?addr=h2%3A2&dial_timeout=3"},
		{"h1:1,h2:2/mymaster/2?password=x", "master_name", "redis://h1:1/2?addr=h2%3A2&master_name=mymaster&password=x"},
	} {
		u, err := seedURL("redis", tc.in, tc.param)
		if err != nil || u.String() != tc.want {
			t.Errorf("seedURL(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

func TestConformanceSentinel(t *testing.T) {
	master := redistest.Start(t)
	client := master.Client()
	sentinel := redistest.StartSentinel(t, master)
	storetest.Run(t, func(t *testing.T, clock store.Clock) store.Store {
		if err := client.FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		return open(t, sentinel.URL, clock)
	})
}

// A store written before the usage counters existed is counted on the
// first Usage call for an owner.
func TestUsageOfOlderStore(t *testing.T) {
	ctx := t.Context()
	srv := redistest.Start(t)
	client := srv.Client()
	clock := storetest.NewClock(storetest.Epoch())
	s := open(t, srv.URL, clock.Now)
	defer s.Close()
	for i, size := range []int64{100, 20, 3} {
		f := store.File{Slug: fmt.Sprintf("old%d", i), Owner: "k", Size: size, Status: store.StatusActive, Created: clock.Now()}
		if i == 2 {
			f.Status = store.StatusAdmin
		}
		if _, err := s.CreateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	client.Del(ctx, usageKeys("k")...) // as an older acestash left it
	if u, err := s.Usage(ctx, "k"); err != nil || u != (store.Usage{Bytes: 120, Files: 2}) {
		t.Fatalf("Usage of an older store = %+v, %v; want 120 bytes in 2 files", u, err)
	}
	if err := s.DeleteFile(ctx, "old0"); err != nil {
		t.Fatal(err)
	}
	if u, err := s.Usage(ctx, "k"); err != nil || u != (store.Usage{Bytes: 20, Files: 1}) {
		t.Fatalf("Usage after a delete = %+v, %v; want 20 bytes in 1 file", u, err)
	}
}

// TestCheckDurable starts real servers configured each way: a Redis that
// may evict keys or keeps nothing across a restart is refused with the
// setting named, one that keeps everything passes, on a Cluster too.
func TestCheckDurable(t *testing.T) {
	for _, c := range []struct {
		name    string
		options []string
		want    string // in the error; empty: accepted
	}{
		{"aof", nil, ""},
		{"rdb only", []string{"--appendonly", "no", "--save", "3600 1"}, ""},
		{"no persistence", []string{"--appendonly", "no", "--save", ""}, "neither appendonly nor save is set"},
		{"allkeys-lru", []string{"--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"}, `maxmemory-policy is "allkeys-lru"`},
		{"volatile-ttl", []string{"--maxmemory-policy", "volatile-ttl"}, `maxmemory-policy is "volatile-ttl"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.StartWith(t, c.options...)
			s := open(t, srv.URL, time.Now)
			defer s.Close()
			err := s.CheckDurable(t.Context())
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), srv.Addr) ||
				!strings.Contains(err.Error(), "redis_allow_volatile: true") {
				t.Fatalf("error %v: want it to name %q, the server %s and the way out", err, c.want, srv.Addr)
			}
		})
	}

	t.Run("cluster", func(t *testing.T) {
		cluster := redistest.StartCluster(t, 3)
		s := open(t, cluster.URL, time.Now)
		defer s.Close()
		if err := s.CheckDurable(t.Context()); err != nil {
			t.Fatalf("refused: %v", err)
		}
		// One node starts evicting: the cluster is refused, naming it.
		bad := cluster.Nodes[1]
		if err := bad.Client().ConfigSet(t.Context(), "maxmemory-policy", "allkeys-random").Err(); err != nil {
			t.Fatal(err)
		}
		err := s.CheckDurable(t.Context())
		if err == nil || !strings.Contains(err.Error(), `maxmemory-policy is "allkeys-random"`) || !strings.Contains(err.Error(), bad.Addr) {
			t.Fatalf("error %v: want the evicting node %s named", err, bad.Addr)
		}
	})
}

// TestOldFileRecords reads records written as store.File's JSON, before
// the compact form: they read the same, a removed one stays removed, and
// the compact form of a typical record takes at most 512 bytes of Redis
// memory.
func TestOldFileRecords(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	s := open(t, srv.URL, time.Now)
	defer s.Close()
	ctx := t.Context()
	created := time.Date(2026, 11, 26, 4, 18, 18, 123456789, time.UTC)
	f := store.File{ID: 4503599627, UploadKey: "0123456789abcdef0123456789abcdef", Slug: "Xy3kP9aQ", Name: "photo of the holidays.jpg",
		Size: 35892, SHA256: strings.Repeat("ab", 32), Type: "image/jpeg", Owner: "0123456789abcdefabcdefabcdefabcd",
		ObjectKey: "files/6f1c2a4e-8a7b-4c1d-9e2f-0a1b2c3d4e5f", Mirrors: []string{"1", "2"}, Status: store.StatusUser, Created: created}
	old, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Set(ctx, fileKey(f.Slug), old, 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.File(ctx, f.Slug)
	if err != nil || !reflect.DeepEqual(got, f) {
		t.Fatalf("old record read as %+v, %v; want %+v", got, err, f)
	}
	back := f
	back.Status = store.StatusActive
	if err := s.UpdateFile(ctx, back); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("bringing back an old removed record: %v, want ErrConflict", err)
	}

	f.Slug, f.Status = "Ab9zQ2rT", store.StatusActive
	if _, err := s.CreateFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	if n, err := client.MemoryUsage(ctx, fileKey(f.Slug)).Result(); err != nil || n > 512 {
		t.Fatalf("a file record takes %d bytes of Redis memory (%v), want at most 512", n, err)
	}
}

// TestFileRecordFields fills every field of a store.File and reads it back
// through the compact form Redis keeps: a field the form forgets fails.
func TestFileRecordFields(t *testing.T) {
	var f store.File
	v := reflect.ValueOf(&f).Elem()
	for i := range v.NumField() {
		switch fv := v.Field(i); fv.Kind() {
		case reflect.String:
			fv.SetString("value-" + v.Type().Field(i).Name)
		case reflect.Int64:
			fv.SetInt(int64(1000 + i))
		case reflect.Bool:
			fv.SetBool(true)
		case reflect.Slice:
			if fv.Type().Elem().Kind() == reflect.Uint8 {
				fv.SetBytes([]byte{1, 2, byte(i)})
			} else {
				fv.Set(reflect.ValueOf([]string{"1", strconv.Itoa(i)}))
			}
		case reflect.Struct: // time.Time
			fv.Set(reflect.ValueOf(time.Date(2026, 12, 3, 9, 0, i, 123456789, time.UTC)))
		default:
			t.Fatalf("store.File.%s is of a kind this test does not fill: %s", v.Type().Field(i).Name, fv.Kind())
		}
	}
	for _, sha := range []string{strings.Repeat("0f", 32), "not hex"} {
		f.SHA256 = sha
		data, err := encodeFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeFile(string(data), "file")
		if err != nil || !reflect.DeepEqual(got, f) {
			t.Fatalf("through %s:\n got %+v, %v\nwant %+v", data, got, err, f)
		}
	}
}
