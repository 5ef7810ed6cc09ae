package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/ferry-faas/ferry"
)

// Bounds of an unpacked bundle (the zip bomb guard). The size of the uploaded
// bundle itself is the API's concern.
const (
	MaxFiles          = 10000
	MaxUnpackedSize   = 250 << 20 // bytes of all files together, as on AWS Lambda
	maxSymlinkHops    = 40
	maxSymlinkTarget  = 1024
	maxDecompressSlop = 16 << 20 // tar headers and padding on top of the file bytes
)

type bundleKind int

const (
	kindFile bundleKind = iota // one source file
	kindZip
	kindTarGz
	kindTar
)

// detectBundle tells archives from a single source file by their magic bytes.
func detectBundle(b []byte) bundleKind {
	switch {
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return kindZip
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return kindTarGz
	case len(b) >= 262 && string(b[257:262]) == "ustar":
		return kindTar
	}
	return kindFile
}

func unprocessable(format string, args ...any) error {
	return ferry.Errorf(ferry.EUNPROCESSABLE, format, args...)
}

type entryType int

const (
	entFile entryType = iota + 1
	entDir
	entSymlink
	entHardlink
)

// entry is one archive member after its name was checked and cleaned.
type entry struct {
	name string // cleaned, slash-separated, relative to the bundle root
	typ  entryType
	exec bool   // any execute bit set
	link string // symlink target as written, or the hardlink's target name
}

// walkArchive calls fn for every member, in archive order, with a reader of
// its content (nil for anything but regular files and zip symlinks).
func walkArchive(kind bundleKind, b []byte, fn func(raw string, typ entryType, mode fs.FileMode, link string, r io.Reader) error) error {
	switch kind {
	case kindZip:
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return unprocessable("the bundle is not a valid zip archive: %v", err)
		}
		if len(zr.File) > MaxFiles {
			return unprocessable("the bundle has %d entries, more than the limit of %d", len(zr.File), MaxFiles)
		}
		for _, f := range zr.File {
			mode := f.Mode()
			typ := entFile
			switch {
			case mode.IsDir() || strings.HasSuffix(f.Name, "/"):
				typ = entDir
			case mode&fs.ModeSymlink != 0:
				typ = entSymlink
			case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
				return unprocessable("bundle entry %q is a device, pipe or socket, which bundles must not contain", f.Name)
			}
			var r io.Reader
			if typ == entFile || typ == entSymlink {
				rc, err := f.Open()
				if err != nil {
					return unprocessable("bundle entry %q cannot be read: %v", f.Name, err)
				}
				r = rc
				err = fn(f.Name, typ, mode, "", r)
				_ = rc.Close()
				if err != nil {
					return err
				}
				continue
			}
			if err := fn(f.Name, typ, mode, "", nil); err != nil {
				return err
			}
		}
		return nil
	case kindTarGz, kindTar:
		var src io.Reader = bytes.NewReader(b)
		if kind == kindTarGz {
			zr, err := gzip.NewReader(src)
			if err != nil {
				return unprocessable("the bundle is not a valid .tar.gz archive: %v", err)
			}
			defer zr.Close()
			src = &capReader{r: zr, left: MaxUnpackedSize + maxDecompressSlop}
		}
		tr := tar.NewReader(src)
		for n := 0; ; n++ {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				if errors.Is(err, errTooBig) {
					return unprocessable("the bundle unpacks to more than %d MiB", MaxUnpackedSize>>20)
				}
				return unprocessable("the bundle is not a valid tar archive: %v", err)
			}
			if n >= MaxFiles {
				return unprocessable("the bundle has more than %d entries", MaxFiles)
			}
			mode := fs.FileMode(h.Mode).Perm()
			var typ entryType
			var r io.Reader
			switch h.Typeflag {
			case tar.TypeReg: // the reader reports legacy TypeRegA entries as TypeReg
				typ, r = entFile, tr
			case tar.TypeDir:
				typ = entDir
			case tar.TypeSymlink:
				typ = entSymlink
			case tar.TypeLink:
				typ = entHardlink
			case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
				return unprocessable("bundle entry %q is a device or pipe, which bundles must not contain", h.Name)
			default:
				return unprocessable("bundle entry %q has the unsupported tar type %q", h.Name, h.Typeflag)
			}
			if err := fn(h.Name, typ, mode, h.Linkname, r); err != nil {
				if errors.Is(err, errTooBig) {
					return unprocessable("the bundle unpacks to more than %d MiB", MaxUnpackedSize>>20)
				}
				return err
			}
		}
	}
	return errors.New("not an archive")
}

