package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/acestash/acestash/store/redisstore/redistest"
)

// TestVolatileRedisRefused starts `acestash serve` on a Redis that evicts
// keys and on one that keeps nothing across a restart: each is refused at
// start-up with the setting named, and starts with redis_allow_volatile.
func TestVolatileRedisRefused(t *testing.T) {
	for _, c := range []struct {
		options []string
		want    string
	}{
		{[]string{"--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"}, `maxmemory-policy is "allkeys-lru"`},
		{[]string{"--appendonly", "no", "--save", ""}, "neither appendonly nor save is set"},
	} {
		srv := redistest.StartWith(t, c.options...)
		cfg := testConfig(t, embedded)
		cfg.RedisURL, cfg.Listen = srv.URL, freeListen(t)
		out, err := exec.CommandContext(t.Context(), binary(t), "serve", "--config", writeConfig(t, cfg)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "redis_allow_volatile: true") {
			t.Fatalf("serve on a Redis started with %q: %v\n%s\nwant it refused, naming %s", c.options, err, out, c.want)
		}

		cfg.Listen, cfg.PublicURL = "", ""
		cfg.RedisAllowVolatile = true
		p := startProc(t, cfg)
		if a := postForm(t, p.URL+"/api/v1/file/upload", creds(testKey, testToken)); a.env.Status != "success" {
			t.Fatalf("with redis_allow_volatile: file/upload: %s", a)
		}
		p.stop()
	}
}
