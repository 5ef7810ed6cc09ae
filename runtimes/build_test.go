package runtimes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/bundle"
	"github.com/ferry-faas/ferry/internal/testenv"
)

// TestBuildGoConcurrencyBound starts three Go builds at once on an executor
// that allows one: never more than one builder container exists, and all three
// builds finish.
func TestBuildGoConcurrencyBound(t *testing.T) {
	e := newTestExecutor(t, Config{MaxBuilds: 1})
	if _, err := e.docker.ImageInspect(context.Background(), e.cfg.Images[goBuilderRuntime]); err != nil {
		testenv.Unavailable(t, "image "+e.cfg.Images[goBuilderRuntime], err)
	}
	// A compile error is the quickest complete build.
	src := filepath.Join(e.cfg.DataDir, "src")
	code := "package main\n\nimport \"context\"\n\nfunc Handle(ctx context.Context, e int) (int, error) { return e + \"x\", nil }\n"
	if err := bundle.Unpack([]byte(code), "main.go", src); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	most := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				most <- n
				return
			case <-time.After(5 * time.Millisecond):
			}
			e.mu.Lock()
			n = max(n, len(e.building))
			e.mu.Unlock()
		}
	}()
	began := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.BuildGo(context.Background(), src, "Handle", filepath.Join(e.cfg.DataDir, fmt.Sprint("out", i)))
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-most; n != 1 {
		t.Errorf("%d builder containers at once, want 1 (MaxBuilds)", n)
	}
	for i, err := range errs {
		if ferry.ErrorCode(err) != ferry.EUNPROCESSABLE {
			t.Errorf("build %d: %v, want the compile error", i, err)
		}
	}
	t.Logf("3 builds one at a time: %s", time.Since(began))

	// A build waiting for a slot gives up with its context, and its output
	// folder (world-writable while a build runs) is not even created while
	// it waits.
	e.builds <- struct{}{}
	out := filepath.Join(e.cfg.DataDir, "out-wait")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.BuildGo(ctx, src, "Handle", out) }()
	time.Sleep(300 * time.Millisecond)
	if fi, err := os.Stat(out); err == nil {
		t.Errorf("output folder of a build waiting for a slot exists with mode %v; want it not to exist yet", fi.Mode())
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := <-done; err != context.DeadlineExceeded {
		t.Errorf("build waiting for a slot past its deadline: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("output folder after a build gave up waiting: %v, want it not to exist", err)
	}
	<-e.builds
}
