package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// acestash upload: a MirrorAce v1 client. It asks file/upload for an
// upload key, sends each file in chunks of the server's max_chunk_size
// with Content-Range, and prints each file's URL. Fields beyond v1
// (expires, max_downloads) are sent only when asked for, so it works with
// any MirrorAce-compatible server. What it needs to resume a file (its
// upload_key and cTracker) is kept in the user's cache directory until the
// file is done; run again on the same file, it asks upload/status (an
// acestash extension) and sends only the bytes the server lacks.

const uploadUsage = `acestash upload FILE... [flags]
  --server URL          the server (ACESTASH_SERVER, default http://127.0.0.1:8080)
  --key KEY:TOKEN       api_key:api_token (ACESTASH_KEY)
  --mirrors 1,2         mirror ids (default: the account's default mirrors)
  --expires 7d          when the files expire: 30m, 12h, 7d, 2w or an RFC 3339 time
  --max-downloads N     remove each file after N downloads
  --password P          a password for the files' download pages
  --parallel N          files uploaded at once (default 3)
It prints each file's URL, one a line in the order given, and exits 1 if any file failed.`

// uploader sends files to one server with one account's credentials.
type uploader struct {
	server, key, token string
	mirrors            []string
	extra              url.Values // fields sent on the first chunk: password, extensions
	client             *http.Client
	stateDir           string
}

func uploadCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("upload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, uploadUsage) }
	server := fs.String("server", envOr("ACESTASH_SERVER", "http://127.0.0.1:8080"), "")
	cred := fs.String("key", os.Getenv("ACESTASH_KEY"), "")
	mirrors := fs.String("mirrors", "", "")
	expires := fs.String("expires", "", "")
	maxDL := fs.String("max-downloads", "", "")
	password := fs.String("password", "", "")
	parallel := fs.Int("parallel", 3, "")
	files, err := parseAll(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New(uploadUsage)
	}
	key, token, ok := strings.Cut(*cred, ":")
	if !ok || key == "" || token == "" {
		return errors.New("upload: give the account as --key api_key:api_token or in ACESTASH_KEY")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return fmt.Errorf("upload: no cache directory to keep unfinished uploads in: %w", err)
	}
	u := &uploader{
		server: strings.TrimRight(*server, "/"), key: key, token: token,
		extra: url.Values{}, client: &http.Client{Timeout: 30 * time.Minute},
		stateDir: filepath.Join(cache, "acestash", "uploads"),
	}
	for _, id := range strings.Split(*mirrors, ",") {
		if id = strings.TrimSpace(id); id != "" {
			u.mirrors = append(u.mirrors, id)
		}
	}
	for k, v := range map[string]string{"file_password": *password, "expires": *expires, "max_downloads": *maxDL} {
		if v != "" {
			u.extra.Set(k, v)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var bars *mpb.Progress
	if isTerminal(stderr) {
		bars = mpb.NewWithContext(ctx, mpb.WithOutput(stderr), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
	}
	urls := make([]string, len(files))
	errs := make([]error, len(files))
	slots := make(chan struct{}, max(*parallel, 1))
	var wg sync.WaitGroup
	for i, path := range files {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			p := newProgress(bars, stderr, path)
			urls[i], errs[i] = u.upload(ctx, path, p)
			p.end(errs[i])
		})
	}
	wg.Wait()
	if bars != nil {
		bars.Wait()
	}
	failed := 0
	for i, path := range files {
		if errs[i] != nil {
			failed++
			fmt.Fprintf(stderr, "acestash upload: %s: %v\n", path, errs[i])
			continue
		}
		fmt.Fprintln(stdout, urls[i])
	}
	if failed > 0 {
		return fmt.Errorf("upload: %d of %d files failed", failed, len(files))
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// state is what resuming a file needs; kept until the file is done.
type state struct {
	UploadKey string   `json:"upload_key"`
	CTracker  string   `json:"ctracker"`
	Chunk     int64    `json:"chunk"`
	Mirrors   []string `json:"mirrors"`
}

// statePath names the state of path's upload to the server: the same file
// (name, size, modification time) to the same server and account.
func (u *uploader) statePath(path string, fi os.FileInfo) string {
	abs, _ := filepath.Abs(path)
	sum := sha256.Sum256([]byte(strings.Join([]string{u.server, u.key, abs,
		strconv.FormatInt(fi.Size(), 10), strconv.FormatInt(fi.ModTime().UnixNano(), 10)}, "\x00")))
	return filepath.Join(u.stateDir, hex.EncodeToString(sum[:16])+".json")
}

// upload sends one file and returns its URL.
func (u *uploader) upload(ctx context.Context, path string, p *progress) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", errors.New("not a regular file")
	}
	size := fi.Size()
	p.start(size)
	sp := u.statePath(path, fi)
	st, off, done, err := u.resume(ctx, sp)
	if err != nil {
		return "", err
	}
	if done != "" {
		p.set(size)
		return done, os.Remove(sp)
	}
	if st.UploadKey == "" {
		if st, err = u.begin(ctx); err != nil {
			return "", err
		}
		if err := saveState(sp, st); err != nil {
			return "", err
		}
	}
	p.set(off)
	for tries := 0; ; {
		n := min(st.Chunk, size-off)
		res, err := u.chunk(ctx, st, f, filepath.Base(path), off, n, size, off == 0, p)
		if err == nil && res.Info == "complete" {
			os.Remove(sp)
			return res.URL, nil
		}
		if err == nil {
			off += n
			tries = 0
			continue
		}
		var refused refusal
		if errors.As(err, &refused) || ctx.Err() != nil || tries >= 5 {
			return "", err
		}
		// The connection or the server failed: the chunk may have been
		// stored or not. Ask, then go on from what the server holds.
		tries++
		time.Sleep(time.Duration(tries) * time.Second)
		if _, held, url, err := u.status(ctx, st); err == nil {
			if url != "" {
				os.Remove(sp)
				return url, nil
			}
			off = held
		}
		p.set(off)
	}
}

// resume reads a kept state and asks the server how far it got: the
// offset to go on from, or the URL of a file finished already. A state the
// server no longer knows is dropped, and the file starts over.
func (u *uploader) resume(ctx context.Context, sp string) (st state, off int64, done string, err error) {
	b, err := os.ReadFile(sp)
	if errors.Is(err, os.ErrNotExist) {
		return state{}, 0, "", nil
	}
	if err != nil {
		return state{}, 0, "", err
	}
	if json.Unmarshal(b, &st) != nil || st.UploadKey == "" || st.Chunk <= 0 {
		return state{}, 0, "", nil
	}
	_, held, url, err := u.status(ctx, st)
	var refused refusal
	if errors.As(err, &refused) {
		return state{}, 0, "", nil // unknown now, or not an acestash server
	}
	return st, held, url, err
}

// refusal is an error the server answered: sending again will not help.
type refusal struct{ msg string }

func (r refusal) Error() string { return r.msg }

// call posts a form to the MirrorAce path and decodes the result.
func (u *uploader) call(ctx context.Context, path string, v url.Values, out any) error {
	v.Set("api_key", u.key)
	v.Set("api_token", u.token)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.server+path, strings.NewReader(v.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return u.send(req, out)
}

// send does req and decodes MirrorAce's {"status","result"} answer.
func (u *uploader) send(req *http.Request, out any) error {
	resp, err := u.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %s, not a MirrorAce answer", req.URL.Path, resp.Status)
	}
	if env.Status != "success" {
		var msg string
		json.Unmarshal(env.Result, &msg)
		if resp.StatusCode >= 500 {
			return fmt.Errorf("%s: %s", resp.Status, msg)
		}
		return refusal{msg}
	}
	return json.Unmarshal(env.Result, out)
}

// begin asks file/upload for a new upload.
func (u *uploader) begin(ctx context.Context) (state, error) {
	var r struct {
		CTracker       string   `json:"cTracker"`
		UploadKey      string   `json:"upload_key"`
		MaxChunkSize   string   `json:"max_chunk_size"`
		DefaultMirrors []string `json:"default_mirrors"`
	}
	if err := u.call(ctx, "/api/v1/file/upload", url.Values{}, &r); err != nil {
		return state{}, fmt.Errorf("file/upload: %w", err)
	}
	chunk, err := strconv.ParseInt(r.MaxChunkSize, 10, 64)
	if err != nil || chunk <= 0 {
		return state{}, fmt.Errorf("file/upload: max_chunk_size %q is not a size", r.MaxChunkSize)
	}
	ids := u.mirrors
	if len(ids) == 0 {
		ids = r.DefaultMirrors
	}
	return state{UploadKey: r.UploadKey, CTracker: r.CTracker, Chunk: chunk, Mirrors: ids}, nil
}

// status asks upload/status how many bytes the server holds.
func (u *uploader) status(ctx context.Context, st state) (size, held int64, url string, err error) {
	var r struct {
		Received string `json:"received"`
		Size     string `json:"size"`
		Info     string `json:"info"`
		URL      string `json:"url"`
	}
	v := urlValues("upload_key", st.UploadKey, "cTracker", st.CTracker)
	if err := u.call(ctx, "/api/v1/upload/status", v, &r); err != nil {
		return 0, 0, "", err
	}
	held, _ = strconv.ParseInt(r.Received, 10, 64)
	size, _ = strconv.ParseInt(r.Size, 10, 64)
	if r.Info == "complete" {
		url = r.URL
	}
	return size, held, url, nil
}

func urlValues(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// chunkResult is upload's result.
type chunkResult struct {
	Info string `json:"info"`
	URL  string `json:"url"`
}

// chunk sends n bytes of f from off as one upload request, the fields
// before the file so the server can stream it; first adds the fields that
// only the first chunk needs.
func (u *uploader) chunk(ctx context.Context, st state, f *os.File, name string, off, n, size int64, first bool, p *progress) (chunkResult, error) {
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	fields := [][2]string{{"api_key", u.key}, {"api_token", u.token}, {"upload_key", st.UploadKey}, {"cTracker", st.CTracker}}
	for _, id := range st.Mirrors {
		fields = append(fields, [2]string{"mirrors[]", id})
	}
	if first {
		for k := range u.extra {
			fields = append(fields, [2]string{k, u.extra.Get(k)})
		}
	}
	for _, kv := range fields {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return chunkResult{}, err
		}
	}
	if _, err := mw.CreateFormFile("files[]", name); err != nil {
		return chunkResult{}, err
	}
	prefix := bytes.Clone(head.Bytes())
	head.Reset()
	if err := mw.Close(); err != nil {
		return chunkResult{}, err
	}
	suffix := head.Bytes()
	body := io.MultiReader(bytes.NewReader(prefix), p.reader(io.NewSectionReader(f, off, n), off), bytes.NewReader(suffix))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.server+"/api/v1/upload", body)
	if err != nil {
		return chunkResult{}, err
	}
	req.ContentLength = int64(len(prefix)) + n + int64(len(suffix))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if size > 0 {
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
	}
	var res chunkResult
	err = u.send(req, &res)
	return res, err
}

