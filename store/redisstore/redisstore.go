// Package redisstore is a store.Store on Redis, shared by many acestash
// nodes. It works on a single server, behind Sentinel, or on a Redis Cluster:
// every command and script touches keys of one hash slot only.
//
// Key layout ({...} is the cluster hash tag):
//
//	acestash:{accounts}:by-key    hash   api key -> Account JSON
//	acestash:{accounts}:by-user   hash   user id -> api key
//	acestash:{s:<upload key>}:session
//	                              hash   v: version, d: Session JSON,
//	                                     xs/xn: Expires (Unix s, ns) while not started,
//	                                     l, ls/ln: lease holder and end (Unix s, ns)
//	acestash:idle                 zset   upload key, score Updated (Unix ms); started sessions
//	acestash:{f:<slug>}:file      string File, compact JSON (fileRec)
//	acestash:{a:<alias>}:alias    string slug
//	acestash:expiry               zset   slug, score Expires (Unix ms); active expiring files
//	acestash:{o:<owner>}:files    zset   slug, score Created (Unix ms); every file of the owner
//	acestash:damaged              zset   slug, score 0 (read by name); files with a Missing mirror
//	acestash:{c:<key>}:count      hash   c: count, s/n: end (Unix s, ns); TTL until then
//	acestash:{lock:<name>}        hash   h: holder, s/n: end (Unix s, ns) of a named lock; TTL until then
//	acestash:{jobs}               hash   mirror id -> Job JSON, "<mirror id>:v" -> its version
//
// The version, lease and expiry fields beside the JSON are the truth where
// they differ from it: Lease changes them without rewriting the JSON.
//
// A session that is not started carries a TTL until its Expires, so Redis
// drops lapsed upload keys itself; reads also compare Expires with the
// store's clock. The sorted sets are indexes kept up to date after the
// record changes; IdleSessions and ExpiredFiles check every entry against
// its record and repair stale entries.
package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acestash/acestash/store"
)

const (
	keyAccounts = "acestash:{accounts}:by-key"
	keyUsers    = "acestash:{accounts}:by-user"
	keyIdle     = "acestash:idle"
	keyExpiry   = "acestash:expiry"
	keyDamaged  = "acestash:damaged"
)

func sessionKey(uploadKey string) string { return "acestash:{s:" + uploadKey + "}:session" }
func fileKey(slug string) string         { return "acestash:{f:" + slug + "}:file" }
func aliasKey(alias string) string       { return "acestash:{a:" + alias + "}:alias" }
func ownerKey(owner string) string       { return "acestash:{o:" + owner + "}:files" }
func lockKey(name string) string         { return "acestash:{lock:" + name + "}" }
func countKey(key string) string         { return "acestash:{c:" + key + "}:count" }

// usageKeys are an owner's usage counters (a hash of bytes and files) and
// the sizes of the files they count (a hash of slug to size), which makes
// counting a file twice, or taking it away twice, impossible.
func usageKeys(owner string) []string {
	return []string{"acestash:{o:" + owner + "}:counted", "acestash:{o:" + owner + "}:usage"}
}

// Scripts. Each touches the keys of one hash slot.
var (
	// usageCountScript counts the file ARGV[1] of ARGV[2] bytes in its owner's
	// usage, unless it is counted already.
	usageCountScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'bytes', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'files', 1)
end
return 0`)
	// usageUncountScript takes the file ARGV[1] out of its owner's usage, if
	// it is counted.
	usageUncountScript = redis.NewScript(`
local size = redis.call('HGET', KEYS[1], ARGV[1])
if size then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'bytes', 0 - tonumber(size)) -- not -size: -0 is no integer to HINCRBY
  redis.call('HINCRBY', KEYS[2], 'files', -1)
end
return 0`)
	// putAccount: KEYS accounts, users; ARGV api key, user id, JSON.
	putAccountScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local uid = cjson.decode(old)['user_id']
  if type(uid) == 'string' and uid ~= '' and uid ~= ARGV[2] and redis.call('HGET', KEYS[2], uid) == ARGV[1] then
    redis.call('HDEL', KEYS[2], uid)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[1]) end
return 1`)

	// deleteAccount: KEYS accounts, users; ARGV api key.
	deleteAccountScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local uid = cjson.decode(old)['user_id']
if type(uid) == 'string' and uid ~= '' and redis.call('HGET', KEYS[2], uid) == ARGV[1] then
  redis.call('HDEL', KEYS[2], uid)
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1`)

	// lapsedLua defines lapsed(key, nowSec, nowNsec): whether the session
	// at key exists, is not started and has passed its Expires.
	lapsedLua = `
local function lapsed(key, ns, nn)
  local x = redis.call('HMGET', key, 'xs', 'xn')
  if not x[1] then return false end
  local xs, xn = tonumber(x[1]), tonumber(x[2])
  return ns > xs or (ns == xs and nn >= xn)
end
`
	// leaseLua defines setLease(key, holder, s, ns), the lease fields, and
	// keepUntil(key, s, ns, ttl), which keeps an unstarted session that long.
	leaseLua = `
local function setLease(key, l, ls, ln)
  if l == '' then
    redis.call('HDEL', key, 'l', 'ls', 'ln')
  else
    redis.call('HSET', key, 'l', l, 'ls', ls, 'ln', ln)
  end
end
-- keepUntil moves a session that has not started, and so lapses at its
-- Expires (xs, xn), to lapse no earlier than us, un, with TTL ms.
local function keepUntil(key, us, un, ttl)
  local x = redis.call('HMGET', key, 'xs', 'xn')
  if not x[1] then return end
  local xs, xn, s, n = tonumber(x[1]), tonumber(x[2]), tonumber(us), tonumber(un)
  if s > xs or (s == xs and n > xn) then
    redis.call('HSET', key, 'xs', us, 'xn', un)
    redis.call('PEXPIRE', key, ttl)
  end
