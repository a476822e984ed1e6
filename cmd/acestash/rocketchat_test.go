package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/acestash/acestash/store"
)

// The credentials of the seed's curl example, given to a configured account.
const (
	rocketUserID = "hw5DThnhQmxDWnavu"
	rocketToken  = "ijFlJ1yfidXhwEYY284Anoq_iEsOeMMVCupzNhX22tB"
	rocketKey    = "0123456789abcdefabcdefabcdef0005"
)

func rocketConfig(t *testing.T, b backend) Config {
	cfg := testConfig(t, b)
	cfg.Accounts = append(cfg.Accounts,
		AccountConfig{Settings: store.Settings{Name: "Rodriq"}, APIKey: rocketKey, APIToken: rocketToken, UserID: rocketUserID, Username: "rodriq"},
		AccountConfig{Settings: store.Settings{Name: "Roomy", Rooms: []string{"ALLOWED"}}, APIKey: "0123456789abcdefabcdefabcdef0006", APIToken: "roomy-token"},
	)
	return cfg
}

var (
	rocketID   = regexp.MustCompile(`^[23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz]{17}$`)
	rocketTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
)

// TestRoomsUploadCurl runs the seed's curl example as written and compares
// the answer, field by field, with the seed's example answer.
func TestRoomsUploadCurl(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			srv := start(t, rocketConfig(t, b), nil)
			home := t.TempDir()
			content := []byte("Hello from example.txt\n")
			if err := os.WriteFile(filepath.Join(home, "example.txt"), content, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", "-c", `curl -sS "`+srv.URL+`/api/v1/rooms.upload/GENERAL" \
    -F file=@$HOME/example.txt \
    -F "msg=This is a message with a file" \
    -F "description=Simple text file" \
    -H "X-Auth-Token: ijFlJ1yfidXhwEYY284Anoq_iEsOeMMVCupzNhX22tB" \
    -H "X-User-Id: hw5DThnhQmxDWnavu"`)
			cmd.Env = append(os.Environ(), "HOME="+home, "NO_PROXY=*")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("answer is not JSON: %s", out)
			}
			want := seedAnswer(t)
			if got["success"] != true {
				t.Fatalf("curl's answer: %s", out)
			}
			sameShape(t, "", got, want)

			m := got["message"].(map[string]any)
			file := m["file"].(map[string]any)
			att := m["attachments"].([]any)[0].(map[string]any)
			u := m["u"].(map[string]any)
			for path, v := range map[string]any{
				"rid": m["rid"], "msg": m["msg"], "file.name": file["name"], "file.type": file["type"],
				"attachments.title": att["title"], "attachments.description": att["description"],
				"attachments.type": att["type"], "attachments.title_link_download": att["title_link_download"],
				"u.username": u["username"], "u.name": u["name"], "success": got["success"],
				"urls": m["urls"], "md": m["md"],
			} {
				if w := pick(want, path); !reflect.DeepEqual(v, w) {
					t.Errorf("%s = %#v, want %#v", path, v, w)
				}
			}
			// The seed's answer shows another user than its request: the
			// answer names the caller, by user id, never by api_key.
			if u["_id"] != rocketUserID {
				t.Errorf("u._id = %v, want the caller's user id %s", u["_id"], rocketUserID)
			}
			for _, id := range []any{m["_id"], file["_id"]} {
				if s, _ := id.(string); !rocketID.MatchString(s) {
					t.Errorf("id %v is not 17 Rocket.Chat id characters", id)
				}
			}
			for _, ts := range []any{m["ts"], m["_updatedAt"], att["ts"]} {
				if s, _ := ts.(string); !rocketTime.MatchString(s) {
					t.Errorf("timestamp %v is not ISO-8601 with milliseconds", ts)
				}
			}
			if !reflect.DeepEqual(m["files"], []any{m["file"]}) {
				t.Errorf("files %v, want [file]", m["files"])
			}
			link := "/file-upload/" + file["_id"].(string) + "/example.txt"
			if att["title_link"] != link {
				t.Errorf("title_link %v, want %s", att["title_link"], link)
			}
			resp, body := fetch(t, srv.URL+link, nil)
			if resp.StatusCode != 200 || !bytes.Equal(body, content) {
				t.Errorf("GET %s: %d %q", link, resp.StatusCode, body)
			}
		})
	}
}

