package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummaryShowsSkipsAndFailures(t *testing.T) {
	stream := strings.Join([]string{
		`{"Action":"start","Package":"github.com/ferry-faas/ferry/api"}`,
		`{"Action":"run","Package":"github.com/ferry-faas/ferry/api","Test":"TestOK"}`,
		`{"Action":"output","Package":"github.com/ferry-faas/ferry/api","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"pass","Package":"github.com/ferry-faas/ferry/api","Test":"TestOK","Elapsed":0.5}`,
		`{"Action":"run","Package":"github.com/ferry-faas/ferry/api","Test":"TestDB"}`,
		`{"Action":"output","Package":"github.com/ferry-faas/ferry/api","Test":"TestDB","Output":"    db_test.go:9: PostgreSQL unavailable: refused\n"}`,
		`{"Action":"output","Package":"github.com/ferry-faas/ferry/api","Test":"TestDB","Output":"--- SKIP: TestDB (0.00s)\n"}`,
		`{"Action":"skip","Package":"github.com/ferry-faas/ferry/api","Test":"TestDB"}`,
		`{"Action":"run","Package":"github.com/ferry-faas/ferry/api","Test":"TestBad"}`,
		`{"Action":"output","Package":"github.com/ferry-faas/ferry/api","Test":"TestBad","Output":"    bad_test.go:3: want 1, got 2\n"}`,
		`{"Action":"output","Package":"github.com/ferry-faas/ferry/api","Test":"TestBad","Output":"    --- FAIL: TestBad (0.10s)\n"}`,
		`{"Action":"fail","Package":"github.com/ferry-faas/ferry/api","Test":"TestBad","Elapsed":0.1}`,
		`{"Action":"fail","Package":"github.com/ferry-faas/ferry/api","Elapsed":1.2}`,
		`{"ImportPath":"github.com/ferry-faas/ferry/worker","Action":"build-output","Output":"worker/x.go:1: syntax error\n"}`,
		`{"ImportPath":"github.com/ferry-faas/ferry/worker","Action":"build-fail"}`,
		`{"Action":"skip","Package":"github.com/ferry-faas/ferry/cmd/ferry"}`,
	}, "\n")
	var out bytes.Buffer
	s := &summary{out: &out, outputs: map[testKey][]string{}, builds: map[string][]string{}}
	if s.run(strings.NewReader(stream)) {
		t.Fatal("run reported success for a stream with a failed test")
	}
	got := out.String()
	if strings.Contains(got, "--- FAIL") {
		t.Errorf("output repeats the --- FAIL header:\n%s", got)
	}
	for _, want := range []string{
		"PASS  api TestOK (0.50s)",
		"SKIP  api TestDB: db_test.go:9: PostgreSQL unavailable: refused",
		"FAIL  api TestBad",
		"bad_test.go:3: want 1, got 2",
		"BUILD FAIL github.com/ferry-faas/ferry/worker\nworker/x.go:1: syntax error",
		"2 packages (1 without tests): 1 tests passed, 1 failed, 1 skipped; 2 packages failed",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestSummaryAllPassed(t *testing.T) {
	stream := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestA/sub"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Elapsed":0.1}
`
	var out bytes.Buffer
	s := &summary{out: &out, outputs: map[testKey][]string{}, builds: map[string][]string{}}
	if !s.run(strings.NewReader(stream)) {
		t.Fatalf("run reported failure:\n%s", out.String())
	}
	if s.passed != 1 {
		t.Errorf("passed = %d, want 1 (subtests are not counted)", s.passed)
	}
}
