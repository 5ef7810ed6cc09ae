package api

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"maps"
	"math"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/bundle"
	"github.com/ferry-faas/ferry/storage/s3"
)

var (
	namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	envPattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const (
	maxEnvBytes    = 32 << 10
	maxDescription = 1024
	maxHandler     = 256
)

func validateName(name string) error {
	if name == "" {
		return ferry.Errorf(ferry.EINVALID, "name: is required")
	}
	if !namePattern.MatchString(name) {
		return ferry.Errorf(ferry.EINVALID, "name: must match ^[a-z][a-z0-9-]{0,62}$ (got %q)", name)
	}
	return nil
}

// deployRequest is the JSON body of POST /v1/functions; multipart forms carry
// the same fields, with the code as a file part.
type deployRequest struct {
	Name           string            `json:"name"`
	Runtime        ferry.Runtime     `json:"runtime"`
	Handler        string            `json:"handler"`
	Code           string            `json:"code"` // base64
	Filename       string            `json:"filename"`
	TimeoutSeconds int               `json:"timeout_seconds"`
	MemoryMB       int               `json:"memory_mb"`
	CPUs           float64           `json:"cpus"`
	Env            map[string]string `json:"env"`
	MaxConcurrency int               `json:"max_concurrency"`
	Network        bool              `json:"network"`
	Retries        int               `json:"retries"`
	Description    string            `json:"description"`
	Secrets        []string          `json:"secrets"`

	bundle []byte // decoded code
}

func (s *server) deploy(c echo.Context) error {
	req, err := s.readDeploy(c)
	if err != nil {
		return err
	}
	v, err := s.validateDeploy(&req)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// A new name may be created by developers; a new version needs write on it.
	// Which of the two this deploy is allowed to be is decided here and held by
	// the store: a create never lands on a function someone created meanwhile,
	// and an update never lands on a function deleted and created again.
	fn, err := s.Store.GetFunction(ctx, v.Function)
	isNew := ferry.ErrorCode(err) == ferry.ENOTFOUND
	if err != nil && !isNew {
		return err
	}
	p := principalOf(c)
	if isNew {
		if p.Key.Role != ferry.RoleAdmin && p.Key.Role != ferry.RoleDeveloper {
			return forbidden(p, "creating functions needs a developer or admin key")
		}
		v.FunctionID = uuid.New()
	} else {
		if err := s.require(c, v.Function, ferry.PermWrite); err != nil {
			return err
		}
		v.FunctionID = fn.ID
	}
	var prev *ferry.Version
	if !isNew && len(v.Secrets) > 0 {
		latest, err := s.Store.GetVersion(ctx, v.Function, 0)
		if err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND {
			return err
		}
		prev = &latest
	}
	if err := s.checkSecrets(c, v, prev); err != nil {
		return err
	}
	if err := bundle.Validate(v.Runtime, v.Handler, req.bundle, req.Filename); err != nil {
		return bundleError(err)
	}
	key, sum, uploaded, err := s.Code.PutCode(ctx, v.FunctionID, req.bundle)
	if err != nil {
		return err
	}
	v.CodeKey, v.Checksum, v.CodeSize = key, sum, int64(len(req.bundle))
	var created ferry.Version
	if isNew {
		// The creator administers the function (and may grant it to others).
		admin := uuid.Nil
		if p.Key.Role == ferry.RoleDeveloper {
			admin = p.Key.ID
		}
		created, err = s.Store.CreateFunction(ctx, v, admin)
		s.auth.forgetKey(p.Key.ID)
	} else {
		created, err = s.Store.CreateVersion(ctx, v)
	}
	if err != nil {
		if uploaded { // a refused deploy leaves nothing behind
			if derr := s.Code.Delete(context.WithoutCancel(ctx), key); derr != nil {
				s.Logger.Warn("deleting the code of a refused deploy", "function", v.Function, "key", key, "err", derr)
			}
		}
		return err
	}
	s.Logger.Info("function deployed", "function", created.Function, "version", created.Version,
		"runtime", created.Runtime, "checksum", created.Checksum, "code_size", created.CodeSize,
		"request_id", requestIDOf(c))
	c.Response().Header().Set(echo.HeaderLocation, "/v1/functions/"+created.Function)
	return c.JSON(http.StatusCreated, created)
}

// bundleError names the field in a validator's error and makes sure a
// rejected bundle is a 4xx (an error without a code: unprocessable).
func bundleError(err error) error {
	var fe *ferry.Error
	if !errors.As(err, &fe) {
		return ferry.Errorf(ferry.EUNPROCESSABLE, "code: %v", err)
	}
	field := "code: "
	if fe.Code == ferry.EINVALID {
		field = "handler: "
	}
	if strings.HasPrefix(fe.Message, strings.TrimSuffix(field, ": ")) {
		return fe
	}
	return &ferry.Error{Code: fe.Code, Message: field + fe.Message}
}

// readDeploy parses a JSON or multipart deploy request.
func (s *server) readDeploy(c echo.Context) (deployRequest, error) {
	var req deployRequest
	ct := c.Request().Header.Get(echo.HeaderContentType)
	mt, params, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "multipart/form-data":
		return s.readDeployMultipart(c, params["boundary"])
	case mt == "" || mt == "application/json":
		if err := decodeJSON(c, &req); err != nil {
			return req, err
		}
		if req.Code == "" {
			return req, ferry.Errorf(ferry.EINVALID, "code: is required (base64 of a source file, .zip or .tar.gz)")
		}
		b, err := base64.StdEncoding.DecodeString(req.Code)
		if err != nil {
			return req, ferry.Errorf(ferry.EINVALID, "code: not valid base64 (%v)", err)
		}
		req.Code, req.bundle = "", b
		return req, nil
	default:
		return req, ferry.Errorf(ferry.EINVALID, "Content-Type: must be application/json or multipart/form-data, not %q", mt)
	}
}

