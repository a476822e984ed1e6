package boltstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"

	"github.com/acestash/acestash/store"
)

// PutJob creates or replaces the mirror's job, checking its Version.
func (s *Store) PutJob(ctx context.Context, j store.Job) (store.Job, error) {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		jobs := bucket(tx, bucketJobs)
		old, err := get[store.Job](jobs, j.Mirror, "job")
		switch {
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		case j.Version == 0 && err == nil:
			return fmt.Errorf("job of mirror %s: %w", j.Mirror, store.ErrExists)
		case j.Version != 0 && (err != nil || old.Version != j.Version):
			return fmt.Errorf("job of mirror %s: %w", j.Mirror, store.ErrConflict)
		}
		j.Version++
		return put(jobs, j.Mirror, j)
	})
	if err != nil {
		return store.Job{}, fmt.Errorf("put job: %w", err)
	}
	return j, nil
}

// Job returns the mirror's job.
func (s *Store) Job(ctx context.Context, mirror string) (store.Job, error) {
	var j store.Job
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		j, err = get[store.Job](bucket(tx, bucketJobs), mirror, "job of mirror")
		return err
	})
	return j, err
}

// Jobs returns every job in mirror id order.
func (s *Store) Jobs(ctx context.Context) ([]store.Job, error) {
	var list []store.Job
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return bucket(tx, bucketJobs).ForEach(func(k, _ []byte) error {
			j, err := get[store.Job](bucket(tx, bucketJobs), string(k), "job of mirror")
			list = append(list, j)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return list, nil
}

// DeleteJob removes the mirror's job.
func (s *Store) DeleteJob(ctx context.Context, mirror string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		return bucket(tx, bucketJobs).Delete([]byte(mirror))
	})
}

// Backup writes a consistent copy of the whole database file to w while
// the store stays in use (one read transaction), first telling size how
// many bytes it will write, and returns how many it wrote.
func (s *Store) Backup(ctx context.Context, w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		size(tx.Size())
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}
