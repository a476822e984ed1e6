package store

import (
	"encoding/json"
	"fmt"

	"github.com/acestash/acestash/mirrors"
)

// FormatVersion is the version of the JSON in which the stores keep their
// records (sessions, files, accounts, deliveries); each record carries it
// as "format". Records written before it was kept carry none and read as
// version 0, which has the same fields. A record of a later version, from a
// newer acestash, is refused rather than half read.
const FormatVersion = 1

// Every record's JSON is spelled out here or in its type's tags, field by
// field: the mirror parts and uploads a session holds are stored as
// partRecord and uploadRecord, not as mirrors' types, so renaming a field
// in mirrors cannot change what is stored (their names are those that
// mirrors' untagged fields gave them before).

type uploadRecord struct {
	Key string `json:"Key"`
	ID  string `json:"ID"`
}

type partRecord struct {
	N     int    `json:"N"`
	Size  int64  `json:"Size"`
	Token string `json:"Token"`
}

// Field-for-field copies of the records without their methods, so that
// encoding one does not call its MarshalJSON again.
type (
	sessionFields  Session
	fileFields     File
	accountFields  Account
	deliveryFields Delivery
)

type sessionRecord struct {
	Format int `json:"format"`
	*sessionFields
	// These shadow the fields of the same JSON names in sessionFields.
	Uploads map[string]uploadRecord `json:"uploads,omitempty"`
	Last    map[string]partRecord   `json:"last,omitempty"`
	Prev    map[string]partRecord   `json:"prev,omitempty"`
}

// MarshalJSON writes the session as the stores keep it.
func (s Session) MarshalJSON() ([]byte, error) {
	r := sessionRecord{Format: FormatVersion, sessionFields: (*sessionFields)(&s),
		Uploads: convert(s.Uploads, func(u mirrors.Upload) uploadRecord { return uploadRecord(u) }),
		Last:    convert(s.Last, func(p mirrors.Part) partRecord { return partRecord(p) }),
		Prev:    convert(s.Prev, func(p mirrors.Part) partRecord { return partRecord(p) }),
	}
	return json.Marshal(r)
}

// UnmarshalJSON reads a session as the stores keep it, of any format up
// to FormatVersion.
func (s *Session) UnmarshalJSON(b []byte) error {
	r := sessionRecord{sessionFields: (*sessionFields)(s)}
	if err := unmarshal(b, &r, &r.Format, "session"); err != nil {
		return err
	}
	s.Uploads = convert(r.Uploads, func(u uploadRecord) mirrors.Upload { return mirrors.Upload(u) })
	s.Last = convert(r.Last, func(p partRecord) mirrors.Part { return mirrors.Part(p) })
	s.Prev = convert(r.Prev, func(p partRecord) mirrors.Part { return mirrors.Part(p) })
	return nil
}

type fileRecord struct {
	Format int `json:"format"`
	*fileFields
}

func (f File) MarshalJSON() ([]byte, error) {
	return json.Marshal(fileRecord{FormatVersion, (*fileFields)(&f)})
}

func (f *File) UnmarshalJSON(b []byte) error {
	r := fileRecord{fileFields: (*fileFields)(f)}
	return unmarshal(b, &r, &r.Format, "file")
}

type accountRecord struct {
	Format int `json:"format"`
	*accountFields
}

func (a Account) MarshalJSON() ([]byte, error) {
	return json.Marshal(accountRecord{FormatVersion, (*accountFields)(&a)})
}

func (a *Account) UnmarshalJSON(b []byte) error {
	r := accountRecord{accountFields: (*accountFields)(a)}
	return unmarshal(b, &r, &r.Format, "account")
}

type deliveryRecord struct {
	Format int `json:"format"`
	*deliveryFields
}

func (d Delivery) MarshalJSON() ([]byte, error) {
	return json.Marshal(deliveryRecord{FormatVersion, (*deliveryFields)(&d)})
}

func (d *Delivery) UnmarshalJSON(b []byte) error {
	r := deliveryRecord{deliveryFields: (*deliveryFields)(d)}
	return unmarshal(b, &r, &r.Format, "delivery")
}

// unmarshal decodes a record into r and refuses a format it does not know.
func unmarshal(b []byte, r any, format *int, what string) error {
	if err := json.Unmarshal(b, r); err != nil {
		return err
	}
	if *format > FormatVersion {
		return fmt.Errorf("store: a %s record of format %d, newer than this acestash reads (%d)", what, *format, FormatVersion)
	}
	return nil
}

// convert maps the values of m with fn; nil stays nil.
func convert[A, B any](m map[string]A, fn func(A) B) map[string]B {
	if m == nil {
		return nil
	}
	out := make(map[string]B, len(m))
	for k, v := range m {
		out[k] = fn(v)
	}
	return out
}