// seedAnswer is the seed's example answer of rooms.upload.
func seedAnswer(t *testing.T) map[string]any {
	t.Helper()
	seed, err := os.ReadFile("testdata/rooms-upload-answer.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(seed, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// sameShape fails where got lacks a key of want or holds another JSON type.
func sameShape(t *testing.T, path string, got, want any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want an object", path, got)
			return
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				t.Errorf("%s.%s missing", path, k)
				continue
			}
			sameShape(t, path+"."+k, g[k], w[k])
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			t.Errorf("%s: %v, want an array of %d", path, got, len(w))
			return
		}
		for i := range w {
			sameShape(t, path, g[i], w[i])
		}
	default:
		if reflect.TypeOf(got) != reflect.TypeOf(want) {
			t.Errorf("%s: %T, want %T", path, got, want)
		}
	}
}

// pick follows a dotted path into the seed's message (the first element of
// any array on the way).
func pick(v map[string]any, path string) any {
	var cur any = v["message"]
	if path == "success" {
		return v["success"]
	}
	for _, k := range strings.Split(path, ".") {
		if a, ok := cur.([]any); ok {
			cur = a[0]
		}
		cur = cur.(map[string]any)[k]
	}
	if a, ok := cur.([]any); ok && path == "attachments" {
		return a[0]
	}
	return cur
}

// rocketPost sends a rooms.upload request with the given credentials.
func rocketPost(t *testing.T, srv *testServer, rid, user, token string, fields []field, fileName string, data []byte) answer {
	t.Helper()
	hdr := http.Header{}
	if user != "" {
		hdr.Set("X-User-Id", user)
		hdr.Set("X-Auth-Token", token)
	}
	fileField := ""
	if fileName != "" {
		fileField = "file"
	}
	return postMultipart(t, srv.URL+"/api/v1/rooms.upload/"+rid, fields, fileField, fileName, data, hdr)
}

