package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	for _, d := range []time.Duration{90 * time.Minute, 24 * time.Hour, 14 * 24 * time.Hour, 36 * time.Hour} {
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Errorf("%v -> %q -> %v, %v", d, FormatDuration(d), back, err)
		}
	}
}

// TestSettingsValidate: each setting an operator can get wrong is named
// in the words the config file and the admin API use.
func TestSettingsValidate(t *testing.T) {
	known := func(id string) bool { return id == "1" || id == "2" }
	for _, c := range []struct {
		s    Settings
		want string
	}{
		{Settings{Name: "ok", Mirrors: []string{"1"}, DefaultExpiry: "1d", MaxExpiry: "2w", QuotaBytes: 5}, ""},
		{Settings{DefaultExpiry: "0", MaxExpiry: ""}, ""},
		{Settings{MaxMirrors: -1}, "max_mirrors may not be negative"},
		{Settings{MaxFileSize: -1}, "max_file_size may not be negative"},
		{Settings{QuotaBytes: -1}, "quota_bytes may not be negative"},
		{Settings{QuotaFiles: -1}, "quota_files may not be negative"},
		{Settings{DefaultExpiry: "soon"}, `default_expiry: "soon" is not a duration such as 30m, 12h, 7d or 2w`},
		{Settings{MaxExpiry: "-1h"}, `max_expiry: "-1h" is not a duration such as 30m, 12h, 7d or 2w`},
		{Settings{DefaultExpiry: "8d", MaxExpiry: "1w"}, "default_expiry is longer than max_expiry"},
		{Settings{DefaultExpiry: "8d"}, ""}, // no max_expiry: no limit
		{Settings{DefaultMirrors: []string{"2", "9"}}, `there is no mirror "9"`},
	} {
		got := ""
		if err := c.s.Validate(known); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%+v: %q, want %q", c.s, got, c.want)
		}
	}
	if err := (Settings{Mirrors: []string{"gone"}}).Validate(nil); err != nil {
		t.Errorf("without known, mirror ids are not checked: %v", err)
	}
}

// TestSettingsOfAccount: an account's settings read back whole, a change
// decoded over them keeps what it does not name, and Set refuses what
// Validate does, leaving the account as it was.
func TestSettingsOfAccount(t *testing.T) {
	a := Account{APIKey: "k", Name: "Ann", Mirrors: []string{"1"}, MaxMirrors: 1, MaxFileSize: 10, QuotaBytes: 100,
		QuotaFiles: 3, Rooms: []string{"GENERAL"}, DefaultExpiry: 36 * time.Hour, MaxExpiry: 7 * 24 * time.Hour}
	s := a.Settings()
	if s.DefaultExpiry != "36h0m0s" || s.MaxExpiry != "7d" {
		t.Fatalf("expiries shown as %q and %q", s.DefaultExpiry, s.MaxExpiry)
	}
	var b Account
	b.APIKey = "k"
	if err := b.Set(s); err != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("Set(Settings()) = %+v, %v; want %+v", b, err, a)
	}
	if err := json.Unmarshal([]byte(`{"quota_files": 9, "max_expiry": "30d"}`), &s); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(s); err != nil || b.QuotaFiles != 9 || b.MaxExpiry != 30*24*time.Hour || b.QuotaBytes != 100 || b.Name != "Ann" {
		t.Fatalf("a change of quota_files and max_expiry gave %+v, %v", b, err)
	}
	s.QuotaBytes = -1
	if err := b.Set(s); err == nil || b.QuotaBytes != 100 {
		t.Fatalf("Set of a negative quota: %v, account %+v", err, b)
	}
}
