package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
)

// API keys are "fy_" and 32 random base62 characters (190 bits). Only their
// SHA-256 is stored; the first 8 characters are kept as a visible prefix.
const (
	keyPrefix    = "fy_"
	keyRandomLen = 32
	prefixLen    = 8
	base62       = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// maxCacheEntries bounds each auth cache; a full cache is simply emptied.
	maxCacheEntries = 10000
)

// KeyStore is what key bootstrap needs (*postgres.DB).
type KeyStore interface {
	CountActiveKeys(ctx context.Context) (int, error)
	CreateKey(ctx context.Context, k ferry.APIKey, hash []byte) (ferry.APIKey, error)
}

// GenerateKey returns a new random API key.
func GenerateKey() (string, error) {
	var b strings.Builder
	b.WriteString(keyPrefix)
	max := big.NewInt(int64(len(base62)))
	for range keyRandomLen {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", ferry.Wrap(err, ferry.EINTERNAL, "generating an API key: %v", err)
		}
		b.WriteByte(base62[n.Int64()])
	}
	return b.String(), nil
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

func visiblePrefix(key string) string {
	if len(key) < prefixLen {
		return key
	}
	return key[:prefixLen]
}

// validAdminKey checks a key chosen by the operator (FERRY_ADMIN_KEY): long
// enough to be a secret, and sendable in a header.
func validAdminKey(key string) error {
	if len(key) < 24 || len(key) > 256 {
		return ferry.Errorf(ferry.EINVALID, "FERRY_ADMIN_KEY: must be 24 to 256 characters long (ferry keys look like fy_ and 32 letters or digits)")
	}
	for _, r := range key {
		if r <= ' ' || r > '~' {
			return ferry.Errorf(ferry.EINVALID, "FERRY_ADMIN_KEY: only printable ASCII characters without spaces are allowed")
		}
	}
	return nil
}

// EnsureAdminKey bootstraps the first admin key. When no active key exists it
// stores fromEnv (FERRY_ADMIN_KEY) or a random key as an admin key and returns
// it, for main to print once. When keys exist it returns "".
func EnsureAdminKey(ctx context.Context, store KeyStore, fromEnv string) (string, error) {
	if fromEnv != "" {
		if err := validAdminKey(fromEnv); err != nil {
			return "", err
		}
	}
	n, err := store.CountActiveKeys(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	key := fromEnv
	if key == "" {
		if key, err = GenerateKey(); err != nil {
			return "", err
		}
	}
	_, err = store.CreateKey(ctx, ferry.APIKey{Name: "admin (first start)", Prefix: visiblePrefix(key), Role: ferry.RoleAdmin}, hashKey(key))
	if ferry.ErrorCode(err) == ferry.ECONFLICT {
		// Another process bootstrapped the same FERRY_ADMIN_KEY at the same time.
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return key, nil
}

// principal is the authenticated caller of a request.
type principal struct {
	Key ferry.APIKey
}

const ctxPrincipal = "ferry.principal"

func principalOf(c echo.Context) *principal {
	p, _ := c.Get(ctxPrincipal).(*principal)
	return p
}

// authenticator resolves keys and permissions with a short cache, so the hot
// path of an invoke does not read api_keys and function_permissions each time.
type authenticator struct {
	store Store
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	keys  map[[sha256.Size]byte]keyEntry
	perms map[permKey]permEntry
}

type keyEntry struct {
	key     ferry.APIKey
	found   bool
	expires time.Time
}

type permKey struct {
	keyID    uuid.UUID
	function string
}

type permEntry struct {
	perms   []ferry.Permission
	expires time.Time
}

func newAuthenticator(store Store, ttl time.Duration) *authenticator {
	return &authenticator{store: store, ttl: ttl, now: time.Now,
		keys: map[[sha256.Size]byte]keyEntry{}, perms: map[permKey]permEntry{}}
}

// lookup returns the active key for secret, or EUNAUTHORIZED.
func (a *authenticator) lookup(ctx context.Context, secret string) (ferry.APIKey, error) {
	var h [sha256.Size]byte
	copy(h[:], hashKey(secret))
	now := a.now()
	a.mu.Lock()
	e, ok := a.keys[h]
	a.mu.Unlock()
	if !ok || now.After(e.expires) {
		k, err := a.store.KeyByHash(ctx, h[:])
		switch ferry.ErrorCode(err) {
		case "":
			e = keyEntry{key: k, found: true, expires: now.Add(a.ttl)}
		case ferry.ENOTFOUND:
			// Unknown keys are cached too, so a client with a bad key cannot make
			// every request a database read.
			e = keyEntry{expires: now.Add(a.ttl)}
		default:
			return ferry.APIKey{}, err
		}
		a.mu.Lock()
		if len(a.keys) >= maxCacheEntries {
			clear(a.keys)
		}
		a.keys[h] = e
		a.mu.Unlock()
	}
	if !e.found {
		return ferry.APIKey{}, ferry.Errorf(ferry.EUNAUTHORIZED, "invalid or revoked API key")
	}
	return e.key, nil
}

// permissions returns the grants of key on function (including grants on "*").
func (a *authenticator) permissions(ctx context.Context, keyID uuid.UUID, function string) ([]ferry.Permission, error) {
	pk := permKey{keyID, function}
	now := a.now()
	a.mu.Lock()
	e, ok := a.perms[pk]
	a.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.perms, nil
	}
	perms, err := a.store.Permissions(ctx, keyID, function)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.perms) >= maxCacheEntries {
		clear(a.perms)
	}
	a.perms[pk] = permEntry{perms: perms, expires: now.Add(a.ttl)}
	a.mu.Unlock()
	return perms, nil
}

