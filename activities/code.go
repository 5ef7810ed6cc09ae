package activities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/s3"
	"golang.org/x/sync/singleflight"
)

// Builder compiles a Go bundle into a static binary named bootstrap in outDir.
type Builder interface {
	BuildGo(ctx context.Context, srcDir, handler, outDir string) error
}

// Defaults of CodeCache's bounds.
const (
	DefaultCodeCacheBytes = 2 << 30
	DefaultCodeKeepFor    = 30 * time.Minute
)

// CodeCache keeps versions' code unpacked on this worker, one folder per
// version (function identity and version number, never the code's bytes alone:
// a single-file bundle is named after its handler, so identical bytes of two
// versions may need different layouts). S3 is read once per worker and version,
// and Go is built once per function and checksum (the binary is kept in the
// object store under the function's prefix and shared by all workers).
//
// The folders are bounded by MaxBytes, least recently used first. A folder is
// only removed once unused for KeepFor, since warm containers mount it: KeepFor
// must exceed the executor's idle timeout plus the longest invocation, and the
// cache may exceed MaxBytes while everything in it is that recent.
type CodeCache struct {
	Root     string
	Objects  Objects
	Builder  Builder
	Unpack   func(rt ferry.Runtime, handler string, bundle []byte, dst string) error
	MaxBytes int64         // 0: DefaultCodeCacheBytes
	KeepFor  time.Duration // 0: DefaultCodeKeepFor
	Logger   *slog.Logger  // nil: slog.Default()

	flight  singleflight.Group
	mu      sync.Mutex
	entries map[string]*cacheEntry // by folder; nil until the first use scans Root
	total   int64
}

type cacheEntry struct {
	size     int64
	lastUsed time.Time
}

// Cache folders, below Root: "src" holds unpacked bundles, "go" built binaries.
const (
	srcDir = "src"
	goDir  = "go"
)

// Dir returns a folder holding v's code ready to mount at /var/task.
func (c *CodeCache) Dir(ctx context.Context, v ferry.Version) (string, error) {
	if v.Runtime == ferry.RuntimeGo {
		return c.once(c.versionDir(goDir, v), func(tmp string) error {
			return c.goBinary(ctx, v, tmp)
		})
	}
	return c.source(ctx, v)
}

func (c *CodeCache) versionDir(kind string, v ferry.Version) string {
	return filepath.Join(c.Root, kind, fmt.Sprintf("%s-%d", v.FunctionID, v.Version))
}

func (c *CodeCache) source(ctx context.Context, v ferry.Version) (string, error) {
	return c.once(c.versionDir(srcDir, v), func(tmp string) error {
		bundle, err := c.Objects.Get(ctx, v.CodeKey)
		if err != nil {
			return err
		}
		return c.Unpack(v.Runtime, v.Handler, bundle, tmp)
	})
}

// GoArtifactKey is the object key of a Go version's built binary. It lives under
// the function's prefix in the object store (see storage/s3), so that deleting
// the function deletes it.
func GoArtifactKey(v ferry.Version) string {
	return s3.FunctionPrefix(v.FunctionID) + fmt.Sprintf("go/%s/%s/bootstrap", v.Checksum, v.Handler)
}

// goBinary fills dst with bootstrap: from the artifact store when another
// worker built it already, else by building it here and storing it.
func (c *CodeCache) goBinary(ctx context.Context, v ferry.Version, dst string) error {
	key := GoArtifactKey(v)
	if ok, err := c.Objects.Exists(ctx, key); err != nil {
		return err
	} else if ok {
		bin, err := c.Objects.Get(ctx, key)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, "bootstrap"), bin, 0o755)
	}
	src, err := c.source(ctx, v)
	if err != nil {
		return err
	}
	if err := c.Builder.BuildGo(ctx, src, v.Handler, dst); err != nil {
		return err
	}
	bin, err := os.ReadFile(filepath.Join(dst, "bootstrap"))
	if err != nil {
		return fmt.Errorf("read built binary: %w", err)
	}
	return c.Objects.Put(ctx, key, bin)
}

// once makes dir with fill unless it exists, filling a temporary folder and
// renaming it so that a crash never leaves a half-filled dir behind.
func (c *CodeCache) once(dir string, fill func(tmp string) error) (string, error) {
	if c.touch(dir) {
		return dir, nil
	}
	_, err, _ := c.flight.Do(dir, func() (any, error) {
		if _, err := os.Stat(dir); err == nil {
			c.add(dir, dirSize(dir))
			return nil, nil
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		tmp := dir + ".tmp-" + randomSuffix()
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if err := fill(tmp); err != nil {
			return nil, err
		}
		// Containers run as another user: the code must be readable by all.
		if err := os.Chmod(tmp, 0o755); err != nil {
			return nil, err
		}
		size := dirSize(tmp)
		if err := os.Rename(tmp, dir); err != nil {
			return nil, err
		}
		c.add(dir, size)
		return nil, nil
	})
	return dir, err
}

// touch marks dir used now and reports whether it is cached.
func (c *CodeCache) touch(dir string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	e, ok := c.entries[dir]
	if ok {
		e.lastUsed = time.Now()
	}
	return ok
}

// add records a filled folder and evicts what the bound asks for.
func (c *CodeCache) add(dir string, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	if e, ok := c.entries[dir]; ok {
		e.lastUsed = time.Now()
		return
	}
	c.entries[dir] = &cacheEntry{size: size, lastUsed: time.Now()}
	c.total += size
	c.evict(time.Now())
}

// load reads what an earlier process left under Root (with c.mu held): each
// folder counts as last used at its modification time. Half-filled temporary
// folders of a crash are removed.
func (c *CodeCache) load() {
	if c.entries != nil {
		return
	}
	c.entries = map[string]*cacheEntry{}
	for _, kind := range []string{srcDir, goDir} {
		list, _ := os.ReadDir(filepath.Join(c.Root, kind))
		for _, d := range list {
			path := filepath.Join(c.Root, kind, d.Name())
			if strings.Contains(d.Name(), ".tmp-") {
				_ = os.RemoveAll(path)
				continue
			}
			info, err := d.Info()
			if err != nil || !d.IsDir() {
				continue
			}
			size := dirSize(path)
			c.entries[path] = &cacheEntry{size: size, lastUsed: info.ModTime()}
			c.total += size
		}
	}
}

// evict removes least recently used folders, unused for KeepFor, while the
// cache is over MaxBytes (with c.mu held).
func (c *CodeCache) evict(now time.Time) {
	max, keep := c.MaxBytes, c.KeepFor
	if max <= 0 {
		max = DefaultCodeCacheBytes
	}
	if keep <= 0 {
		keep = DefaultCodeKeepFor
	}
	if c.total <= max {
		return
	}
	dirs := make([]string, 0, len(c.entries))
	for d := range c.entries {
		dirs = append(dirs, d)
	}
	sort.Slice(dirs, func(i, j int) bool { return c.entries[dirs[i]].lastUsed.Before(c.entries[dirs[j]].lastUsed) })
	for _, d := range dirs {
		e := c.entries[d]
		if c.total <= max || now.Sub(e.lastUsed) < keep {
			break
		}
		if err := os.RemoveAll(d); err != nil {
			c.logger().Warn("evicting cached code", "dir", d, "err", err)
			continue
		}
		delete(c.entries, d)
		c.total -= e.size
	}
	if c.total > max {
		c.logger().Warn("code cache over its bound: every folder in it was used recently",
			"bytes", c.total, "max_bytes", max, "keep_for", keep)
	}
}

func (c *CodeCache) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// dirSize is the size of the files below dir, in bytes.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