end
`
	// createSession: KEYS session; ARGV JSON, now s, now ns, Expires s
	// ("" if started), Expires ns, TTL ms, lease holder, lease end s, lease
	// end ns. Returns 1, or 0 if taken.
	createSessionScript = redis.NewScript(lapsedLua + leaseLua + `
local ns, nn = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 1 then
  if not lapsed(KEYS[1], ns, nn) then return 0 end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[1])
setLease(KEYS[1], ARGV[7], ARGV[8], ARGV[9])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'xs', ARGV[4], 'xn', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
return 1`)

	// updateSession: KEYS session; ARGV expected version, new version,
	// JSON, now s, now ns, Expires s ("" if started), Expires ns, TTL ms,
	// lease holder, lease end s, lease end ns. Returns 1, 0 if missing or
	// lapsed, -1 on a version mismatch.
	updateSessionScript = redis.NewScript(lapsedLua + leaseLua + `
local v = redis.call('HGET', KEYS[1], 'v')
if not v or lapsed(KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[5])) then return 0 end
if v ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
setLease(KEYS[1], ARGV[9], ARGV[10], ARGV[11])
if ARGV[6] == '' then
  redis.call('HDEL', KEYS[1], 'xs', 'xn')
  redis.call('PERSIST', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'xs', ARGV[6], 'xn', ARGV[7])
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
end
return 1`)

	// lease: KEYS session; ARGV holder, until s, until ns, now s, now ns,
	// TTL ms until until. Returns {status, fields...}: status 1 if leased,
	// -1 if another lease runs, 0 if missing or lapsed; fields are the
	// session's sessionFields after the call.
	leaseScript = redis.NewScript(lapsedLua + leaseLua + `
local ns, nn = tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HGET', KEYS[1], 'v')
if not v or lapsed(KEYS[1], ns, nn) then return {0} end
local cur = redis.call('HMGET', KEYS[1], 'l', 'ls', 'ln')
local status = 1
if cur[1] and cur[1] ~= ARGV[1] then
  local ls, ln = tonumber(cur[2]), tonumber(cur[3])
  if ls > ns or (ls == ns and ln > nn) then status = -1 end
end
if status == 1 then
  redis.call('HSET', KEYS[1], 'v', tostring(tonumber(v) + 1))
  setLease(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
  keepUntil(KEYS[1], ARGV[2], ARGV[3], ARGV[6])
end
local f = redis.call('HMGET', KEYS[1], 'd', 'v', 'l', 'ls', 'ln', 'xs', 'xn')
table.insert(f, 1, status)
return f`)

	// renew: KEYS session; ARGV holder, until s, until ns, now s, now ns,
	// TTL ms until until. Returns 1 if renewed, -1 if holder does not hold
	// the lease, 0 if missing or lapsed. The version stays.
	renewScript = redis.NewScript(lapsedLua + leaseLua + `
local ns, nn = tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HGET', KEYS[1], 'v')
if not v or lapsed(KEYS[1], ns, nn) then return 0 end
if redis.call('HGET', KEYS[1], 'l') ~= ARGV[1] then return -1 end
setLease(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
keepUntil(KEYS[1], ARGV[2], ARGV[3], ARGV[6])
return 1`)

	// lock: KEYS lock; ARGV holder, until s, until ns, now s, now ns, TTL
	// ms. Returns 1 if taken, 0 if another holds it.
	lockScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'h', 's', 'n')
if cur[1] and cur[1] ~= ARGV[1] then
  local s, n, ns, nn = tonumber(cur[2]), tonumber(cur[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  if s > ns or (s == ns and n > nn) then return 0 end
end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 's', ARGV[2], 'n', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1`)

	// count: KEYS counter; ARGV add, until s, until ns, now s, now ns, TTL
	// ms. Returns the count.
	countScript = redis.NewScript(`
local c = redis.call('HMGET', KEYS[1], 'c', 's', 'n')
local ns, nn = tonumber(ARGV[4]), tonumber(ARGV[5])
if c[1] then
  local s, n = tonumber(c[2]), tonumber(c[3])
  if ns > s or (ns == s and nn >= n) then c[1] = nil end
end
if not c[1] then
  if ARGV[1] == '0' then return 0 end
  redis.call('HSET', KEYS[1], 'c', ARGV[1], 's', ARGV[2], 'n', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return tonumber(ARGV[1])
end
if ARGV[1] == '0' then return tonumber(c[1]) end
return redis.call('HINCRBY', KEYS[1], 'c', ARGV[1])`)

	// updateFile: KEYS file; ARGV JSON, new status. Replaces the record and
	// returns the one it replaced; false if there is none, and "" if the
	// record was taken down and the new one would make it active again.
	updateFileScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return false end
local d = cjson.decode(cur)
if ARGV[2] == 'active' and (d['st'] or d['status']) ~= 'active' then return '' end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return cur`)

	// deleteIfEqual: KEYS key; ARGV value. Deletes the key if it holds value.
	deleteIfEqualScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

	// zremIfScore: KEYS zset; ARGV member, score. Removes the member if its
	// score is still the one seen.
	zremIfScoreScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`)
)

// Store is a store.Store on Redis.
type Store struct {
	rdb   redis.UniversalClient
	clock store.Clock
}

var _ store.Store = (*Store)(nil)

