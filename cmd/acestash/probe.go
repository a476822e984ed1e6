package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// probeCmd is `acestash probe [URL]`: it succeeds when URL (by default the
// local /readyz) answers 200, so container health checks need no curl.
func probeCmd(args []string, stdout io.Writer) error {
	u := "http://127.0.0.1:8080/readyz"
	if len(args) > 0 {
		u = args[0]
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprint(stdout, string(body))
	return nil
}
