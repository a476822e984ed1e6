package slug

import (
	"strings"
	"testing"
)

func TestNewLengthAndAlphabet(t *testing.T) {
	for _, n := range []int{6, 8, 20} {
		s, err := New(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != n {
			t.Fatalf("New(%d) = %q, length %d", n, s, len(s))
		}
		if !Valid(s, n) {
			t.Fatalf("New(%d) = %q is not Valid", n, s)
		}
	}
	if _, err := New(5); err == nil {
		t.Fatal("New(5) accepted a slug shorter than MinLength")
	}
}

func TestNewIsUniformEnough(t *testing.T) {
	// 62 symbols x 20000 slugs x 8 chars: every symbol must appear, and none
	// far more often than the mean (a biased modulo would show here).
	counts := map[rune]int{}
	seen := map[string]bool{}
	for i := 0; i < 20000; i++ {
		s, err := New(8)
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatalf("slug %q repeated", s)
		}
		seen[s] = true
		for _, r := range s {
			counts[r]++
		}
	}
	mean := 20000 * 8 / len(Alphabet)
	for _, r := range Alphabet {
		if c := counts[r]; c < mean*8/10 || c > mean*12/10 {
			t.Errorf("symbol %q drawn %d times, mean %d", r, c, mean)
		}
	}
}

func TestIDAndHex(t *testing.T) {
	id, err := ID()
	if err != nil || len(id) != 17 || strings.ContainsAny(id, "01IOl") {
		t.Fatalf("ID() = %q, %v", id, err)
	}
	h, err := Hex(16)
	if err != nil || len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("Hex(16) = %q, %v", h, err)
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{"abcDEF12": true, "": false, "abc/def": false, "a.b": false, "abcdefghi": false, "%41bc": false} {
		if got := Valid(s, 8); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}
