package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestPanicIsAnEnvelope: a handler that panics under /api/v1/ still answers
// in the MirrorAce envelope, and the server keeps serving.
func TestPanicIsAnEnvelope(t *testing.T) {
	s := &Server{cfg: Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	e := s.echo()
	g := s.group(e, "/api/v1", mirrorAce)
	g.POST("/boom", func(echo.Context) error { panic("boom") })
	g.POST("/ok", func(c echo.Context) error { return success(c, "fine") })
	srv := httptest.NewServer(e)
	defer srv.Close()

	for _, tc := range []struct {
		path   string
		code   int
		status string
	}{{"/api/v1/boom", 500, "error"}, {"/api/v1/ok", 200, "success"}} {
		resp, err := http.Post(srv.URL+tc.path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		var env struct{ Status, Result string }
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.code || env.Status != tc.status || env.Result == "" {
			t.Fatalf("%s: HTTP %d %+v (%v)", tc.path, resp.StatusCode, env, err)
		}
	}
}

func TestParseByteRange(t *testing.T) {
	for _, tc := range []struct {
		h      string
		off, n int64
		ok     bool
	}{
		{"bytes=0-9", 0, 10, true},
		{"bytes=5-", 5, 95, true},
		{"bytes=-10", 90, 10, true},
		{"bytes=-1000", 0, 100, true},
		{"bytes=99-200", 99, 1, true},
		{"bytes=100-", 0, 0, false},
		{"bytes=-0", 0, 0, false},
		{"bytes=9-5", 0, -1, true},
		{"bytes=0-1,3-4", 0, -1, true},
		{"items=0-1", 0, -1, true},
	} {
		off, n, ok := parseByteRange(tc.h, 100)
		if off != tc.off || n != tc.n || ok != tc.ok {
			t.Errorf("parseByteRange(%q) = %d, %d, %v; want %d, %d, %v", tc.h, off, n, ok, tc.off, tc.n, tc.ok)
		}
	}
}

func TestMirrorIDs(t *testing.T) {
	for _, tc := range []struct {
		form string
		want string
	}{
		{"mirrors[]=1&mirrors[]=3", "1,3"},
		{"mirrors[1]=13&mirrors[2]=63", "13,63"},
		{"mirrors=2,1", "1,2"},
		{"mirrors=%7B%271%27%3A+True%7D&mirrors[]=2", "2"}, // a stray plain field loses to mirrors[]
		{"mirrors[]=1&mirrors[]=1", "1"},
		{"", ""},
	} {
		v, _ := url.ParseQuery(tc.form)
		if got := strings.Join(mirrorIDs(v), ","); got != tc.want {
			t.Errorf("mirrorIDs(%s) = %q, want %q", tc.form, got, tc.want)
		}
	}
}

// TestAdminNoRoute: the admin API's group keeps the JSON 404 and 405 of
// every group, behind its token.
func TestAdminNoRoute(t *testing.T) {
	s := &Server{cfg: Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), AdminToken: "secret"}}
	e := s.echo()
	s.admin(s.group(e, "/api/admin", jsonError, s.adminAuth))
	srv := httptest.NewServer(e)
	defer srv.Close()

	for _, tc := range []struct {
		method, path, token string
		code                int
		msg                 string
	}{
		{"DELETE", "/api/admin/accounts", "secret", 405, "method DELETE is not allowed here"},
		{"GET", "/api/admin/nothing", "secret", 404, "not found"},
		{"GET", "/api/admin", "secret", 404, "not found"},
		{"GET", "/api/admin/nothing", "", 401, "send Authorization: Bearer <admin_token>"},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.code || body.Error != tc.msg {
			t.Errorf("%s %s: HTTP %d %+v (%v); want %d %q", tc.method, tc.path, resp.StatusCode, body, err, tc.code, tc.msg)
		}
	}
}

// TestDialectOfRoutes: Rocket.Chat's calls are counted and answered as
// Rocket.Chat's, MirrorAce's as MirrorAce's.
func TestDialectOfRoutes(t *testing.T) {
	for route, want := range map[string]string{
		"/api/v1/rooms.upload/:rid":               "rocketchat",
		"/api/v1/rooms.media/:rid":                "rocketchat",
		"/api/v1/rooms.mediaConfirm/:rid/:fileId": "rocketchat",
		"/api/v1/rooms.media/*":                   "rocketchat",
		"/file-upload/:id/:name":                  "rocketchat",
		"/api/v1/file/info":                       "mirrorace",
		"/api/v1/upload":                          "mirrorace",
		"/api/v1/*":                               "mirrorace",
		"/favicon.ico":                            "web",
	} {
		if got := dialectOf(route); got != want {
			t.Errorf("dialectOf(%q) = %s, want %s", route, got, want)
		}
	}
	for path, want := range map[string]bool{
		"/api/v1/chat.postMessage": true, "/api/v1/me": true, "/api/v1/info": true,
		"/api/v1/livechat/visitor": true, "/api/v1/users.info": true,
		"/api/v1/file/info": false, "/api/v1/upload": false, "/api/v1/upload/status": false,
		"/api/v1/": false, "/api/admin/files": false, "/me": false,
	} {
		if got := rocketCall(path); got != want {
			t.Errorf("rocketCall(%q) = %v, want %v", path, got, want)
		}
	}
}
