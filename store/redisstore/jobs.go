package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/acestash/acestash/store"
)

// Jobs live in one hash: each mirror's job as JSON, and its version
// beside it, which putJobScript checks and sets with the JSON.

const keyJobs = "acestash:{jobs}"

// putJobScript: ARGV mirror, expected version, new version, JSON. Returns
// 1, or 0 when the version differs (-1 when creating over a job).
var putJobScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1] .. ':v')
if ARGV[2] == '0' then
  if v then return -1 end
elseif v ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], ARGV[1] .. ':v', ARGV[3])
return 1`)

// PutJob creates or replaces the mirror's job, checking its Version.
func (s *Store) PutJob(ctx context.Context, j store.Job) (store.Job, error) {
	old := j.Version
	j.Version++
	data, err := json.Marshal(j)
	if err != nil {
		return store.Job{}, fmt.Errorf("put job: %w", err)
	}
	n, err := putJobScript.Run(ctx, s.rdb, []string{keyJobs}, j.Mirror, old, j.Version, data).Int()
	switch {
	case err != nil:
		return store.Job{}, fmt.Errorf("put job of mirror %s: %w", j.Mirror, err)
	case n == -1:
		return store.Job{}, fmt.Errorf("put job of mirror %s: %w", j.Mirror, store.ErrExists)
	case n == 0:
		return store.Job{}, fmt.Errorf("put job of mirror %s: %w", j.Mirror, store.ErrConflict)
	}
	return j, nil
}

// Job returns the mirror's job.
func (s *Store) Job(ctx context.Context, mirror string) (store.Job, error) {
	data, err := s.rdb.HGet(ctx, keyJobs, mirror).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.Job{}, fmt.Errorf("job of mirror %s: %w", mirror, store.ErrNotFound)
	}
	if err != nil {
		return store.Job{}, fmt.Errorf("job of mirror %s: %w", mirror, err)
	}
	var j store.Job
	if err := json.Unmarshal(data, &j); err != nil {
		return store.Job{}, fmt.Errorf("decode job of mirror %s: %w", mirror, err)
	}
	return j, nil
}

// Jobs returns every job in mirror id order.
func (s *Store) Jobs(ctx context.Context) ([]store.Job, error) {
	all, err := s.rdb.HGetAll(ctx, keyJobs).Result()
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	var list []store.Job
	for k, data := range all {
		if strings.HasSuffix(k, ":v") {
			continue
		}
		var j store.Job
		if err := json.Unmarshal([]byte(data), &j); err != nil {
			return nil, fmt.Errorf("decode job of mirror %s: %w", k, err)
		}
		list = append(list, j)
	}
	sort.Slice(list, func(a, b int) bool { return list[a].Mirror < list[b].Mirror })
	return list, nil
}

// DeleteJob removes the mirror's job.
func (s *Store) DeleteJob(ctx context.Context, mirror string) error {
	if err := s.rdb.HDel(ctx, keyJobs, mirror, mirror+":v").Err(); err != nil {
		return fmt.Errorf("delete job of mirror %s: %w", mirror, err)
	}
	return nil
}