// rocketErr decodes {"success": false, "error": ...} and checks the status.
func rocketErr(t *testing.T, a answer, code int) string {
	t.Helper()
	var e struct {
		Success *bool  `json:"success"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || a.code != code || e.Success == nil || *e.Success || e.Error == "" {
		t.Fatalf("want %d with success false and an error, got %s", code, a)
	}
	return e.Error
}

func TestRoomsUploadRefuses(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			srv := start(t, rocketConfig(t, b), nil)
			data := testData(300, 9)
			if msg := rocketErr(t, rocketPost(t, srv, "GENERAL", "", "", nil, "a.bin", data), 401); msg != "unauthorized" {
				t.Errorf("no credentials: %q, want unauthorized", msg)
			}
			if msg := rocketErr(t, rocketPost(t, srv, "GENERAL", rocketUserID, "wrong", nil, "a.bin", data), 401); msg != "unauthorized" {
				t.Errorf("wrong token: %q", msg)
			}
			if msg := rocketErr(t, rocketPost(t, srv, "GENERAL", rocketUserID, rocketToken, []field{{"msg", "hi"}}, "", nil), 400); !strings.Contains(msg, "file") {
				t.Errorf("no file: %q, want it to name the file field", msg)
			}
			a := rocketPost(t, srv, "GENERAL", rocketUserID, rocketToken, []field{{"colour", "blue"}}, "a.bin", data)
			if msg := rocketErr(t, a, 400); !strings.Contains(msg, "colour") {
				t.Errorf("unknown field: %q, want it named", msg)
			}
			// A file field that is not a file.
			a = postMultipart(t, srv.URL+"/api/v1/rooms.upload/GENERAL", []field{{"file", "just text"}}, "", "", nil,
				http.Header{"X-User-Id": {rocketUserID}, "X-Auth-Token": {rocketToken}})
			if msg := rocketErr(t, a, 400); !strings.Contains(msg, "invalid-field") {
				t.Errorf("file as a plain field: %q", msg)
			}
			// An unknown field after the file: the file was stored on the
			// way and must be gone again.
			a = postMultipartAfter(t, srv.URL+"/api/v1/rooms.upload/GENERAL", nil, "a.bin", "file", data, []field{{"msg", "x"}, {"colour", "blue"}},
				http.Header{"X-User-Id": {rocketUserID}, "X-Auth-Token": {rocketToken}})
			if msg := rocketErr(t, a, 400); !strings.Contains(msg, "colour") {
				t.Errorf("unknown field after the file: %q", msg)
			}
			if msg := rocketErr(t, rocketPost(t, srv, "GENERAL", "0123456789abcdefabcdefabcdef0006", "roomy-token", nil, "a.bin", data), 403); !strings.Contains(msg, "GENERAL") {
				t.Errorf("forbidden room: %q", msg)
			}
			if n := storedObjects(t, srv); n != 0 {
				t.Errorf("refused uploads left %d objects", n)
			}
			// The same account in its own room, and X-User-Id as the api_key.
			var ok struct {
				Message struct {
					U struct {
						ID string `json:"_id"`
					} `json:"u"`
				} `json:"message"`
				Success bool `json:"success"`
			}
			a = rocketPost(t, srv, "ALLOWED", "0123456789abcdefabcdefabcdef0006", "roomy-token", nil, "a.bin", data)
			if err := json.Unmarshal(a.body, &ok); err != nil || a.code != 200 || !ok.Success || !rocketID.MatchString(ok.Message.U.ID) {
				t.Errorf("allowed room with api_key as X-User-Id: %s", a)
			}
		})
	}
}

// TestRoomsUploadImage checks what Rocket.Chat clients need for a preview.
func TestRoomsUploadImage(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { roomsUploadImage(t, b) })
	}
}

func roomsUploadImage(t *testing.T, b backend) {
	srv := start(t, rocketConfig(t, b), nil)
	png := append([]byte("\x89PNG\r\n\x1a\n"), testData(500, 7)...)
	a := rocketPost(t, srv, "GENERAL", rocketUserID, rocketToken, []field{{"description", "a picture"}}, "pic ture#1.png", png)
	var got struct {
		Message struct {
			Attachments []struct {
				TitleLink string `json:"title_link"`
				ImageURL  string `json:"image_url"`
				ImageType string `json:"image_type"`
				ImageSize int64  `json:"image_size"`
			} `json:"attachments"`
			MD []any `json:"md"`
		} `json:"message"`
	}
	if err := json.Unmarshal(a.body, &got); err != nil || a.code != 200 || len(got.Message.Attachments) != 1 {
		t.Fatalf("answer %s", a)
	}
	att := got.Message.Attachments[0]
	if att.ImageType != "image/png" || att.ImageSize != int64(len(png)) || att.ImageURL != att.TitleLink {
		t.Errorf("image fields %+v", att)
	}
	if !strings.HasSuffix(att.TitleLink, "/"+url.PathEscape("pic ture#1.png")) {
		t.Errorf("title_link %q does not end in the escaped name", att.TitleLink)
	}
	resp, body := fetch(t, srv.URL+att.TitleLink, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, png) || resp.Header.Get("Content-Type") != "image/png" ||
		strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("GET %s: %d %v", att.TitleLink, resp.StatusCode, resp.Header)
	}
	if len(got.Message.MD) != 0 {
		t.Errorf("md %v for a message without text, want []", got.Message.MD)
	}

	// A page posted to a room is never shown as a page.
	html := []byte("<!DOCTYPE html><html><script>alert(document.domain)</script></html>")
	a = rocketPost(t, srv, "GENERAL", rocketUserID, rocketToken, nil, "page.html", html)
	got.Message.Attachments = nil
	if err := json.Unmarshal(a.body, &got); err != nil || a.code != 200 || len(got.Message.Attachments) != 1 {
		t.Fatalf("answer %s", a)
	}
	if att := got.Message.Attachments[0]; att.ImageURL != "" {
		t.Errorf("an HTML file got an image preview: %+v", att)
	}
	resp, body = fetch(t, srv.URL+got.Message.Attachments[0].TitleLink, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, html) || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET of an HTML file: %d %v", resp.StatusCode, resp.Header)
	}
}
