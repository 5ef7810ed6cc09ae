package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/runtimes"
	"github.com/ferry-faas/ferry/secrets"
	"github.com/jackc/pgx/v5/pgconn"
)

// Config is everything Ferry reads from its environment. Defaults point at the
// local stack that `make dev` starts.
type Config struct {
	DatabaseURL       string
	TemporalAddress   string
	TemporalNamespace string
	TemporalUIURL     string
	TaskQueue         string
	S3Endpoint        string
	S3AccessKey       string
	S3SecretKey       string
	S3Bucket          string
	S3Secure          bool
	Listen            string
	MetricsListen     string
	DataDir           string
	AdminKey          string
	IdleTimeout       time.Duration
	MaxContainers     int
	MaxBuilds         int
	MaxCodeMB         int
	MaxBodyMB         int
	CodeCacheMB       int
	// SecretsKey, SecretsKeyFile and SecretsOldKeys are FERRY_SECRETS_KEY,
	// FERRY_SECRETS_KEY_FILE and FERRY_SECRETS_OLD_KEYS (secrets.LoadKeyring).
	SecretsKey, SecretsKeyFile, SecretsOldKeys string
	// PublicURL is the API's address as callers reach it (callback URLs of
	// durable functions); default http://<FERRY_LISTEN>.
	PublicURL string
}

// LoadConfig reads the FERRY_* variables; an invalid value is an error that
// names the variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := envReader{getenv: getenv}
	c := Config{
		DatabaseURL:       r.str("FERRY_DATABASE_URL", "postgres://ferry@127.0.0.1:5433/ferry?sslmode=disable"),
		TemporalAddress:   r.str("FERRY_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		TemporalNamespace: r.str("FERRY_TEMPORAL_NAMESPACE", "default"),
		TemporalUIURL:     strings.TrimSuffix(r.str("FERRY_TEMPORAL_UI_URL", "http://127.0.0.1:8233"), "/"),
		TaskQueue:         r.str("FERRY_TASK_QUEUE", "ferry"),
		S3Endpoint:        r.str("FERRY_S3_ENDPOINT", "127.0.0.1:9000"),
		S3AccessKey:       r.str("FERRY_S3_ACCESS_KEY", "ferry"),
		S3SecretKey:       r.str("FERRY_S3_SECRET_KEY", "ferry-secret"),
		S3Bucket:          r.str("FERRY_S3_BUCKET", "ferry"),
		S3Secure:          r.boolean("FERRY_S3_SECURE", false),
		Listen:            r.str("FERRY_LISTEN", "127.0.0.1:8080"),
		MetricsListen:     r.str("FERRY_METRICS_LISTEN", "127.0.0.1:9464"),
		DataDir:           r.str("FERRY_DATA_DIR", ".data/dev"),
		AdminKey:          r.str("FERRY_ADMIN_KEY", ""),
		IdleTimeout:       r.duration("FERRY_IDLE_TIMEOUT", 10*time.Minute),
		MaxContainers:     r.integer("FERRY_MAX_CONTAINERS", 32),
		MaxBuilds:         r.integer("FERRY_MAX_BUILDS", runtimes.DefaultMaxBuilds),
		MaxCodeMB:         r.integer("FERRY_MAX_CODE_MB", 50),
		MaxBodyMB:         r.integer("FERRY_MAX_BODY_MB", 6),
		CodeCacheMB:       r.integer("FERRY_CODE_CACHE_MB", activities.DefaultCodeCacheBytes>>20),
	}
	c.SecretsKey, c.SecretsKeyFile, c.SecretsOldKeys = getenv("FERRY_SECRETS_KEY"), getenv("FERRY_SECRETS_KEY_FILE"), getenv("FERRY_SECRETS_OLD_KEYS")
	if _, err := c.keyring(); err != nil && r.err == nil {
		r.err = err
	}
	c.PublicURL = strings.TrimSuffix(r.str("FERRY_PUBLIC_URL", "http://"+c.Listen), "/")
	return c, r.err
}

// keyring is the secrets keyring of the configuration.
func (c Config) keyring() (*secrets.Keyring, error) {
	return secrets.LoadKeyring(func(k string) string {
		switch k {
		case "FERRY_SECRETS_KEY":
			return c.SecretsKey
		case "FERRY_SECRETS_KEY_FILE":
			return c.SecretsKeyFile
		case "FERRY_SECRETS_OLD_KEYS":
			return c.SecretsOldKeys
		}
		return ""
	})
}

type envReader struct {
	getenv func(string) string
	err    error
}

func (r *envReader) str(key, def string) string {
	if v := r.getenv(key); v != "" {
		return v
	}
	return def
}

func (r *envReader) fail(key, v, want string) {
	if r.err == nil {
		r.err = ferry.Errorf(ferry.EINVALID, "%s=%q: %s", key, v, want)
	}
}

func (r *envReader) integer(key string, def int) int {
	v := r.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		r.fail(key, v, "want a positive integer")
		return def
	}
	return n
}

func (r *envReader) boolean(key string, def bool) bool {
	v := r.getenv(key)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(key, v, "want true or false")
		return def
	}
	return b
}

func (r *envReader) duration(key string, def time.Duration) time.Duration {
	v := r.getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(key, v, "want a positive duration such as 10m or 30s")
		return def
	}
	return d
}

// String lists the configuration without secrets, for the start-up log.
func (c Config) String() string {
	return fmt.Sprintf("listen=%s metrics=%s database=%s temporal=%s/%s queue=%s s3=%s/%s data=%s",
		c.Listen, c.MetricsListen, redactURL(c.DatabaseURL), c.TemporalAddress, c.TemporalNamespace, c.TaskQueue, c.S3Endpoint, c.S3Bucket, c.DataDir)
}

// redactURL shows where a database connection string points and nothing
// else: a password may sit in the URL's user info, its query or a keyword DSN.
func redactURL(raw string) string {
	c, err := pgconn.ParseConfig(raw)
	if err != nil {
		return "(unparseable)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}