// forgetKey drops a key's cached lookups and grants after a change made here.
func (a *authenticator) forgetKey(id uuid.UUID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for h, e := range a.keys {
		if e.key.ID == id {
			delete(a.keys, h)
		}
	}
	for pk := range a.perms {
		if pk.keyID == id {
			delete(a.perms, pk)
		}
	}
}

// forgetFunction drops cached grants on a deleted function.
func (a *authenticator) forgetFunction(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for pk := range a.perms {
		if pk.function == name {
			delete(a.perms, pk)
		}
	}
}

// authenticate requires a valid API key: Authorization: Bearer <key>.
func (s *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		if h == "" {
			return ferry.Errorf(ferry.EUNAUTHORIZED, "missing API key: send the header Authorization: Bearer <key>")
		}
		scheme, secret, ok := strings.Cut(h, " ")
		secret = strings.TrimSpace(secret)
		if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
			return ferry.Errorf(ferry.EUNAUTHORIZED, "malformed Authorization header: expected Bearer <key>")
		}
		k, err := s.auth.lookup(c.Request().Context(), secret)
		if err != nil {
			return err
		}
		c.Set(ctxPrincipal, &principal{Key: k})
		return next(c)
	}
}

// requireAdmin allows only admin keys (key management).
func (s *server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := principalOf(c)
		if p == nil || p.Key.Role != ferry.RoleAdmin {
			return forbidden(p, "this route needs an admin key")
		}
		return next(c)
	}
}

func forbidden(p *principal, format string, args ...any) error {
	who := "this API key"
	if p != nil {
		who = fmt.Sprintf("API key %s (role %s)", p.Key.Prefix, p.Key.Role)
	}
	return ferry.Errorf(ferry.EFORBIDDEN, "%s: %s", who, fmt.Sprintf(format, args...))
}

// can reports whether the caller may do perm on function. Roles: admin may do
// everything; developer may read every function and write/execute/admin where
// granted; invoker only read/execute where granted. A function admin grant
// implies every permission on it, and any grant implies read.
func (s *server) can(c echo.Context, function string, perm ferry.Permission) (bool, error) {
	p := principalOf(c)
	if p == nil {
		return false, nil
	}
	return p.Key.Role.Allows(perm, func() ([]ferry.Permission, error) {
		return s.auth.permissions(c.Request().Context(), p.Key.ID, function)
	})
}

// invokerGrants are the grants that count for an invoker key (ferry.Role.Allows).
var invokerGrants = []ferry.Permission{ferry.PermRead, ferry.PermExecute}

// viewer is what listings may show the caller, decided in their queries (the
// rules of can with PermRead): everything for keys that may read "*" (admins,
// developers), otherwise the functions an invoker holds a counting grant on.
func (s *server) viewer(c echo.Context) (ferry.Viewer, error) {
	all, err := s.can(c, "*", ferry.PermRead)
	if err != nil || all {
		return ferry.Viewer{}, err
	}
	return ferry.Viewer{KeyID: principalOf(c).Key.ID, Grants: invokerGrants}, nil
}

// require returns EFORBIDDEN unless the caller may do perm on function.
func (s *server) require(c echo.Context, function string, perm ferry.Permission) error {
	ok, err := s.can(c, function, perm)
	if err != nil || ok {
		return err
	}
	return forbidden(principalOf(c), "no %s permission on function %q", perm, function)
}

// --- key management (admin only) ---

type createKeyRequest struct {
	Name string     `json:"name"`
	Role ferry.Role `json:"role"`
}

// createdKey is the one response that carries a key's secret.
type createdKey struct {
	ferry.APIKey
	Key string `json:"key"`
}

