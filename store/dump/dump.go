// Package dump copies what a store holds that outlives a restart —
// accounts, file records (and with them usage counters, owner indexes and
// expiries), queued webhook deliveries and mirror jobs — from one store to
// another or through a file, and tells whether two stores hold the same.
//
// A dump file is JSON lines: a header {"format":"acestash-dump","version":1},
// then one record per line, each an object with one of the keys account,
// file, delivery or job, and last {"end":<number of records>}. The version
// is the dump format's own; a reader refuses a newer one.
package dump

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/acestash/acestash/store"
)

// Format and Version are what a dump's header says.
const (
	Format  = "acestash-dump"
	Version = 1
)

// Record is one line of a dump: the header, or one record.
type Record struct {
	Format   string          `json:"format,omitempty"`
	Version  int             `json:"version,omitempty"`
	Account  *store.Account  `json:"account,omitempty"`
	File     *store.File     `json:"file,omitempty"`
	Delivery *store.Delivery `json:"delivery,omitempty"`
	Job      *store.Job      `json:"job,omitempty"`
	// End is the last line: how many records came before it, so a dump
	// cut off is told from a whole one.
	End *int `json:"end,omitempty"`
}

// Each calls fn with every record st holds: accounts, files, deliveries,
// jobs, in that order. Records written meanwhile may or may not be seen.
func Each(ctx context.Context, st store.Store, fn func(Record) error) error {
	accounts, err := st.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	for _, a := range accounts {
		if err := fn(Record{Account: &a}); err != nil {
			return err
		}
	}
	if err := st.EachFile(ctx, func(f store.File) error { return fn(Record{File: &f}) }); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	ds, err := st.Deliveries(ctx)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	for _, d := range ds {
		if err := fn(Record{Delivery: &d}); err != nil {
			return err
		}
	}
	jobs, err := st.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	for _, j := range jobs {
		if err := fn(Record{Job: &j}); err != nil {
			return err
		}
	}
	return nil
}

// Write writes st as a dump to w and returns how many records it wrote.
func Write(ctx context.Context, st store.Store, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	if err := enc.Encode(Record{Format: Format, Version: Version}); err != nil {
		return 0, fmt.Errorf("dump: %w", err)
	}
	n := 0
	err := Each(ctx, st, func(r Record) error {
		n++
		return enc.Encode(r)
	})
	if err != nil {
		return n, err
	}
	return n, enc.Encode(Record{End: &n})
}

