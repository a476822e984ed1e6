package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/acestash/acestash/store/storetest"
)

// pythonClient sends rooms.media and rooms.mediaConfirm exactly as the
// Python rocketchat_API client's rooms_media and rooms_media_confirm do (its
// latest commit; requests 2.34 and urllib3 2.7 encode them), so the tests need
// no Python and no package index: the headers requests sets, the keyword
// arguments as form fields before the file (whose part carries the type
// Python's mimetypes guessed, or none), a boundary of 32 hex digits, and the
// confirmation's keyword arguments as JSON the way json.dumps writes it.
type pythonClient struct {
	base, userID, token string
}

func (p pythonClient) post(t *testing.T, path, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.base+"/api/v1/"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "python-requests/2.34.2")
	req.Header.Set("Accept-Encoding", "gzip, deflate")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Connection", "keep-alive")
	req.Header.Set("X-Auth-Token", p.token)
	req.Header.Set("X-User-Id", p.userID)
	req.Header.Set("Content-Type", contentType)
	return do(t, req)
}

// roomsMedia is rooms_media(rid, file=path, **kwargs); fileType is what
// mimetypes.guess_type says of the name ("" for nothing).
func (p pythonClient) roomsMedia(t *testing.T, rid, name, fileType string, data []byte, kwargs ...field) answer {
	t.Helper()
	const boundary = "5674977e46f05652b73527eefebc2add"
	var b bytes.Buffer
	for _, f := range kwargs {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", boundary, f.name, f.value)
	}
	fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=%q\r\n", boundary, name)
	if fileType != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", fileType)
	}
	b.WriteString("\r\n")
	b.Write(data)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return p.post(t, "rooms.media/"+rid, "multipart/form-data; boundary="+boundary, b.Bytes())
}

// roomsMediaConfirm is rooms_media_confirm(rid, file_id, **kwargs).
func (p pythonClient) roomsMediaConfirm(t *testing.T, rid, fileID string, kwargs ...field) answer {
	t.Helper()
	parts := make([]string, len(kwargs))
	for i, f := range kwargs {
		parts[i] = pyString(f.name) + ": " + pyString(f.value)
	}
	return p.post(t, "rooms.mediaConfirm/"+rid+"/"+fileID, "application/json", []byte("{"+strings.Join(parts, ", ")+"}"))
}

// pyString is s as Python's json.dumps writes it: ASCII only, anything else
// as \u escapes (surrogate pairs beyond the first plane).
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// mediaAnswer is rooms.media's answer.
type mediaAnswer struct {
	File struct {
		ID  string `json:"_id"`
		URL string `json:"url"`
	} `json:"file"`
	Success bool `json:"success"`
}

func mediaFile(t *testing.T, a answer) mediaAnswer {
	t.Helper()
	var m mediaAnswer
	if err := json.Unmarshal(a.body, &m); err != nil || a.code != 200 || !m.Success {
		t.Fatalf("rooms.media answered %s", a)
	}
	return m
}

