package store

import (
	"regexp"
	"strings"

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
