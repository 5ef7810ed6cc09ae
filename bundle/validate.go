package bundle

import (
	"bytes"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/ferry-faas/ferry"
)

// listSink records what a bundle holds without writing it: the names, and the
// content of Go files at the root (for the deploy-time handler check).
type listSink struct {
	names  map[string]entryType
	goSrcs map[string][]byte
}

func (s *listSink) dir(name string) error {
	if _, ok := s.names[name]; !ok {
		s.names[name] = entDir
	}
	return nil
}

func (s *listSink) file(name string, _ bool, r io.Reader) (int64, error) {
	s.names[name] = entFile
	if path.Dir(name) == "." && strings.HasSuffix(name, ".go") {
		var buf bytes.Buffer
		n, err := io.Copy(&buf, r)
		s.goSrcs[name] = buf.Bytes()
		return n, err
	}
	return io.Copy(io.Discard, r)
}

func (s *listSink) symlink(name, _ string) error {
	s.names[name] = entSymlink
	return nil
}

func (s *listSink) hardlink(name, target string) (int64, error) {
	s.names[name] = entFile
	return 0, nil
}

// Validate is the deploy-time check of a code bundle: a safe archive (or
// a single source file), a handler with valid syntax, and the handler's file
// at the bundle root. filename is the uploaded file's name, or "" when
// unknown; it only improves the messages. Errors are EINVALID (handler) or
// EUNPROCESSABLE (bundle).
func Validate(rt ferry.Runtime, handler string, bundle []byte, filename string) error {
	if err := CheckHandler(rt, handler); err != nil {
		return err
	}
	if len(bundle) == 0 {
		return unprocessable("the code bundle is empty")
	}
	kind := detectBundle(bundle)
	lower := strings.ToLower(filename)
	if kind == kindFile {
		switch {
		case strings.HasSuffix(lower, ".zip"):
			return unprocessable("%s is not a valid zip archive", filename)
		case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
			return unprocessable("%s is not a valid .tar.gz archive", filename)
		}
		if bytes.IndexByte(bundle, 0) >= 0 {
			return unprocessable("the code is neither a .zip or .tar.gz archive nor a text source file")
		}
		want := map[ferry.Runtime][]string{
			ferry.RuntimePython: {".py"}, ferry.RuntimeNode: {".js", ".cjs", ".mjs"}, ferry.RuntimeGo: {".go"},
		}[rt]
		if filename != "" && !hasAnySuffix(lower, want) {
			return unprocessable("a %s function's source file must end in %s, not %q", rt, strings.Join(want, " or "), path.Base(filename))
		}
	}
	ls := &listSink{names: map[string]entryType{}, goSrcs: map[string][]byte{}}
	if err := extract(bundle, SourceFileName(rt, handler, bundle), ls); err != nil {
		return err
	}
	switch rt {
	case ferry.RuntimePython:
		mod := pyModule(handler)
		if ls.names[mod+".py"] == entFile || ls.names[mod+"/__init__.py"] == entFile || isLink(ls.names, mod+".py") {
			return nil
		}
		return missingHandlerFile(ls.names, handler, mod+".py")
	case ferry.RuntimeNode:
		mod := nodeModule(handler)
		for _, ext := range []string{".js", ".cjs", ".mjs"} {
			if t, ok := ls.names[mod+ext]; ok && t != entDir {
				return nil
			}
		}
		return missingHandlerFile(ls.names, handler, mod+".js")
	case ferry.RuntimeGo:
		return checkGoSources(ls.goSrcs, handler)
	}
	return nil
}

func isLink(names map[string]entryType, name string) bool { return names[name] == entSymlink }

func hasAnySuffix(s string, suffixes []string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}

// missingHandlerFile explains a missing handler file, pointing at a copy one
// folder down (the usual mistake: zipping the folder instead of its content).
func missingHandlerFile(names map[string]entryType, handler, want string) error {
	var nested []string
	for n, t := range names {
		if t != entDir && strings.HasSuffix(n, "/"+want) {
			nested = append(nested, n)
		}
	}
	sort.Strings(nested)
	if len(nested) > 0 {
		return unprocessable("handler %q needs %s at the bundle root, but it is at %s: archive the folder's content, not the folder", handler, want, nested[0])
	}
	return unprocessable("handler %q needs %s at the bundle root, which the bundle does not contain", handler, want)
}

// Go source checks of the deploy (a text match: the build gives the
// compiler's own messages).
var (
	goPackageRE = regexp.MustCompile(`(?m)^package\s+(\w+)`)
	goMainRE    = regexp.MustCompile(`(?m)^func\s+main\s*\(`)
)

// checkGoSources checks a Go bundle's root: package main, a function named by
// the handler, and no main (Ferry adds it).
func checkGoSources(srcs map[string][]byte, handler string) error {
	var files []string
	for n := range srcs {
		if !strings.HasSuffix(n, "_test.go") {
			files = append(files, n)
		}
	}
	if len(files) == 0 {
		return unprocessable("a go bundle needs .go files at its root")
	}
	sort.Strings(files)
	handlerRE := regexp.MustCompile(`(?m)^func\s+` + regexp.QuoteMeta(handler) + `\s*[\[(]`)
	found := false
	for _, n := range files {
		src := srcs[n]
		if m := goPackageRE.FindSubmatch(src); m != nil && string(m[1]) != "main" {
			return unprocessable("%s is package %s; a go function's files must be package main", n, m[1])
		}
		if goMainRE.Match(src) {
			return unprocessable("%s declares func main; remove it, Ferry adds the main that serves %s", n, handler)
		}
		found = found || handlerRE.Match(src)
	}
	if !found {
		return unprocessable("no .go file at the bundle root declares func %s(ctx context.Context, event T) (R, error)", handler)
	}
	return nil
}