// Open connects to the Redis the URL names and checks that it answers:
//
//	redis://[user:password@]host:port[/db][?options]    one server (rediss:// for TLS,
//	unix://[user:password@]/path/to/socket[?db=n]       or a Unix socket)
//	redis+cluster://[user:password@]host:port,host:port,.../[?options]
//	                                                     Redis Cluster, any nodes as seeds
//	                                                     (rediss+cluster:// for TLS)
//	redis+sentinel://[user:password@]host:port,host:port,.../master[/db][?password=...]
//	                                                     Sentinel: userinfo is the Sentinels',
//	                                                     username/password options the master's
//
// Options are go-redis's URL options (dial_timeout, pool_size, ...).
func Open(ctx context.Context, url string, clock store.Clock) (*Store, error) {
	rdb, err := newClient(url)
	if err != nil {
		return nil, fmt.Errorf("redis store URL: %w", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis store at %s does not answer: %w", redactURL(url), err)
	}
	return &Store{rdb: rdb, clock: clock}, nil
}

// redactURL hides the userinfo of u for error messages.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return u
	}
	return scheme + "://xxxxx@" + rest[at+1:]
}

// Ping sends PING to Redis.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis store: ping: %w", err)
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error {
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("close redis store: %w", err)
	}
	return nil
}

func decode[T any](data string, what string) (T, error) {
	var v T
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return v, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, nil
}