const maxFormField = 64 << 10

func (s *server) readDeployMultipart(c echo.Context, boundary string) (deployRequest, error) {
	var req deployRequest
	if boundary == "" {
		return req, ferry.Errorf(ferry.EINVALID, "Content-Type: multipart/form-data without a boundary")
	}
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return req, ferry.Errorf(ferry.EINVALID, "body: not a multipart form: %v", err)
	}
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return req, multipartError(err)
		}
		field := part.FormName()
		if err := checkText("form field name", field); err != nil {
			return req, err
		}
		if field == "code" {
			if seen["code"] {
				return req, ferry.Errorf(ferry.EINVALID, "code: sent more than once")
			}
			seen["code"] = true
			b, err := io.ReadAll(io.LimitReader(part, s.MaxCodeBytes+1))
			if err != nil {
				return req, multipartError(err)
			}
			if int64(len(b)) > s.MaxCodeBytes {
				return req, ferry.Errorf(ferry.ETOOLARGE, "code: larger than the limit of %s", byteSize(s.MaxCodeBytes))
			}
			req.bundle = b
			if err := checkText("filename", part.FileName()); err != nil {
				return req, err
			}
			if fn := part.FileName(); fn != "" && req.Filename == "" {
				req.Filename = fn
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
		if err != nil {
			return req, multipartError(err)
		}
		if len(b) > maxFormField {
			return req, ferry.Errorf(ferry.EINVALID, "%s: longer than %s", field, byteSize(maxFormField))
		}
		if err := req.setFormField(field, string(b), seen[field]); err != nil {
			return req, err
		}
		seen[field] = true
	}
	if !seen["code"] {
		return req, ferry.Errorf(ferry.EINVALID, "code: is required (a file part named \"code\")")
	}
	return req, nil
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || isBodyTooLarge(err) {
		return err
	}
	return ferry.Errorf(ferry.EINVALID, "body: malformed multipart form: %v", err)
}