func saveState(path string, st state) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// progress shows one file's upload: a bar on a terminal, otherwise a
// line for every chunk sent.
type progress struct {
	bar  *mpb.Bar
	out  io.Writer
	name string
	size int64
	mu   sync.Mutex
	sent int64 // bytes confirmed, for plain lines
}

func newProgress(bars *mpb.Progress, out io.Writer, path string) *progress {
	p := &progress{out: out, name: filepath.Base(path)}
	if bars != nil {
		p.bar = bars.AddBar(0,
			mpb.PrependDecorators(decor.Name(p.name, decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WCSyncSpace),
				decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), "done")),
		)
	}
	return p
}

func (p *progress) start(size int64) {
	p.size = size
	if p.bar != nil {
		p.bar.SetTotal(size, false)
	}
}

// set says the server holds n bytes.
func (p *progress) set(n int64) {
	if p.bar != nil {
		p.bar.SetCurrent(n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > p.sent || n == 0 {
		p.sent = n
		pct := int64(100)
		if p.size > 0 {
			pct = n * 100 / p.size
		}
		fmt.Fprintf(p.out, "%s: %d of %d bytes (%d%%)\n", p.name, n, p.size, pct)
	}
}

// reader counts what r yields into the progress, from offset off.
func (p *progress) reader(r io.Reader, off int64) io.Reader {
	if p.bar != nil {
		p.bar.SetCurrent(off)
		if pr, err := p.bar.ProxyReader(r); err == nil {
			return pr
		}
	}
	return &plainReader{r: r, p: p, at: off}
}

// plainReader writes a line when a chunk has been read whole.
type plainReader struct {
	r  io.Reader
	p  *progress
	at int64
}

func (pr *plainReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.at += int64(n)
	if errors.Is(err, io.EOF) {
		pr.p.set(pr.at)
	}
	return n, err
}

// end finishes the file's bar or line.
func (p *progress) end(err error) {
	if p.bar == nil {
		return
	}
	if err != nil {
		p.bar.Abort(false)
		return
	}
	p.bar.SetTotal(-1, true)
}
