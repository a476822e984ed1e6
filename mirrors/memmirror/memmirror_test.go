package memmirror

import (
	"testing"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/mirrortest"
)

func TestConformance(t *testing.T) {
	mirrortest.Run(t, func(t *testing.T) mirrors.Mirror { return New() })
}

func TestFaultyConformance(t *testing.T) {
	// A wrapper that injects no fault must be invisible.
	mirrortest.Run(t, func(t *testing.T) mirrors.Mirror { return &mirrortest.Faulty{Mirror: New()} })
}

func TestListerConformance(t *testing.T) {
	mirrortest.RunLister(t, func(t *testing.T) mirrors.Mirror { return New() })
	mirrortest.RunLister(t, func(t *testing.T) mirrors.Mirror { return &mirrortest.Faulty{Mirror: New()} })
}
