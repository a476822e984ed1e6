// Package slug makes the short public names of files: random, URL-safe and
// too many to guess.
package slug

import (
	"crypto/rand"
	"fmt"
)

// Alphabet is the characters a slug is made of: letters and digits only, so a
// slug needs no escaping in a URL, a header or a file name.
const Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// MinLength is the shortest slug New accepts: 62^6 is about 5.7e10 names.
const MinLength = 6

// New returns a random slug of n characters drawn uniformly from Alphabet
// with crypto/rand, so slugs cannot be enumerated or predicted.
func New(n int) (string, error) {
	if n < MinLength {
		return "", fmt.Errorf("slug: length %d is under the minimum %d", n, MinLength)
	}
	return random(n, Alphabet)
}

// random draws n characters uniformly from alphabet (at most 256 characters),
// rejecting the bytes that would bias the draw.
func random(n int, alphabet string) (string, error) {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("slug: read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit {
				out = append(out, alphabet[int(b)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out), nil
}

// UnambiguousAlphabet is Rocket.Chat's id alphabet: no 0/O, 1/I/l.
const UnambiguousAlphabet = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"

// ID returns a random 17-character id in Rocket.Chat's style.
func ID() (string, error) { return random(17, UnambiguousAlphabet) }

// Hex returns n random bytes as 2n lowercase hex characters (upload keys and
// cTrackers are 32 of them).
func Hex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("slug: read random bytes: %w", err)
	}
	return fmt.Sprintf("%x", b), nil
}

// Valid reports whether s could be a slug: only Alphabet characters, and not
// longer than max. It is a cheap filter before a store look-up.
func Valid(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