var errTooBig = errors.New("too much data")

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errTooBig
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// cleanName checks one member name and returns it cleaned; "" means the
// bundle root itself (e.g. "./").
func cleanName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", unprocessable("the bundle has an entry without a name")
	case strings.ContainsRune(raw, 0):
		return "", unprocessable("bundle entry %q has a NUL byte in its name", raw)
	case strings.ContainsRune(raw, '\\'):
		return "", unprocessable("bundle entry %q uses backslashes; archives must use / as separator", raw)
	case strings.HasPrefix(raw, "/") || (len(raw) >= 2 && raw[1] == ':'):
		return "", unprocessable("bundle entry %q has an absolute path", raw)
	}
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", unprocessable("bundle entry %q points outside the bundle (path traversal)", raw)
		}
	}
	name := path.Clean(raw)
	if name == "." {
		return "", nil
	}
	return name, nil
}

// scan reads the archive's structure and checks it: names, types, duplicates,
// symbolic and hard links. Content is read only for zip symlinks.
func scan(kind bundleKind, b []byte) ([]entry, error) {
	var list []entry
	byName := map[string]entryType{}
	err := walkArchive(kind, b, func(raw string, typ entryType, mode fs.FileMode, link string, r io.Reader) error {
		name, err := cleanName(raw)
		if err != nil {
			return err
		}
		if name == "" {
			if typ != entDir {
				return unprocessable("bundle entry %q is not a directory", raw)
			}
			return nil
		}
		if typ == entSymlink && r != nil {
			t, err := io.ReadAll(io.LimitReader(r, maxSymlinkTarget+1))
			if err != nil {
				return unprocessable("bundle entry %q cannot be read: %v", raw, err)
			}
			link = string(t)
		}
		if typ == entSymlink && (len(link) > maxSymlinkTarget || link == "") {
			return unprocessable("symbolic link %q has an invalid target", raw)
		}
		if typ == entHardlink {
			t, err := cleanName(link)
			if err != nil || t == "" {
				return unprocessable("hard link %q points outside the bundle (%q)", raw, link)
			}
			if prev, ok := byName[t]; !ok || prev != entFile {
				return unprocessable("hard link %q must point to a regular file earlier in the bundle, not %q", raw, link)
			}
			link = t
		}
		if prev, ok := byName[name]; ok && !(prev == entDir && typ == entDir) {
			return unprocessable("bundle entry %q appears twice", raw)
		}
		byName[name] = typ
		list = append(list, entry{name: name, typ: typ, exec: mode&0o111 != 0, link: link})
		return nil
	})
	if err != nil {
		return nil, err
	}
	links := map[string]string{}
	for _, e := range list {
		if e.typ == entSymlink {
			links[e.name] = e.link
		}
	}
	for _, e := range list {
		// No member may sit below a symlink or a file: writing through links
		// is how archives escape their folder.
		for dir := path.Dir(e.name); dir != "."; dir = path.Dir(dir) {
			if t, ok := byName[dir]; ok && t != entDir {
				return nil, unprocessable("bundle entry %q lies below %q, which is not a directory", e.name, dir)
			}
		}
		if e.typ == entSymlink {
			if path.IsAbs(e.link) {
				return nil, unprocessable("symbolic link %q points to the absolute path %q; links must stay inside the bundle", e.name, e.link)
			}
			if err := resolveInside(links, path.Dir(e.name), e.link); err != nil {
				return nil, unprocessable("symbolic link %q -> %q: %v", e.name, e.link, err)
			}
		}
	}
	return list, nil
}

// resolveInside follows target from dir through the bundle's own symlinks,
// component by component as the kernel would, and fails if the walk ever
// leaves the bundle root.
func resolveInside(links map[string]string, dir, target string) error {
	var stack []string
	if dir != "." {
		stack = strings.Split(dir, "/")
	}
	queue := strings.Split(target, "/")
	hops := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return errors.New("it points outside the bundle")
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		t, ok := links[strings.Join(stack, "/")]
		if !ok {
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return errors.New("too many levels of symbolic links")
		}
		if path.IsAbs(t) {
			return errors.New("it goes through a link to an absolute path")
		}
		stack = stack[:len(stack)-1]
		queue = append(strings.Split(t, "/"), queue...)
	}
	return nil
}

