// Command testsummary turns `go test -json` on stdin into a short report:
// one line per top-level test that passed, the reason of every skipped test,
// the whole output of every failed test, build errors, and a summary. The raw
// JSON stream can be kept in a file with -raw. It exits 1 when anything failed,
// so that `make test` fails with it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string // build-output, build-fail
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

type testKey struct{ pkg, test string }

type summary struct {
	out io.Writer

	outputs map[testKey][]string // buffered output of running tests and packages
	passed  int
	failed  []string
	skipped []string
	pkgFail []string
	pkgs    int
	noTests int
	builds  map[string][]string // build output per import path
}

func main() {
	raw := flag.String("raw", "", "also write the raw JSON stream to this file")
	flag.Parse()

	var in io.Reader = os.Stdin
	if *raw != "" {
		f, err := os.Create(*raw)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = io.TeeReader(os.Stdin, f)
	}

	s := &summary{out: os.Stdout, outputs: map[testKey][]string{}, builds: map[string][]string{}}
	ok := s.run(in)
	if !ok {
		os.Exit(1)
	}
}

// run consumes the stream and reports whether everything passed.
func (s *summary) run(in io.Reader) bool {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not test2json: e.g. `go vet` or linker output; show it as is.
			fmt.Fprintln(s.out, string(line))
			continue
		}
		s.handle(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(s.out, "testsummary: reading input:", err)
		return false
	}
	return s.report()
}

func (s *summary) handle(e event) {
	key := testKey{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		s.builds[e.ImportPath] = append(s.builds[e.ImportPath], e.Output)
	case "build-fail":
		fmt.Fprintf(s.out, "BUILD FAIL %s\n%s", e.ImportPath, strings.Join(s.builds[e.ImportPath], ""))
		s.pkgFail = append(s.pkgFail, e.ImportPath+" (build)")
		delete(s.builds, e.ImportPath)
	case "output":
		s.outputs[key] = append(s.outputs[key], e.Output)
	case "pass", "fail", "skip":
		if e.Test == "" {
			s.packageDone(e)
		} else {
			s.testDone(e)
		}
		delete(s.outputs, key)
	}
}

func (s *summary) testDone(e event) {
	key := testKey{e.Package, e.Test}
	name := shortPkg(e.Package) + " " + e.Test
	top := !strings.Contains(e.Test, "/")
	switch e.Action {
	case "pass":
		if top {
			s.passed++
			fmt.Fprintf(s.out, "PASS  %s (%.2fs)\n", name, e.Elapsed)
		}
	case "skip":
		s.skipped = append(s.skipped, name)
		fmt.Fprintf(s.out, "SKIP  %s: %s\n", name, skipReason(s.outputs[key]))
	case "fail":
		s.failed = append(s.failed, name)
		fmt.Fprintf(s.out, "FAIL  %s (%.2fs)\n", name, e.Elapsed)
		for _, l := range s.outputs[key] {
			// The === and --- headers only repeat what the FAIL line says.
			if t := strings.TrimSpace(l); strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
				continue
			}
			fmt.Fprint(s.out, "      ", l)
		}
	}
}

func (s *summary) packageDone(e event) {
	key := testKey{e.Package, ""}
	s.pkgs++
	out := s.outputs[key]
	switch e.Action {
	case "pass":
		fmt.Fprintf(s.out, "ok    %s (%.1fs)\n", e.Package, e.Elapsed)
	case "skip":
		s.noTests++
	case "fail":
		s.pkgFail = append(s.pkgFail, e.Package)
		fmt.Fprintf(s.out, "FAIL  %s (%.1fs)\n", e.Package, e.Elapsed)
		// Package-level output holds panics, timeouts and TestMain failures.
		for _, l := range out {
			if l == "FAIL\n" || strings.HasPrefix(l, "FAIL\t") || strings.HasPrefix(l, "=== ") {
				continue
			}
			fmt.Fprint(s.out, "      ", l)
		}
	}
}

func (s *summary) report() bool {
	// Build output without a build-fail event (e.g. warnings) is still worth seeing.
	paths := make([]string, 0, len(s.builds))
	for p := range s.builds {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(s.out, "build output of %s:\n%s", p, strings.Join(s.builds[p], ""))
	}

	fmt.Fprintf(s.out, "\n==== %d packages (%d without tests): %d tests passed, %d failed, %d skipped; %d packages failed\n",
		s.pkgs, s.noTests, s.passed, len(s.failed), len(s.skipped), len(s.pkgFail))
	list := func(title string, names []string) {
		if len(names) == 0 {
			return
		}
		fmt.Fprintf(s.out, "%s:\n", title)
		for _, n := range names {
			fmt.Fprintf(s.out, "  %s\n", n)
		}
	}
	list("skipped", s.skipped)
	list("failed tests", s.failed)
	list("failed packages", s.pkgFail)
	return len(s.failed) == 0 && len(s.pkgFail) == 0
}

// skipReason picks the message of t.Skip out of a skipped test's output.
func skipReason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		msg = append(msg, t)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " | ")
}

// shortPkg drops the module path so that lines stay readable.
func shortPkg(p string) string {
	const mod = "github.com/ferry-faas/ferry"
	if p == mod {
		return "ferry"
	}
	return strings.TrimPrefix(p, mod+"/")
}
