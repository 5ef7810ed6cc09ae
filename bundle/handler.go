package bundle

import (
	"path"
	"regexp"
	"strings"

	"github.com/ferry-faas/ferry"
)

// Handler syntax per runtime (AWS Lambda conventions).
var (
	pyHandlerRE   = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$`)
	nodeHandlerRE = regexp.MustCompile(`^([A-Za-z0-9_.@-]+/)*[A-Za-z0-9_-]+(\.[A-Za-z_$][A-Za-z0-9_$]*)+$`)
	goHandlerRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	esmRE         = regexp.MustCompile(`(?m)^\s*(import\s*[\w{*'"]|export\s+(default|const|let|var|function|async|class)\b|export\s*[{*])`)
)

// CheckHandler validates the handler's syntax for the runtime (EINVALID).
func CheckHandler(rt ferry.Runtime, handler string) error {
	switch rt {
	case ferry.RuntimePython:
		if !pyHandlerRE.MatchString(handler) {
			return ferry.Errorf(ferry.EINVALID, "python handler %q must look like file.function, package.module.function or dir/file.function, with Python identifiers as names", handler)
		}
	case ferry.RuntimeNode:
		if !nodeHandlerRE.MatchString(handler) || strings.Contains("/"+handler, "/../") || strings.Contains("/"+handler, "/./") {
			return ferry.Errorf(ferry.EINVALID, "nodejs handler %q must look like file.export or dir/file.export", handler)
		}
	case ferry.RuntimeGo:
		if strings.ContainsAny(handler, "/.") {
			// A Go function is built from the package main at the bundle's
			// root; code in sub-folders is a package that main imports.
			return ferry.Errorf(ferry.EINVALID, "go handler %q must be the name of a function of package main at the bundle root (such as Handle), not a path: Ferry builds the root package, which may import packages from sub-folders", handler)
		}
		if !goHandlerRE.MatchString(handler) || handler == "main" || handler == "init" {
			return ferry.Errorf(ferry.EINVALID, "go handler %q must be the name of a Go function such as Handle", handler)
		}
	default:
		return ferry.Errorf(ferry.EINVALID, "unknown runtime %q", rt)
	}
	return nil
}

// nodeModule splits a Node.js handler into its module path (without
// extension) and export: "src/index.handler" -> "src/index".
func nodeModule(handler string) string {
	dir, base := path.Split(handler)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	return dir + base
}

// pyModule returns the module part of a Python handler as a path:
// "pkg.mod.fn" and "pkg/mod.fn" -> "pkg/mod".
func pyModule(handler string) string {
	i := strings.LastIndexByte(handler, '.')
	if i < 0 {
		return handler
	}
	return strings.ReplaceAll(handler[:i], ".", "/")
}

// SourceFileName names a single-file bundle after its handler: python
// "app.handler" -> app.py; nodejs "index.handler" -> index.js, or index.mjs
// when the source uses ES module syntax; go -> main.go.
func SourceFileName(rt ferry.Runtime, handler string, src []byte) string {
	switch rt {
	case ferry.RuntimePython:
		return pyModule(handler) + ".py"
	case ferry.RuntimeNode:
		if esmRE.Match(src) {
			return nodeModule(handler) + ".mjs"
		}
		return nodeModule(handler) + ".js"
	default:
		return "main.go"
	}
}
