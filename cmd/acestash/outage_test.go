package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/acestash/acestash/store/redisstore/redistest"
)

// TestStoreOutageIs503: while Redis is stopped, every dialect answers a
// request with credentials 503, worth retrying, in its own format, never
// a 500 or a refusal of the credentials: MirrorAce, the web session,
// tus, Mirage (with a key and without) and Rocket.Chat.
func TestStoreOutageIs503(t *testing.T) {
	r := redistest.Start(t)
	cfg := testConfig(t, embedded)
	cfg.RedisURL = r.URL
	srv := start(t, cfg, nil)

	form := func(path string, v url.Values, hdr http.Header) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		return req
	}
	keys := url.Values{"api_key": {testKey}, "api_token": {testToken}}
	resp, body := doRaw(t, form("/web/signin", keys, http.Header{"Origin": {srv.URL}}))
	var sess struct{ CSRF string }
	if err := json.Unmarshal(body, &sess); err != nil || resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	cookie := resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value

	r.Stop()
	bearer := http.Header{"Authorization": {"Bearer " + testKey + ":" + testToken}}
	tusHdr := http.Header{"Authorization": bearer["Authorization"], "Tus-Resumable": {"1.0.0"}, "Upload-Length": {"5"}}
	raw := func(path string, hdr http.Header) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader("hello"))
		req.Header.Set("Content-Type", "application/octet-stream")
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		return req
	}
	rocketType, rocketBody := multipartBody(t, nil, "file", "a.txt", []byte("hello"))
	rocket, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/rooms.upload/GENERAL", strings.NewReader(string(rocketBody)))
	rocket.Header.Set("Content-Type", rocketType)
	rocket.Header.Set("X-User-Id", testKey)
	rocket.Header.Set("X-Auth-Token", testToken)
	whoAmI, _ := http.NewRequest(http.MethodGet, srv.URL+"/web/session", nil)
	whoAmI.Header.Set("Cookie", cookie)

	for _, c := range []struct {
		dialect string
		req     *http.Request
		want    func(body []byte) bool // the body is the dialect's own error
	}{
		{"MirrorAce", form("/api/v1/file/upload", keys, nil), envelopeError},
		{"MirrorAce with the web session", form("/api/v1/file/list", nil, http.Header{"Cookie": {cookie}, "X-Csrf-Token": {sess.CSRF}}), envelopeError},
		{"web session", whoAmI, jsonErrorBody},
		{"tus", raw("/files/", tusHdr), func(b []byte) bool { return strings.HasPrefix(string(b), "ERR_") }},
		{"Mirage with a key", raw("/upload?key="+testKey+":"+testToken, nil), plainLine},
		{"Mirage without a key", raw("/upload", nil), plainLine},
		{"Mirage with a bearer key", raw("/upload", bearer), plainLine},
		{"Rocket.Chat", rocket, rocketError},
	} {
		resp, body := doRaw(t, c.req)
		if resp.StatusCode != http.StatusServiceUnavailable || !c.want(body) {
			t.Errorf("%s with Redis stopped: %d %q, want 503 in the dialect's format", c.dialect, resp.StatusCode, body)
		}
	}
}

func envelopeError(b []byte) bool {
	var e struct{ Status, Result string }
	return json.Unmarshal(b, &e) == nil && e.Status == "error" && e.Result != ""
}

func jsonErrorBody(b []byte) bool {
	var e struct{ Error string }
	return json.Unmarshal(b, &e) == nil && e.Error != ""
}

func plainLine(b []byte) bool {
	s := string(b)
	return strings.HasSuffix(s, "\n") && strings.Count(s, "\n") == 1 && len(s) > 1
}

func rocketError(b []byte) bool {
	var e struct {
		Success *bool  `json:"success"`
		Error   string `json:"error"`
	}
	return json.Unmarshal(b, &e) == nil && e.Success != nil && !*e.Success && e.Error != ""
}
