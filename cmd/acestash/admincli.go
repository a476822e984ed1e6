package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// The admin commands talk to a running server's admin API, so they work
// while it runs, whatever its store:
//
//	acestash files ls [--account KEY] [--offset N] [--limit N]
//	acestash files info SLUG
//	acestash files rm SLUG --reason admin|copyright
//	acestash accounts ls
//	acestash accounts create --name NAME [settings]
//	acestash accounts set KEY [settings]
//	acestash accounts rotate-token KEY
//	acestash accounts rm KEY
//	acestash mirrors ls
//	acestash mirrors drain ID [--to IDS] [--rate BYTES] [--wait]
//	acestash mirrors rebuild ID [--rate BYTES] [--wait]
//	acestash mirrors pause|resume|cancel|wait ID
//
// Each prints the server's JSON answer.

const adminUsage = `admin commands (they talk to a running server):
  acestash files ls [--account KEY] [--offset N] [--limit N]
  acestash files info SLUG
  acestash files rm SLUG --reason admin|copyright
  acestash accounts ls
  acestash accounts create --name NAME [settings]
  acestash accounts set KEY [settings]
  acestash accounts rotate-token KEY
  acestash accounts rm KEY
  acestash mirrors ls
  acestash mirrors drain ID [--to 4,5] [--rate BYTES] [--share 0.25] [--wait]
  acestash mirrors rebuild ID [--rate BYTES] [--share 0.25] [--wait]
  acestash mirrors pause|resume|cancel ID
  acestash mirrors wait ID       follow a job until it ends (exit 0 when done)
  acestash mirrors forget ID --config FILE   strike a mirror that is gone for good from
                                 every record (server stopped for the embedded store)
settings: --name, --mirrors 1,2, --default-mirrors 1, --max-mirrors N,
  --max-file-size BYTES, --quota-bytes BYTES, --quota-files N, --rooms A,B,
  --default-expiry 7d, --max-expiry 30d (durations: 90m, 12h, 7d, 2w; "" clears)
every command: --server URL (ACESTASH_SERVER, default http://127.0.0.1:8080),
  --admin-token TOKEN (ACESTASH_ADMIN_TOKEN)`

// adminClient calls the admin API.
type adminClient struct {
	server, token string
	out           io.Writer
}

// adminCmd begins the admin command args of group (files, accounts or
// mirrors): its client, printing to stdout, and its flags, which hold
// --server and --admin-token already.
func adminCmd(group string, args []string, stdout io.Writer) (*adminClient, *flag.FlagSet, error) {
	if len(args) == 0 {
		return nil, nil, errors.New(adminUsage)
	}
	c := &adminClient{out: stdout}
	fs := flag.NewFlagSet(group+" "+args[0], flag.ContinueOnError)
	adminFlags(fs, c)
	return c, fs, nil
}

// isTerminal reports whether w is a terminal, where progress is shown as
// bars rather than lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// adminFlags adds --server and --admin-token to fs.
func adminFlags(fs *flag.FlagSet, c *adminClient) {
	def := os.Getenv("ACESTASH_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&c.server, "server", def, "the server's `URL` (ACESTASH_SERVER)")
	fs.StringVar(&c.token, "admin-token", os.Getenv("ACESTASH_ADMIN_TOKEN"), "the server's admin_token (ACESTASH_ADMIN_TOKEN)")
}

// parseAll parses flags that may come before, between or after the
// positional arguments, and returns those.
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// call sends method path with query and, if body is not nil, body as JSON,
// and prints the JSON answer; an answer other than 2xx is an error with
// the server's words.
func (c *adminClient) call(method, path string, query url.Values, body any) error {
	b, err := c.do(method, path, query, body)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		return fmt.Errorf("%s %s: the answer is not JSON: %w", method, path, err)
	}
	pretty.WriteByte('\n')
	_, err = c.out.Write(pretty.Bytes())
	return err
}

// do sends method path with query and, if body is not nil, body as JSON,
// and returns the answer; an answer other than 2xx is an error with the
// server's words.
func (c *adminClient) do(method, path string, query url.Values, body any) ([]byte, error) {
	if c.token == "" {
		return nil, errors.New("no admin token: pass --admin-token or set ACESTASH_ADMIN_TOKEN")
	}
	u := strings.TrimRight(c.server, "/") + "/api/admin" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	return b, nil
}