// notFound turns redis.Nil into ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// PutAccount creates or replaces the account with a.APIKey; an account
// whose settings do not pass Settings.Validate is refused.
func (s *Store) PutAccount(ctx context.Context, a store.Account) error {
	if err := a.Settings().Validate(nil); err != nil {
		return fmt.Errorf("put account %q: %w", a.APIKey, err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("put account: %w", err)
	}
	err = putAccountScript.Run(ctx, s.rdb, []string{keyAccounts, keyUsers}, a.APIKey, a.UserID, data).Err()
	if err != nil {
		return fmt.Errorf("put account %q: %w", a.APIKey, err)
	}
	return nil
}

// DeleteAccount removes the account with the API key.
func (s *Store) DeleteAccount(ctx context.Context, apiKey string) error {
	if err := deleteAccountScript.Run(ctx, s.rdb, []string{keyAccounts, keyUsers}, apiKey).Err(); err != nil {
		return fmt.Errorf("delete account %q: %w", apiKey, err)
	}
	return nil
}

// Account returns the account with the API key.
func (s *Store) Account(ctx context.Context, apiKey string) (store.Account, error) {
	data, err := s.rdb.HGet(ctx, keyAccounts, apiKey).Result()
	if err != nil {
		return store.Account{}, notFound(err, fmt.Sprintf("account %q", apiKey))
	}
	return decode[store.Account](data, "account")
}

// AccountByUserID returns the account with the public user id.
func (s *Store) AccountByUserID(ctx context.Context, userID string) (store.Account, error) {
	what := fmt.Sprintf("account of user %q", userID)
	if userID == "" {
		return store.Account{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	key, err := s.rdb.HGet(ctx, keyUsers, userID).Result()
	if err != nil {
		return store.Account{}, notFound(err, what)
	}
	a, err := s.Account(ctx, key)
	if err == nil && a.UserID != userID {
		return store.Account{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return a, err
}

// Accounts returns every account, ordered by API key.
func (s *Store) Accounts(ctx context.Context) ([]store.Account, error) {
	all, err := s.rdb.HGetAll(ctx, keyAccounts).Result()
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	list := make([]store.Account, 0, len(all))
	for _, data := range all {
		a, err := decode[store.Account](data, "account")
		if err != nil {
			return nil, err
		}
		list = append(list, a)
	}
	slices.SortFunc(list, func(a, b store.Account) int { return cmp.Compare(a.APIKey, b.APIKey) })
	return list, nil
}

// lapsed reports whether the session is gone by now.
func lapsed(sess store.Session, now time.Time) bool {
	return !sess.Started && !now.Before(sess.Expires)
}

// pttl is the milliseconds from now to until, rounded up and at least 1:
// a key's PEXPIRE that never ends it early.
func pttl(now, until time.Time) int64 {
	return max(int64(math.Ceil(float64(until.Sub(now))/float64(time.Millisecond))), 1)
}

// expiryArgs returns the script arguments for a session's lapse: Expires as
// Unix seconds and nanoseconds and the TTL in milliseconds, or "" for a
// started session, which does not lapse.
func expiryArgs(sess store.Session, now time.Time) (xs, xn, ttl string) {
	if sess.Started {
		return "", "", ""
	}
	ms := pttl(now, sess.Expires)
	return strconv.FormatInt(sess.Expires.Unix(), 10), strconv.Itoa(sess.Expires.Nanosecond()),
		strconv.FormatInt(ms, 10)
}

// score is a time's sorted-set score: Unix milliseconds, exact in a float64.
func score(t time.Time) float64 { return float64(t.UnixMilli()) }

// indexSession queues the idle index update for a session just written.
func indexSession(ctx context.Context, p redis.Pipeliner, sess store.Session) {
	if sess.Started {
		p.ZAdd(ctx, keyIdle, redis.Z{Score: score(sess.Updated), Member: sess.UploadKey})
	} else {
		p.ZRem(ctx, keyIdle, sess.UploadKey)
	}
}

// sessionFields are the hash fields a session is read from, in order.
var sessionFields = []string{"d", "v", "l", "ls", "ln", "xs", "xn"}

// decodeSession builds a session from its sessionFields values: the JSON,
// corrected by the fields beside it.
func decodeSession(vals []any, what string) (store.Session, error) {
	str := func(i int) (string, bool) {
		if i >= len(vals) {
			return "", false
		}
		v, ok := vals[i].(string)
		return v, ok
	}
	num := func(i int) int64 {
		v, _ := str(i)
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	data, ok := str(0)
	if !ok {
		return store.Session{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	sess, err := decode[store.Session](data, what)
	if err != nil {
		return sess, err
	}
	sess.Version = num(1)
	sess.Lease, sess.LeaseUntil = "", time.Time{}
	if l, ok := str(2); ok && l != "" {
		sess.Lease, sess.LeaseUntil = l, time.Unix(num(3), num(4)).UTC()
	}
	if _, ok := str(5); ok {
		sess.Expires = time.Unix(num(5), num(6)).UTC()
	}
	return sess, nil
}

// leaseArgs returns the script arguments for a session's lease.
func leaseArgs(sess store.Session) (l, ls, ln string) {
	if sess.Lease == "" {
		return "", "", ""
	}
	return sess.Lease, strconv.FormatInt(sess.LeaseUntil.Unix(), 10), strconv.Itoa(sess.LeaseUntil.Nanosecond())
}

// runPipelined runs script with keys and args together with the index
// updates more queues, in one round trip, and returns the script's
// command. Only the script's outcome counts: a failed index update is
// repaired by the next scan, and failing the call for it would make the
// caller undo what the script saved. A script Redis has not cached yet is
// sent again whole.
func (s *Store) runPipelined(ctx context.Context, script *redis.Script, keys []string, args []any, more func(redis.Pipeliner)) (*redis.Cmd, error) {
	var cmd *redis.Cmd
	cmds, _ := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = script.EvalSha(ctx, p, keys, args...)
		more(p)
		return nil
	})
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd = script.Eval(ctx, s.rdb, keys, args...)
	}
	if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return cmd, err
	}
	for _, c := range cmds[1:] {
		if err := c.Err(); err != nil {
			slog.Default().WarnContext(ctx, "redis store: index not updated", "keys", keys, "err", err)
		}
	}
	return cmd, nil
}

// CreateSession stores a new session with Version 1; ErrExists if the key is
// taken by a session that has not lapsed.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	now := s.clock()
	sess.Version = 1
	data, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	xs, xn, ttl := expiryArgs(sess, now)
	l, ls, ln := leaseArgs(sess)
	cmd, err := s.runPipelined(ctx, createSessionScript, []string{sessionKey(sess.UploadKey)},
		[]any{data, now.Unix(), now.Nanosecond(), xs, xn, ttl, l, ls, ln},
		func(p redis.Pipeliner) {
			if sess.Started {
				indexSession(ctx, p, sess)
			}
		})
	if err != nil {
		return fmt.Errorf("create session %q: %w", sess.UploadKey, err)
	}
	n, err := cmd.Int()
	if err != nil {
		return fmt.Errorf("create session %q: %w", sess.UploadKey, err)
	}
	if n == 0 {
		return fmt.Errorf("session %q: %w", sess.UploadKey, store.ErrExists)
	}
	return nil
}

// Session returns the session of an upload key.
func (s *Store) Session(ctx context.Context, uploadKey string) (store.Session, error) {
	now := s.clock()
	what := fmt.Sprintf("session %q", uploadKey)
	vals, err := s.rdb.HMGet(ctx, sessionKey(uploadKey), sessionFields...).Result()
	if err != nil {
		return store.Session{}, notFound(err, what)
	}
	sess, err := decodeSession(vals, what)
	if err != nil {
		return store.Session{}, err
	}
	if lapsed(sess, now) {
		return store.Session{}, fmt.Errorf("%s lapsed: %w", what, store.ErrNotFound)
	}
	return sess, nil
}

// UpdateSession replaces the session if its Version is unchanged, atomically
// in one script, and updates the idle index in the same round trip; an
// index entry written for an update that lost is repaired by IdleSessions.
func (s *Store) UpdateSession(ctx context.Context, sess store.Session) (store.Session, error) {
	now := s.clock()
	expected := sess.Version
	sess.Version++
	data, err := json.Marshal(sess)
	if err != nil {
		return store.Session{}, fmt.Errorf("update session: %w", err)
	}
	xs, xn, ttl := expiryArgs(sess, now)
	l, ls, ln := leaseArgs(sess)
	cmd, err := s.runPipelined(ctx, updateSessionScript, []string{sessionKey(sess.UploadKey)},
		[]any{strconv.FormatInt(expected, 10), strconv.FormatInt(sess.Version, 10), data,
			now.Unix(), now.Nanosecond(), xs, xn, ttl, l, ls, ln},
		func(p redis.Pipeliner) { indexSession(ctx, p, sess) })
	if err != nil {
		return store.Session{}, fmt.Errorf("update session %q: %w", sess.UploadKey, err)
	}
	n, err := cmd.Int()
	switch {
	case err != nil:
		return store.Session{}, fmt.Errorf("update session %q: %w", sess.UploadKey, err)
	case n == 0:
		return store.Session{}, fmt.Errorf("session %q: %w", sess.UploadKey, store.ErrNotFound)
	case n < 0:
		return store.Session{}, fmt.Errorf("session %q is not at version %d: %w",
			sess.UploadKey, expected, store.ErrConflict)
	}
	return sess, nil
}

// Lease takes the session's lease in one script.
func (s *Store) Lease(ctx context.Context, uploadKey, holder string, until time.Time) (store.Session, error) {
	now := s.clock()
	what := fmt.Sprintf("session %q", uploadKey)
	ttl := pttl(now, until)
	vals, err := leaseScript.Run(ctx, s.rdb, []string{sessionKey(uploadKey)},
		holder, until.Unix(), until.Nanosecond(), now.Unix(), now.Nanosecond(), ttl).Slice()
	if err != nil {
		return store.Session{}, fmt.Errorf("lease %s: %w", what, err)
	}
	status, _ := vals[0].(int64)
	if status == 0 {
		return store.Session{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	sess, err := decodeSession(vals[1:], what)
	if err != nil {
		return store.Session{}, err
	}
	if status < 0 {
		return sess, fmt.Errorf("%s: %w", what, store.ErrLeased)
	}
	return sess, nil
}

// Renew moves the end of holder's lease in one script.
func (s *Store) Renew(ctx context.Context, uploadKey, holder string, until time.Time) error {
	now := s.clock()
	what := fmt.Sprintf("session %q", uploadKey)
	ttl := pttl(now, until)
	n, err := renewScript.Run(ctx, s.rdb, []string{sessionKey(uploadKey)},
		holder, until.Unix(), until.Nanosecond(), now.Unix(), now.Nanosecond(), ttl).Int()
	switch {
	case err != nil:
		return fmt.Errorf("renew lease of %s: %w", what, err)
	case n == 0:
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	case n < 0:
		return fmt.Errorf("%s: %w", what, store.ErrLeased)
	}
	return nil
}

// DeleteSession removes the session; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, uploadKey string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, sessionKey(uploadKey))
		p.ZRem(ctx, keyIdle, uploadKey)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete session %q: %w", uploadKey, err)
	}
	return nil
}

// scan walks the index zset in score order from -inf up to t's score and
// offers each entry's record (nil if missing) to keep, in pages fetched in
// one pipeline each, until limit records were kept. keep returns whether
// the record counts and, if the entry is stale, the score it should have
// (-inf to remove it). Stale entries are fixed after the walk, and removed
// only if their score has not changed meanwhile.
func (s *Store) scan(ctx context.Context, index string, t time.Time, limit int,
	recordKey func(member string) string, get func(redis.Pipeliner, string) *redis.StringCmd,
	keep func(member string, data *string) (ok bool, fix float64, stale bool)) error {
	if limit <= 0 {
		return nil
	}
	type fix struct {
		member   string
		old, new float64
	}
	var fixes []fix
	pageSize := int64(min(max(limit, 16), 1000))
	kept := 0
	for offset := int64(0); kept < limit; offset += pageSize {
		entries, err := s.rdb.ZRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatFloat(score(t), 'f', -1, 64), Offset: offset, Count: pageSize,
		}).Result()
		if err != nil {
			return fmt.Errorf("read %s: %w", index, err)
		}
		if len(entries) == 0 {
			break
		}
		cmds := make([]*redis.StringCmd, len(entries))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, e := range entries {
				cmds[i] = get(p, recordKey(e.Member.(string)))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read records of %s: %w", index, err)
		}
		for i, e := range entries {
			member := e.Member.(string)
			var data *string
			switch v, err := cmds[i].Result(); {
			case err == nil:
				data = &v
			case !errors.Is(err, redis.Nil):
				return fmt.Errorf("read record of %s %q: %w", index, member, err)
			}
			ok, want, stale := keep(member, data)
			if ok && kept < limit {
				kept++
			}
			if stale && want != e.Score {
				fixes = append(fixes, fix{member, e.Score, want})
			}
		}
		if int64(len(entries)) < pageSize {
			break
		}
	}
	for _, f := range fixes {
		var err error
		if math.IsInf(f.new, -1) {
			err = zremIfScoreScript.Run(ctx, s.rdb, []string{index}, f.member, f.old).Err()
		} else {
			err = s.rdb.ZAddArgs(ctx, index, redis.ZAddArgs{XX: true, GT: true,
				Members: []redis.Z{{Score: f.new, Member: f.member}}}).Err()
		}
		if err != nil {
			return fmt.Errorf("repair %s: %w", index, err)
		}
	}
	return nil
}

// IdleSessions returns up to limit started sessions last updated before t,
// least recently updated first.
func (s *Store) IdleSessions(ctx context.Context, t time.Time, limit int) ([]store.Session, error) {
	var list []store.Session
	var decodeErr error
	err := s.scan(ctx, keyIdle, t, limit, sessionKey,
		func(p redis.Pipeliner, key string) *redis.StringCmd { return p.HGet(ctx, key, "d") },
		func(member string, data *string) (bool, float64, bool) {
			if data == nil {
				return false, math.Inf(-1), true
			}
			sess, err := decode[store.Session](*data, "session "+member)
			if err != nil {
				decodeErr = err
				return false, 0, false
			}
			switch {
			case !sess.Started:
				return false, math.Inf(-1), true
			case sess.Updated.Before(t):
				if len(list) < limit {
					list = append(list, sess)
				}
				return true, score(sess.Updated), true
			default:
				return false, score(sess.Updated), true
			}
		})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("idle sessions: %w", err)
	}
	return list, nil
}

