package secrets

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ferry-faas/ferry"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpenAndRotationKeys(t *testing.T) {
	oldRing, _ := NewKeyring(key(1))
	id, sealed, err := oldRing.Seal("DB", []byte("v4lue"))
	if err != nil || id != KeyID(key(1)) || bytes.Contains(sealed, []byte("v4lue")) {
		t.Fatalf("seal: %s %x %v", id, sealed, err)
	}
	// During a rotation the old key still opens, the new one seals.
	ring, _ := NewKeyring(key(2), key(1))
	if v, err := ring.Open("DB", id, sealed); err != nil || string(v) != "v4lue" {
		t.Fatalf("open with the old key: %q %v", v, err)
	}
	if id2, _, _ := ring.Seal("DB", []byte("x")); id2 != KeyID(key(2)) {
		t.Fatalf("sealed with %s, want the current key", id2)
	}
	// Another secret's name does not open it; an unknown key says which.
	if _, err := ring.Open("OTHER", id, sealed); ferry.ErrorCode(err) != ferry.EUNPROCESSABLE {
		t.Fatalf("open under another name: %v", err)
	}
	newOnly, _ := NewKeyring(key(2))
	if _, err := newOnly.Open("DB", id, sealed); err == nil || !strings.Contains(err.Error(), id) {
		t.Fatalf("open without the key: %v", err)
	}
	var none *Keyring
	if _, _, err := none.Seal("DB", nil); ferry.ErrorCode(err) != ferry.EUNAVAILABLE {
		t.Fatalf("seal without a key: %v", err)
	}
}

func TestLoadKeyringNamesTheProblem(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(key(3))
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, ""},
		{map[string]string{"FERRY_SECRETS_KEY": good}, ""},
		{map[string]string{"FERRY_SECRETS_KEY": "%%%"}, "FERRY_SECRETS_KEY: not base64"},
		{map[string]string{"FERRY_SECRETS_KEY": base64.StdEncoding.EncodeToString(key(3)[:16])}, "16 bytes, want 32"},
		{map[string]string{"FERRY_SECRETS_KEY": good, "FERRY_SECRETS_KEY_FILE": "/x"}, "both set"},
		{map[string]string{"FERRY_SECRETS_KEY_FILE": "/nonexistent/key"}, "FERRY_SECRETS_KEY_FILE"},
		{map[string]string{"FERRY_SECRETS_OLD_KEYS": good}, "without FERRY_SECRETS_KEY"},
		{map[string]string{"FERRY_SECRETS_KEY": good, "FERRY_SECRETS_OLD_KEYS": good + ",nope"}, "FERRY_SECRETS_OLD_KEYS (key 2)"},
	} {
		_, err := LoadKeyring(func(k string) string { return tc.env[k] })
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
}
