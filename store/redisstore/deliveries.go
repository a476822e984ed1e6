package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acestash/acestash/store"
)

// Webhook deliveries: each a JSON record under its own key, and a sorted
// set of their ids by due time. Claiming moves ids in the set only, in one
// script on that one key, so two nodes never claim the same delivery.

const keyDeliveries = "acestash:deliveries"

func deliveryKey(id string) string { return "acestash:{d:" + id + "}:delivery" }

// claimScript returns up to ARGV[3] ids due by ARGV[1] and moves them to
// ARGV[2].
var claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids`)

// AddDeliveries queues deliveries: records first, then, once they are
// all stored, their index entries, so a claim never finds an id without
// its record. Records and entries that exist are left as they are; an
// add cut off between the two steps is completed by the next.
func (s *Store) AddDeliveries(ctx context.Context, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range ds {
			data, err := json.Marshal(d)
			if err != nil {
				return err
			}
			p.SetNX(ctx, deliveryKey(d.ID), data, 0)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add deliveries: %w", err)
	}
	zs := make([]redis.Z, len(ds))
	for i, d := range ds {
		zs[i] = redis.Z{Score: score(d.Due), Member: d.ID}
	}
	if err := s.rdb.ZAddNX(ctx, keyDeliveries, zs...).Err(); err != nil {
		return fmt.Errorf("add deliveries: %w", err)
	}
	return nil
}

// ClaimDeliveries claims due ids in the index, then reads their records;
// an id whose record is gone is dropped from the index.
func (s *Store) ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]store.Delivery, error) {
	res, err := claimScript.Run(ctx, s.rdb, []string{keyDeliveries},
		strconv.FormatFloat(score(now), 'f', -1, 64), strconv.FormatFloat(score(until), 'f', -1, 64), limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(res))
	s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range res {
			cmds[i] = p.Get(ctx, deliveryKey(id))
		}
		return nil
	})
	var out []store.Delivery
	for i, id := range res {
		data, err := cmds[i].Result()
		if errors.Is(err, redis.Nil) {
			s.rdb.ZRem(ctx, keyDeliveries, id)
			continue
		}
		if err != nil {
			return out, fmt.Errorf("delivery %s: %w", id, err)
		}
		d, err := decode[store.Delivery](data, "delivery "+id)
		if err != nil {
			return out, err
		}
		d.Due = until
		out = append(out, d)
	}
	return out, nil
}

// PutDelivery replaces the queued delivery with d.ID.
func (s *Store) PutDelivery(ctx context.Context, d store.Delivery) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	ok, err := s.rdb.SetXX(ctx, deliveryKey(d.ID), data, 0).Result()
	if err != nil {
		return fmt.Errorf("put delivery %s: %w", d.ID, err)
	}
	if !ok {
		return fmt.Errorf("delivery %s: %w", d.ID, store.ErrNotFound)
	}
	if err := s.rdb.ZAdd(ctx, keyDeliveries, redis.Z{Score: score(d.Due), Member: d.ID}).Err(); err != nil {
		return fmt.Errorf("put delivery %s: %w", d.ID, err)
	}
	return nil
}

// DeleteDelivery removes a delivery; the index entry goes first, so a
// claim never finds a record half gone.
func (s *Store) DeleteDelivery(ctx context.Context, id string) error {
	if err := s.rdb.ZRem(ctx, keyDeliveries, id).Err(); err != nil {
		return fmt.Errorf("delete delivery %s: %w", id, err)
	}
	if err := s.rdb.Del(ctx, deliveryKey(id)).Err(); err != nil {
		return fmt.Errorf("delete delivery %s: %w", id, err)
	}
	return nil
}

// Deliveries returns every queued delivery in ID order: the ids in the
// index, their records read one at a time (a Cluster spreads them over
// slots), each with the Due the index holds, to the millisecond.
func (s *Store) Deliveries(ctx context.Context) ([]store.Delivery, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, keyDeliveries, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	due := map[string]float64{}
	var ids []string
	for _, z := range zs {
		id, _ := z.Member.(string)
		due[id] = z.Score
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []store.Delivery
	for _, id := range ids {
		data, err := s.rdb.Get(ctx, deliveryKey(id)).Bytes()
		if errors.Is(err, redis.Nil) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("deliveries: %w", err)
		}
		var d store.Delivery
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, fmt.Errorf("decode delivery %s: %w", id, err)
		}
		if due[id] != score(d.Due) { // claimed: the index holds the Due
			d.Due = time.UnixMilli(int64(due[id])).UTC()
		}
		out = append(out, d)
	}
	return out, nil
}