// expiring reports whether f belongs in the expiry index.
func expiring(f store.File) bool {
	return f.Status == store.StatusActive && !f.Expires.IsZero()
}

// indexFile brings the expiry and damaged indexes in line with a file just
// written.
func (s *Store) indexFile(ctx context.Context, f store.File) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if expiring(f) {
			p.ZAdd(ctx, keyExpiry, redis.Z{Score: score(f.Expires), Member: f.Slug})
		} else {
			p.ZRem(ctx, keyExpiry, f.Slug)
		}
		if len(f.Missing) > 0 {
			p.ZAdd(ctx, keyDamaged, redis.Z{Member: f.Slug})
		} else {
			p.ZRem(ctx, keyDamaged, f.Slug)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index file %q: %w", f.Slug, err)
	}
	return nil
}

// releaseAlias frees the alias if it still names slug.
func (s *Store) releaseAlias(ctx context.Context, alias, slug string) error {
	if err := deleteIfEqualScript.Run(ctx, s.rdb, []string{aliasKey(alias)}, slug).Err(); err != nil {
		return fmt.Errorf("release alias %q: %w", alias, err)
	}
	return nil
}

// CreateFile publishes f with a random ID. It claims the alias first, then
// the slug, and indexes the file's expiry in the same round trip as the
// slug; the alias points nowhere visible until the file record names it,
// and is released again if the slug is taken.
func (s *Store) CreateFile(ctx context.Context, f store.File) (store.File, error) {
	if f.Alias != "" {
		ok, err := s.rdb.SetNX(ctx, aliasKey(f.Alias), f.Slug, 0).Result()
		if err != nil {
			return store.File{}, fmt.Errorf("create file %q: claim alias: %w", f.Slug, err)
		}
		if !ok {
			return store.File{}, fmt.Errorf("alias %q: %w", f.Alias, store.ErrExists)
		}
	}
	fail := func(err error) (store.File, error) {
		if f.Alias != "" {
			if rerr := s.releaseAlias(context.WithoutCancel(ctx), f.Alias, f.Slug); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return store.File{}, err
	}
	if f.ID == 0 {
		f.ID = store.NewFileID()
	}
	data, err := encodeFile(f)
	if err != nil {
		return fail(fmt.Errorf("create file %q: %w", f.Slug, err))
	}
	var set *redis.BoolCmd
	var cnt *redis.Cmd
	s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		set = p.SetNX(ctx, fileKey(f.Slug), data, 0)
		// Harmless if the slug is taken: OwnerFiles checks the record.
		p.ZAdd(ctx, ownerKey(f.Owner), redis.Z{Score: score(f.Created), Member: f.Slug})
		if expiring(f) {
			// Harmless if the slug is taken: ExpiredFiles checks the
			// record and repairs the entry.
			p.ZAdd(ctx, keyExpiry, redis.Z{Score: score(f.Expires), Member: f.Slug})
		}
		if len(f.Missing) > 0 {
			p.ZAdd(ctx, keyDamaged, redis.Z{Member: f.Slug}) // likewise, DamagedFiles checks
		}
		if f.Status == store.StatusActive {
			// Undone below if the slug is taken.
			cnt = usageCountScript.EvalSha(ctx, p, usageKeys(f.Owner), f.Slug, f.Size)
		}
		return nil
	})
	if err := set.Err(); err != nil {
		return fail(fmt.Errorf("create file %q: %w", f.Slug, err))
	}
	if !set.Val() {
		if cnt != nil && cnt.Err() == nil {
			s.uncountTaken(ctx, f)
		}
		return fail(fmt.Errorf("file %q: %w", f.Slug, store.ErrExists))
	}
	if cnt != nil && cnt.Err() != nil {
		// Not cached yet (NOSCRIPT), or the count failed: count again.
		if err := usageCountScript.Run(ctx, s.rdb, usageKeys(f.Owner), f.Slug, f.Size).Err(); err != nil {
			slog.Default().WarnContext(ctx, "redis store: usage not counted", "slug", f.Slug, "owner", f.Owner, "err", err)
		}
	}
	return f, nil
}

