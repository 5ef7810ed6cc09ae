package runtimes

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
)

// The numbers in docs/BENCHMARKS.md come from
//
//	go test -run '^$' -bench Warm -benchtime 2000x ./runtimes/
//	go test -run '^$' -bench Cold -benchtime 20x ./runtimes/
//	FERRY_BENCH_SPARES=0 go test -run '^$' -bench Cold -benchtime 20x ./runtimes/
//
// Each reports p50 and p99 of the executor round trip in ms; Cold also
// reports the start-up part alone (container create + start + ready frame,
// or with a spare: code + limits + init frame + ready frame).

func benchCases(b *testing.B, e *Executor) []rtCase {
	cases, missing := availableRuntimes(b, e)
	for rt, err := range missing {
		b.Logf("skipping %s: %v", rt, err)
	}
	if len(cases) == 0 {
		b.Skip("no runtime image")
	}
	return cases
}

func reportPercentiles(b *testing.B, prefix string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), prefix+"p50-ms")
	b.ReportMetric(at(0.99), prefix+"p99-ms")
}

// BenchmarkWarm measures a warm round trip: Execute of an echo function whose
// container is ready, to the handler and back; and of one that prints ten
// lines (/10-lines), through the log FIFO.
func BenchmarkWarm(b *testing.B) {
	e := newTestExecutor(b, Config{})
	ctx := context.Background()
	for _, c := range benchCases(b, e) {
		// Quiet, and printing ten lines of 100 bytes (the logs' path).
		for _, tc := range []struct {
			name  string
			event map[string]any
		}{{"", map[string]any{"op": "echo", "n": 1}}, {"/10-lines", map[string]any{"op": "spam", "lines": 10}}} {
			b.Run(string(c.rt)+tc.name, func(b *testing.B) {
				s := c.spec("bench-warm", tc.event, ferry.Limits{MaxConcurrency: 1})
				for range 20 { // start the container and let the runtime settle
					if _, err := e.Execute(ctx, s); err != nil {
						b.Fatal(err)
					}
				}
				ds := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for b.Loop() {
					t0 := time.Now()
					res, err := e.Execute(ctx, s)
					ds = append(ds, time.Since(t0))
					if err != nil || res.Status != StatusCompleted || res.Metrics.Cold {
						b.Fatalf("Execute: %v %+v", err, res)
					}
				}
				b.StopTimer()
				reportPercentiles(b, "", ds)
			})
		}
	}
}

// BenchmarkCold measures a cold start: every iteration is a new function
// version. With spares (the default; python and nodejs), each iteration
// waits outside the timer until a spare of the runtime is ready, as for a
// cold start that is not part of a burst, and Execute assigns it to the
// function, initialises it and invokes. With FERRY_BENCH_SPARES=0 (and for
// go), Execute creates and starts a container, waits for the runner's ready
// frame and then invokes. Removal happens outside the timer.
func BenchmarkCold(b *testing.B) {
	// FERRY_BENCH_INIT_CPUS=0.1 measures without the start-up CPU boost.
	initCPUs, _ := strconv.ParseFloat(os.Getenv("FERRY_BENCH_INIT_CPUS"), 64)
	spares := 1
	if v := os.Getenv("FERRY_BENCH_SPARES"); v != "" {
		spares, _ = strconv.Atoi(v)
		if spares <= 0 {
			spares = -1
		}
	}
	e := newTestExecutor(b, Config{InitCPUs: initCPUs, Spares: spares})
	ctx := context.Background()
	for _, c := range benchCases(b, e) {
		b.Run(string(c.rt), func(b *testing.B) {
			var total, init []time.Duration
			version := 0
			useSpare := spares > 0 && slices.Contains(spareRuntimes, c.rt)
			run := func() {
				version++
				s := c.spec("bench-cold", map[string]any{"op": "echo"}, ferry.Limits{})
				s.Version = version
				if useSpare {
					b.StopTimer()
					deadline := time.Now().Add(time.Minute)
					for len(readySpares(e, c.rt)) == 0 {
						if time.Now().After(deadline) {
							b.Fatalf("no %s spare became ready", c.rt)
						}
						time.Sleep(5 * time.Millisecond)
					}
					b.StartTimer()
				}
				assigned := e.spareAssigned.Load()
				t0 := time.Now()
				res, err := e.Execute(ctx, s)
				if err != nil || res.Status != StatusCompleted || !res.Metrics.Cold {
					b.Fatalf("Execute: %v %+v", err, res)
				}
				if viaSpare := e.spareAssigned.Load() > assigned; viaSpare != useSpare {
					b.Fatalf("cold start through a spare: %v, want %v", viaSpare, useSpare)
				}
				total = append(total, time.Since(t0))
				init = append(init, time.Duration(res.Metrics.InitMS*float64(time.Millisecond)))
				b.StopTimer()
				e.expireIdle(time.Now().Add(e.cfg.IdleTimeout))
				e.bg.Wait()
				b.StartTimer()
			}
			run() // the first start pays for loading the image from disk
			total, init = total[:0], init[:0]
			b.ResetTimer()
			for b.Loop() {
				run()
			}
			b.StopTimer()
			reportPercentiles(b, "", total)
			reportPercentiles(b, "start-", init)
		})
	}
}
