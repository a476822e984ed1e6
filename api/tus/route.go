package tus

import (
	"net/http"
	"strings"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/acestash/acestash/api/auth"
)

// route sends each method to its handler, as tusd's routed handler does,
// without downloads.
func (t *endpoint) route() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		root := strings.Trim(r.URL.Path, "/") == ""
		switch {
		case root && r.Method == http.MethodPost:
			t.h.PostFile(w, r)
		case root:
			refuse(w, r, handler.NewError("ERR_METHOD_NOT_ALLOWED", "create uploads with POST", http.StatusMethodNotAllowed), "POST")
		case r.Method == http.MethodHead:
			t.h.HeadFile(w, r)
		case r.Method == http.MethodPatch:
			t.h.PatchFile(w, r)
		case r.Method == http.MethodDelete:
			t.h.DelFile(w, r)
		default:
			refuse(w, r, handler.NewError("ERR_METHOD_NOT_ALLOWED",
				"an upload takes HEAD, PATCH and DELETE; its file is read at /m/<slug>", http.StatusMethodNotAllowed), "HEAD, PATCH, DELETE")
		}
	})
}

// refuse writes a tus error as tusd writes its own.
func refuse(w http.ResponseWriter, r *http.Request, e handler.Error, allow string) {
	for k, v := range e.HTTPResponse.Header {
		w.Header().Set(k, v)
	}
	if allow != "" {
		w.Header().Set("Allow", allow)
	}
	w.WriteHeader(e.HTTPResponse.StatusCode)
	if r.Method != http.MethodHead {
		w.Write([]byte(e.HTTPResponse.Body))
	}
}

// auth admits requests with Authorization: Bearer <api_key>:<api_token>.
func (t *endpoint) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := auth.Bearer(r)
		a, err := t.creds.Pair(r.Context(), cred)
		if err != nil {
			p, _ := auth.As(err)
			if p == nil || p.Kind == auth.Unavailable {
				t.cfg.Log.ErrorContext(r.Context(), "tus: read account", "err", err)
				refuse(w, r, errUnavailable("cannot read the account; retry later"), "")
				return
			}
			msg := "api_key or api_token is wrong"
			if p.Kind == auth.Missing {
				msg = "send Authorization: Bearer <api_key>:<api_token>"
			}
			w.Header().Set("WWW-Authenticate", "Bearer")
			refuse(w, r, handler.NewError("ERR_UNAUTHORIZED", msg, http.StatusUnauthorized), "")
			return
		}
		callOf(r.Context()).account = a
		next.ServeHTTP(w, r)
	})
}