// uncountTaken undoes the count of f, whose slug turned out to be taken,
// unless the file holding the slug is f's owner's active file (which its
// own create counted).
func (s *Store) uncountTaken(ctx context.Context, f store.File) {
	ctx = context.WithoutCancel(ctx)
	if other, err := s.File(ctx, f.Slug); err == nil && other.Owner == f.Owner && other.Status == store.StatusActive {
		return
	}
	if err := usageUncountScript.Run(ctx, s.rdb, usageKeys(f.Owner), f.Slug).Err(); err != nil {
		slog.Default().WarnContext(ctx, "redis store: usage not corrected", "slug", f.Slug, "owner", f.Owner, "err", err)
	}
}

// recount moves a file's count from how old was to how f is: counted
// while active, by owner and size.
func (s *Store) recount(ctx context.Context, old, f store.File) error {
	same := old.Owner == f.Owner && old.Size == f.Size && old.Status == f.Status
	if same {
		return nil
	}
	if old.Status == store.StatusActive {
		if err := usageUncountScript.Run(ctx, s.rdb, usageKeys(old.Owner), old.Slug).Err(); err != nil {
			return fmt.Errorf("usage of %q: %w", old.Owner, err)
		}
	}
	if f.Status == store.StatusActive {
		if err := usageCountScript.Run(ctx, s.rdb, usageKeys(f.Owner), f.Slug, f.Size).Err(); err != nil {
			return fmt.Errorf("usage of %q: %w", f.Owner, err)
		}
	}
	return nil
}

// Usage returns what the owner's active files take. The first call for an
// owner also counts files an older acestash stored before there were
// counters (see countOld).
func (s *Store) Usage(ctx context.Context, owner string) (store.Usage, error) {
	for range 2 {
		vals, err := s.rdb.HMGet(ctx, usageKeys(owner)[1], "bytes", "files", "complete").Result()
		if err != nil {
			return store.Usage{}, fmt.Errorf("usage of %q: %w", owner, err)
		}
		if vals[2] == nil {
			if err := s.countOld(ctx, owner); err != nil {
				return store.Usage{}, err
			}
			continue
		}
		var u store.Usage
		for i, dst := range []*int64{&u.Bytes, &u.Files} {
			if v, ok := vals[i].(string); ok {
				if *dst, err = strconv.ParseInt(v, 10, 64); err != nil {
					return store.Usage{}, fmt.Errorf("usage of %q: %w", owner, err)
				}
			}
		}
		return u, nil
	}
	return store.Usage{}, fmt.Errorf("usage of %q: not counted", owner)
}

// countOld counts every active file in the owner's index, then marks the
// counters complete. usageCountScript skips files counted already, so this is
// safe to repeat and to run beside new writes; only a file deleted while
// it runs may stay counted.
func (s *Store) countOld(ctx context.Context, owner string) error {
	slugs, err := s.rdb.ZRange(ctx, ownerKey(owner), 0, -1).Result()
	if err != nil {
		return fmt.Errorf("usage of %q: %w", owner, err)
	}
	for len(slugs) > 0 {
		n := min(len(slugs), 500)
		files, err := s.Files(ctx, slugs[:n])
		if err != nil {
			return fmt.Errorf("usage of %q: %w", owner, err)
		}
		slugs = slugs[n:]
		for _, f := range files {
			if f.Owner != owner || f.Status != store.StatusActive {
				continue
			}
			if err := usageCountScript.Run(ctx, s.rdb, usageKeys(owner), f.Slug, f.Size).Err(); err != nil {
				return fmt.Errorf("usage of %q: %w", owner, err)
			}
		}
	}
	if err := s.rdb.HSet(ctx, usageKeys(owner)[1], "complete", 1).Err(); err != nil {
		return fmt.Errorf("usage of %q: %w", owner, err)
	}
	return nil
}

