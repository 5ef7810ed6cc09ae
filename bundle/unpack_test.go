package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-faas/ferry"
)

// member is one archive entry for the test builders.
type member struct {
	name string
	body string
	typ  byte // tar type flag: 0 regular, '5' dir, '2' symlink, '1' hardlink, '3' char device, '6' fifo
	link string
	mode int64
}

func makeTarGz(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Mode: 0o644, Typeflag: tar.TypeReg, Linkname: m.link}
		if m.mode != 0 {
			h.Mode = m.mode
		}
		if m.typ != 0 {
			h.Typeflag = m.typ
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(m.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeZip(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range ms {
		h := &zip.FileHeader{Name: m.name, Method: zip.Deflate}
		switch m.typ {
		case tar.TypeSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
			m.body = m.link
		case tar.TypeDir:
			h.SetMode(fs.ModeDir | 0o755)
		case tar.TypeFifo:
			h.SetMode(fs.ModeNamedPipe | 0o644)
		default:
			h.SetMode(0o644)
			if m.mode != 0 {
				h.SetMode(fs.FileMode(m.mode))
			}
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestUnpackGood(t *testing.T) {
	ms := []member{
		{name: "./", typ: tar.TypeDir},
		{name: "./app.py", body: "def handler(e, c): return e\n"},
		{name: "pkg/", typ: tar.TypeDir},
		{name: "pkg/__init__.py", body: ""},
		{name: "pkg/sub/mod.py", body: "X = 1\n"},
		{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o700},
		{name: "node_modules/.bin/cli", typ: tar.TypeSymlink, link: "../../pkg/sub/mod.py"},
		{name: "alias.py", typ: tar.TypeSymlink, link: "pkg/sub/mod.py"},
	}
	for name, bundle := range map[string][]byte{"tar.gz": makeTarGz(t, ms...), "zip": makeZip(t, ms...)} {
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "code")
			if err := Unpack(bundle, "ignored.py", dst); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(dst, "app.py"))
			if err != nil || !strings.Contains(string(b), "def handler") {
				t.Fatalf("app.py = %q, %v", b, err)
			}
			fi, err := os.Stat(filepath.Join(dst, "pkg/sub/mod.py"))
			if err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("mod.py mode %v, %v (want 0644, world-readable)", fi.Mode(), err)
			}
			fi, err = os.Stat(filepath.Join(dst, "bin/tool"))
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("tool mode %v, %v (want 0755)", fi.Mode(), err)
			}
			b, err = os.ReadFile(filepath.Join(dst, "node_modules/.bin/cli"))
			if err != nil || string(b) != "X = 1\n" {
				t.Errorf("symlink content %q, %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(dst, "ignored.py")); err == nil {
				t.Errorf("name of a single file was used for an archive")
			}
		})
	}
}

func TestUnpackSingleFile(t *testing.T) {
	dst := t.TempDir()
	src := []byte("exports.handler = async (e) => e;\n")
	name := SourceFileName(ferry.RuntimeNode, "src/index.handler", src)
	eq(t, "node name", name, "src/index.js")
	if err := Unpack(src, name, dst); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "src/index.js"))
	if err != nil || !bytes.Equal(b, src) {
		t.Fatalf("content %q, %v", b, err)
	}
	eq(t, "esm name", SourceFileName(ferry.RuntimeNode, "index.handler", []byte("import fs from 'fs';\nexport const handler = async () => 1;\n")), "index.mjs")
	eq(t, "python name", SourceFileName(ferry.RuntimePython, "pkg.mod.handler", nil), "pkg/mod.py")
	eq(t, "go name", SourceFileName(ferry.RuntimeGo, "Handle", nil), "main.go")
	if err := Unpack(src, "../evil.js", t.TempDir()); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("single file named ../evil.js: %v", err)
	}
}

