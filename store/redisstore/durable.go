package redisstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CheckDurable reports, as an error naming the setting, a Redis that can
// lose acestash's records: one whose maxmemory-policy lets it evict keys
// when memory runs out (anything but noeviction), or that keeps neither an
// append-only file nor RDB snapshots, so a restart empties it. On a
// Cluster every node is checked, replicas too, since any may become a
// master.
func (s *Store) CheckDurable(ctx context.Context) error {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			return checkDurable(ctx, c)
		})
	}
	return checkDurable(ctx, s.rdb)
}

// checkDurable checks one server's settings.
func checkDurable(ctx context.Context, c redis.Cmdable) error {
	addr := "redis"
	if cl, ok := c.(*redis.Client); ok {
		addr = "redis at " + cl.Options().Addr
	}
	const hatch = "; or set redis_allow_volatile: true to run acestash on it anyway"
	conf := map[string]string{}
	for _, name := range []string{"maxmemory-policy", "appendonly", "save"} {
		v, err := c.ConfigGet(ctx, name).Result()
		if err != nil {
			return fmt.Errorf("%s: cannot read %s to check that Redis keeps what it is given (CONFIG GET: %w)%s", addr, name, err, hatch)
		}
		conf[name] = v[name]
	}
	if p := conf["maxmemory-policy"]; p != "noeviction" {
		return fmt.Errorf("%s: maxmemory-policy is %q, which lets Redis delete acestash's records when memory runs out; "+
			"set maxmemory-policy noeviction%s", addr, p, hatch)
	}
	if conf["appendonly"] != "yes" && strings.TrimSpace(conf["save"]) == "" {
		return fmt.Errorf("%s: neither appendonly nor save is set, so a restart loses every record; "+
			"set appendonly yes (or save, for RDB snapshots)%s", addr, hatch)
	}
	return nil
}
