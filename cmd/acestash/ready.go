package main

import (
	"context"
	"fmt"
	"strings"
)

// ready says why this node cannot take uploads now: the store does not
// answer, or fewer mirrors passed their last health check than the write
// quorum needs (at least one). nil means it can.
func (a *app) ready(ctx context.Context) error {
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("the store does not answer: %w", err)
	}
	var down []string
	all := a.mirrors.All()
	for _, e := range all {
		if a.health.Err(e.ID) != nil {
			down = append(down, e.ID)
		}
	}
	need := max(a.cfg.WriteQuorum, 1)
	if up := len(all) - len(down); up < need {
		return fmt.Errorf("%d of %d mirrors are healthy, uploads need %d (down: %s)", up, len(all), need, strings.Join(down, ", "))
	}
	return nil
}
