package store

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/acestash/acestash/slug"
)

// NewAccount returns an account named name with fresh credentials and its
// api_token, which is kept only hashed. It is not stored yet.
func NewAccount(name string) (Account, string, error) {
	key, err := slug.Hex(16)
	if err != nil {
		return Account{}, "", err
	}
	token, err := slug.Hex(16)
	if err != nil {
		return Account{}, "", err
	}
	a := Account{Name: name, APIKey: key, TokenHash: HashToken(token)}
	if err := a.CompleteIdentity(); err != nil {
		return Account{}, "", err
	}
	return a, token, nil
}

var notUsername = regexp.MustCompile(`[^a-z0-9._-]+`)

// CompleteIdentity fills in the chat identity the account lacks: a user
// id, a username made from the name, the name as display name.
func (a *Account) CompleteIdentity() error {
	if a.UserID == "" {
		id, err := slug.ID()
		if err != nil {
			return err
		}
		a.UserID = id
	}
	if a.Username == "" {
		a.Username = strings.Trim(notUsername.ReplaceAllString(strings.ToLower(a.Name), "-"), "-")
		if a.Username == "" {
			a.Username = "user"
		}
	}
	if a.DisplayName == "" {
		a.DisplayName = a.Name
	}
	return nil
}

// Settings are what an operator sets on an account: one schema for the
// config file's accounts, the admin API (which shows them and decodes a
// change over them) and the stored Account, and one check, Validate, which
// the config, the admin API and the stores all apply.
type Settings struct {
	Name           string   `json:"name" yaml:"name"`
	Mirrors        []string `json:"mirrors" yaml:"mirrors"`                 // allowed mirror ids; empty allows all
	DefaultMirrors []string `json:"default_mirrors" yaml:"default_mirrors"` // empty means the allowed ones
	MaxMirrors     int      `json:"max_mirrors" yaml:"max_mirrors"`         // 0 means no account limit
	MaxFileSize    int64    `json:"max_file_size" yaml:"max_file_size"`     // 0 means the server limit
	QuotaBytes     int64    `json:"quota_bytes" yaml:"quota_bytes"`         // 0 means no limit
	QuotaFiles     int64    `json:"quota_files" yaml:"quota_files"`         // 0 means no limit
	Rooms          []string `json:"rooms" yaml:"rooms"`                     // Rocket.Chat rooms; empty allows all
	// How long a file is kept when its upload does not say, and the
	// longest an upload may ask for: "" keeps files forever, sets no limit.
	DefaultExpiry Duration `json:"default_expiry" yaml:"default_expiry"`
	MaxExpiry     Duration `json:"max_expiry" yaml:"max_expiry"`
}

// Settings returns the account's settings.
func (a Account) Settings() Settings {
	return Settings{Name: a.Name, Mirrors: a.Mirrors, DefaultMirrors: a.DefaultMirrors, MaxMirrors: a.MaxMirrors,
		MaxFileSize: a.MaxFileSize, QuotaBytes: a.QuotaBytes, QuotaFiles: a.QuotaFiles, Rooms: a.Rooms,
		DefaultExpiry: DurationOf(a.DefaultExpiry), MaxExpiry: DurationOf(a.MaxExpiry)}
}

// Set gives the account the settings s, or fails as s.Validate(nil) does
// and leaves the account as it was.
func (a *Account) Set(s Settings) error {
	def, most, err := s.check(nil)
	if err != nil {
		return err
	}
	a.Name, a.Mirrors, a.DefaultMirrors, a.MaxMirrors = s.Name, s.Mirrors, s.DefaultMirrors, s.MaxMirrors
	a.MaxFileSize, a.QuotaBytes, a.QuotaFiles, a.Rooms = s.MaxFileSize, s.QuotaBytes, s.QuotaFiles, s.Rooms
	a.DefaultExpiry, a.MaxExpiry = def, most
	return nil
}

// Validate says what is wrong with the settings, naming the setting as the
// config file and the admin API spell it: a negative limit or quota, a
// duration that does not read, a default_expiry past max_expiry, or a
// mirror id that known (when not nil) does not know.
func (s Settings) Validate(known func(id string) bool) error {
	_, _, err := s.check(known)
	return err
}

// check is Validate, returning the expiries it read.
func (s Settings) check(known func(id string) bool) (def, most time.Duration, err error) {
	for _, n := range []struct {
		name string
		v    int64
	}{{"max_mirrors", int64(s.MaxMirrors)}, {"max_file_size", s.MaxFileSize}, {"quota_bytes", s.QuotaBytes}, {"quota_files", s.QuotaFiles}} {
		if n.v < 0 {
			return 0, 0, fmt.Errorf("%s may not be negative", n.name)
		}
	}
	if def, err = s.DefaultExpiry.Value(); err != nil {
		return 0, 0, fmt.Errorf("default_expiry: %w", err)
	}
	if most, err = s.MaxExpiry.Value(); err != nil {
		return 0, 0, fmt.Errorf("max_expiry: %w", err)
	}
	if most > 0 && def > most {
		return 0, 0, fmt.Errorf("default_expiry is longer than max_expiry")
	}
	for _, ids := range [][]string{s.Mirrors, s.DefaultMirrors} {
		for _, id := range ids {
			if known != nil && !known(id) {
				return 0, 0, fmt.Errorf("there is no mirror %q", id)
			}
		}
	}
	return def, most, nil
}
