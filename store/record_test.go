package store

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestRecordsOfV0Load reads the records the stores wrote before records
// had their own types and a format version: each comes back whole.
func TestRecordsOfV0Load(t *testing.T) {
	b, err := os.ReadFile("testdata/records_v0.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var (
		s Session
		f File
		a Account
		d Delivery
	)
	for name, c := range map[string]struct {
		into, want any
	}{
		"session":  {&s, fixtureSession()},
		"file":     {&f, fixtureFile()},
		"account":  {&a, fixtureAccount()},
		"delivery": {&d, fixtureDelivery()},
	} {
		if err := json.Unmarshal(raw[name], c.into); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := reflect.ValueOf(c.into).Elem().Interface(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s read back as\n%+v\nwant\n%+v", name, got, c.want)
		}
	}
}

// TestRecordsRoundTrip: each record is written with its format version
// and reads back equal; a record of a newer format is refused.
func TestRecordsRoundTrip(t *testing.T) {
	for name, c := range map[string]struct {
		v    any
		into any
	}{
		"session":  {fixtureSession(), new(Session)},
		"file":     {fixtureFile(), new(File)},
		"account":  {fixtureAccount(), new(Account)},
		"delivery": {fixtureDelivery(), new(Delivery)},
	} {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"format":1`) {
			t.Errorf("%s written without its format: %s", name, b)
		}
		if err := json.Unmarshal(b, c.into); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := reflect.ValueOf(c.into).Elem().Interface(); !reflect.DeepEqual(got, c.v) {
			t.Errorf("%s round trip:\n%+v\nwant\n%+v", name, got, c.v)
		}
		newer := strings.Replace(string(b), `"format":1`, `"format":2`, 1)
		if err := json.Unmarshal([]byte(newer), c.into); err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("%s of format 2: %v, want refused as newer", name, err)
		}
	}
	// The session's mirror parts keep their stored names.
	b, _ := json.Marshal(fixtureSession())
	for _, want := range []string{`"uploads":{"1":{"Key":"files/ab/cd/film","ID":"upload-id-1"}`, `"last":{"1":{"N":2,"Size":20000000,"Token":"etag-2"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("session JSON lacks %s: %s", want, b)
		}
	}
}
