// Command acestash is a self-hosted chunked storage server that speaks the
// MirrorAce API v1, Mirage's storage service and Rocket.Chat's rooms.upload.
//
//	acestash serve [--config FILE]
//	acestash account create --name NAME [--config FILE]
//	acestash probe [URL]
//	acestash files ls|info|rm …, acestash accounts ls|create|set|rotate-token|rm …
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/acestash/acestash/api/reqid"
	"github.com/acestash/acestash/store"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "acestash:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  acestash serve [--config FILE]
  acestash account create --name NAME [--config FILE]
  acestash probe [URL]     exit 0 if URL (default http://127.0.0.1:8080/readyz) answers 200
  acestash migrate --from STORE --to STORE [--resume]
                           copy the store (server stopped); STORE is bolt:PATH or a redis URL
  acestash backup FILE [--server URL]   a backup of the running server's store (admin API)
  acestash restore FILE [--config FILE] [--resume]   load a backup into the empty store
                           the config names (server stopped)

The configuration file may also be named by ACESTASH_CONFIG.

` + uploadUsage + `

` + adminUsage

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch {
	case args[0] == "serve":
		return serveCmd(args[1:], stderr)
	case len(args) >= 2 && args[0] == "account" && args[1] == "create":
		return accountCreateCmd(args[2:], stdout, stderr)
	case args[0] == "files":
		return filesCmd(args[1:], stdout)
	case args[0] == "accounts":
		return accountsCmd(args[1:], stdout)
	case args[0] == "upload":
		return uploadCmd(args[1:], stdout, stderr)
	case args[0] == "mirrors":
		return mirrorsCmd(args[1:], stdout)
	case args[0] == "migrate":
		return migrateCmd(args[1:], stdout, stderr)
	case args[0] == "backup":
		return backupCmd(args[1:], stdout)
	case args[0] == "restore":
		return restoreCmd(args[1:], stdout)
	case args[0] == "probe":
		return probeCmd(args[1:], stdout)
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", strings.Join(args, " "), usage)
}

// configStore parses the args of a command that works on the store while
// no server runs: the flags of fs, --config (which it adds), and one
// positional argument named what, or none if what is "". It loads the
// configuration and opens the store it names; the caller closes it. Its
// errors begin with the command's name.
func configStore(ctx context.Context, fs *flag.FlagSet, args []string, what string) (string, Config, store.Store, error) {
	cfgPath := configFlag(fs)
	var arg string
	var err error
	if what == "" {
		err = noArgs(fs, args)
	} else {
		arg, err = oneArg(fs, args, what)
	}
	if err != nil {
		return "", Config{}, nil, err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return "", Config{}, nil, fmt.Errorf("%s: %w", fs.Name(), err)
	}
	st, err := openStore(ctx, cfg, time.Now)
	if err != nil {
		return "", Config{}, nil, fmt.Errorf("%s: %w", fs.Name(), err)
	}
	return arg, cfg, st, nil
}

// printJSON writes v to w as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("ACESTASH_CONFIG"), "YAML configuration `file` (default: none, built-in defaults)")
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// heapLimit is the Go runtime's soft memory limit unless GOMEMLIMIT sets one.
const heapLimit = 32 << 20

// gcPercent is the Go runtime's GOGC unless the environment sets one.
const gcPercent = 50

func serveCmd(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `file` until the server stops (for go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	slog.SetDefault(slog.New(reqid.Handler(log.Handler()))) // for the few lines logged outside a component
	if os.Getenv("GOMEMLIMIT") == "" {
		// Upload pieces live outside the Go heap (chunks' pool bounds
		// them); what is left is small, and a soft limit makes the runtime
		// hand memory back promptly after a burst instead of keeping it.
		debug.SetMemoryLimit(heapLimit)
	}
	if os.Getenv("GOGC") == "" {
		// The heap holds requests' small buffers, not their bytes: a
		// collection costs little, and the heap a burst of requests leaves
		// behind shrinks by a quarter.
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(ctx, cfg, log, time.Now)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return a.serve(ctx, ln)
}

func accountCreateCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("account create", flag.ContinueOnError)
	name := fs.String("name", "", "account `name` (required)")
	ctx := context.Background()
	_, _, st, err := configStore(ctx, fs, args, "")
	if err != nil {
		return err
	}
	defer st.Close()
	if *name == "" {
		return errors.New("account create: --name is required")
	}
	acct, token, err := createAccount(ctx, st, *name)
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]string{
		"name": acct.Name, "api_key": acct.APIKey, "api_token": token,
		"user_id": acct.UserID, "username": acct.Username,
	})
}
