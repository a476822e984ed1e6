package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/acestash/acestash/api"
	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// A mirror taken out of the configuration while file records still name
// it would leave those files a copy short without anyone noticing, so a
// node refuses to start then. The way out is to drain the mirror while it
// is still configured, or, for a mirror that is gone for good, to forget
// it: its copies are struck from the records and each file is marked
// missing a copy on another mirror, which the repairer then writes.

// unconfigured counts, per mirror id that is not configured, the active
// files whose records name it, and their bytes.
func unconfigured(ctx context.Context, st store.Store, configured func(string) bool) (map[string][2]int64, error) {
	held := map[string][2]int64{}
	err := st.EachFile(ctx, func(f store.File) error {
		if f.Status != store.StatusActive {
			return nil
		}
		for _, id := range slices.Concat(f.Mirrors, f.Missing) {
			if !configured(id) {
				n := held[id]
				held[id] = [2]int64{n[0] + 1, n[1] + f.Size}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check the mirrors the records name: %w", err)
	}
	return held, nil
}

// checkMirrors fails if records name mirrors the configuration lacks,
// saying how many files each holds and what to do.
func checkMirrors(ctx context.Context, st store.Store, cfg Config) error {
	held, err := unconfigured(ctx, st, func(id string) bool {
		return slices.ContainsFunc(cfg.Mirrors, func(m MirrorConfig) bool { return m.ID == id })
	})
	if err != nil || len(held) == 0 {
		return err
	}
	ids := make([]string, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var msgs []string
	for _, id := range ids {
		msgs = append(msgs, fmt.Sprintf("mirror %s is not in the configuration, but %d files (%s) have a copy there: "+
			"put it back and drain it first (acestash mirrors drain %s --wait), then remove it; "+
			"or, if it is gone for good, run acestash mirrors forget %s --config FILE",
			id, held[id][0], api.HumanSize(held[id][1]), id, id))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// forgetCmd strikes a mirror from every record: acestash mirrors forget
// ID --config FILE. With the embedded store the server must be stopped.
func forgetCmd(args []string, stdout io.Writer) error {
	ctx := context.Background()
	id, cfg, st, err := configStore(ctx, flag.NewFlagSet("mirrors forget", flag.ContinueOnError), args, "mirror ID")
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := forget(ctx, st, cfg, id)
	if err != nil {
		return err
	}
	return printJSON(stdout, res)
}

// forgotten is what forget did.
type forgotten struct {
	Mirror   string   `json:"mirror"`
	Files    int      `json:"files"`    // records that named it
	Repaired int      `json:"repaired"` // marked missing a copy on another mirror
	Short    int      `json:"short"`    // with no other mirror to take the copy: one copy fewer
	Lost     []string `json:"lost"`     // slugs with no copy anywhere else
}

// forget strikes mirror id from every active record; each file gets the
// copy it loses marked missing on a configured mirror its owner may use,
// so the repairer writes it there.
func forget(ctx context.Context, st store.Store, cfg Config, id string) (forgotten, error) {
	res := forgotten{Mirror: id, Lost: []string{}}
	var list []store.File
	err := st.EachFile(ctx, func(f store.File) error {
		if f.Status == store.StatusActive && (slices.Contains(f.Mirrors, id) || slices.Contains(f.Missing, id)) {
			list = append(list, f)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("mirrors forget: %w", err)
	}
	accounts := map[string]store.Account{}
	for _, f := range list {
		a, ok := accounts[f.Owner]
		if !ok {
			if a, err = st.Account(ctx, f.Owner); err != nil && !errors.Is(err, store.ErrNotFound) {
				return res, fmt.Errorf("mirrors forget: %w", err)
			}
			accounts[f.Owner] = a
		}
		had := slices.Contains(f.Mirrors, id)
		drop := func(m string) bool { return m == id }
		f.Mirrors = slices.DeleteFunc(f.Mirrors, drop)
		f.Missing = slices.DeleteFunc(f.Missing, drop)
		res.Files++
		if len(f.Mirrors) == 0 {
			res.Lost = append(res.Lost, f.Slug)
		} else if had {
			i := slices.IndexFunc(cfg.Mirrors, func(m MirrorConfig) bool {
				return m.ID != id && !slices.Contains(f.Mirrors, m.ID) && !slices.Contains(f.Missing, m.ID) &&
					(a.APIKey == "" || chunks.Allowed(a, m.ID))
			})
			if i >= 0 {
				f.Missing = append(f.Missing, cfg.Mirrors[i].ID)
				res.Repaired++
			} else {
				res.Short++
			}
		}
		if len(f.Missing) == 0 {
			f.Missing = nil
		}
		if err := st.UpdateFile(ctx, f); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return res, fmt.Errorf("mirrors forget: file %s: %w", f.Slug, err)
		}
	}
	if err := st.DeleteJob(ctx, id); err != nil {
		return res, fmt.Errorf("mirrors forget: %w", err)
	}
	return res, nil
}
