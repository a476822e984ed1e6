package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acestash/acestash/store"
)

// putDelivery writes d and its due index entry, replacing old's.
func putDelivery(tx *bolt.Tx, old *store.Delivery, d store.Delivery) error {
	due := bucket(tx, bucketHooksDue)
	if old != nil {
		if err := due.Delete(timeKey(old.Due, old.ID)); err != nil {
			return err
		}
	}
	if err := due.Put(timeKey(d.Due, d.ID), nil); err != nil {
		return err
	}
	return put(bucket(tx, bucketHooks), d.ID, d)
}

// AddDeliveries queues deliveries under their IDs, leaving those queued
// already as they are.
func (s *Store) AddDeliveries(ctx context.Context, ds []store.Delivery) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		for _, d := range ds {
			if bucket(tx, bucketHooks).Get([]byte(d.ID)) != nil {
				continue
			}
			if err := putDelivery(tx, nil, d); err != nil {
				return fmt.Errorf("add delivery %s: %w", d.ID, err)
			}
		}
		return nil
	})
}

// ClaimDeliveries returns the deliveries due by now, oldest first, with
// their Due moved to until.
func (s *Store) ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]store.Delivery, error) {
	var out []store.Delivery
	err := s.update(ctx, func(tx *bolt.Tx) error {
		hooks := bucket(tx, bucketHooks)
		end := timeKey(now, "\xff")
		var due []store.Delivery
		c := bucket(tx, bucketHooksDue).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, end) <= 0 && len(due) < limit; k, _ = c.Next() {
			d, err := get[store.Delivery](hooks, string(k[12:]), "delivery")
			if err != nil {
				return err
			}
			due = append(due, d)
		}
		for _, d := range due {
			next := d
			next.Due = until
			if err := putDelivery(tx, &d, next); err != nil {
				return fmt.Errorf("claim delivery %s: %w", d.ID, err)
			}
			out = append(out, next)
		}
		return nil
	})
	return out, err
}

// PutDelivery replaces the queued delivery with d.ID.
func (s *Store) PutDelivery(ctx context.Context, d store.Delivery) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		old, err := get[store.Delivery](bucket(tx, bucketHooks), d.ID, "delivery")
		if err != nil {
			return err
		}
		return putDelivery(tx, &old, d)
	})
}

// DeleteDelivery removes a delivery; a missing one is not an error.
func (s *Store) DeleteDelivery(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		old, err := get[store.Delivery](bucket(tx, bucketHooks), id, "delivery")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := bucket(tx, bucketHooksDue).Delete(timeKey(old.Due, id)); err != nil {
			return err
		}
		return bucket(tx, bucketHooks).Delete([]byte(id))
	})
}

// Deliveries returns every queued delivery in ID order.
func (s *Store) Deliveries(ctx context.Context) ([]store.Delivery, error) {
	var out []store.Delivery
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return bucket(tx, bucketHooks).ForEach(func(k, _ []byte) error {
			d, err := get[store.Delivery](bucket(tx, bucketHooks), string(k), "delivery")
			out = append(out, d)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	return out, nil
}
