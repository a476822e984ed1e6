package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acestash/acestash/api"
	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/boltstore"
	"github.com/acestash/acestash/store/dump"
	"github.com/acestash/acestash/store/redisstore"
)

// Moving the store and backing it up:
//
//	acestash migrate --from STORE --to STORE [--resume]
//	acestash backup FILE [--server URL]
//	acestash restore FILE [--config FILE] [--resume]
//
// A STORE is bolt:<path of acestash.db> or a URL as redis_url takes it.
// Each ends by comparing what it read with what the target holds (counts
// and a digest of every record) and prints both; they must agree.

// openSpec opens the store a --from or --to names.
func openSpec(ctx context.Context, spec string) (store.Store, error) {
	if path, ok := strings.CutPrefix(spec, "bolt:"); ok {
		if path == "" {
			return nil, errors.New("bolt: needs the path of an acestash.db")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		return boltstore.Open(path, time.Now)
	}
	if strings.Contains(spec, "://") {
		return redisstore.Open(ctx, spec, time.Now)
	}
	return nil, fmt.Errorf("store %q: want bolt:<path of acestash.db> or a redis:// URL", spec)
}

// compared is what migrate and restore print.
type compared struct {
	From      dump.Summary `json:"from"`
	To        dump.Summary `json:"to"`
	Identical bool         `json:"identical"`
}

// finish compares the summaries, prints them, and fails if they differ.
func finish(ctx context.Context, from dump.Summary, to store.Store, stdout io.Writer) error {
	got, err := dump.Summarize(ctx, to)
	if err != nil {
		return fmt.Errorf("read the target back: %w", err)
	}
	c := compared{From: from, To: got, Identical: from == got}
	if err := printJSON(stdout, c); err != nil {
		return err
	}
	if !c.Identical {
		return errors.New("the target differs from the source: see from and to above")
	}
	return nil
}

// checkEmpty refuses a target that holds records, unless resume.
func checkEmpty(ctx context.Context, st store.Store, what string, resume bool) error {
	if resume {
		return nil
	}
	empty, err := dump.Empty(ctx, st)
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("%s already holds records: start from an empty store, or pass --resume to go on with a copy that was cut off", what)
	}
	return nil
}

func migrateCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	from := fs.String("from", "", "the store to copy: bolt:PATH or a redis URL (required)")
	to := fs.String("to", "", "the store to copy into: bolt:PATH or a redis URL (required)")
	resume := fs.Bool("resume", false, "copy into a target that holds records (a copy cut off before)")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" || *from == *to {
		return errors.New("migrate: --from and --to name two different stores")
	}
	ctx := context.Background()
	src, err := openSpec(ctx, *from)
	if err != nil {
		return fmt.Errorf("migrate: --from: %w", err)
	}
	defer src.Close()
	dst, err := openSpec(ctx, *to)
	if err != nil {
		return fmt.Errorf("migrate: --to: %w", err)
	}
	defer dst.Close()
	if err := checkEmpty(ctx, dst, "the target "+*to, *resume); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sum, err := dump.Copy(ctx, src, dst, func(n int) { fmt.Fprintf(stderr, "migrate: %d records copied\n", n) })
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return finish(ctx, sum, dst, stdout)
}

func backupCmd(args []string, stdout io.Writer) error {
	c := &adminClient{out: stdout}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	adminFlags(fs, c)
	path, err := oneArg(fs, args, "FILE")
	if err != nil {
		return err
	}
	if c.token == "" {
		return errors.New("no admin token: pass --admin-token or set ACESTASH_ADMIN_TOKEN")
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(c.server, "/")+"/api/admin/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("backup: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp)
	n, err := io.Copy(f, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("cut off after %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && resp.Header.Get("Content-Type") == api.BackupDump {
		err = checkDump(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	kind := "dump of every record"
	if resp.Header.Get("Content-Type") == api.BackupBolt {
		kind = "copy of the embedded store's file"
	}
	fmt.Fprintf(stdout, "backup: wrote %s, %d bytes, a %s\n", path, n, kind)
	return nil
}

// checkDump reads a dump through to its last line.
func checkDump(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return dump.Read(f, func(dump.Record) error { return nil })
}

func restoreCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	resume := fs.Bool("resume", false, "restore into a store that holds records (a restore cut off before)")
	ctx := context.Background()
	path, _, dst, err := configStore(ctx, fs, args, "FILE")
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := checkEmpty(ctx, dst, "the configured store", *resume); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	head := make([]byte, 1)
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("restore: %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var sum dump.Summary
	if head[0] == '{' {
		sum, err = restoreDump(ctx, f, dst)
	} else {
		sum, err = restoreBolt(ctx, f, dst)
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return finish(ctx, sum, dst, stdout)
}

// restoreDump puts every record of a dump into st.
func restoreDump(ctx context.Context, r io.Reader, st store.Store) (dump.Summary, error) {
	var d dump.Digester
	usage := map[string]store.Usage{}
	err := dump.Read(r, func(rec dump.Record) error {
		if err := dump.Put(ctx, st, rec); err != nil {
			return err
		}
		d.Add(rec)
		if rec.Account != nil {
			usage[rec.Account.APIKey] = store.Usage{}
		}
		if f := rec.File; f != nil && f.Status == store.StatusActive {
			usage[f.Owner] = store.Usage{Bytes: usage[f.Owner].Bytes + f.Size, Files: usage[f.Owner].Files + 1}
		}
		return nil
	})
	if err != nil {
		return dump.Summary{}, err
	}
	// The usage a dump implies: what its active files take, per account.
	accounts, err := st.Accounts(ctx)
	if err != nil {
		return dump.Summary{}, err
	}
	for _, a := range accounts {
		d.AddUsage(a.APIKey, usage[a.APIKey])
	}
	return d.Summary(), nil
}

// restoreBolt copies a backup of the embedded store (its database file)
// aside and copies its records into st.
func restoreBolt(ctx context.Context, r io.Reader, st store.Store) (dump.Summary, error) {
	dir, err := os.MkdirTemp("", "acestash-restore-")
	if err != nil {
		return dump.Summary{}, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "acestash.db")
	f, err := os.Create(path)
	if err != nil {
		return dump.Summary{}, err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return dump.Summary{}, err
	}
	src, err := boltstore.Open(path, time.Now)
	if err != nil {
		return dump.Summary{}, fmt.Errorf("the backup is neither a dump nor an embedded store's file: %w", err)
	}
	defer src.Close()
	return dump.Copy(ctx, src, st, nil)
}