func TestUnpackRejects(t *testing.T) {
	big := strings.Repeat("0", 1<<20)
	tests := []struct {
		name    string
		members []member
		zipToo  bool
		want    string // part of the message
	}{
		{"dot-dot", []member{{name: "../evil.py", body: "x"}}, true, "path traversal"},
		{"nested dot-dot", []member{{name: "a/../../evil.py", body: "x"}}, true, "path traversal"},
		{"absolute", []member{{name: "/etc/cron.d/evil", body: "x"}}, true, "absolute path"},
		{"backslash", []member{{name: `..\evil.py`, body: "x"}}, true, "backslashes"},
		{"absolute symlink", []member{{name: "passwd", typ: tar.TypeSymlink, link: "/etc/passwd"}}, true, "absolute path"},
		{"escaping symlink", []member{{name: "a/up", typ: tar.TypeSymlink, link: "../../outside"}}, true, "outside the bundle"},
		{"symlink chain escapes", []member{
			{name: "d/e/s", typ: tar.TypeSymlink, link: ".."},
			{name: "d/e/t", typ: tar.TypeSymlink, link: "s/../../x"},
		}, true, "outside the bundle"},
		{"symlink loop", []member{
			{name: "a", typ: tar.TypeSymlink, link: "b"},
			{name: "b", typ: tar.TypeSymlink, link: "a"},
		}, true, "too many levels"},
		{"write through symlink", []member{
			{name: "dir", typ: tar.TypeSymlink, link: "."},
			{name: "dir/x.py", body: "x"},
		}, true, "not a directory"},
		{"hardlink outside", []member{{name: "h", typ: tar.TypeLink, link: "../../etc/shadow"}}, false, "outside the bundle"},
		{"hardlink absolute", []member{{name: "h", typ: tar.TypeLink, link: "/etc/shadow"}}, false, "outside the bundle"},
		{"hardlink to missing", []member{{name: "h", typ: tar.TypeLink, link: "nope"}}, false, "regular file earlier"},
		{"char device", []member{{name: "null", typ: tar.TypeChar}}, false, "device"},
		{"fifo", []member{{name: "pipe", typ: tar.TypeFifo}}, true, "pipe"},
		{"duplicate", []member{{name: "a.py", body: "1"}, {name: "./a.py", body: "2"}}, true, "twice"},
		{"too large", func() []member {
			var ms []member
			for i := 0; i < MaxUnpackedSize>>20+1; i++ {
				ms = append(ms, member{name: "f" + strconv.Itoa(i), body: big})
			}
			return ms
		}(), true, "more than 250 MiB"},
	}
	for _, tc := range tests {
		bundles := map[string][]byte{"tar.gz": makeTarGz(t, tc.members...)}
		if tc.zipToo {
			bundles["zip"] = makeZip(t, tc.members...)
		}
		for kind, b := range bundles {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				parent := t.TempDir()
				dst := filepath.Join(parent, "code")
				err := Unpack(b, "x.py", dst)
				if ferry.ErrorCode(err) != ferry.EUNPROCESSABLE || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Unpack error = %v, want EUNPROCESSABLE containing %q", err, tc.want)
				}
				// Nothing was written outside dst.
				entries, _ := os.ReadDir(parent)
				if len(entries) != 1 {
					t.Errorf("parent holds %d entries, want only code/", len(entries))
				}
				// Validate rejects it the same way.
				if err := Validate(ferry.RuntimePython, "x.handler", b, "b."+kind); ferry.ErrorCode(err) != ferry.EUNPROCESSABLE {
					t.Errorf("Validate = %v", err)
				}
			})
		}
	}
}

func TestUnpackTooManyFiles(t *testing.T) {
	ms := make([]member, MaxFiles+1)
	for i := range ms {
		ms[i] = member{name: "f" + strconv.Itoa(i)}
	}
	for kind, b := range map[string][]byte{"tar.gz": makeTarGz(t, ms...), "zip": makeZip(t, ms...)} {
		err := Unpack(b, "", filepath.Join(t.TempDir(), "c"))
		if ferry.ErrorCode(err) != ferry.EUNPROCESSABLE || !strings.Contains(err.Error(), "entries") {
			t.Errorf("%s: %v", kind, err)
		}
	}
}

func TestUnpackGzipBomb(t *testing.T) {
	// One tar member of 300 MiB of zeros compresses to about 1 MiB.
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	const size = 300 << 20
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := 0; i < size/len(chunk); i++ {
		_, _ = tw.Write(chunk)
	}
	_ = tw.Close()
	_ = zw.Close()
	err := Unpack(buf.Bytes(), "", filepath.Join(t.TempDir(), "c"))
	if ferry.ErrorCode(err) != ferry.EUNPROCESSABLE || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("gzip bomb: %v", err)
	}
}