// Unpack writes a bundle into dst (created if missing): a .zip, .tar.gz or
// .tar archive (told by magic bytes), or otherwise a single source file named
// name (use SourceFileName). It rejects path traversal, absolute paths, links
// that leave the bundle, devices and pipes, more than MaxFiles entries
// and more than MaxUnpackedSize bytes, each as EUNPROCESSABLE naming the
// entry. Files are world-readable: containers run as an unprivileged user.
func Unpack(bundle []byte, name, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "create %s: %v", dst, err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "chmod %s: %v", dst, err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "open %s: %v", dst, err)
	}
	defer root.Close()
	return extract(bundle, name, &rootSink{root: root})
}

// UnpackFor unpacks the bundle of a function, naming a single source file
// after its handler (SourceFileName).
func UnpackFor(rt ferry.Runtime, handler string, bundle []byte, dst string) error {
	return Unpack(bundle, SourceFileName(rt, handler, bundle), dst)
}

// sink receives the members of a checked bundle.
type sink interface {
	dir(name string) error
	file(name string, exec bool, r io.Reader) (int64, error)
	symlink(name, target string) error
	hardlink(name, target string) (int64, error)
}

func extract(bundle []byte, name string, s sink) error {
	kind := detectBundle(bundle)
	if kind == kindFile {
		clean, err := cleanName(name)
		if err != nil || clean == "" {
			return ferry.Errorf(ferry.EINVALID, "a single-file bundle needs a valid file name, not %q", name)
		}
		if len(bundle) > MaxUnpackedSize {
			return unprocessable("the bundle is larger than %d MiB", MaxUnpackedSize>>20)
		}
		if d := path.Dir(clean); d != "." {
			if err := s.dir(d); err != nil {
				return err
			}
		}
		_, err = s.file(clean, false, bytes.NewReader(bundle))
		return err
	}
	list, err := scan(kind, bundle)
	if err != nil {
		return err
	}
	byName := make(map[string]entry, len(list))
	for _, e := range list {
		byName[e.name] = e
	}
	var total int64
	err = walkArchive(kind, bundle, func(raw string, typ entryType, _ fs.FileMode, _ string, r io.Reader) error {
		name, _ := cleanName(raw)
		if name == "" {
			return nil
		}
		e := byName[name]
		if d := path.Dir(name); d != "." {
			if err := s.dir(d); err != nil {
				return err
			}
		}
		var n int64
		var err error
		switch typ {
		case entDir:
			err = s.dir(name)
		case entFile:
			n, err = s.file(name, e.exec, &capReader{r: r, left: MaxUnpackedSize - total})
		case entSymlink:
			err = s.symlink(name, e.link)
		case entHardlink:
			n, err = s.hardlink(name, e.link)
		}
		total += n
		if errors.Is(err, errTooBig) || total > MaxUnpackedSize {
			return unprocessable("the bundle unpacks to more than %d MiB (at entry %q)", MaxUnpackedSize>>20, raw)
		}
		if err != nil {
			return err
		}
		return nil
	})
	return err
}

// rootSink writes a bundle below an os.Root, which refuses any path that
// would leave the folder even if a check above missed it.
type rootSink struct{ root *os.Root }

func (s *rootSink) dir(name string) error {
	if err := s.root.MkdirAll(name, 0o755); err != nil {
		return writeError(name, err)
	}
	return nil
}

func (s *rootSink) file(name string, exec bool, r io.Reader) (int64, error) {
	perm := fs.FileMode(0o644)
	if exec {
		perm = 0o755
	}
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, writeError(name, err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, errTooBig) {
			return n, err
		}
		return n, unprocessable("bundle entry %q cannot be unpacked: %v", name, err)
	}
	// The umask may have removed bits the container user needs.
	if err := s.root.Chmod(name, perm); err != nil {
		return n, writeError(name, err)
	}
	return n, nil
}

func (s *rootSink) symlink(name, target string) error {
	if err := s.root.Symlink(target, name); err != nil {
		return writeError(name, err)
	}
	return nil
}

func (s *rootSink) hardlink(name, target string) (int64, error) {
	// A copy instead of a link: nothing in the folder can alias anything else.
	src, err := s.root.Open(target)
	if err != nil {
		return 0, writeError(name, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return 0, writeError(name, err)
	}
	return s.file(name, fi.Mode()&0o111 != 0, src)
}

func writeError(name string, err error) error {
	return unprocessable("bundle entry %q cannot be unpacked: %v", name, err)
}
