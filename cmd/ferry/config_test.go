package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.TemporalAddress != "127.0.0.1:7233" || c.IdleTimeout != 10*time.Minute {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestLoadConfigNamesTheBadVariable(t *testing.T) {
	for key, val := range map[string]string{
		"FERRY_IDLE_TIMEOUT":   "soon",
		"FERRY_MAX_CONTAINERS": "-3",
		"FERRY_S3_SECURE":      "maybe",
	} {
		_, err := LoadConfig(func(k string) string {
			if k == key {
				return val
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: error %v does not name the variable", key, val, err)
		}
	}
}

func TestRedactURLHidesPasswords(t *testing.T) {
	for _, dsn := range []string{
		"postgres://ferry:s3cret@db:5432/ferry?sslmode=disable",
		"postgres://ferry@db:5432/ferry?password=s3cret",
		"host=db port=5432 user=ferry password=s3cret dbname=ferry",
	} {
		got := redactURL(dsn)
		if strings.Contains(got, "s3cret") || got != "postgres://ferry@db:5432/ferry" {
			t.Errorf("redactURL(%q) = %q", dsn, got)
		}
	}
}