// Read calls fn with every record of the dump r holds, after checking its
// header.
func Read(r io.Reader, fn func(Record) error) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	var h Record
	if err := dec.Decode(&h); err != nil || h.Format != Format {
		return fmt.Errorf("dump: not an acestash dump (its first line is not the %s header): %v", Format, err)
	}
	if h.Version > Version {
		return fmt.Errorf("dump: written in format version %d by a newer acestash; this one reads up to %d", h.Version, Version)
	}
	for n := 0; ; n++ {
		var rec Record
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("dump: cut off after %d records: its last line is missing", n)
		}
		if err != nil {
			return fmt.Errorf("dump: record %d: %w", n+1, err)
		}
		if rec.End != nil {
			if *rec.End != n {
				return fmt.Errorf("dump: %d records, but its last line says %d", n, *rec.End)
			}
			return nil
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// Put writes one record to st. Writing a record st holds already
// replaces it, so a copy cut off can be run again; a delivery queued
// already is left as it is, and a job starts again from its version 0.
func Put(ctx context.Context, st store.Store, r Record) error {
	switch {
	case r.Account != nil:
		if err := st.PutAccount(ctx, *r.Account); err != nil {
			return fmt.Errorf("account %s: %w", r.Account.APIKey, err)
		}
	case r.File != nil:
		_, err := st.CreateFile(ctx, *r.File)
		if errors.Is(err, store.ErrExists) {
			err = st.UpdateFile(ctx, *r.File)
		}
		if err != nil {
			return fmt.Errorf("file %s: %w", r.File.Slug, err)
		}
	case r.Delivery != nil:
		if err := st.AddDeliveries(ctx, []store.Delivery{*r.Delivery}); err != nil {
			return fmt.Errorf("delivery %s: %w", r.Delivery.ID, err)
		}
	case r.Job != nil:
		j := *r.Job
		j.Version = 0
		if err := st.DeleteJob(ctx, j.Mirror); err != nil {
			return fmt.Errorf("job of mirror %s: %w", j.Mirror, err)
		}
		if _, err := st.PutJob(ctx, j); err != nil {
			return fmt.Errorf("job of mirror %s: %w", j.Mirror, err)
		}
	}
	return nil
}

// Empty reports whether st holds no account, file, delivery or job.
func Empty(ctx context.Context, st store.Store) (bool, error) {
	errFound := errors.New("found")
	err := Each(ctx, st, func(Record) error { return errFound })
	if errors.Is(err, errFound) {
		return false, nil
	}
	return err == nil, err
}

// Summary counts a store's records and digests them.
type Summary struct {
	Accounts   int `json:"accounts"`
	Files      int `json:"files"`
	Active     int `json:"active_files"`
	Deliveries int `json:"deliveries"`
	Jobs       int `json:"jobs"`
	// Usage is what the accounts' active files take, summed over them.
	UsageBytes int64 `json:"usage_bytes"`
	UsageFiles int64 `json:"usage_files"`
	// Digest is the XOR of the SHA-256 of every record and of every
	// account's usage, so it does not depend on the order stores list
	// them in.
	Digest string `json:"digest"`
}

// Digester builds a Summary from records in any order.
type Digester struct {
	s   Summary
	sum [sha256.Size]byte
}

// Add counts r in.
func (d *Digester) Add(r Record) {
	switch {
	case r.Account != nil:
		d.s.Accounts++
	case r.File != nil:
		d.s.Files++
		if r.File.Status == store.StatusActive {
			d.s.Active++
		}
	case r.Delivery != nil:
		d.s.Deliveries++
	case r.Job != nil:
		d.s.Jobs++
		j := *r.Job
		j.Version = 0 // a copy starts again from 0
		r.Job = &j
	default:
		return
	}
	d.mix(r)
}

func (d *Digester) mix(v any) {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	for i := range d.sum {
		d.sum[i] ^= h[i]
	}
}

// AddUsage counts in an account's usage.
func (d *Digester) AddUsage(owner string, u store.Usage) {
	d.s.UsageBytes += u.Bytes
	d.s.UsageFiles += u.Files
	d.mix(struct {
		Owner string
		store.Usage
	}{owner, u})
}

// Summary returns the summary of what was added.
func (d *Digester) Summary() Summary {
	s := d.s
	s.Digest = hex.EncodeToString(d.sum[:])
	return s
}

// Summarize reads every record of st and the usage of its accounts.
func Summarize(ctx context.Context, st store.Store) (Summary, error) {
	var d Digester
	var owners []string
	err := Each(ctx, st, func(r Record) error {
		d.Add(r)
		if r.Account != nil {
			owners = append(owners, r.Account.APIKey)
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	if err := d.usage(ctx, st, owners); err != nil {
		return Summary{}, err
	}
	return d.Summary(), nil
}

func (d *Digester) usage(ctx context.Context, st store.Store, owners []string) error {
	for _, o := range owners {
		u, err := st.Usage(ctx, o)
		if err != nil {
			return fmt.Errorf("usage of %s: %w", o, err)
		}
		d.AddUsage(o, u)
	}
	return nil
}

// Copy puts every record of from into to, and returns the summary of
// what it read.
func Copy(ctx context.Context, from, to store.Store, progress func(n int)) (Summary, error) {
	var d Digester
	var owners []string
	n := 0
	err := Each(ctx, from, func(r Record) error {
		if err := Put(ctx, to, r); err != nil {
			return err
		}
		d.Add(r)
		if r.Account != nil {
			owners = append(owners, r.Account.APIKey)
		}
		if n++; progress != nil && n%1000 == 0 {
			progress(n)
		}
		return nil
	})
	if err != nil {
		return Summary{}, fmt.Errorf("copy: %w", err)
	}
	if err := d.usage(ctx, from, owners); err != nil {
		return Summary{}, err
	}
	return d.Summary(), nil
}
