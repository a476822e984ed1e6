package api

import (
	"context"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/acestash/acestash/store"
	"github.com/acestash/acestash/store/dump"
)

// backupper is a store that copies its own file while it serves (the
// embedded store); other stores are backed up as a dump of their records.
type backupper interface {
	Backup(ctx context.Context, w io.Writer, size func(int64)) (int64, error)
}

// Media types of GET /api/admin/backup.
const (
	BackupBolt = "application/vnd.acestash.bolt" // the embedded store's database file
	BackupDump = "application/vnd.acestash.dump" // JSON lines, see package dump
)

// adminBackup streams a backup of the store: the embedded store's
// database file, copied in one read transaction, or a dump of every
// record of any other store.
func (s *Server) adminBackup(c echo.Context) error {
	ctx := c.Request().Context()
	res := c.Response()
	if b, ok := unwrapStore(s.cfg.Store).(backupper); ok {
		res.Header().Set(echo.HeaderContentType, BackupBolt)
		_, err := b.Backup(ctx, res, func(n int64) {
			res.Header().Set(echo.HeaderContentLength, strconv.FormatInt(n, 10))
			res.WriteHeader(http.StatusOK)
		})
		if err != nil && !res.Committed {
			return unavailable("cannot back up the store", err)
		}
		if err != nil {
			s.cfg.Log.ErrorContext(ctx, "backup cut off", "err", err)
		}
		return nil
	}
	res.Header().Set(echo.HeaderContentType, BackupDump)
	res.WriteHeader(http.StatusOK)
	n, err := dump.Write(ctx, s.cfg.Store, res)
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "backup cut off", "records", n, "err", err)
	}
	return nil
}

// unwrapStore returns the store under the wrappers that time it.
func unwrapStore(st store.Store) store.Store {
	for {
		u, ok := st.(interface{ Unwrap() store.Store })
		if !ok {
			return st
		}
		st = u.Unwrap()
	}
}
