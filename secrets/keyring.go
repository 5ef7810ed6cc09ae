// Package secrets encrypts function secrets for storage (AES-256-GCM) and
// resolves them for the worker. Values never leave this package except as
// the environment of a function's container.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/ferry-faas/ferry"
)

// KeySize is the size of a secrets key: AES-256.
const KeySize = 32

// Keyring holds the key that encrypts (the current one) and the keys that
// may still decrypt (older ones, during a rotation). A key is known by its
// id, the start of its SHA-256, which the store keeps beside each value.
type Keyring struct {
	current string // id; "" when no key is configured
	keys    map[string]cipher.AEAD
}

// ParseKey decodes a key given as base64 (standard or URL alphabet, padded
// or not) of 32 bytes; what names its source in errors.
func ParseKey(what, s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, ferry.Errorf(ferry.EINVALID, "%s: the key is %d bytes, want %d (generate one with: head -c 32 /dev/urandom | base64)", what, len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, ferry.Errorf(ferry.EINVALID, "%s: not base64 of %d bytes (generate a key with: head -c 32 /dev/urandom | base64)", what, KeySize)
}

// KeyID is the id under which a key's ciphertexts are stored.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:6])
}

// NewKeyring builds a keyring from the current key (nil: none) and older keys.
func NewKeyring(current []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	for i, key := range append([][]byte{current}, old...) {
		if key == nil {
			continue
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secrets key: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secrets key: %w", err)
		}
		id := KeyID(key)
		k.keys[id] = aead
		if i == 0 {
			k.current = id
		}
	}
	return k, nil
}

// LoadKeyring reads the keys from the environment: FERRY_SECRETS_KEY or the
// file named by FERRY_SECRETS_KEY_FILE (not both) is the current key;
// FERRY_SECRETS_OLD_KEYS lists, comma-separated, keys that only decrypt.
func LoadKeyring(getenv func(string) string) (*Keyring, error) {
	val, file := getenv("FERRY_SECRETS_KEY"), getenv("FERRY_SECRETS_KEY_FILE")
	var current []byte
	var err error
	switch {
	case val != "" && file != "":
		return nil, ferry.Errorf(ferry.EINVALID, "FERRY_SECRETS_KEY and FERRY_SECRETS_KEY_FILE are both set: set one")
	case val != "":
		current, err = ParseKey("FERRY_SECRETS_KEY", val)
	case file != "":
		var b []byte
		if b, err = os.ReadFile(file); err != nil {
			return nil, ferry.Wrap(err, ferry.EINVALID, "FERRY_SECRETS_KEY_FILE: %v", err)
		}
		current, err = ParseKey("FERRY_SECRETS_KEY_FILE "+file, string(b))
	}
	if err != nil {
		return nil, err
	}
	var old [][]byte
	if s := getenv("FERRY_SECRETS_OLD_KEYS"); s != "" {
		if current == nil {
			return nil, ferry.Errorf(ferry.EINVALID, "FERRY_SECRETS_OLD_KEYS is set without FERRY_SECRETS_KEY: set the new key too")
		}
		for i, part := range strings.Split(s, ",") {
			b, err := ParseKey(fmt.Sprintf("FERRY_SECRETS_OLD_KEYS (key %d)", i+1), part)
			if err != nil {
				return nil, err
			}
			old = append(old, b)
		}
	}
	return NewKeyring(current, old...)
}

// Configured reports whether a current key is set.
func (k *Keyring) Configured() bool { return k != nil && k.current != "" }

// CurrentID is the id of the key new values are encrypted with ("" for none).
func (k *Keyring) CurrentID() string {
	if k == nil {
		return ""
	}
	return k.current
}

// Knows reports whether the keyring holds the key with id.
func (k *Keyring) Knows(id string) bool { return k != nil && k.keys[id] != nil }

// Seal encrypts value with the current key; name is authenticated with it, so
// a ciphertext moved to another secret's row does not decrypt.
func (k *Keyring) Seal(name string, value []byte) (keyID string, sealed []byte, err error) {
	if !k.Configured() {
		return "", nil, ferry.Errorf(ferry.EUNAVAILABLE, "secrets are unavailable: the server has no FERRY_SECRETS_KEY")
	}
	aead := k.keys[k.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return k.current, aead.Seal(nonce, nonce, value, []byte(name)), nil
}

// Open decrypts what Seal returned; a value it cannot decrypt is EUNPROCESSABLE.
func (k *Keyring) Open(name, keyID string, sealed []byte) ([]byte, error) {
	if !k.Knows(keyID) {
		return nil, ferry.Errorf(ferry.EUNPROCESSABLE, "secret %q is encrypted with key %s, which this server does not have (FERRY_SECRETS_KEY, FERRY_SECRETS_OLD_KEYS)", name, keyID)
	}
	aead := k.keys[keyID]
	n := aead.NonceSize()
	if len(sealed) < n {
		return nil, ferry.Errorf(ferry.EUNPROCESSABLE, "secret %q: the stored value is truncated", name)
	}
	v, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(name))
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNPROCESSABLE, "secret %q does not decrypt with key %s: the key or the stored value is wrong", name, keyID)
	}
	return v, nil
}
