package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration as people write one: Go's own ("90m",
// "1h30m") or whole days and weeks ("7d", "2w"). It is never negative.
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	for unit, d := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(v, unit); ok {
			k, err := strconv.ParseInt(n, 10, 64)
			if err != nil || k < 0 || k > 100*365 {
				return 0, fmt.Errorf("%q is not a duration such as 30m, 12h, 7d or 2w", v)
			}
			return time.Duration(k) * d, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 30m, 12h, 7d or 2w", v)
	}
	return d, nil
}

// FormatDuration writes d as ParseDuration reads it, in days where whole.
func FormatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// Duration is a duration setting as an operator writes it, in the config
// file or the admin API: "90m", "12h", "7d", "2w"; "" (or "0") is none.
// Settings.Validate says whether it reads.
type Duration string

// DurationOf writes d as a Duration; 0 is "".
func DurationOf(d time.Duration) Duration {
	if d == 0 {
		return ""
	}
	return Duration(FormatDuration(d))
}

// Value reads the duration; "" is 0.
func (d Duration) Value() (time.Duration, error) {
	if strings.TrimSpace(string(d)) == "" {
		return 0, nil
	}
	return ParseDuration(string(d))
}