// TestRoomsMedia posts files with rooms.media as the Python client does, on
// one node, and confirms one on another node where the store is shared: the
// confirmed message is rooms.upload's, its link serves the same bytes, and
// the file left unconfirmed is gone after rocketchat.unconfirmed_ttl, by
// the sweep of whichever node runs it.
func TestRoomsMedia(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			clock := storetest.NewClock(time.Now().UTC())
			cfg := rocketConfig(t, b)
			cfg.RocketChat.UnconfirmedTTL = 2 * time.Hour
			nodes := []*testServer{start(t, cfg, clock)}
			if b.name != embedded.name {
				nodes = append(nodes, start(t, cfg, clock)) // the embedded store is one process's
			}
			first, last := nodes[0], nodes[len(nodes)-1]
			py := pythonClient{first.URL, rocketUserID, rocketToken}
			png := append([]byte("\x89PNG\r\n\x1a\n"), testData(70_000, 3)...)

			kept := mediaFile(t, py.roomsMedia(t, "GENERAL", "avatar.png", "image/png", png, field{"description", "hey there"}))
			if !rocketID.MatchString(kept.File.ID) || kept.File.URL != "/file-upload/"+kept.File.ID+"/avatar.png" {
				t.Fatalf("rooms.media file %+v, want a 17-character id and /file-upload/<id>/avatar.png", kept.File)
			}
			keptObjects := storedObjects(t, first)
			notes := testData(3000, 4)
			dropped := mediaFile(t, py.roomsMedia(t, "GENERAL", "notes", "", notes))
			// Not yet a message, but reachable, as on Rocket.Chat.
			for _, f := range []struct {
				url  string
				data []byte
			}{{kept.File.URL, png}, {dropped.File.URL, notes}} {
				if resp, body := fetch(t, last.URL+f.url, nil); resp.StatusCode != 200 || !bytes.Equal(body, f.data) {
					t.Fatalf("GET %s before confirming: %d, %d bytes", f.url, resp.StatusCode, len(body))
				}
			}

			py.base = last.URL
			a := py.roomsMediaConfirm(t, "GENERAL", kept.File.ID, field{"msg", "confirmed upload ✓"}, field{"description", "a picture"})
			var got map[string]any
			if err := json.Unmarshal(a.body, &got); err != nil || a.code != 200 || got["success"] != true {
				t.Fatalf("rooms.mediaConfirm answered %s", a)
			}
			sameShape(t, "", got, seedAnswer(t)) // rooms.upload's message, field for field
			m := got["message"].(map[string]any)
			file := m["file"].(map[string]any)
			att := m["attachments"].([]any)[0].(map[string]any)
			u := m["u"].(map[string]any)
			for name, pair := range map[string][2]any{
				"rid":                     {m["rid"], "GENERAL"},
				"msg":                     {m["msg"], "confirmed upload ✓"},
				"file._id":                {file["_id"], kept.File.ID},
				"file.name":               {file["name"], "avatar.png"},
				"file.type":               {file["type"], "image/png"},
				"attachments.title_link":  {att["title_link"], kept.File.URL},
				"attachments.description": {att["description"], "a picture"},
				"attachments.image_url":   {att["image_url"], kept.File.URL},
				"u._id":                   {u["_id"], rocketUserID},
			} {
				if pair[0] != pair[1] {
					t.Errorf("message %s = %#v, want %#v", name, pair[0], pair[1])
				}
			}
			if s, _ := m["_id"].(string); !rocketID.MatchString(s) {
				t.Errorf("message _id %v is not a Rocket.Chat id", m["_id"])
			}
			// A confirmation whose answer was lost may be sent again.
			if a := py.roomsMediaConfirm(t, "GENERAL", kept.File.ID); a.code != 200 {
				t.Errorf("second confirmation: %s", a)
			}

			clock.Advance(3 * time.Hour)
			if resp, _ := fetch(t, first.URL+dropped.File.URL, nil); resp.StatusCode != 404 {
				t.Errorf("GET of the unconfirmed file past its time: %d, want 404", resp.StatusCode)
			}
			last.app.reap(t.Context())
			if n := storedObjects(t, first); n != keptObjects {
				t.Errorf("after the sweep the mirrors hold %d objects, want the confirmed file's %d", n, keptObjects)
			}
			if _, err := first.app.store.FileByAlias(t.Context(), dropped.File.ID); err == nil {
				t.Error("the unconfirmed file's record survived the sweep")
			}
			if msg := rocketErr(t, py.roomsMediaConfirm(t, "GENERAL", dropped.File.ID), 400); !strings.Contains(msg, "invalid-file") {
				t.Errorf("confirming a removed upload: %q, want invalid-file", msg)
			}
			for _, n := range nodes {
				if resp, body := fetch(t, n.URL+kept.File.URL, nil); resp.StatusCode != 200 || !bytes.Equal(body, png) {
					t.Errorf("GET %s of the confirmed file after the sweep: %d, %d bytes", kept.File.URL, resp.StatusCode, len(body))
				}
			}
		})
	}
}

