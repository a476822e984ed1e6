package store

import (
	"time"

	"github.com/acestash/acestash/mirrors"
)

// The records of testdata/records_v0.json, as written by the stores
// before records had a format version (acestash 19014d2).

var fixtureTime = time.Date(2026, 11, 26, 4, 30, 0, 123000000, time.UTC)

func fixtureSession() Session {
	return Session{
		UploadKey: "0123456789abcdef0123456789abcdef", CTracker: "ctracker-1", APIKey: "0123456789abcdefabcdefabcdef0001",
		Issued: fixtureTime, Expires: fixtureTime.Add(time.Hour), Started: true, Updated: fixtureTime.Add(time.Minute), Version: 7,
		Name: "film.mkv", Type: "video/x-matroska", PasswordHash: []byte{1, 2, 3}, Mirrors: []string{"1", "2"}, ObjectKey: "files/ab/cd/film",
		Total: 30000000, Held: 20000000, Chunks: 2, LastStart: 10000000, LastEnd: 19999999, PrevHeld: 10000000,
		Hash: []byte("hash-state-after"), PrevHash: []byte("hash-state-before"),
		Uploads: map[string]mirrors.Upload{"1": {Key: "files/ab/cd/film", ID: "upload-id-1"}, "2": {Key: "files/ab/cd/film", ID: "upload-id-2"}},
		Last:    map[string]mirrors.Part{"1": {N: 2, Size: 20000000, Token: "etag-2"}, "2": {N: 2, Size: 20000000, Token: "etag-2b"}},
		Prev:    map[string]mirrors.Part{"1": {N: 1, Size: 10000000, Token: "etag-1"}},
		Failed:  map[string]string{"3": "mirror 3 failed its health check"},
		Slug:    "Xy3kP9aQ", Meta: map[string]string{"filename": "film.mkv"}, Partial: false, Joined: []string{"k1", "k2"},
		Lease: "holder-1", LeaseUntil: fixtureTime.Add(10 * time.Second), LeaseWants: 1,
	}
}

func fixtureFile() File {
	return File{
		ID: 4503599627, UploadKey: "0123456789abcdef0123456789abcdef", Slug: "Xy3kP9aQ", Alias: "alias-1", Name: "film.mkv",
		Size: 30000000, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Type: "video/x-matroska",
		Owner: "0123456789abcdefabcdefabcdef0001", ObjectKey: "files/ab/cd/film", Mirrors: []string{"1", "2"}, Missing: []string{"3"},
		Status: StatusActive, PasswordHash: []byte{4, 5, 6}, Created: fixtureTime, Expires: fixtureTime.Add(24 * time.Hour),
	}
}

func fixtureAccount() Account {
	return Account{
		Name: "uploader", APIKey: "0123456789abcdefabcdefabcdef0001", TokenHash: HashToken("token"), UserID: "aBcDeFgHiJkLmNoPq",
		Username: "uploader", DisplayName: "Uploader", Mirrors: []string{"1", "2"}, DefaultMirrors: []string{"1"}, MaxMirrors: 2,
		MaxFileSize: 1 << 30, Rooms: []string{"GENERAL"}, QuotaBytes: 1 << 40, QuotaFiles: 1000,
	}
}

func fixtureDelivery() Delivery {
	return Delivery{ID: "d-1", URL: "https://hooks.example.org/acestash", Event: "file.completed", Body: []byte(`{"id":"e-1"}`),
		Attempts: 2, Due: fixtureTime.Add(4 * time.Second), LastError: "503 Service Unavailable"}
}
