package redisstore

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/acestash/acestash/store"
)

// fileRec is how a file record is kept in Redis: JSON with one- or
// two-letter keys, the SHA-256 as 32 bytes (base64) and times as Unix
// nanoseconds, which keeps a typical record's key under 512 bytes of Redis
// memory where store.File's own JSON took about 600. Records written
// before, as store.File's JSON, are still read (see decodeFile); the
// update script reads the status from either ("st" or "status"). A field
// added to store.File must be added here too; TestFileRecordFields fails
// until it is.
type fileRec struct {
	ID        int64    `json:"i"`
	UploadKey string   `json:"u,omitempty"`
	Slug      string   `json:"s"`
	Alias     string   `json:"a,omitempty"`
	Name      string   `json:"n"`
	Size      int64    `json:"z"`
	SHA256    []byte   `json:"h,omitempty"`  // raw, when the hex form is 64 lowercase hex digits
	SHA256Hex string   `json:"hx,omitempty"` // anything else, as given
	Type      string   `json:"t,omitempty"`
	Owner     string   `json:"o"`
	ObjectKey string   `json:"k"`
	Mirrors   []string `json:"m"`
	Missing   []string `json:"x,omitempty"`
	Status    string   `json:"st"`
	Password  []byte   `json:"p,omitempty"`
	Created   int64    `json:"c"`
	Expires   int64    `json:"e,omitempty"`
	// Unconfirmed: see store.File.
	Unconfirmed  bool   `json:"uc,omitempty"`
	MaxDownloads int64  `json:"md,omitempty"`
	Reason       string `json:"r,omitempty"`
	DeleteHash   []byte `json:"dh,omitempty"`
}

// encodeFile returns f as Redis keeps it.
func encodeFile(f store.File) ([]byte, error) {
	r := fileRec{
		ID: f.ID, UploadKey: f.UploadKey, Slug: f.Slug, Alias: f.Alias, Name: f.Name, Size: f.Size,
		Type: f.Type, Owner: f.Owner, ObjectKey: f.ObjectKey, Mirrors: f.Mirrors, Missing: f.Missing,
		Status: f.Status, Password: f.PasswordHash, Created: unixNano(f.Created), Expires: unixNano(f.Expires),
		Unconfirmed: f.Unconfirmed, MaxDownloads: f.MaxDownloads, Reason: f.Reason, DeleteHash: f.DeleteHash,
	}
	if b, err := hex.DecodeString(f.SHA256); err == nil && len(b) == 32 && hex.EncodeToString(b) == f.SHA256 {
		r.SHA256 = b
	} else {
		r.SHA256Hex = f.SHA256
	}
	return json.Marshal(r)
}

// decodeFile reads a record in either form.
func decodeFile(data, what string) (store.File, error) {
	// store.File's own JSON: from an acestash before the compact form
	// (`{"id":`), or with its format version (`{"format":`).
	if strings.HasPrefix(data, `{"id":`) || strings.HasPrefix(data, `{"format":`) {
		return decode[store.File](data, what)
	}
	r, err := decode[fileRec](data, what)
	if err != nil {
		return store.File{}, err
	}
	f := store.File{
		ID: r.ID, UploadKey: r.UploadKey, Slug: r.Slug, Alias: r.Alias, Name: r.Name, Size: r.Size,
		SHA256: r.SHA256Hex, Type: r.Type, Owner: r.Owner, ObjectKey: r.ObjectKey, Mirrors: r.Mirrors,
		Missing: r.Missing, Status: r.Status, PasswordHash: r.Password, Created: fromUnixNano(r.Created),
		Expires: fromUnixNano(r.Expires), Unconfirmed: r.Unconfirmed, MaxDownloads: r.MaxDownloads,
		Reason: r.Reason, DeleteHash: r.DeleteHash,
	}
	if len(r.SHA256) > 0 {
		if len(r.SHA256) != 32 {
			return store.File{}, fmt.Errorf("decode %s: a SHA-256 of %d bytes", what, len(r.SHA256))
		}
		f.SHA256 = hex.EncodeToString(r.SHA256)
	}
	return f, nil
}

// unixNano is t in Unix nanoseconds; 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano undoes unixNano, in UTC.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
