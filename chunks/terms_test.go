package chunks

import (
	"strings"
	"testing"
	"time"

	"github.com/acestash/acestash/store"
)

func TestTermsFor(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	limited := store.Account{DefaultExpiry: day, MaxExpiry: 7 * day}
	for _, c := range []struct {
		acct          store.Account
		expires, max  string
		fallback      time.Duration
		want          time.Duration // from now; 0: never
		wantDownloads int64
		err           string
	}{
		{acct: store.Account{}, want: 0},
		{acct: store.Account{}, fallback: time.Hour, want: time.Hour},
		{acct: limited, fallback: time.Hour, want: day},
		{acct: store.Account{MaxExpiry: 3 * day}, want: 3 * day},
		{acct: store.Account{DefaultExpiry: 9 * day, MaxExpiry: 3 * day}, want: 3 * day},
		{acct: store.Account{}, expires: "30m", want: 30 * time.Minute},
		{acct: store.Account{}, expires: "7d", want: 7 * day},
		{acct: store.Account{}, expires: "2w", want: 14 * day},
		{acct: store.Account{}, expires: "2026-12-04T08:00:00Z", want: day},
		{acct: store.Account{}, expires: "2026-12-04T09:00:00+01:00", want: day},
		{acct: store.Account{DefaultExpiry: day}, expires: "never", want: 0},
		{acct: limited, expires: "7d", want: 7 * day},
		{acct: limited, expires: "8d", err: "at most 7d"},
		{acct: limited, expires: "never", err: "at most 7d"},
		{acct: store.Account{}, expires: "2026-12-02T08:00:00Z", err: "not in the future"},
		{acct: store.Account{}, expires: "tomorrow", err: "30m, 12h, 7d or 2w"},
		{acct: store.Account{}, expires: "-5m", err: "30m, 12h, 7d or 2w"},
		{acct: store.Account{}, max: "3", wantDownloads: 3},
		{acct: store.Account{}, max: "0", wantDownloads: 0},
		{acct: store.Account{}, max: "-1", err: "max_downloads"},
		{acct: store.Account{}, max: "many", err: "max_downloads"},
	} {
		got, err := TermsFor(c.acct, c.expires, c.max, c.fallback, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: err %v, want one saying %q", c, err, c.err)
			}
			continue
		}
		var want time.Time
		if c.want > 0 {
			want = now.Add(c.want)
		}
		if err != nil || !got.Expires.Equal(want) || got.MaxDownloads != c.wantDownloads {
			t.Errorf("%+v: %+v, %v; want expiry %v, %d downloads", c, got, err, want, c.wantDownloads)
		}
	}
}
