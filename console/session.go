package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ferry-faas/ferry"
)

const (
	sessionCookie = "ferry_session"
	// loginCookie carries the sign-in form's CSRF token before there is a
	// session (double submit).
	loginCookie = "ferry_login"
	csrfField   = "csrf"
	maxSessions = 10000
)

// session is one signed-in browser. The API key stays in this process's
// memory; the browser holds only a random token. A restart signs everyone
// out, and behind several API processes a browser must stick to one.
type session struct {
	token   string
	key     string
	prefix  string // the key's visible prefix
	csrf    string
	expires time.Time
}

type sessions struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*session
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, now: time.Now, m: map[string]*session{}}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *sessions) create(key string) *session {
	now := s.now()
	prefix := key
	if len(prefix) > 8 {
		prefix = prefix[:8]
	}
	sess := &session{token: randomToken(), key: key, prefix: prefix, csrf: randomToken(), expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		for t, x := range s.m {
			if now.After(x.expires) {
				delete(s.m, t)
			}
		}
		for t := range s.m { // still full: drop any one
			if len(s.m) < maxSessions {
				break
			}
			delete(s.m, t)
		}
	}
	s.m[sess.token] = sess
	return sess
}

func (s *sessions) get(token string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[token]
	if !ok {
		return nil
	}
	if s.now().After(sess.expires) {
		delete(s.m, token)
		return nil
	}
	return sess
}

func (s *sessions) delete(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, token)
}

// secure reports whether cookies must be Secure: the request came over TLS,
// directly or through a proxy that says so.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
}

// handler is a console handler of a signed-in request.
type handler func(w http.ResponseWriter, r *http.Request, s *session)

// signedIn requires a session: pages redirect to the sign-in page, data
// requests and forms answer 401. Every POST must carry the session's CSRF
// token.
func (c *console) signedIn(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sess *session
		if ck, err := r.Cookie(sessionCookie); err == nil {
			sess = c.sessions.get(ck.Value)
		}
		if sess == nil {
			if r.Method == http.MethodGet && !isData(r) {
				http.Redirect(w, r, Prefix+"/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.errorPage(w, r, nil, &apiError{Status: http.StatusUnauthorized, Code: ferry.EUNAUTHORIZED,
				Message: "not signed in (or the session ended): sign in again"})
			return
		}
		if r.Method == http.MethodPost && !c.parseForm(w, r, sess) {
			return
		}
		if r.Method == http.MethodPost && !validToken(r.PostFormValue(csrfField), sess.csrf) {
			c.errorPage(w, r, sess, &apiError{Status: http.StatusForbidden, Code: ferry.EFORBIDDEN,
				Message: "the form has no valid CSRF token: reload the page and send it again"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, sess)
	})
}

// maxFormBytes bounds a console form: an invoke form carries an event of up to
// the API's body limit, larger once URL-encoded; the API enforces its own.
const maxFormBytes = 32 << 20

// parseForm reads a posted form; a body over maxFormBytes or malformed is
// answered here.
func (c *console) parseForm(w http.ResponseWriter, r *http.Request, s *session) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.errorPage(w, r, s, &apiError{Status: http.StatusRequestEntityTooLarge, Code: ferry.ETOOLARGE,
				Message: fmt.Sprintf("the form is larger than the limit of %d MiB", maxFormBytes>>20)})
		} else {
			c.errorPage(w, r, s, &apiError{Status: http.StatusBadRequest, Code: ferry.EINVALID, Message: "malformed form: " + err.Error()})
		}
		return false
	}
	return true
}

func validToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// isData reports a data request (JSON for the pages' scripts).
func isData(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, Prefix+"/data/")
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix + "/functions"
	}
	return next
}

type loginView struct {
	Next  string
	Error string
	CSRF  string
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	token := randomToken()
	setCookie(w, r, loginCookie, token, 3600)
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Data: loginView{Next: safeNext(r.URL.Query().Get("next")), CSRF: token}})
}

// login checks the key against the API and starts a session.
func (c *console) login(w http.ResponseWriter, r *http.Request) {
	if !c.parseForm(w, r, nil) {
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || !validToken(r.PostFormValue(csrfField), ck.Value) {
		c.errorPage(w, r, nil, &apiError{Status: http.StatusForbidden, Code: ferry.EFORBIDDEN,
			Message: "the sign-in form has no valid CSRF token: reload the page and sign in again"})
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) {
		token := randomToken()
		setCookie(w, r, loginCookie, token, 3600)
		c.render(w, r, status, "login", page{Title: "Sign in", Data: loginView{Next: next, Error: msg, CSRF: token}})
	}
	if key == "" {
		fail(http.StatusBadRequest, "Enter an API key.")
		return
	}
	// Any authenticated route tells whether the key is valid; listing one
	// function is cheap and open to every role.
	if err := c.apiFor(r, key).get("/v1/functions?limit=1", nil); err != nil {
		if ae := asAPIError(err); ae.Status == http.StatusUnauthorized {
			fail(http.StatusUnauthorized, "This API key is invalid or revoked.")
			return
		}
		c.errorPage(w, r, nil, err)
		return
	}
	sess := c.sessions.create(key)
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, sessionCookie, sess.token, int(c.SessionTTL/time.Second))
	c.Logger.Info("console sign-in", "key_prefix", sess.prefix, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.delete(s.token)
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}