func filesCmd(args []string, stdout io.Writer) error {
	c, fs, err := adminCmd("files", args, stdout)
	if err != nil {
		return err
	}
	switch args[0] {
	case "ls":
		account := fs.String("account", "", "list only this account's files (its api_key)")
		offset := fs.Int("offset", 0, "skip this many files")
		limit := fs.Int("limit", 100, "list at most this many files (up to 1000)")
		if err := noArgs(fs, args[1:]); err != nil {
			return err
		}
		q := url.Values{"offset": {strconv.Itoa(*offset)}, "limit": {strconv.Itoa(*limit)}}
		if *account != "" {
			q.Set("account", *account)
		}
		return c.call(http.MethodGet, "/files", q, nil)
	case "info":
		slug, err := oneArg(fs, args[1:], "SLUG")
		if err != nil {
			return err
		}
		return c.call(http.MethodGet, "/files/"+url.PathEscape(slug), nil, nil)
	case "rm":
		reason := fs.String("reason", "", "why: admin or copyright (required)")
		slug, err := oneArg(fs, args[1:], "SLUG")
		if err != nil {
			return err
		}
		if *reason != "admin" && *reason != "copyright" {
			return errors.New("files rm: --reason admin or --reason copyright is required")
		}
		return c.call(http.MethodDelete, "/files/"+url.PathEscape(slug), url.Values{"reason": {*reason}}, nil)
	}
	return fmt.Errorf("unknown command files %s\n%s", args[0], adminUsage)
}

func accountsCmd(args []string, stdout io.Writer) error {
	c, fs, err := adminCmd("accounts", args, stdout)
	if err != nil {
		return err
	}
	switch args[0] {
	case "ls":
		if err := noArgs(fs, args[1:]); err != nil {
			return err
		}
		return c.call(http.MethodGet, "/accounts", nil, nil)
	case "create":
		fields := settingFlags(fs)
		if err := noArgs(fs, args[1:]); err != nil {
			return err
		}
		body := fields(fs)
		if body["name"] == nil || body["name"] == "" {
			return errors.New("accounts create: --name is required")
		}
		return c.call(http.MethodPost, "/accounts", nil, body)
	case "set":
		fields := settingFlags(fs)
		key, err := oneArg(fs, args[1:], "KEY")
		if err != nil {
			return err
		}
		body := fields(fs)
		if len(body) == 0 {
			return errors.New("accounts set: name at least one setting to change")
		}
		return c.call(http.MethodPatch, "/accounts/"+url.PathEscape(key), nil, body)
	case "rotate-token":
		key, err := oneArg(fs, args[1:], "KEY")
		if err != nil {
			return err
		}
		return c.call(http.MethodPost, "/accounts/"+url.PathEscape(key)+"/rotate-token", nil, nil)
	case "rm":
		key, err := oneArg(fs, args[1:], "KEY")
		if err != nil {
			return err
		}
		return c.call(http.MethodDelete, "/accounts/"+url.PathEscape(key), nil, nil)
	}
	return fmt.Errorf("unknown command accounts %s\n%s", args[0], adminUsage)
}

// settingFlags adds the account settings to fs; the function it returns
// gives the ones that were set, as the admin API's JSON fields.
func settingFlags(fs *flag.FlagSet) func(*flag.FlagSet) map[string]any {
	fs.String("name", "", "display name")
	fs.String("mirrors", "", "mirror ids the account may use, comma-separated (empty: all)")
	fs.String("default-mirrors", "", "mirror ids listed as default_mirrors, comma-separated")
	fs.Int("max-mirrors", 0, "most mirrors one upload may select (0: no limit)")
	fs.Int64("max-file-size", 0, "largest file in bytes (0: the server's limit)")
	fs.Int64("quota-bytes", 0, "most bytes of files stored (0: no quota)")
	fs.Int64("quota-files", 0, "most files stored (0: no quota)")
	fs.String("rooms", "", "Rocket.Chat rooms the account may post to, comma-separated (empty: all)")
	fs.String("default-expiry", "", "how long a file is kept when its upload does not say: 12h, 7d, 2w (empty: forever)")
	fs.String("max-expiry", "", "the longest expiry an upload may ask for (empty: no limit)")
	return func(fs *flag.FlagSet) map[string]any {
		out := map[string]any{}
		fs.Visit(func(f *flag.Flag) {
			name := strings.ReplaceAll(f.Name, "-", "_")
			v := f.Value.(flag.Getter).Get()
			switch f.Name {
			case "server", "admin-token":
				return
			case "mirrors", "default-mirrors", "rooms":
				list := []string{}
				for _, s := range strings.Split(v.(string), ",") {
					if s = strings.TrimSpace(s); s != "" {
						list = append(list, s)
					}
				}
				out[name] = list
			default:
				out[name] = v
			}
		})
		return out
	}
}

// noArgs parses args, which may hold flags only.
func noArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseAll(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%s: unexpected %q", fs.Name(), pos)
	}
	return nil
}

// oneArg parses args, which hold flags and one positional argument.
func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parseAll(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%s: want one %s, got %q", fs.Name(), what, pos)
	}
	return pos[0], nil
}
