package activities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferry-faas/ferry"
	"golang.org/x/sync/singleflight"
)

// Builder compiles a Go bundle into a static binary named bootstrap in outDir.
type Builder interface {
	BuildGo(ctx context.Context, srcDir, handler, outDir string) error
}

// CodeCache keeps each version's code unpacked on this worker, keyed by checksum,
// so that S3 is read once per worker and code, and Go is built once per checksum
// (the binary is kept in the object store and shared by all workers).
type CodeCache struct {
	Root    string
	Objects Objects
	Builder Builder
	Unpack  func(rt ferry.Runtime, handler string, bundle []byte, dst string) error

	flight singleflight.Group
}

// Dir returns a folder holding v's code ready to mount at /var/task.
func (c *CodeCache) Dir(ctx context.Context, v ferry.Version) (string, error) {
	if v.Runtime == ferry.RuntimeGo {
		return c.once(filepath.Join(c.Root, "go", v.Checksum+"-"+v.Handler), func(tmp string) error {
			return c.goBinary(ctx, v, tmp)
		})
	}
	return c.source(ctx, v)
}

func (c *CodeCache) source(ctx context.Context, v ferry.Version) (string, error) {
	return c.once(filepath.Join(c.Root, "src", v.Checksum), func(tmp string) error {
		bundle, err := c.Objects.Get(ctx, v.CodeKey)
		if err != nil {
			return err
		}
		return c.Unpack(v.Runtime, v.Handler, bundle, tmp)
	})
}

// goBinary fills dst with bootstrap: from the artifact store when another
// worker built it already, else by building it here and storing it.
func (c *CodeCache) goBinary(ctx context.Context, v ferry.Version, dst string) error {
	key := fmt.Sprintf("artifacts/go/%s/%s/bootstrap", v.Checksum, v.Handler)
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
	_, err, _ := c.flight.Do(dir, func() (any, error) {
		if _, err := os.Stat(dir); err == nil {
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
		return nil, os.Rename(tmp, dir)
	})
	return dir, err
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
