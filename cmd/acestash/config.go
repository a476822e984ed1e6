package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// Config is acestash's configuration file. Every key is documented in the
// README; the zero value of a key means its default.
type Config struct {
	Listen    string `yaml:"listen"`
	PublicURL string `yaml:"public_url"`
	DataDir   string `yaml:"data_dir"`
	// RedisURL selects the Redis store; empty uses the embedded one.
	RedisURL string `yaml:"redis_url"`
	// RedisAllowVolatile starts on a Redis that may evict or forget
	// records (see redisstore.CheckDurable), which is otherwise refused.
	RedisAllowVolatile bool `yaml:"redis_allow_volatile"`
	SlugLength         int  `yaml:"slug_length"`
	// WriteQuorum is how many selected mirrors must hold a file; 0 is all.
	WriteQuorum   int           `yaml:"write_quorum"`
	MirrorTimeout time.Duration `yaml:"mirror_timeout"`
	// LagLimit is how long an upload waits for a mirror behind the write
	// quorum; MirrorStall how long any mirror operation may go without
	// progress.
	LagLimit    time.Duration `yaml:"lag_limit"`
	MirrorStall time.Duration `yaml:"mirror_stall"`
	// HedgeAfter is how long a download waits for a mirror's first byte
	// before it asks the next one too; 0 derives it per mirror.
	HedgeAfter time.Duration `yaml:"hedge_after"`
	// RedirectExpiry is how long the URL a redirected download is sent to
	// stays valid.
	RedirectExpiry time.Duration `yaml:"redirect_expiry"`
	// LeaseTime is how long an upload's lease lasts between renewals.
	LeaseTime time.Duration `yaml:"lease_time"`
	// RepairInterval is how often files missing a copy are repaired.
	RepairInterval time.Duration `yaml:"repair_interval"`
	// ScrubInterval is how often every copy is read and checked;
	// ScrubShare the most of the time the scrubber spends reading.
	ScrubInterval time.Duration `yaml:"scrub_interval"`
	ScrubShare    float64       `yaml:"scrub_share"`
	// Janitor removes what no record names from the mirrors.
	Janitor        JanitorConfig `yaml:"janitor"`
	HealthInterval time.Duration `yaml:"health_interval"`
	LogLevel       string        `yaml:"log_level"`
	// AdminToken turns the admin API on; it is the bearer token it demands.
	AdminToken string `yaml:"admin_token"`
	// MetricsToken, when set, is the bearer token GET /metrics demands.
	MetricsToken string `yaml:"metrics_token"`
	// ShutdownGrace is how long requests in flight may run after SIGTERM.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`

	Webhooks []WebhookConfig `yaml:"webhooks"`
	Mirrors  []MirrorConfig  `yaml:"mirrors"`
	Accounts []AccountConfig `yaml:"accounts"`
	Limits   Limits          `yaml:"limits"`
	Raw      RawConfig       `yaml:"raw"`
	Remote   RemoteConfig    `yaml:"remote"`
	Tus      TusConfig       `yaml:"tus"`

	RocketChat RocketChatConfig `yaml:"rocketchat"`
}

// RocketChatConfig is Rocket.Chat's rooms.upload and rooms.media.
type RocketChatConfig struct {
	// UnconfirmedTTL is how long a file posted with rooms.media waits for
	// rooms.mediaConfirm before it is removed. Default 24h.
	UnconfirmedTTL time.Duration `yaml:"unconfirmed_ttl"`
}

// TusConfig is the tus endpoint at /files/.
type TusConfig struct {
	// CORSOrigins are the browser origins allowed to upload, such as
	// https://app.example.com; "*" allows any. Default: any.
	CORSOrigins []string `yaml:"cors_origins"`
}

// WebhookConfig is a receiver of events.
type WebhookConfig struct {
	URL    string   `yaml:"url"`
	Secret string   `yaml:"secret"`
	Events []string `yaml:"events"` // file.completed, file.removed; empty: both
}

