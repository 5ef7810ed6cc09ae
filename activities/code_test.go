package activities

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/google/uuid"
)

// memObjects is an in-memory object store.
type memObjects map[string][]byte

var _ Objects = memObjects(nil)

func (m memObjects) Get(_ context.Context, key string) ([]byte, error) {
	b, ok := m[key]
	if !ok {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "object %q not found", key)
	}
	return b, nil
}
func (m memObjects) Put(_ context.Context, key string, data []byte) error { m[key] = data; return nil }
func (m memObjects) Exists(_ context.Context, key string) (bool, error) {
	_, ok := m[key]
	return ok, nil
}

// writeFile is an Unpack that names the single file after the handler's module,
// as the real one does for a single-file bundle.
func writeFile(_ ferry.Runtime, handler string, bundle []byte, dst string) error {
	mod, _, _ := strings.Cut(handler, ".")
	return os.WriteFile(filepath.Join(dst, mod+".py"), bundle, 0o644)
}

func TestCodeCacheOneFolderPerVersion(t *testing.T) {
	objs := memObjects{"k": []byte("def handler(e, c): return 1\n")}
	c := &CodeCache{Root: t.TempDir(), Objects: objs, Unpack: writeFile}
	a := ferry.Version{FunctionID: uuid.New(), Function: "a", Version: 1, Runtime: ferry.RuntimePython,
		Handler: "app.handler", Checksum: "same", CodeKey: "k"}
	b := a
	b.FunctionID, b.Function, b.Handler = uuid.New(), "b", "main.handler"
	for _, v := range []ferry.Version{a, b} {
		dir, err := c.Dir(context.Background(), v)
		if err != nil {
			t.Fatal(err)
		}
		mod, _, _ := strings.Cut(v.Handler, ".")
		if _, err := os.Stat(filepath.Join(dir, mod+".py")); err != nil {
			t.Fatalf("%s: same bytes, handler %s: %v", v.Function, v.Handler, err)
		}
	}
}

func TestCodeCacheEvictsLeastRecentlyUsed(t *testing.T) {
	objs := memObjects{}
	for _, k := range []string{"k1", "k2", "k3"} {
		objs[k] = make([]byte, 1000)
	}
	c := &CodeCache{Root: t.TempDir(), Objects: objs, Unpack: writeFile, MaxBytes: 2500, KeepFor: time.Hour}
	version := func(key string) ferry.Version {
		return ferry.Version{FunctionID: uuid.New(), Version: 1, Runtime: ferry.RuntimePython,
			Handler: "app.handler", CodeKey: key}
	}
	ctx := context.Background()
	v1, v2, v3 := version("k1"), version("k2"), version("k3")
	d1, _ := c.Dir(ctx, v1)
	d2, _ := c.Dir(ctx, v2)
	// Over the bound, but everything is recent (a warm container may mount it): kept.
	d3, err := c.Dir(ctx, v3)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{d1, d2, d3} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("recently used folder evicted: %v", err)
		}
	}
	// Once unused for KeepFor, the least recently used go first, down to the bound.
	c.mu.Lock()
	c.entries[d1].lastUsed = time.Now().Add(-3 * time.Hour)
	c.entries[d2].lastUsed = time.Now().Add(-2 * time.Hour)
	c.entries[d3].lastUsed = time.Now().Add(-2 * time.Hour)
	c.evict(time.Now())
	total := c.total
	c.mu.Unlock()
	if _, err := os.Stat(d1); !os.IsNotExist(err) {
		t.Fatalf("least recently used folder kept: %v", err)
	}
	if _, err := os.Stat(d2); err != nil {
		t.Fatalf("folder evicted below the bound: %v", err)
	}
	if total != 2000 {
		t.Fatalf("cache holds %d bytes, want 2000", total)
	}
	// An evicted version is unpacked again on its next use, which evicts the
	// next least recently used (d2).
	if d, err := c.Dir(ctx, v1); err != nil || d != d1 {
		t.Fatalf("refill: %q, %v", d, err)
	}
	if _, err := os.Stat(d2); !os.IsNotExist(err) {
		t.Fatalf("next least recently used folder kept: %v", err)
	}
	// A new process finds what is on disk and counts it.
	again := &CodeCache{Root: c.Root, Objects: objs, Unpack: writeFile, MaxBytes: 2500, KeepFor: time.Hour}
	if !again.touch(d3) || again.total != 2000 || len(again.entries) != 2 {
		t.Fatalf("reloaded cache: %d bytes in %d folders, want 2000 in 2", again.total, len(again.entries))
	}
}
