package webhooks

import "testing"

// The signature is the one the README's verification example computes:
// HMAC-SHA256 of the raw body, hex, after "sha256=". The expected value is
// from RFC 4231's test case 2.
func TestSign(t *testing.T) {
	got := Sign("Jefe", []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if Sign("Jefe", []byte("what do ya want for nothing!")) == want {
		t.Fatal("a changed body kept its signature")
	}
}
