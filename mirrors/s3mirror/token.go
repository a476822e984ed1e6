package s3mirror

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/acestash/acestash/mirrors"
)

// token is the state of an upload after a chunk, carried in Part.Token as
// JSON, for example
//
//	{"v":1,"e":["9b2cf535f27731c974343645a3985328"],"f":7,"s":[1,102400]}
//
// S3 parts 1..len(ETags) hold every chunk before First; chunks First,
// First+1, ... are staged objects of sizes Sizes. The next S3 part is
// number len(ETags)+1. Everything a retry or another node needs is here,
// so a Part alone continues the upload.
type token struct {
	V     int      `json:"v"`
	ETags []string `json:"e,omitempty"` // ETag of S3 part i+1
	First int      `json:"f,omitempty"` // chunk number of the first staged chunk
	Sizes []int64  `json:"s,omitempty"` // sizes of the staged chunks, in order
}

const tokenVersion = 1

// decodeToken returns the state p records; the zero Part is an upload with
// nothing stored.
func decodeToken(p mirrors.Part) (token, error) {
	if p.N == 0 && p.Token == "" {
		return token{V: tokenVersion}, nil
	}
	if p.N <= 0 || p.Token == "" {
		return token{}, fmt.Errorf("invalid Part: chunk %d with token %q", p.N, p.Token)
	}
	var t token
	if err := json.Unmarshal([]byte(p.Token), &t); err != nil {
		return token{}, fmt.Errorf("invalid Part token: %w", err)
	}
	if t.V != tokenVersion {
		return token{}, fmt.Errorf("invalid Part token: version %d, want %d", t.V, tokenVersion)
	}
	if len(t.Sizes) > 0 && t.First+len(t.Sizes)-1 != p.N {
		return token{}, fmt.Errorf("invalid Part token: staged chunks %d..%d in Part of chunk %d", t.First, t.First+len(t.Sizes)-1, p.N)
	}
	for _, s := range t.Sizes {
		if s < 0 {
			return token{}, errors.New("invalid Part token: negative chunk size")
		}
	}
	return t, nil
}

func (t token) encode() string {
	t.V = tokenVersion
	b, err := json.Marshal(t)
	if err != nil {
		panic(err) // cannot happen: token has only strings and numbers
	}
	return string(b)
}

// stagedSize returns the bytes staged and not yet in an S3 part.
func (t token) stagedSize() int64 {
	var n int64
	for _, s := range t.Sizes {
		n += s
	}
	return n
}
