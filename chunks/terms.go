package chunks

import (
	"strconv"
	"strings"
	"time"

	"github.com/acestash/acestash/store"
)

// A file's terms: when it expires and how many downloads it allows. Every
// upload path reads them the same way (TermsFor), and a file past either
// is removed like one its owner deleted, with the reason kept.

// Terms are what an upload asks of its file's life.
type Terms struct {
	Expires      time.Time // zero: kept until deleted
	MaxDownloads int64     // 0: any number
}

// Reasons a file removed by its own terms gives (store.File.Reason).
const (
	ReasonExpired   = "expired"
	ReasonDownloads = "download limit reached"
)

// maxDownloadLimit bounds max_downloads, so that no count overflows.
const maxDownloadLimit = 1_000_000_000

// Expired reports whether f's expiry has passed at now.
func Expired(f store.File, now time.Time) bool {
	return !f.Expires.IsZero() && !now.Before(f.Expires)
}

// TermsFor reads the terms an upload of the account asks for at now:
// expires is a duration from now (store.ParseDuration), an RFC 3339 time,
// "never", or empty for the default; maxDownloads a whole number, empty or
// 0 for no limit. The default expiry is the account's default_expiry,
// else fallback (raw.ttl for raw uploads), else its max_expiry; an expiry
// past the account's max_expiry is refused, not shortened.
func TermsFor(a store.Account, expires, maxDownloads string, fallback time.Duration, now time.Time) (Terms, error) {
	var t Terms
	if v := strings.TrimSpace(maxDownloads); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > maxDownloadLimit {
			return t, Errorf(Invalid, "max_downloads must be a whole number from 0 (no limit) to %d, not %q", maxDownloadLimit, v)
		}
		t.MaxDownloads = n
	}
	v := strings.TrimSpace(expires)
	switch {
	case v == "":
		d := first(a.DefaultExpiry, fallback, a.MaxExpiry)
		if a.MaxExpiry > 0 {
			d = min(d, a.MaxExpiry)
		}
		if d > 0 {
			t.Expires = now.Add(d).UTC()
		}
		return t, nil
	case v == "never" || v == "0":
		if a.MaxExpiry > 0 {
			return t, Errorf(Invalid, "this account keeps files at most %s: send expires of %s or less", store.FormatDuration(a.MaxExpiry), store.FormatDuration(a.MaxExpiry))
		}
		return t, nil
	}
	if at, err := time.Parse(time.RFC3339, v); err == nil {
		t.Expires = at.UTC()
	} else if d, err := store.ParseDuration(v); err == nil && d > 0 {
		t.Expires = now.Add(d).UTC()
	} else {
		return t, Errorf(Invalid, "expires must be a duration such as 30m, 12h, 7d or 2w, an RFC 3339 time, or never; not %q", v)
	}
	if !t.Expires.After(now) {
		return t, Errorf(Invalid, "expires %s is not in the future", t.Expires.Format(time.RFC3339))
	}
	// A minute's grace for clocks a little apart and requests in flight.
	if a.MaxExpiry > 0 && t.Expires.After(now.Add(a.MaxExpiry+time.Minute)) {
		return t, Errorf(Invalid, "this account keeps files at most %s: send expires of %s or less", store.FormatDuration(a.MaxExpiry), store.FormatDuration(a.MaxExpiry))
	}
	return t, nil
}

// first returns the first d that is not 0.
func first(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d != 0 {
			return d
		}
	}
	return 0
}

// setTerms records the terms in the session, for its file.
func setTerms(sess *store.Session, t Terms) {
	sess.FileExpires, sess.MaxDownloads = t.Expires, t.MaxDownloads
}