func validRole(r ferry.Role) bool {
	return r == ferry.RoleAdmin || r == ferry.RoleDeveloper || r == ferry.RoleInvoker
}

func (s *server) createKey(c echo.Context) error {
	var req createKeyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case req.Name == "":
		return ferry.Errorf(ferry.EINVALID, "name: is required")
	case len(req.Name) > 100:
		return ferry.Errorf(ferry.EINVALID, "name: must be at most 100 characters")
	case !validRole(req.Role):
		return ferry.Errorf(ferry.EINVALID, "role: must be one of admin, developer, invoker")
	}
	secret, err := GenerateKey()
	if err != nil {
		return err
	}
	k, err := s.Store.CreateKey(c.Request().Context(),
		ferry.APIKey{Name: req.Name, Prefix: visiblePrefix(secret), Role: req.Role}, hashKey(secret))
	if err != nil {
		return err
	}
	s.Logger.Info("API key created", "key_id", k.ID, "prefix", k.Prefix, "role", k.Role,
		"by", principalOf(c).Key.Prefix)
	return c.JSON(http.StatusCreated, createdKey{APIKey: k, Key: secret})
}

func (s *server) listKeys(c echo.Context) error {
	keys, err := s.Store.ListKeys(c.Request().Context())
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []ferry.APIKey{}
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keys})
}

func (s *server) revokeKey(c echo.Context) error {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "id: not a valid key id")
	}
	// The store decides "not the last admin key" in the same transaction.
	target, err := s.Store.RevokeKey(c.Request().Context(), id)
	if err != nil {
		return err
	}
	s.auth.forgetKey(id)
	s.Logger.Info("API key revoked", "key_id", id, "prefix", target.Prefix, "by", principalOf(c).Key.Prefix)
	return c.NoContent(http.StatusNoContent)
}

// --- per-function permissions (function admins) ---

type permissionRequest struct {
	KeyID      string           `json:"key_id"`
	Permission ferry.Permission `json:"permission"`
}

func validPermission(p ferry.Permission) bool {
	switch p {
	case ferry.PermRead, ferry.PermWrite, ferry.PermExecute, ferry.PermAdmin:
		return true
	}
	return false
}

// permissionInput reads {key_id, permission} from the body, or for DELETE
// also from the query string.
func (s *server) permissionInput(c echo.Context) (uuid.UUID, ferry.Permission, error) {
	var req permissionRequest
	if c.Request().Method == http.MethodDelete && c.Request().ContentLength <= 0 {
		req.KeyID, req.Permission = c.QueryParam("key_id"), ferry.Permission(c.QueryParam("permission"))
	} else if err := decodeJSON(c, &req); err != nil {
		return uuid.Nil, "", err
	}
	id, err := uuid.Parse(req.KeyID)
	if err != nil {
		return uuid.Nil, "", ferry.Errorf(ferry.EINVALID, "key_id: not a valid key id")
	}
	if !validPermission(req.Permission) {
		return uuid.Nil, "", ferry.Errorf(ferry.EINVALID, "permission: must be one of read, write, execute, admin")
	}
	return id, req.Permission, nil
}

func (s *server) grantPermission(c echo.Context) error {
	name := c.Param("name")
	if err := validateName(name); err != nil && name != "*" {
		return err
	}
	if err := s.require(c, name, ferry.PermAdmin); err != nil {
		return err
	}
	keyID, perm, err := s.permissionInput(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	keys, err := s.Store.ListKeys(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(keys, func(k ferry.APIKey) bool { return k.ID == keyID && k.RevokedAt == nil })
	if i < 0 {
		return ferry.Errorf(ferry.ENOTFOUND, "API key %s not found or revoked", keyID)
	}
	if keys[i].Role == ferry.RoleInvoker && perm != ferry.PermRead && perm != ferry.PermExecute {
		return ferry.Errorf(ferry.EINVALID, "permission: invoker keys can only be granted read or execute")
	}
	if err := s.Store.Grant(ctx, keyID, name, perm); err != nil {
		return err
	}
	s.auth.forgetKey(keyID)
	return c.JSON(http.StatusOK, map[string]any{"function": name, "key_id": keyID, "permission": perm})
}

func (s *server) revokePermission(c echo.Context) error {
	name := c.Param("name")
	if err := s.require(c, name, ferry.PermAdmin); err != nil {
		return err
	}
	keyID, perm, err := s.permissionInput(c)
	if err != nil {
		return err
	}
	if err := s.Store.RevokePermission(c.Request().Context(), keyID, name, perm); err != nil {
		return err
	}
	s.auth.forgetKey(keyID)
	return c.NoContent(http.StatusNoContent)
}
