package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeFleet checks docker-compose.yml's fleet profile against the
// files it mounts, where no Docker engine runs it: three acestash nodes on
// deploy/fleet.yml, whose Redis seeds are cluster nodes of the profile,
// HAProxy with deploy/haproxy.cfg (which haproxy itself checks), six Redis
// nodes in cluster mode that keep their data and never evict, joined with
// one replica per master, and an erasure-coded MinIO on four drives.
func TestComposeFleet(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Profiles    []string `yaml:"profiles"`
			Command     []string `yaml:"command"`
			Volumes     []string `yaml:"volumes"`
			Networks    yaml.Node
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	fleet := map[string]bool{}
	ips := map[string]bool{}
	for name, s := range compose.Services {
		if !slices.Contains(s.Profiles, "fleet") {
			continue
		}
		fleet[name] = true
		cmd := strings.Join(s.Command, " ")
		switch {
		case strings.HasPrefix(name, "acestash"):
			if !slices.Contains(s.Volumes, "./deploy/fleet.yml:/etc/acestash/acestash.yml:ro") {
				t.Errorf("%s does not run deploy/fleet.yml: %v", name, s.Volumes)
			}
		case name == "redis-cluster-create":
			if !strings.Contains(cmd, "--cluster-replicas 1") {
				t.Errorf("the cluster is not created with a replica per master: %q", cmd)
			}
			defer func() {
				for ip := range ips {
					if !strings.Contains(cmd, ip) {
						t.Errorf("the cluster is created without %s: %q", ip, cmd)
					}
				}
			}()
		case strings.HasPrefix(name, "redis-c"):
			for _, want := range []string{"--cluster-enabled yes", "--appendonly yes", "--maxmemory-policy noeviction"} {
				if !strings.Contains(cmd, want) {
					t.Errorf("%s: %q lacks %s", name, cmd, want)
				}
			}
			var nets map[string]struct {
				IP string `yaml:"ipv4_address"`
			}
			if err := s.Networks.Decode(&nets); err != nil || nets["fleet"].IP == "" {
				t.Fatalf("%s has no fixed address on the fleet network: %v", name, err)
			}
			ips[nets["fleet"].IP+":6379"] = true
		case name == "minio-ec":
			if !strings.Contains(cmd, "/data{1...4}") || len(s.Volumes) != 4 {
				t.Errorf("minio-ec is not erasure-coded over four volumes: %q %v", cmd, s.Volumes)
			}
		case name == "haproxy":
			if !slices.Contains(s.Volumes, "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro") {
				t.Errorf("haproxy does not run deploy/haproxy.cfg: %v", s.Volumes)
			}
		}
	}
	for _, want := range []string{"acestash1", "acestash2", "acestash3", "haproxy", "redis-cluster-create", "minio-ec", "minio-plain",
		"redis-c1", "redis-c2", "redis-c3", "redis-c4", "redis-c5", "redis-c6"} {
		if !fleet[want] {
			t.Errorf("the fleet profile has no service %s", want)
		}
	}

	t.Setenv("ACESTASH_PUBLIC_URL", "http://localhost:8090")
	t.Setenv("ACESTASH_ADMIN_TOKEN", "x")
	t.Setenv("MINIO_ROOT_USER", "u")
	t.Setenv("MINIO_ROOT_PASSWORD", "p")
	cfg, err := loadConfig("../../deploy/fleet.yml")
	if err != nil {
		t.Fatal(err)
	}
	seeds, ok := strings.CutPrefix(strings.TrimSuffix(cfg.RedisURL, "/"), "redis+cluster://")
	if !ok {
		t.Fatalf("deploy/fleet.yml's redis_url %q is not a cluster's", cfg.RedisURL)
	}
	for _, s := range strings.Split(seeds, ",") {
		if !ips[s] {
			t.Errorf("deploy/fleet.yml's Redis seed %s is no cluster node of the profile", s)
		}
	}
	for _, m := range cfg.Mirrors {
		host, _, _ := strings.Cut(m.Endpoint, ":")
		if !fleet[host] {
			t.Errorf("mirror %s's endpoint %s is no service of the profile", m.ID, m.Endpoint)
		}
	}

	if out, err := exec.Command("haproxy", "-c", "-f", "../../deploy/haproxy.cfg").CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}