// File returns the file with the slug.
func (s *Store) File(ctx context.Context, slug string) (store.File, error) {
	what := fmt.Sprintf("file %q", slug)
	data, err := s.rdb.Get(ctx, fileKey(slug)).Result()
	if err != nil {
		return store.File{}, notFound(err, what)
	}
	return decodeFile(data, what)
}

// Files returns the files with the given slugs, read in one pipeline (on a
// cluster, one batch per node); missing ones are absent.
func (s *Store) Files(ctx context.Context, slugs []string) (map[string]store.File, error) {
	m := make(map[string]store.File, len(slugs))
	if len(slugs) == 0 {
		return m, nil
	}
	cmds := make([]*redis.StringCmd, len(slugs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, slug := range slugs {
			cmds[i] = p.Get(ctx, fileKey(slug))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("files: %w", err)
	}
	for i, slug := range slugs {
		data, err := cmds[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", slug, err)
		}
		f, err := decodeFile(data, fmt.Sprintf("file %q", slug))
		if err != nil {
			return nil, err
		}
		m[slug] = f
	}
	return m, nil
}

// FileByAlias returns the file with the alias. An alias key whose file does
// not name it (a create or rename in progress or undone) is not found.
func (s *Store) FileByAlias(ctx context.Context, alias string) (store.File, error) {
	what := fmt.Sprintf("alias %q", alias)
	if alias == "" {
		return store.File{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	slug, err := s.rdb.Get(ctx, aliasKey(alias)).Result()
	if err != nil {
		return store.File{}, notFound(err, what)
	}
	f, err := s.File(ctx, slug)
	if err == nil && f.Alias != alias {
		return store.File{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return f, err
}

// UpdateFile replaces the stored file with f.Slug; ErrNotFound if absent,
// ErrExists if f.Alias changed to an alias another file has.
func (s *Store) UpdateFile(ctx context.Context, f store.File) error {
	old, err := s.File(ctx, f.Slug)
	if err != nil {
		return fmt.Errorf("update file: %w", err)
	}
	newAlias := f.Alias != old.Alias && f.Alias != ""
	if newAlias {
		ok, err := s.rdb.SetNX(ctx, aliasKey(f.Alias), f.Slug, 0).Result()
		if err != nil {
			return fmt.Errorf("update file %q: claim alias: %w", f.Slug, err)
		}
		if !ok {
			return fmt.Errorf("alias %q: %w", f.Alias, store.ErrExists)
		}
	}
	data, err := encodeFile(f)
	if err != nil {
		return fmt.Errorf("update file %q: %w", f.Slug, err)
	}
	replaced, err := updateFileScript.Run(ctx, s.rdb, []string{fileKey(f.Slug)}, data, f.Status).Text()
	switch {
	case errors.Is(err, redis.Nil):
		err = fmt.Errorf("file %q: %w", f.Slug, store.ErrNotFound)
	case err != nil:
		err = fmt.Errorf("update file %q: %w", f.Slug, err)
	case replaced == "":
		err = fmt.Errorf("file %q was taken down: %w", f.Slug, store.ErrConflict)
	default:
		// What was replaced, not what was read before, decides the
		// counters and indexes.
		old, err = decodeFile(replaced, fmt.Sprintf("file %q", f.Slug))
	}
	if err != nil {
		if newAlias {
			if rerr := s.releaseAlias(context.WithoutCancel(ctx), f.Alias, f.Slug); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return err
	}
	if old.Alias != "" && old.Alias != f.Alias {
		if err := s.releaseAlias(ctx, old.Alias, f.Slug); err != nil {
			return err
		}
	}
	if err := s.recount(ctx, old, f); err != nil {
		return fmt.Errorf("update file %q: %w", f.Slug, err)
	}
	if old.Owner != f.Owner || !old.Created.Equal(f.Created) {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.ZRem(ctx, ownerKey(old.Owner), f.Slug)
			p.ZAdd(ctx, ownerKey(f.Owner), redis.Z{Score: score(f.Created), Member: f.Slug})
			return nil
		})
		if err != nil {
			return fmt.Errorf("index file %q: %w", f.Slug, err)
		}
	}
	return s.indexFile(ctx, f)
}

// DeleteFile removes the file and its alias; a missing file is not an error.
func (s *Store) DeleteFile(ctx context.Context, slug string) error {
	old, err := s.File(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete file: %w", err)
	}
	if err := s.rdb.Del(ctx, fileKey(slug)).Err(); err != nil {
		return fmt.Errorf("delete file %q: %w", slug, err)
	}
	if old.Alias != "" {
		if err := s.releaseAlias(ctx, old.Alias, slug); err != nil {
			return err
		}
	}
	_, err = s.runPipelined(ctx, usageUncountScript, usageKeys(old.Owner), []any{slug}, func(p redis.Pipeliner) {
		p.ZRem(ctx, keyExpiry, slug)
		p.ZRem(ctx, ownerKey(old.Owner), slug)
		p.ZRem(ctx, keyDamaged, slug)
	})
	if err != nil {
		return fmt.Errorf("unindex file %q: %w", slug, err)
	}
	return nil
}

// OwnerFiles returns a page of the owner's files, newest first: one round
// trip for the index, one for the records. Entries whose record is gone or
// names another owner (a failed create) are skipped and removed.
func (s *Store) OwnerFiles(ctx context.Context, owner string, offset, limit int) ([]store.File, int, error) {
	if limit <= 0 || offset < 0 {
		n, err := s.rdb.ZCard(ctx, ownerKey(owner)).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("owner files: %w", err)
		}
		return nil, int(n), nil
	}
	var card *redis.IntCmd
	var page *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.ZCard(ctx, ownerKey(owner))
		page = p.ZRevRange(ctx, ownerKey(owner), int64(offset), int64(offset+limit-1))
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("owner files: %w", err)
	}
	files, err := s.Files(ctx, page.Val())
	if err != nil {
		return nil, 0, fmt.Errorf("owner files: %w", err)
	}
	total := int(card.Val())
	list := make([]store.File, 0, len(page.Val()))
	for _, slug := range page.Val() {
		f, ok := files[slug]
		if !ok || f.Owner != owner {
			total--
			if err := s.rdb.ZRem(ctx, ownerKey(owner), slug).Err(); err != nil {
				slog.Default().WarnContext(ctx, "redis store: owner index not repaired", "slug", slug, "err", err)
			}
			continue
		}
		list = append(list, f)
	}
	return list, total, nil
}

// ExpiredFiles returns up to limit active files whose Expires is before t,
// earliest first.
func (s *Store) ExpiredFiles(ctx context.Context, t time.Time, limit int) ([]store.File, error) {
	var list []store.File
	var decodeErr error
	err := s.scan(ctx, keyExpiry, t, limit, fileKey,
		func(p redis.Pipeliner, key string) *redis.StringCmd { return p.Get(ctx, key) },
		func(slug string, data *string) (bool, float64, bool) {
			if data == nil {
				return false, math.Inf(-1), true
			}
			f, err := decodeFile(*data, fmt.Sprintf("file %q", slug))
			if err != nil {
				decodeErr = err
				return false, 0, false
			}
			switch {
			case !expiring(f):
				return false, math.Inf(-1), true
			case f.Expires.Before(t):
				if len(list) < limit {
					list = append(list, f)
				}
				return true, score(f.Expires), true
			default:
				return false, score(f.Expires), true
			}
		})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("expired files: %w", err)
	}
	return list, nil
}

// DamagedFiles returns up to limit files with a Missing mirror after the
// slug after, in slug order. Index entries whose record is gone or whole
// again are removed.
func (s *Store) DamagedFiles(ctx context.Context, after string, limit int) ([]store.File, error) {
	var list []store.File
	start := "-"
	if after != "" {
		start = "(" + after
	}
	for len(list) < limit {
		slugs, err := s.rdb.ZRangeByLex(ctx, keyDamaged, &redis.ZRangeBy{Min: start, Max: "+", Count: int64(limit - len(list))}).Result()
		if err != nil {
			return nil, fmt.Errorf("damaged files: %w", err)
		}
		if len(slugs) == 0 {
			break
		}
		files, err := s.Files(ctx, slugs)
		if err != nil {
			return nil, fmt.Errorf("damaged files: %w", err)
		}
		for _, slug := range slugs {
			f, ok := files[slug]
			if ok && len(f.Missing) > 0 {
				list = append(list, f)
				continue
			}
			// Stale: gone, or whole. Remove it unless it was damaged again
			// meanwhile.
			if cur, err := s.File(ctx, slug); errors.Is(err, store.ErrNotFound) || err == nil && len(cur.Missing) == 0 {
				s.rdb.ZRem(ctx, keyDamaged, slug)
			}
		}
		start = "(" + slugs[len(slugs)-1]
	}
	return list, nil
}

// Lock gives the named lock to holder until the time until, in one script.
func (s *Store) Lock(ctx context.Context, name, holder string, until time.Time) error {
	now := s.clock()
	ttl := pttl(now, until)
	n, err := lockScript.Run(ctx, s.rdb, []string{lockKey(name)}, holder, until.Unix(), until.Nanosecond(),
		now.Unix(), now.Nanosecond(), ttl).Int()
	if err != nil {
		return fmt.Errorf("lock %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("lock %q: %w", name, store.ErrLeased)
	}
	return nil
}

// EachFile scans the keyspace (on a Cluster, of every master) for file
// records and reads them in pipelines of a page each.
func (s *Store) EachFile(ctx context.Context, fn func(store.File) error) error {
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, "acestash:{f:*}:file", 1000).Result()
			if err != nil {
				return fmt.Errorf("each file: %w", err)
			}
			if len(keys) > 0 {
				cmds := make([]*redis.StringCmd, len(keys))
				_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for i, k := range keys {
						cmds[i] = p.Get(ctx, k)
					}
					return nil
				})
				if err != nil && !errors.Is(err, redis.Nil) {
					return fmt.Errorf("each file: %w", err)
				}
				for i, cmd := range cmds {
					data, err := cmd.Result()
					if errors.Is(err, redis.Nil) {
						continue // removed meanwhile
					}
					if err != nil {
						return fmt.Errorf("each file: %w", err)
					}
					f, err := decodeFile(data, keys[i])
					if err != nil {
						return err
					}
					if err := fn(f); err != nil {
						return err
					}
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex // fn is called from one master at a time
		var failed error  // and not again once it failed
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			if failed == nil {
				failed = scan(ctx, c)
			}
			return failed
		})
	}
	return scan(ctx, s.rdb)
}

// Count adds add to the counter under key, in one script.
func (s *Store) Count(ctx context.Context, key string, add int64, until time.Time) (int64, error) {
	now := s.clock()
	ttl := pttl(now, until)
	n, err := countScript.Run(ctx, s.rdb, []string{countKey(key)}, add, until.Unix(), until.Nanosecond(),
		now.Unix(), now.Nanosecond(), ttl).Int64()
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", key, err)
	}
	return n, nil
}