// setFormField sets one multipart field; env may repeat (K=V each) or be one
// JSON object.
func (r *deployRequest) setFormField(field, value string, repeated bool) error {
	if repeated && field != "env" && field != "secrets" {
		return ferry.Errorf(ferry.EINVALID, "%s: sent more than once", field)
	}
	if err := checkText(field, value); err != nil {
		return err
	}
	atoi := func() (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return 0, ferry.Errorf(ferry.EINVALID, "%s: must be an integer, not %q", field, value)
		}
		return n, nil
	}
	var err error
	switch field {
	case "name":
		r.Name = value
	case "runtime":
		r.Runtime = ferry.Runtime(value)
	case "handler":
		r.Handler = value
	case "filename":
		r.Filename = value
	case "description":
		r.Description = value
	case "secrets":
		// Repeated, or comma-separated.
		for _, n := range strings.Split(value, ",") {
			if n = strings.TrimSpace(n); n != "" {
				r.Secrets = append(r.Secrets, n)
			}
		}
		return nil
	case "timeout_seconds":
		r.TimeoutSeconds, err = atoi()
	case "memory_mb":
		r.MemoryMB, err = atoi()
	case "max_concurrency":
		r.MaxConcurrency, err = atoi()
	case "retries":
		r.Retries, err = atoi()
	case "cpus":
		r.CPUs, err = strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || math.IsNaN(r.CPUs) || math.IsInf(r.CPUs, 0) {
			err = ferry.Errorf(ferry.EINVALID, "cpus: must be a number, not %q", value)
		}
	case "network":
		r.Network, err = strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			err = ferry.Errorf(ferry.EINVALID, "network: must be true or false, not %q", value)
		}
	case "env":
		if r.Env == nil {
			r.Env = map[string]string{}
		}
		if strings.HasPrefix(strings.TrimSpace(value), "{") {
			var m map[string]string
			if err := unmarshalStrict("env", []byte(value), &m); err != nil {
				return err
			}
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if err := r.setEnv(k, m[k]); err != nil {
					return err
				}
			}
			return nil
		}
		k, v, ok := strings.Cut(value, "=")
		if !ok {
			return ferry.Errorf(ferry.EINVALID, "env: %q is not KEY=VALUE", value)
		}
		return r.setEnv(k, v)
	default:
		return ferry.Errorf(ferry.EINVALID, "%s: unknown field", field)
	}
	return err
}

// setEnv sets one variable of a multipart deploy, which may come in several
// env fields: a name given twice is refused as a duplicate JSON key is.
func (r *deployRequest) setEnv(k, v string) error {
	if _, dup := r.Env[k]; dup {
		return ferry.Errorf(ferry.EINVALID, "env.%s: duplicate key", k)
	}
	r.Env[k] = v
	return nil
}

// validateDeploy checks every field and returns the version to store (without
// its code key and checksum).
func (s *server) validateDeploy(r *deployRequest) (ferry.Version, error) {
	if err := validateName(r.Name); err != nil {
		return ferry.Version{}, err
	}
	if !r.Runtime.Valid() {
		names := make([]string, len(ferry.Runtimes))
		for i, rt := range ferry.Runtimes {
			names[i] = string(rt)
		}
		return ferry.Version{}, ferry.Errorf(ferry.EINVALID, "runtime: must be one of %s (got %q)", strings.Join(names, ", "), r.Runtime)
	}
	if err := validateHandler(r.Handler); err != nil {
		return ferry.Version{}, err
	}
	if len(r.bundle) == 0 {
		return ferry.Version{}, ferry.Errorf(ferry.EINVALID, "code: is empty")
	}
	if int64(len(r.bundle)) > s.MaxCodeBytes {
		return ferry.Version{}, ferry.Errorf(ferry.ETOOLARGE, "code: %s is larger than the limit of %s",
			byteSize(int64(len(r.bundle))), byteSize(s.MaxCodeBytes))
	}
	fn, err := bundleFilename(r.Filename)
	if err != nil {
		return ferry.Version{}, err
	}
	r.Filename = fn
	l := ferry.Limits{TimeoutSeconds: r.TimeoutSeconds, MemoryMB: r.MemoryMB, CPUs: r.CPUs,
		MaxConcurrency: r.MaxConcurrency, Network: r.Network, Retries: r.Retries}
	if err := l.Validate(); err != nil {
		return ferry.Version{}, err
	}
	if err := s.validateEnv(r.Env); err != nil {
		return ferry.Version{}, err
	}
	if len(r.Description) > maxDescription {
		return ferry.Version{}, ferry.Errorf(ferry.EINVALID, "description: must be at most %d characters", maxDescription)
	}
	return ferry.Version{Function: r.Name, Runtime: r.Runtime, Handler: r.Handler,
		Limits: l.WithDefaults(), Env: r.Env, Description: r.Description, Secrets: r.Secrets}, nil
}

func validateHandler(h string) error {
	switch {
	case h == "":
		return ferry.Errorf(ferry.EINVALID, "handler: is required")
	case len(h) > maxHandler || strings.ContainsAny(h, " \t\r\n\x00"):
		return ferry.Errorf(ferry.EINVALID, "handler: must be at most %d characters without spaces", maxHandler)
	}
	// The syntax per runtime is checked with the bundle (bundle.Validate).
	return nil
}

