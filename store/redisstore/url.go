package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// newClient makes the client a store URL names; see Open for the forms.
func newClient(rawURL string) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, errors.New("not a URL")
	}
	base, mode, _ := strings.Cut(strings.ToLower(scheme), "+")
	if base != "redis" && base != "rediss" && base != "unix" {
		return nil, fmt.Errorf("unknown scheme %q", scheme)
	}
	switch mode {
	case "":
		opt, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(opt), nil
	case "cluster":
		u, err := seedURL(base, rest, "")
		if err != nil {
			return nil, err
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return nil, fmt.Errorf("a cluster has only database 0, not %q", p)
		}
		u.Path = ""
		opt, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, err
		}
		cc := redis.NewClusterClient(opt)
		cc.AddHook(reloadOnFailure{cc})
		return cc, nil
	case "sentinel":
		u, err := seedURL(base, rest, "master_name")
		if err != nil {
			return nil, err
		}
		opt, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(opt), nil
	default:
		return nil, fmt.Errorf("unknown scheme %q", scheme)
	}
}

// seedURL turns the part after "scheme://" of a multi-host URL,
// [userinfo@]host1:port1,host2:port2[/path][?query], into a go-redis URL
// with host1 as its host and the others as addr parameters. If firstPath
// names a parameter, the first path element moves into it (the Sentinel
// master name) and the rest of the path stays.
func seedURL(scheme, rest, firstPath string) (*url.URL, error) {
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hostlist := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostlist = authority[:i+1], authority[i+1:]
	}
	hosts := strings.Split(hostlist, ",")
	if hosts[0] == "" {
		return nil, errors.New("no host")
	}
	u, err := url.Parse(scheme + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	for _, h := range hosts[1:] {
		if h == "" {
			return nil, fmt.Errorf("empty host in %q", hostlist)
		}
		q.Add("addr", h)
	}
	if firstPath != "" {
		name, path, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if name == "" {
			return nil, errors.New("no master name in the path")
		}
		q.Set(firstPath, name)
		u.Path, u.RawPath = "/"+path, ""
	}
	u.RawQuery = q.Encode()
	return u, nil
}

// reloadOnFailure asks a cluster client to read the cluster's slots again
// when a command fails without a reply from Redis (the node is gone) or
// with CLUSTERDOWN. go-redis reloads them by itself only on a MOVED reply
// and once a minute, so without this a node whose master was killed kept
// failing for a minute after a replica had taken over.
type reloadOnFailure struct{ cc *redis.ClusterClient }

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook {
	return next
}

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.check(c.Err())
		}
		return err
	}
}

// check reloads the slots (in the background, at most once at a time) if
// err says the topology may have changed.
func (h reloadOnFailure) check(err error) {
	var reply redis.Error
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return
	case errors.As(err, &reply) && !strings.HasPrefix(reply.Error(), "CLUSTERDOWN"):
		return
	}
	h.cc.ReloadState(context.Background())
}
