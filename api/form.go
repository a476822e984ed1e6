package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
)

// Limits on the non-file part of a request.
const (
	maxFieldBytes = 64 << 10
	maxFields     = 256
	maxFormBytes  = 1 << 20
)

// form is a request's fields and, if it carried one, its file.
type form struct {
	url.Values
	File     io.Reader // nil when the request has no file
	FileName string
	FileType string
	hasFile  bool
	spooled  *os.File
}

// Close removes the file's spool copy, if one was made.
func (f *form) Close() {
	if f.spooled != nil {
		f.spooled.Close()
		os.Remove(f.spooled.Name())
	}
}

// errForm is a request whose form cannot be read; the message says why.
type errForm struct {
	msg string
	err error // cause, if any
}

func (e errForm) Error() string { return e.msg }
func (e errForm) Unwrap() error { return e.err }

// readForm reads a url-encoded or multipart request. The first part whose
// field name is in fileFields is the file. If ready reports that the fields
// read before it are enough, the file is handed on as a stream and the
// parts after it are not read; otherwise it is spooled to spoolDir (up to
// fileLimit+1 bytes, so the caller can see it is too large) and reading
// goes on.
func readForm(r *http.Request, spoolDir string, fileFields []string, fileLimit int64, ready func(url.Values) bool) (*form, error) {
	f := &form{Values: url.Values{}}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			return nil, errForm{"cannot read the form: " + err.Error(), err}
		}
		f.Values = r.PostForm
		return f, nil
	}
	if params["boundary"] == "" {
		return nil, errForm{msg: "multipart request without a boundary"}
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	fieldBytes := 0
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			f.Close()
			return nil, errForm{"cannot read the multipart body: " + err.Error(), err}
		}
		name := p.FormName()
		if slices.Contains(fileFields, name) {
			if f.hasFile {
				f.Close()
				return nil, errForm{msg: "only one file per request"}
			}
			f.hasFile = true
			f.FileName, f.FileType = p.FileName(), p.Header.Get("Content-Type")
			if ready(f.Values) {
				f.File = p
				return f, nil
			}
			if err := f.spool(p, spoolDir, fileLimit); err != nil {
				f.Close()
				return nil, err
			}
			continue
		}
		if len(f.Values) >= maxFields {
			f.Close()
			return nil, errForm{msg: fmt.Sprintf("more than %d form fields", maxFields)}
		}
		v, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			f.Close()
			return nil, errForm{"cannot read field " + name + ": " + err.Error(), err}
		}
		fieldBytes += len(v)
		if len(v) > maxFieldBytes || fieldBytes > maxFormBytes {
			f.Close()
			return nil, errForm{msg: "form field " + name + " is too long"}
		}
		f.Add(name, string(v))
	}
}

func (f *form) spool(r io.Reader, dir string, limit int64) error {
	tmp, err := os.CreateTemp(dir, "form-*")
	if err != nil {
		return fmt.Errorf("spool form file: %w", err)
	}
	f.spooled = tmp
	if _, err := io.Copy(tmp, io.LimitReader(r, limit+1)); err != nil {
		return errForm{"cannot read the file: " + err.Error(), err}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool form file: %w", err)
	}
	f.File = tmp
	return nil
}

// mirrorIDs collects the selected mirror ids from the forms clients use:
// mirrors[] or mirrors[N] (PHP arrays) and, only when neither is present,
// a plain mirrors field, each value possibly comma-separated.
func mirrorIDs(v url.Values) []string {
	var arrays, plain []string
	for k, vals := range v {
		switch {
		case k == "mirrors":
			plain = append(plain, vals...)
		case strings.HasPrefix(k, "mirrors[") && strings.HasSuffix(k, "]"):
			arrays = append(arrays, vals...)
		}
	}
	if len(arrays) > 0 {
		plain = arrays
	}
	var ids []string
	for _, val := range plain {
		for _, id := range strings.Split(val, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