// bundleFilename keeps only the base name of an uploaded file's name; the
// validator detects archives by their magic bytes and uses the name for
// messages and for the source file's extension.
func bundleFilename(given string) (string, error) {
	if given == "" {
		return "", nil
	}
	fn := path.Base(strings.ReplaceAll(given, `\`, "/"))
	if fn == "." || fn == "/" || fn == ".." {
		return "", ferry.Errorf(ferry.EINVALID, "filename: %q is not a file name", given)
	}
	return fn, nil
}

func (s *server) validateEnv(env map[string]string) error {
	keys := make([]string, 0, len(env))
	size := 0
	for k, v := range env {
		keys = append(keys, k)
		size += len(k) + len(v)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case !envPattern.MatchString(k):
			return ferry.Errorf(ferry.EINVALID, "env: %q is not a valid variable name", k)
		case bundle.ReservedEnv(k):
			return ferry.Errorf(ferry.EINVALID, "env: %s is reserved: Ferry sets the FERRY_* and AWS_LAMBDA_* names, LAMBDA_TASK_ROOT, _HANDLER and HOME", k)
		case strings.ContainsRune(env[k], 0):
			return ferry.Errorf(ferry.EINVALID, "env: value of %s contains a NUL byte", k)
		}
	}
	if size > maxEnvBytes {
		return ferry.Errorf(ferry.EINVALID, "env: %s in total, more than the limit of %s", byteSize(int64(size)), byteSize(maxEnvBytes))
	}
	return nil
}

// --- read and delete ---

func (s *server) listFunctions(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	v, err := s.viewer(c)
	if err != nil {
		return err
	}
	fns, next, err := s.Store.ListFunctions(c.Request().Context(), v, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listResponse("functions", fns, next))
}

func (s *server) getFunction(c echo.Context) error {
	name := c.Param("name")
	if err := s.require(c, name, ferry.PermRead); err != nil {
		return err
	}
	version, err := versionParam(c)
	if err != nil {
		return err
	}
	v, err := s.Store.GetVersion(c.Request().Context(), name, version)
	if err != nil {
		return err
	}
	vs, err := s.hideEnv(c, name, []ferry.Version{v})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, vs[0])
}

// hideEnv blanks the values of the versions' env (often secrets) unless the
// caller may change the function: reading or invoking it does not need them.
func (s *server) hideEnv(c echo.Context, name string, vs []ferry.Version) ([]ferry.Version, error) {
	ok, err := s.can(c, name, ferry.PermWrite)
	if err != nil || ok {
		return vs, err
	}
	for i := range vs {
		hidden := make(map[string]string, len(vs[i].Env))
		for k := range vs[i].Env {
			hidden[k] = ""
		}
		vs[i].Env = hidden
	}
	return vs, nil
}

func (s *server) listVersions(c echo.Context) error {
	name := c.Param("name")
	if err := s.require(c, name, ferry.PermRead); err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	vs, next, err := s.Store.ListVersions(c.Request().Context(), name, p)
	if err != nil {
		return err
	}
	if vs, err = s.hideEnv(c, name, vs); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listResponse("versions", vs, next))
}

func (s *server) deleteFunction(c echo.Context) error {
	name := c.Param("name")
	if err := s.require(c, name, ferry.PermAdmin); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, orphans, err := s.Store.DeleteFunction(ctx, name)
	if err != nil {
		return err
	}
	s.auth.forgetFunction(name)
	// The function is gone once the rows are; stale objects are only storage.
	// Its code and build artifacts live under its identity; orphans are code
	// objects of versions deployed before identities (shared by content).
	ctx = context.WithoutCancel(ctx)
	if err := s.Code.DeletePrefix(ctx, s3.FunctionPrefix(id)); err != nil {
		s.Logger.Warn("deleting the objects of a removed function", "function", name, "function_id", id, "err", err)
	}
	for _, key := range orphans {
		if err := s.Code.Delete(ctx, key); err != nil {
			s.Logger.Warn("deleting code of a removed function", "function", name, "key", key, "err", err)
		}
	}
	s.deleteSchedulesOf(ctx, name, id)
	s.Logger.Info("function deleted", "function", name, "code_objects", len(orphans), "request_id", requestIDOf(c))
	return c.NoContent(http.StatusNoContent)
}
