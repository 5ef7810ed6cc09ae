package ferry_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayout pins the seams between packages that the compiler does not
// (README.md, "Layout"): the function contract in bundle/ needs no Docker,
// and the HTTP API reaches the executor only through the worker's packages,
// never by importing runtimes/ itself.
func TestLayout(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found:", err)
	}
	for _, rule := range []struct {
		pkg    string
		format string // go list template: the imports or the dependencies
		banned string // prefix of a package pkg may not reach that way
	}{
		{"./api", "{{join .Imports \"\\n\"}}", "github.com/ferry-faas/ferry/runtimes"},
		{"./bundle", "{{join .Deps \"\\n\"}}", "github.com/docker/"},
		{"./bundle", "{{join .Deps \"\\n\"}}", "github.com/ferry-faas/ferry/runtimes"},
	} {
		out, err := exec.Command("go", "list", "-f", rule.format, rule.pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", rule.pkg, err)
		}
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, rule.banned) {
				t.Errorf("%s reaches %s (%s)", rule.pkg, p, rule.format)
			}
		}
	}
}