// TestRoomsMediaRefuses checks rooms.media's and rooms.mediaConfirm's
// errors, and that every Rocket.Chat path under /api/v1/ answers in
// Rocket.Chat's shape while MirrorAce's keep their envelope.
func TestRoomsMediaRefuses(t *testing.T) {
	srv := start(t, rocketConfig(t, embedded), nil)
	data := testData(500, 5)
	py := pythonClient{srv.URL, rocketUserID, "wrong"}
	if msg := rocketErr(t, py.roomsMedia(t, "GENERAL", "a.bin", "", data), 401); msg != "unauthorized" {
		t.Errorf("wrong token: %q", msg)
	}
	roomy := pythonClient{srv.URL, "0123456789abcdefabcdefabcdef0006", "roomy-token"}
	if msg := rocketErr(t, roomy.roomsMedia(t, "GENERAL", "a.bin", "", data), 403); !strings.Contains(msg, "GENERAL") {
		t.Errorf("room outside the account's rooms: %q", msg)
	}
	py.token = rocketToken
	if msg := rocketErr(t, py.roomsMedia(t, "GENERAL", "a.bin", "", data, field{"msg", "hi"}), 400); !strings.Contains(msg, `"msg"`) {
		t.Errorf("rooms.media with msg (it belongs to the confirmation): %q", msg)
	}
	if n := storedObjects(t, srv); n != 0 {
		t.Errorf("refused uploads left %d objects", n)
	}
	theirs := mediaFile(t, roomy.roomsMedia(t, "ALLOWED", "theirs.bin", "", data))
	if msg := rocketErr(t, py.roomsMediaConfirm(t, "GENERAL", theirs.File.ID), 400); !strings.Contains(msg, "invalid-file") {
		t.Errorf("confirming another account's upload: %q", msg)
	}
	if msg := rocketErr(t, py.roomsMediaConfirm(t, "GENERAL", "nosuchfile1234567"), 400); !strings.Contains(msg, "rooms.media") {
		t.Errorf("confirming an unknown file: %q, want it to say to send it with rooms.media", msg)
	}
	mine := mediaFile(t, py.roomsMedia(t, "GENERAL", "mine.bin", "", data))
	a := py.post(t, "rooms.mediaConfirm/GENERAL/"+mine.File.ID, "application/json", []byte(`{"msg": 5}`))
	if msg := rocketErr(t, a, 400); !strings.Contains(msg, `"msg" must be a string`) {
		t.Errorf("msg as a number: %q", msg)
	}
	// Rocket.Chat's mobile app confirms with no msg and keys of its own;
	// some clients send no body at all.
	a = py.post(t, "rooms.mediaConfirm/GENERAL/"+mine.File.ID, "application/json", []byte(`{"description": "d", "t": null}`))
	if a.code != 200 {
		t.Errorf("confirmation with the app's keys: %s", a)
	}
	if a := py.post(t, "rooms.mediaConfirm/GENERAL/"+mine.File.ID, "", nil); a.code != 200 {
		t.Errorf("confirmation without a body: %s", a)
	}

	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"POST", "/api/v1/chat.postMessage", 404},
		{"GET", "/api/v1/me", 404},
		{"GET", "/api/v1/info", 404},
		{"GET", "/api/v1/users.info?userId=x", 404},
		{"POST", "/api/v1/login", 404},
		{"POST", "/api/v1/rooms.upload", 404},
		{"POST", "/api/v1/rooms.media", 404},
		{"POST", "/api/v1/rooms.mediaConfirm/GENERAL", 404},
		{"GET", "/api/v1/rooms.media/GENERAL", 404},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		req.Header.Set("X-User-Id", rocketUserID)
		req.Header.Set("X-Auth-Token", rocketToken)
		if msg := rocketErr(t, do(t, req), c.code); !strings.Contains(msg, "rooms.media/<room id>") {
			t.Errorf("%s %s: %q, want it to name the calls acestash serves", c.method, c.path, msg)
		}
	}
	a = postForm(t, srv.URL+"/api/v1/file/nosuch", nil)
	if msg := a.errTextCode(t, 404); !strings.Contains(msg, "/api/v1/file/nosuch") {
		t.Errorf("unknown MirrorAce call: %q", msg)
	}
}