func TestValidate(t *testing.T) {
	goMain := "package main\n\nimport \"context\"\n\nfunc Handle(ctx context.Context, e map[string]any) (map[string]any, error) { return e, nil }\n"
	tests := []struct {
		name     string
		rt       ferry.Runtime
		handler  string
		bundle   []byte
		filename string
		code     string // "" for success
		want     string
	}{
		{"python file", ferry.RuntimePython, "app.handler", []byte("def handler(e, c): pass\n"), "app.py", "", ""},
		{"python file, no name", ferry.RuntimePython, "app.handler", []byte("def handler(e, c): pass\n"), "", "", ""},
		{"python package", ferry.RuntimePython, "pkg.mod.handler", makeZip(t, member{name: "pkg/__init__.py"}, member{name: "pkg/mod.py", body: "def handler(e): pass"}), "f.zip", "", ""},
		{"python package init", ferry.RuntimePython, "pkg.handler", makeTarGz(t, member{name: "pkg/__init__.py", body: "def handler(e): pass"}), "f.tar.gz", "", ""},
		{"python handler with a folder", ferry.RuntimePython, "src/app.handler", makeZip(t, member{name: "src/app.py", body: "x"}), "f.zip", "", ""},
		{"python handler with folders", ferry.RuntimePython, "src/pkg/app.handler", makeZip(t, member{name: "src/pkg/app.py", body: "x"}), "f.zip", "", ""},
		{"python handler with a folder, file", ferry.RuntimePython, "src/app.handler", []byte("def handler(e, c): pass\n"), "app.py", "", ""},
		{"python handler with a folder, missing", ferry.RuntimePython, "src/app.handler", makeZip(t, member{name: "app.py", body: "x"}), "f.zip", ferry.EUNPROCESSABLE, "src/app.py"},
		{"python traversal handler", ferry.RuntimePython, "../app.handler", []byte("x"), "app.py", ferry.EINVALID, "dir/file.function"},
		{"go handler with a path", ferry.RuntimeGo, "src/main.Handle", []byte(goMain), "", ferry.EINVALID, "not a path"},
		{"python bad handler", ferry.RuntimePython, "handler", []byte("x"), "app.py", ferry.EINVALID, "file.function"},
		{"python bad handler chars", ferry.RuntimePython, "app-x.handler", []byte("x"), "app.py", ferry.EINVALID, "file.function"},
		{"python wrong extension", ferry.RuntimePython, "app.handler", []byte("x"), "app.js", ferry.EUNPROCESSABLE, "must end in .py"},
		{"python missing file", ferry.RuntimePython, "main.handler", makeZip(t, member{name: "app.py", body: "x"}), "f.zip", ferry.EUNPROCESSABLE, "main.py"},
		{"python folder zipped", ferry.RuntimePython, "app.handler", makeZip(t, member{name: "myfn/app.py", body: "x"}), "f.zip", ferry.EUNPROCESSABLE, "myfn/app.py"},
		{"node file", ferry.RuntimeNode, "index.handler", []byte("exports.handler = async e => e\n"), "index.js", "", ""},
		{"node mjs in zip", ferry.RuntimeNode, "src/app.main", makeZip(t, member{name: "src/app.mjs", body: "export const main = () => 1"}), "", "", ""},
		{"node nested export", ferry.RuntimeNode, "index.api.handler", makeZip(t, member{name: "index.cjs", body: "x"}), "", "", ""},
		{"node missing", ferry.RuntimeNode, "index.handler", makeZip(t, member{name: "main.js", body: "x"}), "", ferry.EUNPROCESSABLE, "index.js"},
		{"node traversal handler", ferry.RuntimeNode, "../index.handler", []byte("x"), "", ferry.EINVALID, "file.export"},
		{"go file", ferry.RuntimeGo, "Handle", []byte(goMain), "main.go", "", ""},
		{"go other name", ferry.RuntimeGo, "Greet", []byte(strings.Replace(goMain, "Handle", "Greet", 1)), "", "", ""},
		{"go missing func", ferry.RuntimeGo, "Other", []byte(goMain), "main.go", ferry.EUNPROCESSABLE, "func Other"},
		{"go with main", ferry.RuntimeGo, "Handle", []byte(goMain + "\nfunc main() {}\n"), "main.go", ferry.EUNPROCESSABLE, "func main"},
		{"go not main package", ferry.RuntimeGo, "Handle", []byte(strings.Replace(goMain, "package main", "package fn", 1)), "", ferry.EUNPROCESSABLE, "package fn"},
		{"go no files at root", ferry.RuntimeGo, "Handle", makeZip(t, member{name: "src/main.go", body: goMain}), "", ferry.EUNPROCESSABLE, ".go files at its root"},
		{"go handler main", ferry.RuntimeGo, "main", []byte(goMain), "", ferry.EINVALID, "Go function"},
		{"go vendored", ferry.RuntimeGo, "Handle", makeTarGz(t, member{name: "main.go", body: goMain}, member{name: "go.mod", body: "module fn\n"}, member{name: "vendor/modules.txt"}), "", "", ""},
		{"bad zip", ferry.RuntimePython, "app.handler", []byte("PK\x03\x04garbage"), "f.zip", ferry.EUNPROCESSABLE, "zip"},
		{"named zip, not zip", ferry.RuntimePython, "app.handler", []byte("print(1)"), "code.zip", ferry.EUNPROCESSABLE, "not a valid zip"},
		{"binary file", ferry.RuntimePython, "app.handler", []byte("\x7fELF\x00\x00"), "", ferry.EUNPROCESSABLE, "neither"},
		{"empty", ferry.RuntimePython, "app.handler", nil, "", ferry.EUNPROCESSABLE, "empty"},
		{"unknown runtime", "ruby", "app.handler", []byte("x"), "", ferry.EINVALID, "runtime"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.rt, tc.handler, tc.bundle, tc.filename)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if ferry.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %s containing %q", err, tc.code, tc.want)
			}
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