// RawConfig is Mirage's storage service: POST /upload, GET /uploads/<id>.
type RawConfig struct {
	MaxSize int64 `yaml:"max_size"` // default 24 MiB
	// RequireKey demands an account's api_key (?key= or Authorization:
	// Bearer); otherwise uploads belong to AnonymousAccount.
	RequireKey       bool          `yaml:"require_key"`
	AnonymousAccount string        `yaml:"anonymous_account"` // an api_key; default: the first account
	TTL              time.Duration `yaml:"ttl"`               // 0 keeps files forever
}

// JanitorConfig says how often the mirrors are swept for objects and
// uploads no record names, and how old those must be to go.
type JanitorConfig struct {
	Interval time.Duration `yaml:"interval"` // default 1h
	Grace    time.Duration `yaml:"grace"`    // default 24h
}

// RemoteConfig is upload/remote.
type RemoteConfig struct {
	Enabled        *bool         `yaml:"enabled"` // default true
	AllowCIDRs     []string      `yaml:"allow_cidrs"`
	MaxConcurrent  int           `yaml:"max_concurrent"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	Timeout        time.Duration `yaml:"timeout"`
	// resolver, when set, resolves host names instead of the system's;
	// tests use it to keep DNS queries off the network.
	resolver *net.Resolver
}

// MirrorConfig is one storage target.
type MirrorConfig struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	Type string `yaml:"type"` // fs or s3
	// fs
	Path string `yaml:"path"`
	// s3
	Endpoint  string `yaml:"endpoint"`
	Bucket    string `yaml:"bucket"`
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	Secure    bool   `yaml:"secure"`
	Region    string `yaml:"region"`
	// Redirect sends downloads of files anyone may fetch to the mirror
	// itself, at PublicEndpoint (default: Endpoint).
	Redirect       bool   `yaml:"redirect"`
	PublicEndpoint string `yaml:"public_endpoint"`
}

// publicOrigin is the origin clients reach a redirect mirror at.
func (m MirrorConfig) publicOrigin() string {
	if strings.Contains(m.PublicEndpoint, "://") {
		if u, err := url.Parse(m.PublicEndpoint); err == nil {
			return u.Scheme + "://" + u.Host
		}
	}
	if m.Secure {
		return "https://" + m.PublicEndpoint
	}
	return "http://" + m.PublicEndpoint
}

// AccountConfig is an account the operator declares; it is written to the
// store at start-up.
type AccountConfig struct {
	store.Settings `yaml:",inline"`
	APIKey         string `yaml:"api_key"`
	APIToken       string `yaml:"api_token"`
	UserID         string `yaml:"user_id"`
	Username       string `yaml:"username"`
	DisplayName    string `yaml:"display_name"`
}

// Limits bound what clients may send.
type Limits struct {
	MaxFileSize  int64         `yaml:"max_file_size"`
	MaxChunkSize int64         `yaml:"max_chunk_size"`
	SessionIdle  time.Duration `yaml:"session_idle"`
	// PieceSize and Pieces bound the memory uploads use: bytes go to the
	// mirrors in pieces of PieceSize, and a node holds at most Pieces.
	PieceSize int `yaml:"piece_size"`
	Pieces    int `yaml:"pieces"`
	// MinBodyRate (bytes/s) over BodyWindow: slower request bodies are
	// cut; a negative rate turns the check off.
	MinBodyRate int64         `yaml:"min_body_rate"`
	BodyWindow  time.Duration `yaml:"body_window"`
	// HeaderTimeout bounds reading a request's headers; IdleTimeout how
	// long a kept-alive connection may wait for its next request.
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
}

// envRef matches ${NAME} in a config file.
var envRef = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// loadConfig reads the file at path (none if empty), applies the
// environment's overrides and fills in defaults.
func loadConfig(path string) (Config, error) {
	var cfg Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		b, err = expandEnv(b)
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // empty file: defaults
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	for env, dst := range map[string]*string{
		"ACESTASH_LISTEN":      &cfg.Listen,
		"ACESTASH_PUBLIC_URL":  &cfg.PublicURL,
		"ACESTASH_DATA_DIR":    &cfg.DataDir,
		"ACESTASH_REDIS_URL":   &cfg.RedisURL,
		"ACESTASH_ADMIN_TOKEN": &cfg.AdminToken,
	} {
		if v, ok := os.LookupEnv(env); ok {
			*dst = v
		}
	}
	return cfg, cfg.setDefaults()
}

// expandEnv replaces each ${NAME} in a config file with the environment
// variable NAME, so secrets can stay out of the file. Comment lines are
// left alone; a variable that is not set is an error; a lone $ stays.
func expandEnv(b []byte) ([]byte, error) {
	var missing []string
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, line := range lines {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			continue
		}
		lines[i] = envRef.ReplaceAllFunc(line, func(m []byte) []byte {
			name := string(m[2 : len(m)-1])
			v, ok := os.LookupEnv(name)
			if !ok {
				missing = append(missing, name)
			}
			return []byte(v)
		})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("environment variables not set: %s", strings.Join(missing, ", "))
	}
	return bytes.Join(lines, nil), nil
}

func (c *Config) setDefaults() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.SlugLength == 0 {
		c.SlugLength = chunks.DefaultSlugLength
	}
	if c.MirrorTimeout == 0 {
		c.MirrorTimeout = 10 * time.Minute
	}
	if c.LagLimit == 0 {
		c.LagLimit = chunks.DefaultLagLimit
	}
	if c.MirrorStall == 0 {
		c.MirrorStall = chunks.DefaultMirrorStall
	}
	if c.LagLimit < 0 || c.MirrorStall < 0 {
		return fmt.Errorf("config: lag_limit and mirror_stall may not be negative")
	}
	if c.HedgeAfter < 0 {
		return fmt.Errorf("config: hedge_after may not be negative")
	}
	if c.RedirectExpiry == 0 {
		c.RedirectExpiry = 5 * time.Minute
	}
	if c.RedirectExpiry < time.Second || c.RedirectExpiry > 7*24*time.Hour {
		return fmt.Errorf("config: redirect_expiry %v is outside 1s..168h (S3's limits)", c.RedirectExpiry)
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = chunks.DefaultLeaseTime
	}
	if c.LeaseTime < time.Second {
		return fmt.Errorf("config: lease_time %v is under 1s", c.LeaseTime)
	}
	if c.RepairInterval == 0 {
		c.RepairInterval = time.Minute
	}
	if c.RepairInterval < 0 {
		return fmt.Errorf("config: repair_interval %v is negative", c.RepairInterval)
	}
	if c.ScrubInterval == 0 {
		c.ScrubInterval = 24 * time.Hour
	}
	if c.ScrubShare == 0 {
		c.ScrubShare = 0.1
	}
	if c.ScrubInterval < 0 || c.ScrubShare < 0 || c.ScrubShare > 1 {
		return fmt.Errorf("config: scrub_interval must be positive and scrub_share within 0..1")
	}
	if c.Janitor.Interval == 0 {
		c.Janitor.Interval = time.Hour
	}
	if c.Janitor.Grace == 0 {
		c.Janitor.Grace = 24 * time.Hour
	}
	if c.Janitor.Interval < 0 || c.Janitor.Grace < 0 {
		return fmt.Errorf("config: janitor.interval and janitor.grace may not be negative")
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 15 * time.Second
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.Limits.MaxFileSize == 0 {
		c.Limits.MaxFileSize = chunks.DefaultMaxFileSize
	}
	if c.Limits.MaxChunkSize == 0 {
		c.Limits.MaxChunkSize = chunks.DefaultMaxChunkSize
	}
	if c.Limits.SessionIdle == 0 {
		c.Limits.SessionIdle = 24 * time.Hour
	}
	if c.Limits.MinBodyRate == 0 {
		c.Limits.MinBodyRate = 1024
	}
	if c.Limits.BodyWindow == 0 {
		c.Limits.BodyWindow = 30 * time.Second
	}
	if c.Limits.HeaderTimeout == 0 {
		c.Limits.HeaderTimeout = 10 * time.Second
	}
	if c.Limits.IdleTimeout == 0 {
		c.Limits.IdleTimeout = time.Minute
	}
	if c.Limits.BodyWindow < 0 || c.Limits.HeaderTimeout < 0 || c.Limits.IdleTimeout < 0 {
		return fmt.Errorf("config: limits.body_window, header_timeout and idle_timeout may not be negative")
	}
	if c.Raw.MaxSize == 0 {
		c.Raw.MaxSize = 24 << 20
	}
	if c.RocketChat.UnconfirmedTTL == 0 {
		c.RocketChat.UnconfirmedTTL = 24 * time.Hour
	}
	if c.RocketChat.UnconfirmedTTL < 0 {
		return fmt.Errorf("config: rocketchat.unconfirmed_ttl may not be negative")
	}
	if c.Tus.CORSOrigins == nil {
		c.Tus.CORSOrigins = []string{"*"}
	}
	if c.Remote.Enabled == nil {
		on := true
		c.Remote.Enabled = &on
	}
	if c.Remote.MaxConcurrent == 0 {
		c.Remote.MaxConcurrent = 4
	}
	if c.Remote.ConnectTimeout == 0 {
		c.Remote.ConnectTimeout = 10 * time.Second
	}
	if c.Remote.Timeout == 0 {
		c.Remote.Timeout = 6 * time.Hour
	}
	if len(c.Mirrors) == 0 {
		c.Mirrors = []MirrorConfig{{ID: "1", Name: "local", Type: "fs", Path: filepath.Join(c.DataDir, "mirrors", "1")}}
	}
	for i, m := range c.Mirrors {
		if m.ID == "" {
			return fmt.Errorf("config: mirrors[%d] has no id", i)
		}
		switch m.Type {
		case "fs":
			if m.Path == "" {
				return fmt.Errorf("config: mirror %s: type fs needs a path", m.ID)
			}
			if m.Redirect || m.PublicEndpoint != "" {
				return fmt.Errorf("config: mirror %s: redirect and public_endpoint are for s3 mirrors; an fs mirror's files are served by acestash", m.ID)
			}
		case "s3":
			if m.Endpoint == "" || m.Bucket == "" {
				return fmt.Errorf("config: mirror %s: type s3 needs endpoint and bucket", m.ID)
			}
			if m.Redirect && m.PublicEndpoint == "" {
				c.Mirrors[i].PublicEndpoint = m.Endpoint
			}
		default:
			return fmt.Errorf("config: mirror %s: type %q is not fs or s3", m.ID, m.Type)
		}
	}
	for i, a := range c.Accounts {
		if a.APIKey == "" || a.APIToken == "" {
			return fmt.Errorf("config: accounts[%d] (%s) needs api_key and api_token", i, a.Name)
		}
	}
	if c.SlugLength < 6 || c.SlugLength > 64 {
		return fmt.Errorf("config: slug_length %d is outside 6..64", c.SlugLength)
	}
	for _, cidr := range c.Remote.AllowCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return fmt.Errorf("config: remote.allow_cidrs: %w", err)
		}
	}
	for i, a := range c.Accounts {
		// Mirror ids are not checked: an account may keep a mirror taken
		// out of the configuration.
		if err := a.Validate(nil); err != nil {
			return fmt.Errorf("config: accounts[%d] (%s): %w", i, a.Name, err)
		}
	}
	if c.Raw.MaxSize < 0 || c.Raw.TTL < 0 {
		return fmt.Errorf("config: raw.max_size and raw.ttl may not be negative")
	}
	for i, w := range c.Webhooks {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: webhooks[%d]: url %q is not an http or https URL", i, w.URL)
		}
		if w.Secret == "" {
			return fmt.Errorf("config: webhooks[%d]: a secret is required (it signs every event)", i)
		}
		for _, e := range w.Events {
			if e != chunks.EventCompleted && e != chunks.EventRemoved {
				return fmt.Errorf("config: webhooks[%d]: event %q is not %s or %s", i, e, chunks.EventCompleted, chunks.EventRemoved)
			}
		}
	}
	if c.WriteQuorum < 0 {
		return fmt.Errorf("config: write_quorum %d is negative", c.WriteQuorum)
	}
	return nil
}
