package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
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

	mr         *multipartReader // nil once every part is read
	fileFields []string
	hasFile    bool
	spooled    *os.File
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
// field name is in fileFields is the file. If stream reports that the
// fields read before it are enough, reading stops there and File streams
// the part: the parts after it are read by rest or spool. Otherwise the
// file is spooled to spoolDir (up to fileLimit+1 bytes, so the caller can
// see it is too large) and every field is read.
func readForm(r *http.Request, spoolDir string, fileFields []string, fileLimit int64, stream func(url.Values) bool) (*form, error) {
	f := &form{Values: url.Values{}, fileFields: fileFields}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			return nil, errForm{"cannot read the form: " + err.Error(), err}
		}
		f.Values = r.PostForm
		return f, nil
	}
	mr, err := newMultipartReader(r.Body, params["boundary"])
	if err != nil {
		return nil, errForm{msg: err.Error()}
	}
	f.mr = mr
	file, err := f.fields()
	if err != nil {
		f.Close()
		return nil, err
	}
	if file == nil {
		return f, nil
	}
	f.hasFile = true
	f.FileName, f.FileType = file.FileName(), file.Header.Get("Content-Type")
	f.File = file
	if stream(f.Values) {
		return f, nil
	}
	if err := f.spool(spoolDir, fileLimit); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// fields reads parts into f.Values up to the next file part, which it
// returns, or to the end of the request.
func (f *form) fields() (*multipartPart, error) {
	for f.mr != nil {
		p, err := f.mr.NextPart()
		if errors.Is(err, io.EOF) {
			f.mr = nil
			return nil, nil
		}
		if err != nil {
			return nil, errForm{"cannot read the multipart body: " + err.Error(), err}
		}
		name := p.FormName()
		if slices.Contains(f.fileFields, name) {
			if f.hasFile {
				return nil, errForm{msg: "only one file per request"}
			}
			return p, nil
		}
		if f.count() >= maxFields { // values, not names: a name may come many times
			return nil, errForm{msg: fmt.Sprintf("more than %d form fields", maxFields)}
		}
		v, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return nil, errForm{"cannot read field " + name + ": " + err.Error(), err}
		}
		if len(v) > maxFieldBytes || f.size()+len(v) > maxFormBytes {
			return nil, errForm{msg: "form field " + name + " is too long"}
		}
		f.Add(name, string(v))
	}
	return nil, nil
}

// count is the field values read so far.
func (f *form) count() int {
	n := 0
	for _, vals := range f.Values {
		n += len(vals)
	}
	return n
}

// size is the bytes of field values read so far.
func (f *form) size() int {
	n := 0
	for _, vals := range f.Values {
		for _, v := range vals {
			n += len(v)
		}
	}
	return n
}

// rest reads the fields after a streamed file, once File has ended, and
// returns those it read.
func (f *form) rest() (url.Values, error) {
	before := url.Values{}
	for k, v := range f.Values {
		before[k] = slices.Clone(v)
	}
	if _, err := f.fields(); err != nil {
		return nil, err
	}
	if f.mr != nil {
		return nil, errForm{msg: "only one file per request"}
	}
	after := url.Values{}
	for k, v := range f.Values {
		if n := len(before[k]); len(v) > n {
			after[k] = v[n:]
		}
	}
	return after, nil
}

// spool copies the rest of the file to spoolDir (up to limit+1 bytes),
// makes File read the copy, and reads the fields after it.
func (f *form) spool(dir string, limit int64) error {
	tmp, err := os.CreateTemp(dir, "form-*")
	if err != nil {
		return fmt.Errorf("spool form file: %w", err)
	}
	f.spooled = tmp
	if _, err := io.Copy(tmp, io.LimitReader(f.File, limit+1)); err != nil {
		return errForm{"cannot read the file: " + err.Error(), err}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool form file: %w", err)
	}
	f.File = tmp
	if _, err := f.fields(); err != nil {
		return err
	}
	if f.mr != nil {
		return errForm{msg: "only one file per request"}
	}
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
